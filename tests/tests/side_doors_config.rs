//! Side doors of the config (issue 16): loopback under a profile, a config
//! rewritten in place while a process runs, and the older tools'
//! variables and the system file's directories in a privileged process.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bindto_tests::clients::*;
use bindto_tests::programs::{TARGET, as_refs, bound_vars};
use bindto_tests::secure::{NOBODY, SecureLab, VPN_ANSWER};
use bindto_tests::{Lab, UPLINKS};

/// A python3 program that serves itself on loopback and connects (TCP)
/// and sends (UDP, `sendto` on an unconnected socket) to each address,
/// printing `tcp ADDR ok` / `udp ADDR ok` or the errno.
const LOOPBACK_SCRIPT: &str = r#"
import socket
cases = [
    (socket.AF_INET, '127.0.0.1', socket.AF_INET, '127.0.0.1'),
    (socket.AF_INET, '127.0.0.1', socket.AF_INET, '127.1.2.3'),
    (socket.AF_INET6, '::1', socket.AF_INET6, '::1'),
    (socket.AF_INET, '127.0.0.1', socket.AF_INET6, '::ffff:127.0.0.1'),
]
for (sfam, listen, cfam, dest) in cases:
    try:
        srv = socket.socket(sfam, socket.SOCK_STREAM)
        srv.bind(('0.0.0.0' if dest == '127.1.2.3' else listen, 0))
        srv.listen(1)
        c = socket.socket(cfam, socket.SOCK_STREAM)
        c.settimeout(2)
        c.connect((dest, srv.getsockname()[1]))
        a, _ = srv.accept()
        a.sendall(b'ok')
        print('tcp', dest, c.recv(10).decode(), flush=True)
    except OSError as e:
        print('tcp', dest, 'ERR', e.errno, flush=True)
    try:
        srv = socket.socket(sfam, socket.SOCK_DGRAM)
        srv.bind(('0.0.0.0' if dest == '127.1.2.3' else listen, 0))
        srv.settimeout(2)
        c = socket.socket(cfam, socket.SOCK_DGRAM)
        c.sendto(b'ok', (dest, srv.getsockname()[1]))
        print('udp', dest, srv.recv(10).decode(), flush=True)
    except OSError as e:
        print('udp', dest, 'ERR', e.errno, flush=True)
"#;

/// Under a profile that binds everything to vpn0 and excludes nothing,
/// loopback is left alone: bound to vpn0, a connect to 127.0.0.1 hung
/// until its timeout and a datagram was lost.
#[test]
fn loopback_works_under_a_profile_without_an_exclude_for_it() {
    let Some(lab) = Lab::new() else { return };
    let out = lab.run_bound(VPN_PROFILE, "vpn", &python(LOOPBACK_SCRIPT), &[]);
    assert_eq!(
        out.assert_success(),
        "tcp 127.0.0.1 ok\nudp 127.0.0.1 ok\n\
         tcp 127.1.2.3 ok\nudp 127.1.2.3 ok\n\
         tcp ::1 ok\nudp ::1 ok\n\
         tcp ::ffff:127.0.0.1 ok\nudp ::ffff:127.0.0.1 ok\n",
        "{out}"
    );
    // And the rest still goes through vpn0.
    let out = lab.run_bound(VPN_PROFILE, "vpn", &curl(URL_V4), &[]);
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\n", "{out}");
    assert_eq!(counts(&lab), (0, 1, 0));
}

