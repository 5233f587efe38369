//! System-wide use (issue 20): the front in `/etc/ld.so.preload` and
//! `[[match]]` rules in the system file and the user's choose a profile by
//! program and user, with no variable set.
//!
//! Each test runs real programs (copies of curl and wget, the setuid
//! `netclient` of the secure-mode tests) in a private mount namespace over
//! an overlay of `/etc` ([`SecureLab`]), where the system file is
//! [`system_file`] and nobody's user file [`USER_FILE`]. The match indexes
//! are written where the front reads them: the system file's by the
//! engine of a root process, in a directory of the test mounted over
//! `/var/cache`; nobody's by the engine of nobody's processes, in its
//! cache directory. Until then the engine decides (it loads wherever the
//! front cannot clear a process); once they are fresh the front clears
//! the processes no match fits without loading it, which `front maps`
//! (tests/programs/front.c) shows.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use bindto_tests::clients::URL_V4;
use bindto_tests::programs::{TARGET, compile, path_str};
use bindto_tests::secure::{ALT_ANSWER, NOBODY, SecureLab, VPN_ANSWER};
use bindto_tests::{REQUIRE_VAR, RunOutput};

/// Where a connection goes when nothing binds it.
const WAN_ANSWER: &str = "wan 198.18.1.2\n";

/// Nobody's file: its own profile, and matches for two programs of the
/// test (`{dir}` is the test's directory): the setuid copy that the system
/// file does not match, and a plain copy of it.
const USER_FILE: &str = r#"
[profile.mine]
interface = "alt0"

[[match]]
program = "{dir}/suid-user"
profile = "mine"

[[match]]
program = "{dir}/plain-user"
profile = "mine"
"#;

/// The system file: `sec` (vpn0) and `alt` (alt0), and matches for a copy
/// of curl, a glob of wget copies, a curl copy for nobody only, and the
/// setuid netclient; `{dir}` is the test's directory.
fn system_file(dir: &Path) -> String {
    format!(
        r#"
[profile.sec]
interface = "vpn0"

[profile.alt]
interface = "alt0"

[[match]]
program = "{dir}/bin/curl-vpn"
profile = "sec"

[[match]]
program = "{dir}/bin/wget-*"
profile = "alt"

[[match]]
program = "{dir}/bin/curl-nobody"
user = "nobody"
profile = "alt"

[[match]]
program = "{dir}/suid"
profile = "sec"

[[match]]
program = "{dir}/bin/upgraded"
profile = "sec"

[[match]]
program = "{dir}/bin/curl-dynamic"
user = "dynamic"
profile = "alt"
"#,
        dir = dir.display()
    )
}

/// A secure lab set up for system-wide use.
struct System {
    t: SecureLab,
    /// `front`, which prints whether the engine is mapped.
    front: PathBuf,
}

impl System {
    /// The lab, its files written and left alone for longer than an index
    /// needs to trust their stamps; `None` where there can be none.
    fn start() -> Option<System> {
        let t = SecureLab::start()?;
        for tool in ["curl", "wget"] {
            if !Path::new("/usr/bin").join(tool).exists() {
                let reason = format!("/usr/bin/{tool} is missing");
                assert!(
                    std::env::var(REQUIRE_VAR).as_deref() != Ok("require"),
                    "{REQUIRE_VAR}=require, but {reason}"
                );
                eprintln!("SKIP: {reason}");
                return None;
            }
        }
        let bin = t.dir.join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        for (from, to) in [
            ("curl", "curl-vpn"),
            ("curl", "curl-nobody"),
            ("wget", "wget-alt"),
        ] {
            fs::copy(Path::new("/usr/bin").join(from), bin.join(to)).unwrap();
        }
        for (from, to) in [(&t.suid, "suid-user"), (&t.plain, "plain-user")] {
            let to = t.dir.join(to);
            fs::copy(from, &to).unwrap();
            chown(&to, Some(0), Some(0)).unwrap();
            let mode = fs::metadata(from).unwrap().permissions().mode();
            fs::set_permissions(&to, fs::Permissions::from_mode(mode)).unwrap();
        }
        let system = t.dir.join("upper/bindto/profiles.toml");
        fs::write(&system, system_file(&t.dir)).unwrap();
        let user = t.dir.join("home/.config/bindto/profiles.toml");
        let dir = t.dir.display().to_string();
        fs::write(&user, USER_FILE.replace("{dir}", &dir)).unwrap();
        // Nobody's cache directory, for its index; root's home has none.
        let cache = t.dir.join("home/.cache");
        fs::create_dir_all(&cache).unwrap();
        chown(&cache, Some(NOBODY), Some(NOBODY)).unwrap();
        fs::create_dir_all(t.dir.join("roothome")).unwrap();
        let front = compile(t.lab.dir(), "front");
        settle();
        Some(System { t, front })
    }

