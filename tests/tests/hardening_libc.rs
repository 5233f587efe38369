//! Same answers as libc: `tests/programs/oddcalls.c` runs one fixed
//! sequence of odd and ordinary calls (NULL and unreadable addresses,
//! short lengths, unknown families, AF_UNIX, bad, closed and non-socket
//! descriptors, a v6 address on a v4 socket, a refused connection, sends
//! without a destination, odd control data, successful calls that must
//! leave errno alone, a non-blocking connect, and a blocking connect to a
//! black hole interrupted by a signal) and prints one line per call:
//! return value and errno. The lines must be the same without the shim and
//! with it, under no profile, under a profile that binds to `lo` but
//! excludes everything, and under a profile that binds to `lo`, except
//! where that profile must change the outcome ([`PROFILE_CHANGES`]).

use std::path::Path;

use bindto_tests::Lab;
use bindto_tests::programs::{
    as_refs, bound_vars, compile, compile_as, i686_shim, path_str, shim, write,
};

/// An address in the client whose SYNs are dropped without an answer:
/// behind a veth (`bh0`) whose peer (`bh1`) ignores frames for another
/// MAC address.
const BLACKHOLE: &str = "198.18.99.2";

/// The one profile whose outcome must differ: it binds to `lo`, sends the
/// black hole's range through `bh0`, and has `listen` addresses, so a
/// wildcard bind gets them. The lines that differ for it, and how.
const BOUND: &str = r#"
[profile.odd]
interface = "lo"
listen = ["127.0.0.1", "::1"]

[[profile.odd.route]]
to = "198.18.99.0/24"
interface = "bh0"
"#;

/// Lines of `oddcalls` that [`BOUND`] changes, with what it prints
/// instead: a wildcard bind (0.0.0.0 or ::) becomes the profile's
/// `listen` address of the socket's family (docs/REFERENCE.md, Policies).
const PROFILE_CHANGES: &[&str] = &[
    "bind_wildcard4 rc=0 errno=12345 local=127.0.0.1",
    "bind_wildcard6 rc=0 errno=12345 local=::1",
    "bind_wildcard6_v6only rc=0 errno=12345 local=::1",
];

/// Binds to `lo` too, but every destination is excluded: nothing to do.
const EXCLUDED: &str = r#"
[profile.odd]
interface = "lo"
listen = []
exclude = ["0.0.0.0/0", "::/0"]
"#;

fn label(line: &str) -> &str {
    line.split(' ').next().unwrap_or_default()
}

/// Compares a run under the shim with libc's, line by line; `allowed` are
/// the lines that may replace libc's line with the same label.
#[track_caller]
fn compare(name: &str, libc: &[&str], shim: &[&str], allowed: &[&str]) {
    let mut wrong = Vec::new();
    for (i, expected) in libc.iter().enumerate() {
        let Some(got) = shim.get(i) else {
            wrong.push(format!("line {}: {expected:?}, missing", i + 1));
            continue;
        };
        let documented = allowed
            .iter()
            .any(|change| label(change) == label(expected) && change == got);
        if got != expected && !documented {
            wrong.push(format!("line {}: libc {expected:?}, shim {got:?}", i + 1));
        }
    }
    if shim.len() > libc.len() {
        wrong.push(format!("extra lines: {:?}", &shim[libc.len()..]));
    }
    assert!(
        wrong.is_empty(),
        "{name}: the shim answers differently from libc:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn odd_calls_answer_as_libc_does() {
    let Some(lab) = Lab::new() else { return };
    let program = compile(lab.dir(), "oddcalls");
    odd_calls(&lab, &program, &shim());
}

/// The same in a 32-bit program under the i686 build: its own struct
/// layouts (`msghdr`, `cmsghdr`, `mmsghdr`) and glibc's `socketcall`.
#[test]
fn odd_calls_answer_as_libc_does_in_a_32_bit_program() {
    let Some(lab) = Lab::new() else { return };
    let Some(shim) = i686_shim(lab.dir()) else {
        return;
    };
    let program = compile_as(lab.dir(), "oddcalls", "oddcalls32", &["-m32"]);
    odd_calls(&lab, &program, path_str(&shim));
}

/// Runs `program` (oddcalls) with libc alone, then preloading `shim`
/// under no profile and the two above, and compares.
fn odd_calls(lab: &Lab, program: &Path, shim: &str) {
    // The black hole: a veth pair inside the client; frames to bh0's
    // static neighbour reach bh1, which drops them (not its MAC, no
    // address), so a connect waits for a SYN-ACK that never comes.
    lab.ip_client(&["link", "add", "bh0", "type", "veth", "peer", "name", "bh1"]);
    lab.ip_client(&["addr", "add", "198.18.99.1/24", "dev", "bh0"]);
    lab.ip_client(&["link", "set", "bh1", "up"]);
    lab.ip_client(&["link", "set", "bh0", "up"]);
    lab.ip_client(&[
        "neigh",
        "replace",
        BLACKHOLE,
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        "bh0",
        "nud",
        "permanent",
    ]);

    let args = [path_str(program), BLACKHOLE];
    let libc = lab.run_client(&args, &[]);
    let libc_lines: Vec<&str> = libc.assert_success().lines().collect();
    assert_eq!(libc_lines.last(), Some(&"end"), "{libc}");
    // The sequence is what the test claims: a few lines checked outright.
    for line in [
        "first_socket rc=0 errno=12345 fd",
        "connect_null_len16 rc=-1 errno=EFAULT",
        "connect_short_in rc=-1 errno=EINVAL",
        "connect_fd_minus1 rc=-1 errno=EBADF",
        "connect_pipe rc=-1 errno=ENOTSOCK",
        "connect_refused rc=-1 errno=ECONNREFUSED",
        "connect_ok rc=0 errno=12345",
        "connect_nonblock rc=-1 errno=EINPROGRESS",
        "sendto_null_unconnected rc=-1 errno=EDESTADDRREQ",
        "sendmsg_noname_unconnected rc=-1 errno=EDESTADDRREQ",
        "sendto_ok rc=4 errno=12345",
        "bind_null rc=-1 errno=EFAULT",
        "bind_short rc=-1 errno=EINVAL",
        "connect_blackhole_eintr rc=-1 errno=EINTR",
        "signal_handler ran=1 connect rc=0 errno=12345",
        "connect_blackhole_nonblock rc=-1 errno=EINPROGRESS",
    ] {
        assert!(libc_lines.contains(&line), "no {line:?} in\n{libc}");
    }

    let excluded = write(lab, "excluded.toml", EXCLUDED);
    let bound = write(lab, "bound.toml", BOUND);
    let runs = [
        (
            "no profile",
            vec![("LD_PRELOAD".to_owned(), shim.to_owned())],
            &[][..],
        ),
        ("lo, all excluded", bound_vars(&excluded, "odd"), &[][..]),
        ("lo", bound_vars(&bound, "odd"), PROFILE_CHANGES),
    ];
    for (name, mut vars, allowed) in runs {
        // bound_vars preloads the 64-bit build.
        vars[0].1 = shim.to_owned();
        let out = lab.run_client(&args, &as_refs(&vars));
        let lines: Vec<&str> = out.assert_success().lines().collect();
        compare(name, &libc_lines, &lines, allowed);
        // Nothing here is refused, so the shim has nothing to say.
        assert_eq!(out.stderr, "", "{name}: {out}");
    }
}
