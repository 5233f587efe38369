//! The front, libbindto.so: the library users preload, which loads the
//! engine (libbindto_engine.so, beside it) only in a process that asks for
//! bindto, and fails closed when it cannot.
//!
//! - It exports exactly the engine's functions, and its own `dlopen` and
//!   `dlmopen`.
//! - A process that asks nothing, or asks but makes no call the front
//!   hooks but to close or duplicate descriptors, never maps the engine;
//!   one that asks and connects does. Every
//!   variable that asks (`bindto_abi::hooks::ASKING`, which the front and
//!   the core's `Env::asks_anything` both read) has its own test.
//! - Threads racing the first call all wait for the engine: none passes
//!   through unbound.
//! - The loading thread calling in mid-load (here from a `dlopen` wrapper,
//!   `tests/programs/reenter.c`, preloaded after the front) is refused
//!   with EAGAIN, not deadlocked; a child forked mid-load loads the engine
//!   itself.
//! - A front whose engine is missing writes one line on stderr and refuses
//!   every TCP and UDP call as the engine refuses a broken config.
//!
//! Programs run on the host with a cleared environment and only ever
//! connect to 127.0.0.1 (port 9, where nothing listens): no lab needed.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use bindto_tests::programs::compile;
use bindto_tests::{engine_path, shim_path};

/// A directory of this test process's own, with the compiled program.
fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bindto-front-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("home")).unwrap();
        compile(&dir, "front");
        dir
    })
}

/// `front ARGS` with `front_so` preloaded and only `vars` (and a home of
/// the test's own, and no cache) in the environment.
fn run(front_so: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let dir = dir();
    let out = Command::new(dir.join("front"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("home"))
        .env("BINDTO_CACHE", "0")
        .env("LD_PRELOAD", front_so)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "front {args:?}: {out:?}");
    out
}

/// What /proc/self/maps shows after `front maps [CALLS]`.
fn maps(vars: &[(&str, &str)], calls: Option<&str>) -> String {
    let args: Vec<&str> = ["maps"].into_iter().chain(calls).collect();
    String::from_utf8(run(&shim_path(), vars, &args).stdout).unwrap()
}

const NO_ENGINE: &str = "front=yes engine=no\n";
const ENGINE: &str = "front=yes engine=yes\n";

/// The functions a library defines and exports.
fn exports(library: &Path) -> BTreeSet<String> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(library)
        .output()
        .unwrap_or_else(|e| panic!("cannot run nm (binutils): {e}"));
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, kind, name) = (fields.next()?, fields.next()?, fields.next()?);
            (kind == "T").then(|| name.to_owned())
        })
        .collect()
}

/// The front's own exports, which it handles without the engine: they
/// decide how plugins are opened (`shim/front/src/plugins.rs`), before any
/// engine is loaded and whatever the engine does.
#[cfg(target_arch = "x86_64")]
const FRONT_ONLY: [&str; 2] = ["dlmopen", "dlopen"];
#[cfg(not(target_arch = "x86_64"))]
const FRONT_ONLY: [&str; 0] = [];

#[test]
fn the_front_exports_exactly_the_engines_hooks() {
    let mut front = exports(&shim_path());
    let mut engine = exports(&engine_path());
    assert!(
        engine.remove("bindto_engine_attach"),
        "the engine has no bindto_engine_attach: {engine:?}"
    );
    for name in FRONT_ONLY {
        assert!(front.remove(name), "the front has no {name}: {front:?}");
    }
    assert_eq!(front, engine);
    assert!(
        front.contains("connect") && front.contains("__res_nsend"),
        "{front:?}"
    );
}

#[test]
fn the_front_imports_only_dlsym_and_cannot_panic() {
    // Every import costs every exec a symbol lookup; a panic would need
    // the unwinding runtime a no_std library does not have.
    let out = Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(shim_path())
        .output()
        .unwrap();
    let imports = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = imports
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .map(|name| name.split('@').next().unwrap_or(name))
        .collect();
    assert_eq!(names, ["dlsym"], "{imports}");
    let out = Command::new("nm").arg(shim_path()).output().unwrap();
    let symbols = String::from_utf8(out.stdout).unwrap();
    assert!(!symbols.contains("panic"), "{symbols}");
}

#[test]
fn a_process_that_asks_nothing_never_loads_the_engine() {
    assert_eq!(maps(&[], Some("connect")), NO_ENGINE);
    // Empty is unset, as for the core.
    let empty: Vec<(&str, &str)> = asking().into_iter().map(|v| (v, "")).collect();
    assert_eq!(maps(&empty, Some("connect")), NO_ENGINE);
}

#[test]
fn a_process_that_asks_but_makes_no_call_never_loads_the_engine() {
    assert_eq!(maps(&[("BIND_PROFILE", "lo")], None), NO_ENGINE);
}

#[test]
fn a_process_that_asks_but_only_closes_and_duplicates_never_loads_the_engine() {
    // close, dup2, dup3, close_range, closefrom: nothing for the engine to
    // forget before it is loaded.
    assert_eq!(maps(&[("BIND_PROFILE", "lo")], Some("forget")), NO_ENGINE);
}

/// Every variable that asks for bindto: the list that the front and the
/// core read.
fn asking() -> Vec<&'static str> {
    let mut vars = vec![bindto_abi::hooks::PROFILE];
    vars.extend(bindto_abi::hooks::SELECTORS);
    vars
}

