//! `bindto run` supervising at the system-call level (seccomp user
//! notification): static and Go programs, raw system calls, io_uring,
//! children that clear their environment, many children at once, and an
//! unprivileged user; everything on the profile's uplink, DNS included,
//! and exit status and signal death kept.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use bindto_tests::dns::{self, DnsServer};
use bindto_tests::privilege::{self, CHILD_VAR};
use bindto_tests::programs::{compile, compile_as, path_str, write};
use bindto_tests::{CONFIG_VAR, ECHO_PORT, HTTP_PORT, Lab, RunOutput, VPN, WAN, shim_path};

/// Everything through vpn0, DNS to the vpn side's server.
const PROFILE: &str =
    "[profile.vpn]\ninterface = \"vpn0\"\n\n[profile.vpn.dns]\n53 = \"198.18.2.1\"\n";
/// What the lab's vpn-side servers answer the client's vpn0 address.
const VPN_ANSWER: &str = "vpn 198.18.2.2";
const TARGET: &str = "198.19.0.1";

fn bindto() -> PathBuf {
    shim_path().with_file_name("bindto")
}

/// `bindto run -p vpn FLAGS -- COMMAND` in the lab's client, with
/// [`PROFILE`].
fn supervised(lab: &Lab, flags: &[&str], command: &[&str]) -> RunOutput {
    let config = write(lab, "profiles.toml", PROFILE);
    let bindto = bindto();
    let mut args = vec![path_str(&bindto), "run", "-p", "vpn"];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(command);
    lab.run_client(&args, &[(CONFIG_VAR, path_str(&config))])
}

/// `bindto run --interface vpn0 FLAGS -- COMMAND` as nobody (no config
/// file for nobody to read); `None` in a user namespace the lab made,
/// which maps only root.
fn as_nobody(lab: &Lab, flags: &[&str], command: &[&str]) -> Option<RunOutput> {
    if std::env::var_os(CHILD_VAR).is_some() {
        return None;
    }
    let bindto = bindto();
    let mut args = vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        path_str(&bindto),
        "run",
        "--interface",
        "vpn0",
    ];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(command);
    Some(lab.run_client(&args, &[]))
}

/// No packet reached the wan or alt uplinks.
#[track_caller]
fn assert_only_vpn(lab: &Lab) {
    assert_eq!((lab.count("wan"), lab.count("alt")), (0, 0), "leaked");
}

/// The Go client (tests/programs/goclient.go), static and dynamic, built
/// once per test process; `None` (skipped) without `go`.
fn go_programs() -> Option<&'static (PathBuf, PathBuf)> {
    static BUILT: OnceLock<Result<(PathBuf, PathBuf), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        // Shared between runs, so that only the first build is slow.
        let dir = std::env::temp_dir().join("bindto-tests-go");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let source = bindto_tests::run::workspace_root().join("tests/programs/goclient.go");
        let build = |cgo: &str, out: &str| -> Result<PathBuf, String> {
            let out = dir.join(format!("{out}-{}", std::process::id()));
            let result = Command::new("go")
                .args(["build", "-o"])
                .arg(&out)
                .arg(&source)
                .env("CGO_ENABLED", cgo)
                .env("GOCACHE", dir.join("cache"))
                .env("GOPATH", dir.join("gopath"))
                .env("GOFLAGS", "")
                .env("GOPROXY", "off")
                .env("GOTOOLCHAIN", "local")
                .output()
                .map_err(|e| format!("go (golang-go) is not installed: {e}"))?;
            if !result.status.success() {
                return Err(format!(
                    "go build failed: {}",
                    String::from_utf8_lossy(&result.stderr)
                ));
            }
            Ok(out)
        };
        Ok((
            build("0", "goclient-static")?,
            build("1", "goclient-dynamic")?,
        ))
    });
    match built {
        Ok(programs) => Some(programs),
        Err(reason) => {
            privilege::skip(reason);
            None
        }
    }
}

