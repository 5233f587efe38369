//! Whether this process may build a lab, and what happens when it may not.
//!
//! A lab needs `CAP_SYS_ADMIN` and `CAP_NET_ADMIN` (network namespaces,
//! veths, addresses), which one gets in one of two ways:
//!
//! * **Root** (effective uid 0): the lab is built right here, and its
//!   namespaces are named in the system's `/run/netns`.
//! * **Not root, but the kernel allows unprivileged user namespaces**: the
//!   test re-runs *itself*, alone, as a child process:
//!   `unshare --user --map-root-user --net --mount <this test binary>
//!   --exact <this test> --test-threads=1`, with `BINDTO_E2E_USERNS=1`
//!   set. There it is root of its own user namespace, inside a fresh
//!   network namespace and a private mount namespace, where it mounts a
//!   tmpfs over `/run` so that `ip netns add` can make `/run/netns` (the
//!   real one is root's). The outer [`crate::Lab::new`] waits for that run,
//!   fails the test with the child's output if the child failed, and
//!   returns `None`, so the outer test body stops at its `let ... else`.
//!   The test is found by its thread's name, which libtest sets to the
//!   test's path; code run before `Lab::new` runs twice.
//! * **Otherwise** (or when `ip` is missing, or the kernel refuses a
//!   namespace even to root, as in an unprivileged container): the test is
//!   skipped. `SKIP: <reason>` goes to stderr, past libtest's capture so it
//!   is seen, and `Lab::new` returns `None`. With `BINDTO_E2E=require` (as
//!   in CI) a skip panics instead, so a lab that cannot run never passes
//!   for one that ran.

use std::env;
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{self, Command, Stdio};
use std::sync::OnceLock;
use std::thread;

use crate::cmd::try_run;

/// Set in the re-run child so that it knows it must prepare its namespace
/// and must not re-run itself again. Public for programs other than tests
/// that re-run themselves in a user namespace the same way (`bindto demo`).
pub const CHILD_VAR: &str = "BINDTO_E2E_USERNS";

/// Set to `require` (as CI does), it turns skips into failures.
pub const REQUIRE_VAR: &str = "BINDTO_E2E";

/// How a lab can be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// This process can build it.
    Here,
    /// The test was re-run, and passed, in a user namespace: nothing more
    /// to do here.
    RanInChild,
}

/// Which way this process gets its privileges: decided once per process.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Root,
    UserNamespace,
}

/// Decides how the calling test gets its lab, or why it cannot (a skip
/// reason, to hand to [`skip`]).
///
/// # Panics
/// When the test was re-run in a user namespace and failed there.
pub(crate) fn access() -> Result<Access, String> {
    static MODE: OnceLock<Result<Mode, String>> = OnceLock::new();
    match MODE.get_or_init(mode).clone()? {
        Mode::Root => Ok(Access::Here),
        Mode::UserNamespace => rerun_in_user_namespace().map(|()| Access::RanInChild),
    }
}

/// Reports a lab that cannot run: a line on stderr, or a panic when CI
/// requires the lab.
#[track_caller]
pub fn skip(reason: &str) {
    if env::var(REQUIRE_VAR).is_ok_and(|value| value == "require") {
        panic!("{REQUIRE_VAR}=require, but the lab cannot run: {reason}");
    }
    // Straight to fd 2 rather than eprintln!, which libtest captures and
    // would only show for a failing test: a skip must be visible.
    let _ = writeln!(io::stderr(), "SKIP: {reason}");
}

fn mode() -> Result<Mode, String> {
    if Command::new("ip").arg("-V").output().is_err() {
        return Err("`ip` (iproute2) is not installed".to_owned());
    }
    let in_child = env::var_os(CHILD_VAR).is_some();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        if in_child {
            private_run_dir()?;
        }
        probe_namespace()?;
        Ok(Mode::Root)
    } else if in_child {
        Err("re-run in a user namespace, but still not root there".to_owned())
    } else {
        try_run(Command::new("unshare").args(USERNS_ARGS).arg("true"))
            .map_err(|error| format!("not root, and no unprivileged user namespace: {error}"))?;
        Ok(Mode::UserNamespace)
    }
}

/// `unshare` options for the re-run: root mapped to us, and a network and
/// mount namespace of our own.
const USERNS_ARGS: [&str; 4] = ["--user", "--map-root-user", "--net", "--mount"];

/// In the child: a private tmpfs over `/run` (and `/var/run`, if it is not
/// a link to it), where `ip netns` keeps its names. Our mount namespace is
/// private (`unshare --mount` makes it so), so nothing outside sees it.
fn private_run_dir() -> Result<(), String> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for real in ["/run", "/var/run"].into_iter().flat_map(fs::canonicalize) {
        if !dirs.contains(&real) {
            dirs.push(real);
        }
    }
    for dir in dirs {
        try_run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", "mode=0755", "bindto-e2e"])
                .arg(dir),
        )?;
    }
    Ok(())
}

/// Creates and deletes a namespace, so that a kernel or container that
/// refuses them is a skip with a clear reason rather than a failure.
fn probe_namespace() -> Result<(), String> {
    let name = format!("bt{}-probe", process::id());
    try_run(Command::new("ip").args(["netns", "add", &name]))
        .map_err(|error| format!("cannot create a network namespace: {error}"))?;
    try_run(Command::new("ip").args(["netns", "del", &name]))?;
    Ok(())
}

/// Runs the current test again, alone, in a user namespace where it is
/// root; panics with its output if it fails there.
fn rerun_in_user_namespace() -> Result<(), String> {
    let current = thread::current();
    let test = current
        .name()
        .filter(|name| *name != "main")
        .ok_or("not root, and cannot tell which test to re-run in a user namespace")?;
    let exe =
        env::current_exe().map_err(|error| format!("cannot find the test binary: {error}"))?;
    let output = Command::new("unshare")
        .args(USERNS_ARGS)
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run unshare: {error}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // "1 passed" guards against a filter that matched nothing, which
    // libtest reports as success.
    assert!(
        output.status.success() && stdout.contains(" 1 passed"),
        "{test} failed in its user namespace ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    eprintln!("{test} ran in a user namespace:\n{stdout}{stderr}");
    Ok(())
}
