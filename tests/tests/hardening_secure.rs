//! Secure mode: with `libbindto.so` in `/etc/ld.so.preload`, a setuid-root
//! program run by an unprivileged user (`nobody`) is a privileged process
//! (the kernel's AT_SECURE): the shim follows only the system file
//! `/etc/bindto/profiles.toml`, ignores `BINDTO_CONFIG`, the user's
//! `~/.config/bindto/profiles.toml` and `BINDTO_LOG_FILE` (no file is
//! created) and the compiled-table cache, and refuses a system file that
//! is writable by others or not owned by root (every call blocked, with
//! the message). The same program
//! without the setuid bit, same user, same files, honours all of them (the
//! control).
//!
//! The real `/etc` is never touched: each run happens in a private mount
//! namespace of its own (`unshare --mount --propagation private`, inside
//! the lab's client network namespace) where an overlay is mounted over
//! `/etc` whose upper layer is a directory of the test, holding
//! `ld.so.preload` and `bindto/profiles.toml`. (If overlayfs is not
//! available, a copy of `/etc` is bind-mounted instead.) The mount
//! namespace ends with the run.
//!
//! Needs real root (a setuid-root file must really be root's): skipped in
//! a user namespace.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

use bindto_tests::programs::{TARGET, compile, path_str};
use bindto_tests::{Lab, REQUIRE_VAR, RunOutput};

/// `nobody` and `nogroup`, by number: the names differ between systems.
const NOBODY: u32 = 65534;

/// The system file: vpn0. Every file the user controls says alt0.
const SYSTEM: &str = "[profile.sec]\ninterface = \"vpn0\"\n";
const USER: &str = "[profile.sec]\ninterface = \"alt0\"\n";

const VPN_ANSWER: &str = "vpn 198.18.2.2\n";
const ALT_ANSWER: &str = "alt 198.18.3.2\n";

/// Mounts the overlay over `/etc` (upper layer `$1/upper`), then execs
/// the rest of the arguments. Refuses to go on unless `/etc` is a mount of
/// this namespace by then.
const SETUP: &str = r#"
dir=$1; shift
if ! mount -t overlay bindto-hardening \
        -o "lowerdir=/etc,upperdir=$dir/upper,workdir=$dir/work" /etc 2>/dev/null; then
    rm -rf "$dir/etc-copy"
    cp -a /etc/. "$dir/etc-copy/"
    cp -a "$dir/upper/." "$dir/etc-copy/"
    mount --bind "$dir/etc-copy" /etc
fi
awk '$5 == "/etc" { found = 1 } END { exit !found }' /proc/self/mountinfo
exec "$@"
"#;

/// Whether this process is root of the initial user namespace.
fn real_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let identity = map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
    euid == 0 && identity
}

/// The test's directory layout.
struct SecureLab {
    lab: Lab,
    dir: PathBuf,
    suid: PathBuf,
    plain: PathBuf,
}

impl SecureLab {
    fn new(lab: Lab) -> SecureLab {
        let dir = lab.dir().join("secure");
        for sub in [
            "upper/bindto",
            "work",
            "home/.config/bindto",
            "user",
            "logs",
        ] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // Everything readable by nobody; the logs directory writable, so
        // that only the shim's policy decides whether a log appears.
        for sub in ["", "home", "home/.config", "home/.config/bindto", "user"] {
            fs::set_permissions(dir.join(sub), fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::set_permissions(lab.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(dir.join("logs"), fs::Permissions::from_mode(0o1777)).unwrap();

        // A copy of the shim anyone can read, named by ld.so.preload, and
        // of the engine it loads from its own directory.
        let shim = dir.join("libbindto.so");
        fs::copy(bindto_tests::shim_path(), &shim).unwrap();
        fs::set_permissions(&shim, fs::Permissions::from_mode(0o644)).unwrap();
        let engine = dir.join("libbindto_engine.so");
        fs::copy(bindto_tests::engine_path(), &engine).unwrap();
        fs::set_permissions(&engine, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(
            dir.join("upper/ld.so.preload"),
            format!("{}\n", shim.display()),
        )
        .unwrap();

        let client = compile(lab.dir(), "netclient");
        let (suid, plain) = (dir.join("suid"), dir.join("plain"));
        for (path, mode) in [(&suid, 0o4755), (&plain, 0o755)] {
            fs::copy(&client, path).unwrap();
            chown(path, Some(0), Some(0)).unwrap();
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        }
        for file in ["user/config.toml", "home/.config/bindto/profiles.toml"] {
            fs::write(dir.join(file), USER).unwrap();
            chown(dir.join(file), Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let secure = SecureLab {
            lab,
            dir,
            suid,
            plain,
        };
        secure.system_file(0o644, 0);
        secure
    }

    /// Writes the system file with this mode and owner.
    fn system_file(&self, mode: u32, owner: u32) {
        let path = self.dir.join("upper/bindto/profiles.toml");
        fs::write(&path, SYSTEM).unwrap();
        chown(&path, Some(owner), Some(owner)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(name)
    }

    /// Runs `program args` as nobody, in the client namespace, in a mount
    /// namespace with the overlay, with `BIND_PROFILE=sec`, `HOME` holding
    /// the user's file, and `extra` variables.
    fn run(&self, program: &Path, args: &[&str], extra: &[(&str, &str)]) -> RunOutput {
        let home = self.dir.join("home");
        let mut vars = vec![("BIND_PROFILE", "sec"), ("HOME", path_str(&home))];
        vars.extend_from_slice(extra);
        let mut command = vec![
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-ec",
            SETUP,
            "sh",
            path_str(&self.dir),
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            path_str(program),
        ];
        command.extend_from_slice(args);
        self.lab.run_client(&command, &vars)
    }
}

#[test]
fn a_setuid_program_follows_only_a_safe_system_file() {
    if !real_root() {
        let reason = "secure mode needs real root (a setuid-root program), not a user namespace";
        assert!(
            std::env::var(REQUIRE_VAR).as_deref() != Ok("require"),
            "{REQUIRE_VAR}=require, but {reason}"
        );
        eprintln!("SKIP: {reason}");
        return;
    }
    let real_preload = fs::read("/etc/ld.so.preload").ok();
    let real_system = fs::read("/etc/bindto/profiles.toml").ok();
    let Some(lab) = Lab::new() else { return };
    let t = SecureLab::new(lab);
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