/// A lab with the uplink servers on HTTP and echo, and DNS servers on the
/// vpn and wan sides; the client's resolv.conf names the wan one.
fn dns_lab() -> Option<(Lab, DnsServer, DnsServer)> {
    let lab = Lab::builder().ports([HTTP_PORT, ECHO_PORT]).build()?;
    lab.set_client_file(
        "resolv.conf",
        &format!(
            "nameserver {}\noptions timeout:1 attempts:2\n",
            WAN.server_v4()
        ),
    );
    lab.set_client_file("hosts", "127.0.0.1 localhost\n");
    let vpn = DnsServer::start(&lab, "vpn");
    let wan = DnsServer::start(&lab, "wan");
    Some((lab, vpn, wan))
}

#[track_caller]
fn assert_dns_on_vpn(vpn: &DnsServer, wan: &DnsServer) {
    assert_eq!(wan.queries(), [], "queries leaked to the wan nameserver");
    assert!(
        !vpn.queries().is_empty(),
        "no query reached the profile's server"
    );
    for query in vpn.queries() {
        assert_eq!(query.peer.ip(), VPN.client_v4(), "{query:?}");
    }
}

/// A static and a dynamic Go program fetch a URL by name and send UDP,
/// connected and not: everything on vpn0, names resolved by the profile's
/// server through vpn0, nothing on another uplink. Before supervision, the
/// static one was refused and the dynamic one went out of wan0 unbound.
#[test]
fn go_programs_static_and_dynamic_are_bound_dns_included() {
    let Some((statik, dynamic)) = go_programs() else {
        return;
    };
    let Some((lab, vpn, wan)) = dns_lab() else {
        return;
    };
    let url = format!("http://{}/", dns::HOST);
    let udp = format!("{TARGET}:{ECHO_PORT}");
    for program in [statik, dynamic] {
        let out = supervised(&lab, &[], &[path_str(program), &url, &udp]);
        assert_eq!(
            out.assert_success(),
            format!("{VPN_ANSWER}\n{VPN_ANSWER}\n{VPN_ANSWER}\n"),
            "{out}"
        );
        assert_eq!(out.stderr, "", "{out}");
    }
    assert_dns_on_vpn(&vpn, &wan);
    assert_only_vpn(&lab);
    assert_eq!(lab.count("vpn"), 6);

    // The same as an unprivileged user, DNS through the --dns flag.
    lab.clear_logs();
    let dns_flag = ["--dns", "198.18.2.1"];
    if let Some(out) = as_nobody(&lab, &dns_flag, &[path_str(statik), &url, &udp]) {
        assert_eq!(
            out.assert_success(),
            format!("{VPN_ANSWER}\n{VPN_ANSWER}\n{VPN_ANSWER}\n"),
            "{out}"
        );
        assert_dns_on_vpn(&vpn, &wan);
        assert_only_vpn(&lab);
    }
}

/// A static C program: supervised automatically, bound.
#[test]
fn a_static_c_program_is_bound() {
    let Some(lab) = Lab::new() else { return };
    let program = compile_as(lab.dir(), "rawcalls", "rawcalls-static", &["-static"]);
    let program = path_str(&program);
    let port = HTTP_PORT.to_string();
    let echo = ECHO_PORT.to_string();
    let out = supervised(&lab, &[], &[program, "tcp", TARGET, &port]);
    assert_eq!(out.assert_success(), format!("{VPN_ANSWER}\n"), "{out}");
    let out = supervised(&lab, &[], &[program, "udp", TARGET, &echo]);
    assert_eq!(out.assert_success(), format!("{VPN_ANSWER}\n"), "{out}");
    assert_only_vpn(&lab);
    if let Some(out) = as_nobody(&lab, &[], &[program, "tcp", TARGET, &port]) {
        assert_eq!(out.assert_success(), format!("{VPN_ANSWER}\n"), "{out}");
        assert_only_vpn(&lab);
    }
}

