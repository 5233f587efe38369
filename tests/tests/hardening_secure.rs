//! Secure mode: with `libbindto.so` in `/etc/ld.so.preload`, a setuid-root
//! program run by an unprivileged user (`nobody`) is a privileged process
//! (the kernel's AT_SECURE): the shim follows only the system file
//! `/etc/bindto/profiles.toml`, ignores `BINDTO_CONFIG`, the user's
//! `~/.config/bindto/profiles.toml` and `BINDTO_LOG_FILE` (no file is
//! created) and the compiled-table cache, and refuses a system file that
//! is writable by others or not owned by root (every call blocked, with
//! the message). The same program
//! without the setuid bit, same user, same files, honours all of them (the
//! control). How it runs: `bindto_tests::secure`.

use std::fs;

use bindto_tests::programs::{TARGET, path_str};
use bindto_tests::secure::{ALT_ANSWER, NOBODY, SecureLab, VPN_ANSWER};

#[test]
fn a_setuid_program_follows_only_a_safe_system_file() {
    let real_preload = fs::read("/etc/ld.so.preload").ok();
    let real_system = fs::read("/etc/bindto/profiles.toml").ok();
    let Some(t) = SecureLab::start() else { return };
    let user_config = t.dir.join("user/config.toml");
    let (suid_log, plain_log) = (t.log("suid.log"), t.log("plain.log"));
    let tcp = ["tcp", TARGET, "80"];

    // Who is who: the kernel marks only the setuid run secure.
    let out = t.run(&t.suid, &["whoami"], &[]);
    assert_eq!(out.assert_success(), "secure=1 euid=0 ruid=65534\n");
    let out = t.run(&t.plain, &["whoami"], &[]);
    assert_eq!(out.assert_success(), "secure=0 euid=65534 ruid=65534\n");

    let user_vars = [
        ("BINDTO_CONFIG", path_str(&user_config)),
        ("BINDTO_LOG", "debug"),
    ];

    // setuid: BINDTO_CONFIG, the user's file and BINDTO_LOG_FILE ignored.
    let mut vars = user_vars.to_vec();
    vars.push(("BINDTO_LOG_FILE", path_str(&suid_log)));
    let out = t.run(&t.suid, &tcp, &vars);
    assert_eq!(out.assert_success(), VPN_ANSWER, "{out}");
    assert!(
        out.stderr
            .contains("bindto: BINDTO_LOG_FILE is ignored in a privileged process"),
        "{out}"
    );
    assert!(
        !suid_log.exists(),
        "a privileged process created its log file"
    );
    let out = t.run(&t.suid, &tcp, &[("BINDTO_LOG", "debug")]);
    assert_eq!(out.assert_success(), VPN_ANSWER, "user file: {out}");
    // Nor is the compiled-table cache read or written, though this euid
    // could write the user's cache directory.
    assert!(out.stderr.contains("table loaded"), "{out}");
    assert!(!out.stderr.contains("compiled-table cache"), "{out}");
    assert!(!t.dir.join("home/.cache").exists(), "{out}");

    // The control: the same program without the setuid bit honours them.
    let mut vars = user_vars.to_vec();
    vars.push(("BINDTO_LOG_FILE", path_str(&plain_log)));
    let out = t.run(&t.plain, &tcp, &vars);
    assert_eq!(out.assert_success(), ALT_ANSWER, "{out}");
    let logged = fs::read_to_string(&plain_log).expect("the plain run's log file");
    assert!(logged.contains("198.19.0.1"), "{logged}");
    let out = t.run(&t.plain, &tcp, &[]);
    assert_eq!(out.assert_success(), ALT_ANSWER, "user file: {out}");

    // A system file that others can write, or that root does not own, is
    // refused in the privileged process (every call blocked, EPERM), and
    // still read by the plain one.
    for (mode, owner) in [(0o666, 0), (0o664, 0), (0o644, NOBODY)] {
        t.lab.clear_logs();
        t.system_file(mode, owner);
        let out = t.run(&t.suid, &tcp, &[]);
        out.assert_failure();
        assert_eq!(out.stdout, "error EPERM\n", "{mode:o} {owner}: {out}");
        assert!(
            out.stderr.contains("refused in a privileged process")
                && out.stderr.contains("network calls are blocked"),
            "{mode:o} {owner}: {out}"
        );
        for uplink in ["wan", "vpn", "alt"] {
            assert_eq!(t.lab.count(uplink), 0, "{mode:o} {owner}: {uplink}");
        }
        let home = t.dir.join("home/.config/bindto/profiles.toml");
        fs::rename(&home, t.dir.join("home/aside.toml")).unwrap();
        let out = t.run(&t.plain, &tcp, &[]);
        fs::rename(t.dir.join("home/aside.toml"), &home).unwrap();
        assert_eq!(out.assert_success(), VPN_ANSWER, "plain, {mode:o}: {out}");
    }

    // And the real /etc is as it was.
    assert_eq!(fs::read("/etc/ld.so.preload").ok(), real_preload);
    assert_eq!(fs::read("/etc/bindto/profiles.toml").ok(), real_system);
}
