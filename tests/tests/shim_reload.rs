//! Hot reload: a running process follows a changed config within about
//! three seconds (a change is read once it has stayed the same for a
//! second), and a broken change keeps the previous rules.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use bindto_tests::clients::*;
use bindto_tests::programs::{as_refs, bound_vars};
use bindto_tests::{HIGH_PORT, Lab, TARGET_V4};

/// Replaces `path` at once, as editors and config managers do, so the shim
/// never reads half a file.
fn replace(path: &Path, text: &str) {
    let next = path.with_extension("next");
    fs::write(&next, text).unwrap();
    fs::rename(&next, path).unwrap();
}

#[test]
fn new_connections_of_a_running_process_follow_the_changed_config() {
    let Some(lab) = Lab::builder().timeout(Duration::from_secs(30)).build() else {
        return;
    };
    let config = lab.dir().join("reload.toml");
    replace(&config, VPN_PROFILE);
    // One connection every 200 ms for about 12 s, one line each.
    let script = connections_script(60, 200);
    let vars = bound_vars(&config, "vpn");
    let vars = as_refs(&vars);
    let out = thread::scope(|scope| {
        let client = scope.spawn(|| lab.run_client(&python(&script), &vars));
        thread::sleep(Duration::from_millis(1500));
        replace(&config, "[profile.vpn]\ninterface = \"alt0\n");
        thread::sleep(Duration::from_millis(3500));
        replace(&config, "[profile.vpn]\ninterface = \"alt0\"\n");
        client.join().expect("client thread")
    });
    let (vpn, alt) = two_runs(out.assert_success(), "vpn 198.18.2.2", "alt 198.18.3.2");
    // The broken file came after about 1.5 s and the good one after 5 s:
    // the broken one changed nothing, and the good one took at most about
    // three seconds more.
    assert!(vpn >= 10, "{out}");
    assert!(alt >= 8, "{out}");
    assert_one_notice(
        &out,
        &[
            "bindto: reloading profile failed: ",
            "reload.toml:2:",
            "keeping the previous rules",
        ],
    );
    assert_eq!(counts(&lab), (0, vpn, alt));
}

#[test]
fn a_config_fixed_while_running_unblocks_the_process() {
    let Some(lab) = Lab::new() else { return };
    let config = lab.dir().join("fixed.toml");
    replace(&config, "[profile.other]\ninterface = \"vpn0\"\n");
    let script = format!(
        "import socket, time\n\
         for _ in range(30):\n\
         \x20   try:\n\
         \x20       s = socket.create_connection(('{TARGET_V4}', {HIGH_PORT}), timeout=2)\n\
         \x20       s.shutdown(socket.SHUT_WR)\n\
         \x20       print(s.recv(100).decode().strip(), flush=True)\n\
         \x20       break\n\
         \x20   except OSError as e:\n\
         \x20       print('ERR', e.errno, flush=True)\n\
         \x20   time.sleep(0.2)\n"
    );
    let vars = bound_vars(&config, "vpn");
    let vars = as_refs(&vars);
    let out = thread::scope(|scope| {
        let client = scope.spawn(|| lab.run_client(&python(&script), &vars));
        thread::sleep(Duration::from_millis(800));
        replace(&config, VPN_PROFILE);
        client.join().expect("client thread")
    });
    let text = out.assert_success();
    assert!(text.starts_with("ERR 1\n"), "{out}");
    assert!(text.ends_with("ERR 1\nvpn 198.18.2.2\n"), "{out}");
    assert_one_notice(
        &out,
        &["profile \"vpn\" not found", "network calls are blocked"],
    );
    assert_eq!(counts(&lab), (0, 1, 0));
}