/// connect and sendto made with syscall(2) in a dynamic program: past the
/// preloaded library, caught under --supervise.
#[test]
fn raw_system_calls_are_bound_under_supervise() {
    let Some(lab) = Lab::new() else { return };
    let program = compile(lab.dir(), "rawcalls");
    let program = path_str(&program);
    let port = HTTP_PORT.to_string();
    let echo = ECHO_PORT.to_string();
    for (mode, port) in [("tcp", &port), ("udp", &echo)] {
        let out = supervised(&lab, &["--supervise"], &[program, mode, TARGET, port]);
        assert_eq!(out.assert_success(), format!("{VPN_ANSWER}\n"), "{out}");
        if let Some(out) = as_nobody(&lab, &["--supervise"], &[program, mode, TARGET, port]) {
            assert_eq!(out.assert_success(), format!("{VPN_ANSWER}\n"), "{out}");
        }
    }
    assert_only_vpn(&lab);
}

/// io_uring cannot be filtered per operation: under supervision its setup
/// fails with ENOSYS, with one line on stderr, and nothing leaves unbound.
#[test]
fn io_uring_is_refused_under_supervise() {
    let Some(lab) = Lab::new() else { return };
    let program = compile(lab.dir(), "rawcalls");
    let port = HTTP_PORT.to_string();
    let out = supervised(
        &lab,
        &["--supervise"],
        &[path_str(&program), "uring", TARGET, &port],
    );
    assert_eq!(out.assert_success(), "setup error ENOSYS\n", "{out}");
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
    assert!(out.stderr.contains("io_uring"), "{out}");
    assert_eq!((lab.count("wan"), lab.count("vpn")), (0, 0));
}

/// A child that clears its environment (so no LD_PRELOAD reaches it)
/// stays bound: the filter is inherited across fork and exec.
#[test]
fn a_child_with_an_empty_environment_stays_bound() {
    let Some(lab) = Lab::new() else { return };
    let curl = "env -i curl -sS --max-time 5 http://198.19.0.1/";
    let out = supervised(&lab, &["--supervise"], &["bash", "-c", curl]);
    assert_eq!(out.assert_success(), format!("{VPN_ANSWER}\n"), "{out}");
    if let Some(out) = as_nobody(&lab, &["--supervise"], &["bash", "-c", curl]) {
        assert_eq!(out.assert_success(), format!("{VPN_ANSWER}\n"), "{out}");
    }
    assert_only_vpn(&lab);
}