    /// Runs `program args` with `vars` as nobody (with its home), or as
    /// root (with a home of its own) when `nobody` is false.
    fn run(&self, nobody: bool, program: &Path, args: &[&str], vars: &[(&str, &str)]) -> RunOutput {
        let home = self.t.dir.join(if nobody { "home" } else { "roothome" });
        let mut all = vec![("HOME", path_str(&home))];
        all.extend_from_slice(vars);
        let uid = nobody.then_some(NOBODY);
        self.t.run_as(uid, program, args, &all)
    }

    /// A copy of a tool in the test's `bin`.
    fn bin(&self, name: &str) -> PathBuf {
        self.t.dir.join("bin").join(name)
    }

    /// What curl (a copy named `name`, or /usr/bin/curl) gets from the
    /// lab's server.
    fn curl(&self, nobody: bool, name: Option<&str>, vars: &[(&str, &str)]) -> String {
        let program = name.map_or_else(|| PathBuf::from("/usr/bin/curl"), |n| self.bin(n));
        let args = ["-sS", "--connect-timeout", "3", "--max-time", "5", URL_V4];
        let out = self.run(nobody, &program, &args, vars);
        out.assert_success().to_owned()
    }

    /// What the wget copy gets.
    fn wget(&self, nobody: bool) -> String {
        let args = ["-q", "-T", "5", "-t", "1", "-O", "-", URL_V4];
        let out = self.run(nobody, &self.bin("wget-alt"), &args, &[]);
        out.assert_success().to_owned()
    }

    /// What a netclient (`program`) gets over TCP.
    fn tcp(&self, program: &Path, vars: &[(&str, &str)]) -> String {
        let out = self.run(true, program, &["tcp", TARGET, "80"], vars);
        out.assert_success().to_owned()
    }

    /// Whether the engine is loaded in a process that makes one connect
    /// and is matched by nothing.
    fn engine_loaded(&self, nobody: bool) -> bool {
        let out = self.run(nobody, &self.front, &["maps", "connect"], &[]);
        match out.assert_success() {
            "front=yes engine=yes\n" => true,
            "front=yes engine=no\n" => false,
            other => panic!("front maps: {other}"),
        }
    }

    /// The system file's match index, once written.
    fn system_index(&self) -> Option<PathBuf> {
        fs::read_dir(self.t.dir.join("cache/bindto"))
            .ok()?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| {
                path.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("match-"))
            })
    }

    /// Runs `check(indexed)` twice: first with no index written (the
    /// engine decides), then with every index fresh (the front decides).
    fn both_ways(&self, check: impl Fn(bool)) {
        check(false);
        self.index();
        check(true);
    }

    /// Makes every index fresh: a root process's engine writes the system
    /// file's, a process of nobody's its own.
    fn index(&self) {
        assert_eq!(self.curl(false, None, &[]), WAN_ANSWER);
        assert!(self.system_index().is_some(), "no system index written");
        assert_eq!(self.curl(true, None, &[]), WAN_ANSWER);
        assert!(
            !self.engine_loaded(false),
            "root: the front did not clear it"
        );
        assert!(
            !self.engine_loaded(true),
            "nobody: the front did not clear it"
        );
    }
}

/// Longer than a file must be left alone before an index can trust its
/// stamp (`bindto_core::matches::SETTLE`).
fn settle() {
    thread::sleep(Duration::from_millis(1100));
}

