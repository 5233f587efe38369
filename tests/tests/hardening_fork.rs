//! fork and exec: the shim's state survives a fork from a multi-threaded
//! process (no lock on its hot path), and children started by vfork+exec,
//! posix_spawn or a chain of shells inherit it through the environment
//! (`LD_PRELOAD`, `BIND_PROFILE`, `BINDTO_CONFIG`).
//!
//! What the shim cannot do: a program that clears its environment before
//! it execs (`env -i`, `execve(..., envp = {NULL})`, sudo's env_reset, a
//! systemd unit) takes `LD_PRELOAD` and the profile with it, so the
//! program it starts is not bound and leaves by the default route.
//! [`clearing_the_environment_escapes_the_shim`] shows it. An `LD_PRELOAD`
//! library lives in the environment, and its children are only bound while
//! they keep it.

use bindto_tests::Lab;
use bindto_tests::programs::{TARGET, as_refs, bound_vars, compile, path_str, write};

const VPN: &str = "[profile.vpn]\ninterface = \"vpn0\"\n";
const VPN_ANSWER: &str = "vpn 198.18.2.2";

#[test]
fn a_child_forked_from_a_threaded_process_is_bound() {
    let Some(lab) = Lab::new() else { return };
    let client = compile(lab.dir(), "netclient");
    let config = write(&lab, "vpn.toml", VPN);
    let vars = bound_vars(&config, "vpn");

    // Four threads connect in a loop while the main thread forks twenty
    // children, one at a time, each connecting once.
    let out = lab.run_client(
        &[path_str(&client), "forks", "4", "20", TARGET, "80"],
        &as_refs(&vars),
    );
    let stdout = out.assert_success();
    let children: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("child: "))
        .collect();
    assert_eq!(children, vec![VPN_ANSWER; 20], "{out}");
    assert!(stdout.contains("forks=20 bad=0\n"), "{out}");
    assert!(
        stdout.contains("wan=0 vpn=") && stdout.contains(" alt=0 other=0 failed=0\n"),
        "{out}"
    );
    assert_eq!(lab.count("wan"), 0);
    assert!(lab.count("vpn") > 20, "the threads connected too");
}

#[test]
fn vfork_posix_spawn_and_shells_pass_the_shim_on() {
    let Some(lab) = Lab::new() else { return };
    let client = compile(lab.dir(), "netclient");
    let client = path_str(&client);
    let config = write(&lab, "vpn.toml", VPN);
    let vars = bound_vars(&config, "vpn");
    let vars = as_refs(&vars);

    for how in ["vfork", "spawn"] {
        let out = lab.run_client(&[client, how, client, "tcp", TARGET, "80"], &vars);
        assert_eq!(out.assert_success(), format!("{VPN_ANSWER}\n"), "{how}");
    }
    let chain = "sh -c \"curl -sS --max-time 5 http://198.19.0.1/\"";
    let out = lab.run_client(&["bash", "-c", chain], &vars);
    assert_eq!(
        out.assert_success(),
        format!("{VPN_ANSWER}\n"),
        "bash, sh, curl"
    );
    let chain = format!("sh -c 'bash -c \"{client} udp {TARGET} 53\"'");
    let out = lab.run_client(&["bash", "-c", &chain], &vars);
    assert_eq!(
        out.assert_success(),
        format!("{VPN_ANSWER}\n"),
        "bash, sh, bash, C"
    );
    assert_eq!(lab.count("wan"), 0);
    assert_eq!(lab.count("vpn"), 4);
}

/// Documents a limit, not a bug: see the module's comment.
#[test]
fn clearing_the_environment_escapes_the_shim() {
    let Some(lab) = Lab::new() else { return };
    let config = write(&lab, "vpn.toml", VPN);
    let vars = bound_vars(&config, "vpn");
    let curl = "curl -sS --max-time 5 http://198.19.0.1/";

    // Bound, up to the program that clears its environment...
    let out = lab.run_client(&["bash", "-c", curl], &as_refs(&vars));
    assert_eq!(out.assert_success(), format!("{VPN_ANSWER}\n"));
    // ...which starts curl without LD_PRELOAD: out by the default route.
    let cleared = format!("env -i PATH=\"$PATH\" {curl}");
    let out = lab.run_client(&["bash", "-c", &cleared], &as_refs(&vars));
    assert_eq!(out.assert_success(), "wan 198.18.1.2\n", "env -i");
    // Dropping only the profile does the same: the shim, still loaded,
    // has nothing to follow and passes through.
    let unset = format!("env -u BIND_PROFILE {curl}");
    let out = lab.run_client(&["bash", "-c", &unset], &as_refs(&vars));
    assert_eq!(
        out.assert_success(),
        "wan 198.18.1.2\n",
        "env -u BIND_PROFILE"
    );
    assert_eq!((lab.count("vpn"), lab.count("wan")), (1, 2));
}