/// The command's exit status, and its death by a signal, are bindto's.
#[test]
fn exit_status_and_signal_death_are_kept() {
    use std::os::unix::process::ExitStatusExt;
    let Some(lab) = Lab::new() else { return };
    let out = supervised(&lab, &["--supervise"], &["sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{out}");
    let out = supervised(&lab, &["--supervise"], &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.signal(), Some(15), "{out}");
    assert!(!out.timed_out, "{out}");
    // SIGPIPE is the program's default, as in a shell: `yes` dies of it
    // quietly rather than failing with EPIPE.
    let pipe = "yes | head -n 1; echo ${PIPESTATUS[0]}";
    let out = supervised(&lab, &["--supervise"], &["bash", "-c", pipe]);
    assert_eq!(out.assert_success(), "y\n141\n", "{out}");
    assert_eq!(out.stderr, "", "{out}");
}

/// A supervised program forks 50 children that each connect at once:
/// every call answered, every connection on vpn0.
#[test]
fn fifty_forked_children_each_connect_bound() {
    let Some(lab) = Lab::new() else { return };
    let script = "for i in $(seq 50); do curl -sS --max-time 8 http://198.19.0.1/ & done; wait";
    let out = supervised(&lab, &["--supervise"], &["sh", "-c", script]);
    let text = out.assert_success();
    assert_eq!(text.lines().count(), 50, "{out}");
    assert!(text.lines().all(|l| l == VPN_ANSWER), "{out}");
    assert_eq!(lab.count("vpn"), 50);
    assert_only_vpn(&lab);
}

/// One unconnected socket, IPv6 and IPv4-mapped destinations with
/// different rules, under --supervise: each datagram leaves as its own
/// destination's rule says (bindto sends it with IPV6_PKTINFO /
/// IP_PKTINFO), which binding the socket could not do.
#[test]
fn each_datagram_follows_its_own_rule_under_supervise() {
    use bindto_tests::clients::{python, udp_script};
    use bindto_tests::{TARGETS_V4, TARGETS_V6};
    use std::net::{IpAddr, SocketAddr};
    let Some(lab) = Lab::new() else { return };
    let config = "[profile.vpn]\ninterface = \"vpn0\"\n\n\
                  [[profile.vpn.route]]\nto = [\"198.19.0.2\", \"2001:db8:ff::2\"]\n\
                  interface = \"alt0\"\n";
    let config = write(&lab, "routes.toml", config);
    let mapped = |i: usize| SocketAddr::new(IpAddr::V6(TARGETS_V4[i].to_ipv6_mapped()), ECHO_PORT);
    let v6 = |i: usize| SocketAddr::new(TARGETS_V6[i].into(), ECHO_PORT);
    let targets = [v6(0), v6(1), mapped(0), mapped(1)];
    let bindto = bindto();
    let script = udp_script(&targets, false, true);
    let mut args = vec![path_str(&bindto), "run", "-p", "vpn", "--supervise", "--"];
    args.extend(python(&script));
    let out = lab.run_client(&args, &[(CONFIG_VAR, path_str(&config))]);
    assert_eq!(
        out.assert_success(),
        "vpn fd00:2::2\nalt fd00:3::2\nvpn 198.18.2.2\nalt 198.18.3.2\n",
        "{out}"
    );
    assert_eq!(lab.count("wan"), 0);
}

/// If bindto dies, the kernel fails the calls it can no longer answer:
/// the program's connect fails, nothing leaves unbound.
#[test]
fn a_dead_supervisor_fails_closed() {
    let Some(lab) = Lab::new() else { return };
    let script = "kill -KILL $PPID; sleep 0.3; \
                  curl -sS --max-time 3 http://198.19.0.1/ || echo curl failed";
    let out = supervised(&lab, &["--supervise"], &["sh", "-c", script]);
    assert!(!out.timed_out, "{out}");
    assert!(out.stdout.contains("curl failed"), "{out}");
    // The orphaned shell goes on after bindto's death: wait for it.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        (lab.count("wan"), lab.count("vpn"), lab.count("alt")),
        (0, 0, 0)
    );
}

/// A wildcard bind takes the profile's `listen` address under
/// supervision, as with the library: a static server (here: python under
/// --supervise) listening on 0.0.0.0 and :: gets 198.18.2.2 and fd00:2::2.
#[test]
fn a_wildcard_bind_takes_the_listen_address_under_supervise() {
    use bindto_tests::clients::python;
    let Some(lab) = Lab::new() else { return };
    let config = "[profile.vpn]\ninterface = \"vpn0\"\nlisten = [\"198.18.2.2\", \"fd00:2::2\"]\n";
    let config = write(&lab, "listen.toml", config);
    let script = "import socket\n\
                  for family, any in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):\n\
                  \x20   s = socket.socket(family, socket.SOCK_STREAM)\n\
                  \x20   s.bind((any, 8081))\n\
                  \x20   print(s.getsockname()[0])\n";
    let bindto = bindto();
    let mut args = vec![path_str(&bindto), "run", "-p", "vpn", "--supervise", "--"];
    args.extend(python(script));
    let out = lab.run_client(&args, &[(CONFIG_VAR, path_str(&config))]);
    assert_eq!(out.assert_success(), "198.18.2.2\nfd00:2::2\n", "{out}");
}
