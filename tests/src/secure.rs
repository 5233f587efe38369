//! What the secure-mode tests share (`tests/tests/hardening_secure.rs`,
//! `tests/tests/side_doors_config.rs`): a setuid-root program run by an
//! unprivileged user (`nobody`) is a privileged process (the kernel's
//! AT_SECURE), with `libbindto.so` in `/etc/ld.so.preload`.
//!
//! The real `/etc` is never touched: each run happens in a private mount
//! namespace of its own (`unshare --mount --propagation private`, inside
//! the lab's client network namespace) where an overlay is mounted over
//! `/etc` whose upper layer is a directory of the test, holding
//! `ld.so.preload` and `bindto/profiles.toml`. (If overlayfs is not
//! available, a copy of `/etc` is bind-mounted instead.) A directory of
//! the test is bind-mounted over `/var/cache`, where a root process's
//! engine writes the system file's match index (`/var/cache/bindto`),
//! which the later runs of the test read. That index stamps the system
//! file (and `/etc/passwd`) with their device: the two are bind-mounted
//! from the test's directory (a copy of the passwd file), whose device
//! stays, where each run's overlay gets a device number of its own. The
//! mount namespace ends with the run.
//!
//! Needs real root (a setuid-root file must really be root's): skipped in
//! a user namespace ([`SecureLab::start`]).

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

use crate::programs::{compile, path_str};
use crate::{Lab, REQUIRE_VAR, RunOutput};

/// `nobody` and `nogroup`, by number: the names differ between systems.
pub const NOBODY: u32 = 65534;

/// The system file: vpn0. Every file the user controls says alt0.
pub const SYSTEM: &str = "[profile.sec]\ninterface = \"vpn0\"\n";
pub const USER: &str = "[profile.sec]\ninterface = \"alt0\"\n";

pub const VPN_ANSWER: &str = "vpn 198.18.2.2\n";
pub const ALT_ANSWER: &str = "alt 198.18.3.2\n";

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
mount --bind "$dir/cache" /var/cache
mount --bind "$dir/upper/bindto" /etc/bindto
mount --bind "$dir/passwd" /etc/passwd
exec "$@"
"#;

/// Whether this process is root of the initial user namespace.
pub fn real_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let identity = map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
    euid == 0 && identity
}

/// The test's directory layout.
#[derive(Debug)]
pub struct SecureLab {
    /// The lab it runs in.
    pub lab: Lab,
    /// The test's directory: `upper/` is laid over `/etc`.
    pub dir: PathBuf,
    /// `netclient`, setuid root.
    pub suid: PathBuf,
    /// `netclient`, the same without the setuid bit.
    pub plain: PathBuf,
}

impl SecureLab {
    /// Sets the directory up in `lab`'s.
    pub fn new(lab: Lab) -> SecureLab {
        let dir = lab.dir().join("secure");
        for sub in [
            "upper/bindto",
            "work",
            "home/.config/bindto",
            "user",
            "logs",
            "cache",
        ] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // Everything readable by nobody; the logs directory writable, so
        // that only the shim's policy decides whether a log appears.
        for sub in [
            "",
            "home",
            "home/.config",
            "home/.config/bindto",
            "user",
            "cache",
        ] {
            fs::set_permissions(dir.join(sub), fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::set_permissions(lab.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(dir.join("logs"), fs::Permissions::from_mode(0o1777)).unwrap();

        // A copy of the shim anyone can read, named by ld.so.preload, and
        // of the engine it loads from its own directory.
        let shim = dir.join("libbindto.so");
        fs::copy(crate::shim_path(), &shim).unwrap();
        fs::set_permissions(&shim, fs::Permissions::from_mode(0o644)).unwrap();
        let engine = dir.join("libbindto_engine.so");
        fs::copy(crate::engine_path(), &engine).unwrap();
        fs::set_permissions(&engine, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(
            dir.join("upper/ld.so.preload"),
            format!("{}\n", shim.display()),
        )
        .unwrap();

        fs::copy("/etc/passwd", dir.join("passwd")).unwrap();
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
    pub fn system_file(&self, mode: u32, owner: u32) {
        let path = self.dir.join("upper/bindto/profiles.toml");
        fs::write(&path, SYSTEM).unwrap();
        chown(&path, Some(owner), Some(owner)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A file in a directory anyone can write.
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(name)
    }

    /// Runs `program args` as nobody, in the client namespace, in a mount
    /// namespace with the overlay, with `BIND_PROFILE=sec`, `HOME` holding
    /// the user's file, and `extra` variables.
    pub fn run(&self, program: &Path, args: &[&str], extra: &[(&str, &str)]) -> RunOutput {
        let home = self.dir.join("home");
        let mut vars = vec![("BIND_PROFILE", "sec"), ("HOME", path_str(&home))];
        vars.extend_from_slice(extra);
        self.run_as(Some(NOBODY), program, args, &vars)
    }

    /// Runs `program args` as `uid` (as root, without `setpriv`, when
    /// `None`), in the client namespace, in a mount namespace with the
    /// overlay, with `vars` alone (and `PATH`).
    pub fn run_as(
        &self,
        uid: Option<u32>,
        program: &Path,
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> RunOutput {
        let (reuid, regid) = match uid {
            Some(uid) => (format!("--reuid={uid}"), format!("--regid={uid}")),
            None => Default::default(),
        };
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
        ];
        if uid.is_some() {
            command.extend(["setpriv", &reuid, &regid, "--clear-groups"]);
        }
        command.push(path_str(program));
        command.extend_from_slice(args);
        self.lab.run_client(&command, vars)
    }
}

impl SecureLab {
    /// A secure lab, or `None` (after saying why) where there can be none:
    /// without real root, or without a lab.
    pub fn start() -> Option<SecureLab> {
        if !real_root() {
            let reason =
                "secure mode needs real root (a setuid-root program), not a user namespace";
            assert!(
                std::env::var(REQUIRE_VAR).as_deref() != Ok("require"),
                "{REQUIRE_VAR}=require, but {reason}"
            );
            eprintln!("SKIP: {reason}");
            return None;
        }
        Lab::new().map(SecureLab::new)
    }
}