/// The older tools' variables in a setuid program are the invoking user's
/// word: ignored, as glibc ignores RES_OPTIONS there, by the engine and by
/// the front alike (it loads no engine for them). Each case: variables,
/// then what the setuid run and the plain one (the control) get; the
/// setuid run reaches the address it asked for, the plain one's datagram
/// to port 53 the user's server. (`BIND_EXCLUDE` alone changes nothing
/// to see: core/tests/legacy.rs.)
#[test]
fn a_setuid_program_ignores_the_older_tools_variables() {
    let Some(t) = SecureLab::start() else { return };
    const WAN_ANSWER: &str = "wan 198.18.1.2\n";
    let tcp = ["tcp", TARGET, "80"];
    let dns = ["udp", TARGET, "53"];
    /// Variables, arguments, the setuid run's answer, the plain run's.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str, &'a str);
    let cases: [Case; 4] = [
        (&[("BIND_INTERFACE", "vpn0")], &tcp, WAN_ANSWER, VPN_ANSWER),
        (
            &[("BIND_SOURCE_IP", "198.18.2.2")],
            &tcp,
            WAN_ANSWER,
            "wan 198.18.2.2\n",
        ),
        (
            &[("BIND_ADDR", "198.18.3.2")],
            &tcp,
            WAN_ANSWER,
            "wan 198.18.3.2\n",
        ),
        // A DNS server of the user's choice: port 53 goes where it was sent.
        (
            &[
                ("DNS_OVERRIDE_IP", "198.19.0.2"),
                ("DNS_OVERRIDE_PORT", "53"),
            ],
            &dns,
            WAN_ANSWER,
            WAN_ANSWER,
        ),
    ];
    for (vars, args, suid, plain) in cases {
        // Empty is unset: no profile, only the older tools' variables.
        let vars = &[&[("BIND_PROFILE", "")], vars].concat();
        t.lab.clear_logs();
        let out = t.run(&t.suid, args, vars);
        assert_eq!(out.assert_success(), suid, "setuid, {vars:?}: {out}");
        let reached: Vec<_> = UPLINKS
            .iter()
            .flat_map(|u| t.lab.received(u.name))
            .map(|l| l.local)
            .collect();
        assert_eq!(
            reached,
            [format!("{TARGET}:{}", args[2]).parse().unwrap()],
            "{vars:?}"
        );
        t.lab.clear_logs();
        let out = t.run(&t.plain, args, vars);
        assert_eq!(out.assert_success(), plain, "plain, {vars:?}: {out}");
        if args == dns {
            let reached: Vec<_> = UPLINKS
                .iter()
                .flat_map(|u| t.lab.received(u.name))
                .map(|l| l.local.ip().to_string())
                .collect();
            assert_eq!(reached, ["198.19.0.2"], "plain, {vars:?}");
        }
    }

    // The front decides alone whether to load the engine: without one,
    // a run that asks would be blocked ("cannot load"); the setuid one
    // does not ask. (Once the system file's match index is fresh: written
    // by the engine of a setuid run, whose euid is root, a second or more
    // after the file was. Until then the front loads the engine to decide.)
    thread::sleep(Duration::from_millis(1100));
    t.run(&t.suid, &tcp, &[]).assert_success();
    let engine = t.dir.join("libbindto_engine.so");
    fs::rename(&engine, t.dir.join("aside.so")).unwrap();
    let vars = [("BIND_PROFILE", ""), ("BIND_INTERFACE", "vpn0")];
    let out = t.run(&t.suid, &tcp, &vars);
    let plain = t.run(&t.plain, &tcp, &vars);
    fs::rename(t.dir.join("aside.so"), &engine).unwrap();
    assert_eq!(out.assert_success(), WAN_ANSWER, "{out}");
    assert_eq!(out.stderr, "", "{out}");
    assert!(plain.stderr.contains("cannot load"), "{plain}");

    // The engine preloaded itself, without the front, ignores them too.
    let preload = t.dir.join("upper/ld.so.preload");
    let front = fs::read_to_string(&preload).unwrap();
    fs::write(&preload, format!("{}\n", engine.display())).unwrap();
    let out = t.run(&t.suid, &tcp, &vars);
    let plain = t.run(&t.plain, &tcp, &vars);
    fs::write(&preload, front).unwrap();
    assert_eq!(out.assert_success(), WAN_ANSWER, "engine: {out}");
    assert_eq!(plain.assert_success(), VPN_ANSWER, "engine, plain: {plain}");
}

