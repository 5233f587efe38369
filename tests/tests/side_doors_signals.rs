//! Side doors through signals, cancellation and the program's own
//! descriptor bookkeeping (issue 16): under `[profile.vpn] interface =
//! "vpn0"`, in a client whose default route is wan0, nothing may leave
//! unbound, fail for good, abort the process or land in the program's
//! descriptors.
//!
//! - the log file's descriptor after the program closed and reused its
//!   number (`closefrom(3)`, a raw close syscall): `tests/programs/logfd.c`.

use std::fs;

use bindto_tests::Lab;
use bindto_tests::clients::VPN_PROFILE;
use bindto_tests::programs::{TARGET, compile, path_str};

/// The debug log's line for each decided connect.
fn connect_lines(log: &str) -> usize {
    log.lines().filter(|l| l.contains(" connect fd ")).count()
}

/// `logfd` in `mode`, logging to a file: what it printed, and the log.
fn logfd(mode: &str) -> Option<(String, String)> {
    let lab = Lab::new()?;
    let program = compile(lab.dir(), "logfd");
    let log = lab.dir().join("shim.log");
    let victim = lab.dir().join("victim");
    let mut args = vec![path_str(&program), TARGET, path_str(&log), mode];
    if mode == "closefrom" {
        args.push(path_str(&victim));
    }
    let vars = [("BINDTO_LOG", "debug"), ("BINDTO_LOG_FILE", path_str(&log))];
    let out = lab.run_bound(VPN_PROFILE, "vpn", &args, &vars);
    let printed = out.assert_success().to_owned();
    assert_eq!(lab.count("vpn"), 3, "{out}");
    assert_eq!(lab.count("wan"), 0, "{out}");
    let logged = fs::read_to_string(&log).unwrap_or_default();
    if mode == "closefrom" {
        let in_victim = fs::read_to_string(&victim).unwrap_or_default();
        assert_eq!(in_victim, "", "the shim wrote into the program's file");
    }
    Some((printed, logged))
}

#[test]
fn after_closefrom_the_log_never_writes_into_the_programs_file() {
    let Some((printed, logged)) = logfd("closefrom") else {
        return;
    };
    // The program's file took the log's number, and got nothing.
    let first = printed.lines().next().unwrap_or_default();
    let log_fd = first
        .split("log_fd=")
        .nth(1)
        .and_then(|r| r.split(' ').next());
    assert_eq!(
        first
            .split("victim fd=")
            .nth(1)
            .and_then(|r| r.split(' ').next()),
        log_fd,
        "{printed}"
    );
    assert!(first.ends_with(" bytes=0"), "{printed}");
    assert!(printed.contains("connects ok=3"), "{printed}");
    // The shim opened its file again and went on logging there.
    assert_eq!(connect_lines(&logged), 3, "{logged}");
}

#[test]
fn after_a_raw_close_the_log_never_writes_into_the_programs_socket() {
    let Some((printed, logged)) = logfd("rawclose") else {
        return;
    };
    let first = printed.lines().next().unwrap_or_default();
    let log_fd = first
        .split("log_fd=")
        .nth(1)
        .and_then(|r| r.split(' ').next());
    assert_eq!(
        first
            .split("pair fd=")
            .nth(1)
            .and_then(|r| r.split(' ').next()),
        log_fd,
        "{printed}"
    );
    assert!(first.ends_with(" leaked=0"), "{printed}");
    assert!(printed.contains("connects ok=3"), "{printed}");
    assert_eq!(connect_lines(&logged), 3, "{logged}");
}
