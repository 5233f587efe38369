//! Hot reload: a running process follows a changed config within about
//! three seconds (a change is read once it has stayed the same for a
//! second), and a broken change keeps the previous rules.
//!
//! The test moves on when the client shows it is ready (an answer in a
//! server's log, a notice in the client's stderr), not after a fixed
//! sleep, so that a loaded machine only makes it slower; the time limits
//! are upper bounds, far above what a step takes.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use bindto_tests::clients::*;
use bindto_tests::programs::{as_refs, bound_vars, path_str};
use bindto_tests::{HIGH_PORT, Lab, RunOutput, TARGET_V4};

/// The most any one step may take, waiting for a ready signal.
const STEP_LIMIT: Duration = Duration::from_secs(30);

/// The most a good file may take to be in force: about three seconds.
const SWITCH_LIMIT: Duration = Duration::from_secs(10);

/// The most the client may run.
const CLIENT_LIMIT: Duration = Duration::from_secs(90);

/// Replaces `path` at once, as editors and config managers do, so the shim
/// never reads half a file.
fn replace(path: &Path, text: &str) {
    let next = path.with_extension("next");
    fs::write(&next, text).unwrap();
    fs::rename(&next, path).unwrap();
}

/// A python3 program that connects over TCP to [`TARGET_V4`]:[`HIGH_PORT`]
/// every 100 ms and prints each answer on a line, or `ERR <errno>`, until
/// `count` answers started with `until` (or 600 tries). Its stderr, where
/// the shim's notices go, is `stderr` from the start, so that the test can
/// read them while it runs.
fn client_script(stderr: &Path, until: &str, count: usize) -> String {
    format!(
        "import os\n\
         os.dup2(os.open({stderr:?}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), 2)\n\
         import socket, time\n\
         seen = 0\n\
         for _ in range(600):\n\
         \x20   try:\n\
         \x20       s = socket.create_connection(('{TARGET_V4}', {HIGH_PORT}), timeout=2)\n\
         \x20       s.shutdown(socket.SHUT_WR)\n\
         \x20       line = s.recv(100).decode().strip()\n\
         \x20       s.close()\n\
         \x20   except OSError as e:\n\
         \x20       line = 'ERR %d' % e.errno\n\
         \x20   print(line, flush=True)\n\
         \x20   seen += line.startswith({until:?})\n\
         \x20   if seen == {count}:\n\
         \x20       break\n\
         \x20   time.sleep(0.1)\n",
        stderr = path_str(stderr),
    )
}

/// Waits until `ready` holds, at most [`STEP_LIMIT`]; returns how long it
/// took.
#[track_caller]
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < STEP_LIMIT,
            "no sign of {what} in {STEP_LIMIT:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// The client's run, with the stderr it wrote to `stderr`.
fn with_stderr(out: RunOutput, stderr: &Path) -> RunOutput {
    RunOutput {
        stderr: fs::read_to_string(stderr).unwrap_or_default(),
        ..out
    }
}

#[test]
fn new_connections_of_a_running_process_follow_the_changed_config() {
    let Some(lab) = Lab::builder().timeout(CLIENT_LIMIT).build() else {
        return;
    };
    let config = lab.dir().join("reload.toml");
    replace(&config, VPN_PROFILE);
    let stderr = lab.dir().join("client.stderr");
    let script = client_script(&stderr, "alt", 3);
    let vars = bound_vars(&config, "vpn");
    let vars = as_refs(&vars);
    let notices = || fs::read_to_string(&stderr).unwrap_or_default();
    let (out, switched) = thread::scope(|scope| {
        let client = scope.spawn(|| lab.run_client(&python(&script), &vars));
        wait_for("a first connection through vpn", || lab.count("vpn") > 0);

        replace(&config, "[profile.vpn]\ninterface = \"alt0\n");
        wait_for("the broken file's notice", || {
            notices().contains("reloading profile failed")
        });
        // A connection after the failed reload still goes through vpn.
        let before = lab.count("vpn");
        wait_for("a connection after the failed reload", || {
            lab.count("vpn") > before
        });

        replace(&config, "[profile.vpn]\ninterface = \"alt0\"\n");
        let switched = wait_for("a connection through alt", || lab.count("alt") > 0);
        (client.join().expect("client thread"), switched)
    });
    let out = with_stderr(out, &stderr);
    let (vpn, alt) = two_runs(out.assert_success(), "vpn 198.18.2.2", "alt 198.18.3.2");
    assert!(vpn >= 2, "{out}");
    assert_eq!(alt, 3, "{out}");
    assert_one_notice(
        &out,
        &[
            "bindto: reloading profile failed: ",
            "reload.toml:2:",
            "keeping the previous rules",
        ],
    );
    assert_eq!(counts(&lab), (0, vpn, alt));
    // About three seconds; far more only if the machine is very loaded.
    assert!(
        switched < SWITCH_LIMIT,
        "the good file took {switched:?}: {out}"
    );
}

#[test]
fn a_config_fixed_while_running_unblocks_the_process() {
    let Some(lab) = Lab::builder().timeout(CLIENT_LIMIT).build() else {
        return;
    };
    let config = lab.dir().join("fixed.toml");
    replace(&config, "[profile.other]\ninterface = \"vpn0\"\n");
    let stderr = lab.dir().join("client.stderr");
    let script = client_script(&stderr, "vpn", 1);
    let vars = bound_vars(&config, "vpn");
    let vars = as_refs(&vars);
    let out = thread::scope(|scope| {
        let client = scope.spawn(|| lab.run_client(&python(&script), &vars));
        wait_for("the blocked process's notice", || {
            fs::read_to_string(&stderr).is_ok_and(|s| s.contains("not found"))
        });
        replace(&config, VPN_PROFILE);
        client.join().expect("client thread")
    });
    let out = with_stderr(out, &stderr);
    let text = out.assert_success();
    assert!(text.starts_with("ERR 1\n"), "{out}");
    assert!(text.ends_with("ERR 1\nvpn 198.18.2.2\n"), "{out}");
    assert_one_notice(
        &out,
        &["profile \"vpn\" not found", "network calls are blocked"],
    );
    assert_eq!(counts(&lab), (0, 1, 0));
}
