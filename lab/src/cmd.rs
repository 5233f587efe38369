//! Running setup commands (`ip`, `mount`, ...) whose failure is a broken lab.

use std::process::{Command, Output};

/// Runs `cmd` to completion and returns its stdout.
///
/// # Panics
/// If it cannot start or exits unsuccessfully, with its stderr: a lab that
/// is half set up would only make the test fail later, more obscurely.
#[track_caller]
pub(crate) fn check(cmd: &mut Command) -> String {
    match try_run(cmd) {
        Ok(stdout) => stdout,
        Err(message) => panic!("{message}"),
    }
}

/// Like [`check`], but returns the failure message instead of panicking,
/// for teardown (which must not panic) and for probes.
pub(crate) fn try_run(cmd: &mut Command) -> Result<String, String> {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .output()
        .map_err(|error| format!("cannot run {cmd:?}: {error}"))?;
    if status.success() {
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({status}): {}",
            String::from_utf8_lossy(&stderr).trim_end()
        ))
    }
}

/// `ip ARGS...`, checked.
#[track_caller]
pub(crate) fn ip(args: &[&str]) -> String {
    check(Command::new("ip").args(args))
}

/// `ip -n NS ARGS...`, checked: `-n` switches namespace inside `ip` itself,
/// cheaper than `ip netns exec` and without its mount namespace.
#[track_caller]
pub(crate) fn ip_in(ns: &str, args: &[&str]) -> String {
    check(Command::new("ip").args(["-n", ns]).args(args))
}