/// With no variable set, the programs the system file matches are bound to
/// the profiles it names (a path, a glob), whether the engine decides from
/// the file (no index yet) or the front found a fresh index that fits.
#[test]
fn matched_programs_are_bound_to_their_profiles_with_no_variable_set() {
    let Some(s) = System::start() else { return };
    s.both_ways(|indexed| {
        assert_eq!(
            s.curl(true, Some("curl-vpn"), &[]),
            VPN_ANSWER,
            "indexed {indexed}"
        );
        assert_eq!(s.wget(true), ALT_ANSWER, "indexed {indexed}");
        assert_eq!(
            s.curl(false, Some("curl-vpn"), &[]),
            VPN_ANSWER,
            "root, indexed {indexed}"
        );
    });
}

/// A program no match fits passes through: with the indexes fresh the
/// engine is not even loaded; without (none yet, or stale after an edit of
/// the system file) it is, decides, and passes through.
#[test]
fn an_unmatched_program_passes_through_and_a_fresh_index_spares_it_the_engine() {
    let Some(s) = System::start() else { return };
    assert_eq!(s.curl(true, None, &[]), WAN_ANSWER);
    assert!(s.engine_loaded(true), "no index yet: the engine decides");
    s.index();
    assert_eq!(s.curl(true, None, &[]), WAN_ANSWER);
    assert!(!s.engine_loaded(true));
    assert_eq!(s.tcp(&s.t.plain, &[]), WAN_ANSWER);

    // An edit (a comment) makes the system file's index stale.
    let system = s.t.dir.join("upper/bindto/profiles.toml");
    let text = fs::read_to_string(&system).unwrap();
    fs::write(&system, format!("{text}\n# edited\n")).unwrap();
    assert!(s.engine_loaded(true), "stale: the engine decides");
    assert_eq!(s.curl(true, None, &[]), WAN_ANSWER);
}

/// A match that names a user fits that user's processes only (the real
/// uid): nobody's copy of curl goes through alt0, root's passes through.
#[test]
fn a_match_for_a_user_binds_that_users_processes_only() {
    let Some(s) = System::start() else { return };
    s.both_ways(|indexed| {
        assert_eq!(
            s.curl(true, Some("curl-nobody"), &[]),
            ALT_ANSWER,
            "indexed {indexed}"
        );
        assert_eq!(
            s.curl(false, Some("curl-nobody"), &[]),
            WAN_ANSWER,
            "indexed {indexed}"
        );
    });
}

/// In an ordinary process an explicit `BIND_PROFILE` wins over the match
/// that fits it; the user's file's matches count there.
#[test]
fn an_explicit_bind_profile_wins_over_a_match() {
    let Some(s) = System::start() else { return };
    s.both_ways(|indexed| {
        let alt = [("BIND_PROFILE", "alt")];
        assert_eq!(
            s.curl(true, Some("curl-vpn"), &alt),
            ALT_ANSWER,
            "indexed {indexed}"
        );
        let plain = s.t.dir.join("plain-user");
        assert_eq!(
            s.tcp(&plain, &[]),
            ALT_ANSWER,
            "user's match, indexed {indexed}"
        );
    });
}

/// A setuid program follows the system file's matches alone: its match
/// binds it even against the `BIND_PROFILE` of the user who runs it, and a
/// match in that user's file (which an ordinary copy follows) is ignored.
#[test]
fn a_setuid_program_follows_only_the_system_files_matches() {
    let Some(s) = System::start() else { return };
    s.both_ways(|indexed| {
        assert_eq!(s.tcp(&s.t.suid, &[]), VPN_ANSWER, "indexed {indexed}");
        let shed = [("BIND_PROFILE", "alt")];
        assert_eq!(
            s.tcp(&s.t.suid, &shed),
            VPN_ANSWER,
            "BIND_PROFILE, indexed {indexed}"
        );
        let suid = s.t.dir.join("suid-user");
        assert_eq!(
            s.tcp(&suid, &[]),
            WAN_ANSWER,
            "user's match, indexed {indexed}"
        );
        let plain = s.t.dir.join("plain-user");
        assert_eq!(s.tcp(&plain, &[]), ALT_ANSWER, "control, indexed {indexed}");
    });
}

/// An edit of the system file counts at once: the front finds the index
/// stale and the engine decides from the file as it is now.
#[test]
fn an_edited_match_counts_at_once_through_the_engine() {
    let Some(s) = System::start() else { return };
    s.index();
    assert_eq!(s.curl(true, Some("curl-vpn"), &[]), VPN_ANSWER);
    // The first `profile = "sec"` is curl-vpn's match.
    let edited = system_file(&s.t.dir).replacen("profile = \"sec\"", "profile = \"alt\"", 1);
    fs::write(s.t.dir.join("upper/bindto/profiles.toml"), edited).unwrap();
    assert_eq!(s.curl(true, Some("curl-vpn"), &[]), ALT_ANSWER);
}

