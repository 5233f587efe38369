//! Help, completions, exit codes, colour, and `doctor`.

mod common;

use std::net::UdpSocket;
use std::thread;

use common::{Scratch, expect, run};

#[test]
fn help_everywhere_with_exit_codes() {
    let s = Scratch::new("help");
    for sub in [
        "run",
        "check",
        "explain",
        "list",
        "doctor",
        "demo",
        "completions",
    ] {
        let (out, _) = expect(&run(&mut s.bindto(&[sub, "--help"])), 0);
        assert!(out.contains("Usage: bindto"), "{sub}: {out}");
        if sub != "completions" {
            assert!(
                out.contains("Exit status:") && out.contains("refused"),
                "{sub}: {out}"
            );
        }
    }
    let (out, _) = expect(&run(&mut s.bindto(&["--help"])), 0);
    for sub in [
        "run",
        "check",
        "explain",
        "list",
        "doctor",
        "demo",
        "completions",
    ] {
        assert!(out.contains(sub), "{out}");
    }
    expect(&run(&mut s.bindto(&["--version"])), 0);
    expect(&run(&mut s.bindto(&[])), 2);
    expect(&run(&mut s.bindto(&["frobnicate"])), 2);
}

#[test]
fn completions_for_three_shells() {
    let s = Scratch::new("completions");
    for shell in ["bash", "zsh", "fish"] {
        let (out, _) = expect(&run(&mut s.bindto(&["completions", shell])), 0);
        assert!(
            out.contains("bindto") && out.contains("explain"),
            "{shell}: {out}"
        );
    }
    expect(&run(&mut s.bindto(&["completions", "tcsh"])), 2);
}

#[test]
fn completions_leave_out_the_demos_own_client() {
    let s = Scratch::new("completions-hidden");
    for shell in ["bash", "zsh", "fish"] {
        let (out, _) = expect(&run(&mut s.bindto(&["completions", shell])), 0);
        assert!(!out.contains("demo-client"), "{shell}: {out}");
    }
}

#[test]
fn output_cut_short_ends_quietly() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;
    let s = Scratch::new("broken-pipe");
    for args in [&["completions", "bash"][..], &["--help"], &["list"]] {
        // A pipe whose reader is gone before bindto writes: every write
        // fails with EPIPE, as after `| head -1` has read its line.
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() returns.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: a fresh descriptor that nothing else owns.
        let reader = unsafe { OwnedFd::from_raw_fd(fds[0]) };
        // SAFETY: as above.
        let writer = unsafe { OwnedFd::from_raw_fd(fds[1]) };
        drop(reader);
        let out = s.bindto(args).stdout(writer).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}

#[test]
fn no_colour_off_a_terminal() {
    let s = Scratch::new("colour");
    let file = s.write("p.toml", "[profile.x]\ninterface = \"tun0\"\n");
    let o = run(&mut s.bindto(&["check", file.to_str().unwrap()]));
    let (out, _) = expect(&o, 0);
    assert!(!out.contains('\x1b'), "{out:?}");
    let o = run(&mut s.bindto(&["run", "-p", "x", "--", "true"]));
    assert!(!common::stderr(&o).contains('\x1b'));
}

/// A DNS server on 127.0.0.1 that answers any query with its header's
/// QR bit set: enough for doctor, which only asks whether one answers.
fn fake_dns() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            if n >= 12 {
                buf[2] |= 0x80;
                let _ = socket.send_to(&buf[..n], from);
            }
        }
    });
    port
}

#[test]
fn doctor_passes_when_everything_works() {
    let s = Scratch::new("doctor-ok");
    let port = fake_dns();
    let file = s.write(
        "p.toml",
        // Loopback is bound only when a route names it.
        &format!(
            "[profile.local]\nsource = \"127.0.0.1\"\n[[profile.local.route]]\nto = \"127.0.0.1\"\n\
             [profile.local.dns]\n53 = \"127.0.0.1:{port}\"\n"
        ),
    );
    let o = run(s
        .bindto(&["doctor", "-p", "local"])
        .env("BINDTO_CONFIG", &file));
    let (out, _) = expect(&o, 0);
    assert!(
        out.contains("ok    source 127.0.0.1 is assigned (to lo)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "ok    DNS server 127.0.0.1:{port} answers from 127.0.0.1"
        )),
        "{out}"
    );
    assert!(out.contains("SO_BINDTODEVICE is not needed"), "{out}");
    assert!(out.contains("no problems found"), "{out}");

    // The same, ad hoc, where no route can name loopback: left alone.
    let dns = format!("127.0.0.1:{port}");
    let o = run(&mut s.bindto(&["doctor", "--source", "127.0.0.1", "--dns", &dns]));
    let (out, _) = expect(&o, 0);
    assert!(out.contains("Checking the ad-hoc profile"), "{out}");
    assert!(
        out.contains(&format!("DNS server {dns} answers directly (not bound)")),
        "{out}"
    );
}

#[test]
fn doctor_finds_problems_and_says_what_to_do() {
    let s = Scratch::new("doctor-bad");
    let port = fake_dns();
    let file = s.write(
        "p.toml",
        &format!(
            "[profile.missing]\ninterface = \"nosuch0\"\nsource = \"192.0.2.254\"\n\
             [profile.lo]\ninterface = \"lo\"\n[[profile.lo.route]]\nto = \"127.0.0.0/8\"\n\
             [profile.lo.dns]\n53 = \"127.0.0.1:{port}\"\n"
        ),
    );
    let o = run(s
        .bindto(&["doctor", "-p", "missing"])
        .env("BINDTO_CONFIG", &file));
    let (out, _) = expect(&o, 1);
    assert!(
        out.contains("FAIL  interface nosuch0 does not exist"),
        "{out}"
    );
    assert!(
        out.contains("FAIL  source 192.0.2.254 is not assigned"),
        "{out}"
    );
    assert!(out.contains("problem(s) found"), "{out}");
    // The DNS check depends on the missing interface: that cause is named
    // once, not reported again as a DNS failure with DNS advice.
    assert!(out.contains("nosuch0 is not usable (above)"), "{out}");
    assert!(!out.contains("does not answer"), "{out}");

    // lo is up and answers DNS, but has no default route: the older
    // tool's "No route to host" case, with its fix.
    let o = run(s
        .bindto(&["doctor", "-p", "lo"])
        .env("BINDTO_CONFIG", &file));
    let (out, _) = expect(&o, 1);
    assert!(out.contains("ok    interface lo exists and is up"), "{out}");
    assert!(out.contains("FAIL  lo has no default IPv4 route"), "{out}");
    assert!(
        out.contains("ip route add default via <gateway> dev lo metric 500"),
        "{out}"
    );
    assert!(
        out.contains(&format!("DNS server 127.0.0.1:{port} answers through lo")),
        "{out}"
    );

    // Usage and config errors.
    expect(&run(&mut s.bindto(&["doctor"])), 2);
    let o = run(s
        .bindto(&["doctor", "-p", "nosuch"])
        .env("BINDTO_CONFIG", &file));
    assert!(common::stderr(&o).contains("\"nosuch\""));
    expect(&o, 1);
}
