//! Concurrency: 16 threads x 300 connections in one process while its
//! config file is rewritten 40 times between two variants (interface
//! `vpn0`, interface `alt0`). No crash, no deadlock (the run is bounded),
//! every connection succeeds, and each one lands where one of the two
//! variants says: on vpn or alt with that uplink's address, never on wan.
//!
//! The file is rewritten both ways programs do: replaced by a rename
//! (atomic), and truncated and written in place (a reader may catch it
//! empty; the shim then keeps the previous rules and says so). A file
//! that keeps changing is not read until it has stayed the same for a
//! second: the last variant, alt0, takes over after the rewrites stop.
//!
//! And a signal handler that sends while the same thread is inside a hook
//! (a SIGALRM every ~40 us over thousands of connects): no datagram may
//! leave unbound. Such a send cannot be decided (the interrupted hook holds
//! the thread's guard), so it is refused with EAGAIN; it used to go out
//! undecided, by the default route (688 of 29 124 here).

use std::fs;
use std::net::IpAddr;
use std::thread;
use std::time::Duration;

use bindto_tests::programs::{TARGET, as_refs, bound_vars, compile, path_str};
use bindto_tests::{ALT, Lab, Proto, VPN};

const THREADS: usize = 16;
const PER_THREAD: usize = 300;
/// Odd, so that the last is alt0.
const REWRITES: usize = 21;
/// Before the first rewrite: the client reads the first variant, vpn0, even
/// where it is slow to start (a loaded machine).
const FIRST_REWRITE: Duration = Duration::from_secs(1);
/// Between rewrites: 21 take about 1.6 s, and the last variant is read
/// within 3 s more, while the connections still run (each thread waits
/// 30 ms between its connections: 9 s).
const REWRITE_EVERY: Duration = Duration::from_millis(75);

fn variant(dev: &str) -> String {
    format!("[profile.c]\ninterface = \"{dev}\"\n")
}

#[test]
fn threads_connect_while_the_config_is_rewritten() {
    let Some(lab) = Lab::builder().timeout(Duration::from_secs(90)).build() else {
        return;
    };
    let client = compile(lab.dir(), "netclient");
    let config = lab.dir().join("profiles.toml");
    let staging = lab.dir().join("profiles.toml.new");
    fs::write(&config, variant("vpn0")).unwrap();
    let vars = bound_vars(&config, "c");

    let (threads, per_thread) = (THREADS.to_string(), PER_THREAD.to_string());
    let args = [
        path_str(&client),
        "threads",
        &threads,
        &per_thread,
        TARGET,
        "80",
        "30000",
    ];
    let out = thread::scope(|scope| {
        let run = scope.spawn(|| lab.run_client(&args, &as_refs(&vars)));
        thread::sleep(FIRST_REWRITE);
        for i in 0..REWRITES {
            thread::sleep(REWRITE_EVERY);
            let text = variant(if i % 2 == 0 { "alt0" } else { "vpn0" });
            if i % 4 < 2 {
                fs::write(&staging, &text).unwrap();
                fs::rename(&staging, &config).unwrap();
            } else {
                fs::write(&config, &text).unwrap();
            }
        }
        run.join().expect("the client run panicked")
    });

    let stdout = out.assert_success();
    let counts: Vec<(&str, usize)> = stdout
        .split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(key, value)| (key, value.parse().unwrap()))
        .collect();
    let count = |key: &str| {
        counts
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, n)| n)
            .unwrap_or_else(|| panic!("no {key}= in {out}"))
    };
    assert_eq!(
        (count("failed"), count("other"), count("wan")),
        (0, 0, 0),
        "{out}"
    );
    assert_eq!(count("vpn") + count("alt"), THREADS * PER_THREAD, "{out}");
    assert!(
        count("vpn") > 0 && count("alt") > 0,
        "no reload took effect: {out}"
    );
    // Only failed reloads of a file caught half-written may be reported.
    for line in out.stderr.lines() {
        assert!(
            line.starts_with("bindto: reloading profile failed:")
                && line.ends_with("keeping the previous rules"),
            "unexpected stderr line {line:?} in {out}"
        );
    }

    // The servers agree, and saw each uplink's own address.
    assert_eq!(lab.count("wan"), 0);
    for (name, uplink, n) in [("vpn", VPN, count("vpn")), ("alt", ALT, count("alt"))] {
        let received = lab.received(name);
        assert_eq!(received.len(), n, "{name}");
        let own = IpAddr::from(uplink.client_v4());
        assert!(
            received.iter().all(|line| line.peer.ip() == own),
            "{name} saw another source address"
        );
    }
    eprintln!(
        "{} connections: vpn {}, alt {}; {} failed reloads reported",
        THREADS * PER_THREAD,
        count("vpn"),
        count("alt"),
        out.stderr.lines().count()
    );
}

#[test]
fn a_signal_handler_never_sends_unbound() {
    let Some(lab) = Lab::builder().timeout(Duration::from_secs(60)).build() else {
        return;
    };
    let client = compile(lab.dir(), "netclient");
    let config = lab.dir().join("profiles.toml");
    fs::write(&config, variant("vpn0")).unwrap();
    let vars = bound_vars(&config, "c");

    // Connections to a port nobody serves (refused at once) in the main
    // thread; datagrams to the echo port from the handler.
    let args = [
        path_str(&client),
        "sigstorm",
        "10000",
        TARGET,
        "9999",
        "198.19.0.2",
        "7",
    ];
    let out = lab.run_client(&args, &as_refs(&vars));
    let stdout = out.assert_success();
    let udp = |uplink: &str| {
        lab.received(uplink)
            .iter()
            .filter(|line| line.proto == Proto::Udp)
            .count()
    };
    assert_eq!(
        udp("wan"),
        0,
        "datagrams from a signal handler left unbound: {out}"
    );
    assert!(udp("vpn") > 1000, "{out}");
    assert_eq!(out.stderr, "", "{out}");
    eprintln!("{}; vpn received {}", stdout.trim_end(), udp("vpn"));
}