/// A matched program whose executable is replaced after it started (a
/// package upgrade under a running daemon) and which only then makes its
/// first network call is still bound: `/proc/self/exe` then reads
/// "PATH (deleted)", which must still fit PATH's match.
#[test]
fn a_matched_program_whose_executable_was_deleted_stays_bound() {
    let Some(s) = System::start() else { return };
    let upgraded = s.bin("upgraded");
    // bash: it deletes its own executable, then connects (`/dev/tcp`).
    let script = format!(
        "rm -f -- \"$0\"; exec 3<>/dev/tcp/{TARGET}/80; \
         printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
    );
    s.both_ways(|indexed| {
        fs::copy("/bin/bash", &upgraded).unwrap();
        let out = s.run(false, &upgraded, &["-c", &script, path_str(&upgraded)], &[]);
        let body = out.assert_success();
        assert!(!upgraded.exists(), "{out}");
        assert!(body.ends_with(VPN_ANSWER), "indexed {indexed}: {body:?}");
    });
}

/// A match's user whom the user database only comes to know after the
/// index was written, and not through `/etc/passwd` (whose stamp would
/// make the index stale): a `DynamicUser=` of systemd, as nss-systemd
/// reads it from a userdb record, or a user of LDAP. The front must not
/// take the name the index found unknown as unknown still.
#[test]
fn a_match_for_a_user_added_outside_etc_passwd_binds_that_users_processes() {
    let Some(s) = System::start() else { return };
    fs::copy("/usr/bin/curl", s.bin("curl-dynamic")).unwrap();
    s.index();
    let userdb = s.t.dir.join("upper/userdb");
    fs::create_dir_all(&userdb).unwrap();
    fs::write(
        userdb.join("dynamic.user"),
        r#"{"userName":"dynamic","uid":4242,"gid":4242,"homeDirectory":"/","disposition":"dynamic"}"#,
    )
    .unwrap();
    let known =
        s.t.run_as(None, Path::new("/usr/bin/id"), &["-u", "dynamic"], &[]);
    if known.assert_success() != "4242\n" {
        eprintln!("SKIP: the user database does not read userdb records (nss-systemd)");
        return;
    }
    let home = path_str(&s.t.dir);
    let args = ["-sS", "--connect-timeout", "3", "--max-time", "5", URL_V4];
    let out =
        s.t.run_as(Some(4242), &s.bin("curl-dynamic"), &args, &[("HOME", home)]);
    assert_eq!(out.assert_success(), ALT_ANSWER, "{out}");
}

/// A `HOME` written with a trailing slash names the same user file, whose
/// index the front must find (by the path the engine writes it under, as
/// `Path::join` makes it): otherwise every process of that user that makes
/// a network call loads the engine and parses the config.
#[test]
fn a_home_with_a_trailing_slash_still_finds_the_users_index() {
    let Some(s) = System::start() else { return };
    s.index();
    let home = format!("{}/", s.t.dir.join("home").display());
    let out = s.t.run_as(
        Some(NOBODY),
        &s.front,
        &["maps", "connect"],
        &[("HOME", &home)],
    );
    assert_eq!(out.assert_success(), "front=yes engine=no\n", "{out}");
}

/// A root process whose `HOME` is still a user's (sudo may keep it) writes
/// no index there: creating the user's cache directory as root's would make
/// every process of theirs distrust it (their table cache included).
#[test]
fn a_root_process_with_a_users_home_leaves_their_cache_directory_alone() {
    let Some(s) = System::start() else { return };
    let cache = s.t.dir.join("home/.cache");
    fs::remove_dir(&cache).unwrap();
    let home = s.t.dir.join("home");
    chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    let vars = [("HOME", path_str(&home))];
    let args = ["-sS", "--connect-timeout", "3", "--max-time", "5", URL_V4];
    let out = s.t.run_as(None, Path::new("/usr/bin/curl"), &args, &vars);
    assert_eq!(out.assert_success(), WAN_ANSWER, "{out}");
    assert!(!cache.exists(), "root created {}", cache.display());
}