/// In a setuid program the system file counts only when every directory
/// on its way is root's alone: whoever can write one can put any file in
/// its place. Symbolic links are followed, and the directories they lead
/// through judged the same way; a link into directories root alone can
/// write is fine. The plain program reads every one of them (the control).
#[test]
fn a_setuid_program_refuses_a_system_file_behind_a_directory_others_can_write() {
    let Some(t) = SecureLab::start() else { return };
    let tcp = ["tcp", TARGET, "80"];
    let upper = t.dir.join("upper");
    // Into /etc/bindto-real (root's, 0755), relative and absolute.
    let real = upper.join("bindto-real");
    fs::create_dir_all(&real).unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).unwrap();
    fs::copy(
        upper.join("bindto/profiles.toml"),
        real.join("profiles.toml"),
    )
    .unwrap();
    // Into /etc/bindto-user, nobody's, holding a file of root's.
    let user = upper.join("bindto-user");
    fs::create_dir_all(&user).unwrap();
    fs::copy(
        upper.join("bindto/profiles.toml"),
        user.join("profiles.toml"),
    )
    .unwrap();
    chown(&user, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(&user, fs::Permissions::from_mode(0o755)).unwrap();

    let system = upper.join("bindto/profiles.toml");
    let link = |target: &str| {
        let _ = fs::remove_file(&system);
        symlink(target, &system).unwrap();
    };
    let refused = |what: &str| {
        t.lab.clear_logs();
        let out = t.run(&t.suid, &tcp, &[]);
        out.assert_failure();
        assert_eq!(out.stdout, "error EPERM\n", "{what}: {out}");
        assert!(
            out.stderr
                .contains("refused in a privileged process: the directory")
                && out.stderr.contains("network calls are blocked"),
            "{what}: {out}"
        );
        assert_eq!(counts(&t.lab), (0, 0, 0), "{what}");
        let out = t.run(&t.plain, &tcp, &[("HOME", "/nonexistent")]);
        assert_eq!(out.assert_success(), VPN_ANSWER, "plain, {what}: {out}");
    };
    let accepted = |what: &str| {
        let out = t.run(&t.suid, &tcp, &[]);
        assert_eq!(out.assert_success(), VPN_ANSWER, "{what}: {out}");
    };

    accepted("a root-owned file in root's directories");
    link("../bindto-real/profiles.toml");
    accepted("a relative link into root's directory");
    link("/etc/bindto-real/profiles.toml");
    accepted("an absolute link into root's directory");
    link("../bindto-user/profiles.toml");
    refused("a link into nobody's directory");
    link("/etc/bindto-real/../bindto-user/profiles.toml");
    refused("a link through root's directory into nobody's");

    fs::remove_file(&system).unwrap();
    fs::copy(real.join("profiles.toml"), &system).unwrap();
    let bindto = upper.join("bindto");
    for (mode, owner) in [(0o777, 0), (0o775, 0), (0o1777, 0), (0o755, NOBODY)] {
        chown(&bindto, Some(owner), Some(owner)).unwrap();
        fs::set_permissions(&bindto, fs::Permissions::from_mode(mode)).unwrap();
        refused(&format!("/etc/bindto {mode:o} owned by {owner}"));
    }
}

/// A config truncated and rewritten in place, in two writes a second
/// apart, whose first half is a valid config of its own (a profile without
/// its interface: everything direct). The running process must never
/// follow the half: it read it at the next check, and its connections left
/// by the default route (wan) until the second half came. It follows the
/// whole file once that has stayed the same for a second.
#[test]
fn a_config_rewritten_in_place_is_not_read_half_written() {
    let Some(lab) = Lab::builder().timeout(Duration::from_secs(30)).build() else {
        return;
    };
    let config = lab.dir().join("inplace.toml");
    let half = "[profile.vpn]\nexclude = \"198.18.250.0/24\"\n";
    fs::write(&config, format!("{half}interface = \"vpn0\"\n")).unwrap();
    // One connection every 100 ms for about 9 s, one line each.
    let script = connections_script(90, 100);
    let vars = bound_vars(&config, "vpn");
    let vars = as_refs(&vars);
    let out = thread::scope(|scope| {
        let client = scope.spawn(|| lab.run_client(&python(&script), &vars));
        // A tenth into a second, so that the check at the next second
        // finds the half, and the second half comes half a second after
        // that check.
        thread::sleep(Duration::from_millis(1000));
        let into = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_millis();
        thread::sleep(Duration::from_millis(u64::from((1100 - into) % 1000)));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&config)
            .unwrap();
        file.write_all(half.as_bytes()).unwrap();
        thread::sleep(Duration::from_millis(1400));
        file.write_all(b"interface = \"alt0\"\n").unwrap();
        drop(file);
        client.join().expect("client thread")
    });
    let (vpn, alt) = two_runs(out.assert_success(), "vpn 198.18.2.2", "alt 198.18.3.2");
    assert!(vpn >= 10 && alt >= 10, "{out}");
    assert_eq!(counts(&lab), (0, vpn, alt));
}