/// One test per variable: `$var` alone makes a process that connects load
/// the engine, and the core agrees that it asks.
macro_rules! asks {
    ($($test:ident: $var:literal = $value:literal;)*) => {$(
        #[test]
        fn $test() {
            assert!(asking().contains(&$var));
            let env = bindto_core::Env::from_pairs([($var, $value)]);
            assert!(env.asks_anything(), "the core does not read {} as asking", $var);
            assert_eq!(maps(&[($var, $value)], Some("connect")), ENGINE, "{}", $var);
        }
    )*};
}

asks! {
    bind_profile_loads_the_engine: "BIND_PROFILE" = "lo";
    bind_interface_loads_the_engine: "BIND_INTERFACE" = "lo";
    bind_source_ip_loads_the_engine: "BIND_SOURCE_IP" = "127.0.0.1";
    bind_addr_loads_the_engine: "BIND_ADDR" = "127.0.0.1";
    bind_exclude_loads_the_engine: "BIND_EXCLUDE" = "127.0.0.0/8";
    dns_override_ip_loads_the_engine: "DNS_OVERRIDE_IP" = "127.0.0.1";
}

#[test]
fn no_other_variable_asks() {
    // The core's own list: anything it counts as asking is in the list.
    for var in bindto_core::Env::VARS {
        let asks = bindto_core::Env::from_pairs([(*var, "127.0.0.1")]).asks_anything();
        assert_eq!(asks, asking().contains(var), "{var}");
    }
}

#[test]
fn threads_racing_the_first_call_all_wait_for_the_engine() {
    // Every connect to 127.0.0.0/8 is blocked by the profile: EPERM from
    // the engine. A thread let through before the engine was in place
    // would reach the port and get ECONNREFUSED.
    let config = dir().join("block.toml");
    fs::write(
        &config,
        "[profile.blk]\ninterface = \"lo\"\n\n\
         [[profile.blk.route]]\nto = \"127.0.0.0/8\"\naction = \"block\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // A front that let the waiting threads through failed about one run
    // in three of these.
    for _ in 0..20 {
        let out = run(
            &shim_path(),
            &[("BIND_PROFILE", "blk"), ("BINDTO_CONFIG", config)],
            &["race", "16"],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "EPERM 16\nother 0\n",
            "{out:?}"
        );
    }
}

/// `tests/programs/reenter.c` as a shared library in the test directory.
fn reenter_so() -> PathBuf {
    let so = dir().join("reenter.so");
    let source = bindto_tests::run::workspace_root().join("tests/programs/reenter.c");
    let out = Command::new("gcc")
        .args([
            "-O1", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o",
        ])
        .arg(&so)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc (install it): {e}"));
    assert!(out.status.success(), "{out:?}");
    so
}

/// `front maps connect` with reenter.so preloaded after the front, doing
/// `what` in the middle of the engine's load, under a profile that blocks
/// 127.0.0.0/8; its stderr.
fn mid_load(what: &str) -> String {
    let config = dir().join(format!("block-{what}.toml"));
    fs::write(
        &config,
        "[profile.blk]\n[[profile.blk.route]]\nto = \"127.0.0.0/8\"\naction = \"block\"\n",
    )
    .unwrap();
    let preload = format!("{}:{}", shim_path().display(), reenter_so().display());
    let out = run(
        Path::new(&preload),
        &[
            ("BIND_PROFILE", "blk"),
            ("BINDTO_CONFIG", config.to_str().unwrap()),
            ("REENTER", what),
        ],
        &["maps", "connect"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), ENGINE);
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn the_loading_thread_calling_in_mid_load_is_refused_not_deadlocked() {
    // Its network calls fail with EAGAIN (EAI_AGAIN), its descriptor
    // calls go to libc; the load then completes.
    let stderr = mid_load("call");
    assert!(
        stderr.contains("reentered socket=ok connect=-1 EAGAIN close=0 gai=EAI_AGAIN\n"),
        "{stderr}"
    );
}

#[test]
fn a_child_forked_mid_load_loads_the_engine_itself() {
    // The child's only thread was the parent's loader: waiting for it would
    // be forever. It takes the load over and its connect is decided by the
    // engine: blocked.
    let stderr = mid_load("fork");
    assert!(stderr.contains("child connect EPERM\n"), "{stderr}");
    assert!(stderr.contains("child status 0\n"), "{stderr}");
}

#[test]
fn a_front_without_its_engine_fails_closed() {
    let alone = dir().join("alone");
    fs::create_dir_all(&alone).unwrap();
    let front = alone.join("libbindto.so");
    fs::copy(shim_path(), &front).unwrap();
    let out = run(&front, &[("BIND_PROFILE", "lo")], &["refused"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout,
        "socket ok\n\
         connect -1 EPERM\n\
         bind -1 EPERM\n\
         close 0\n\
         sendto -1 EPERM\n\
         sendmsg -1 EPERM\n\
         sendmmsg -1 EPERM\n\
         dup2 ok\n\
         close 0 0\n\
         connect-unix -1 ENOENT\n\
         getaddrinfo EAI_FAIL EPERM\n\
         getaddrinfo_a -11 EPERM -4\n\
         getnameinfo EAI_FAIL\n\
         gethostbyname null 3\n\
         gethostbyname_r ENOENT null 3\n\
         res_query -1 3\n"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let expected = format!(
        "bindto: cannot load {}: ",
        alone.join("libbindto_engine.so").display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
    // With dlerror's reason, not an empty one.
    assert!(
        stderr.ends_with(
            "cannot open shared object file: No such file or directory; network calls are blocked\n"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // Without BIND_PROFILE the same front passes through, silently.
    let out = run(&front, &[], &["maps", "connect"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), NO_ENGINE);
    assert!(out.stderr.is_empty(), "{out:?}");
}
