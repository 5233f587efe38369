//! No leaks: a process's descriptor count is the same after thousands of
//! connections and datagrams under the shim as before its first one (also
//! while the config is reloaded, and with a log file, which is the one
//! descriptor the shim keeps); and valgrind's memcheck finds no invalid
//! access and no definite leak in a client that connects and sends from
//! several threads under the shim.

use std::fs;
use std::thread;
use std::time::Duration;

use bindto_tests::Lab;
use bindto_tests::programs::{TARGET, as_refs, bound_vars, compile, path_str, write};

const VPN: &str = "[profile.vpn]\ninterface = \"vpn0\"\n";

/// The numbers of `fds before=B first=F after=A failed=X`.
#[track_caller]
fn fd_counts(stdout: &str) -> (usize, usize, usize, usize) {
    let line = stdout
        .lines()
        .find(|line| line.starts_with("fds "))
        .unwrap_or_else(|| panic!("no fds line in {stdout:?}"));
    let numbers: Vec<usize> = line
        .split_whitespace()
        .filter_map(|word| word.split_once('=')?.1.parse().ok())
        .collect();
    match numbers[..] {
        [before, first, after, failed] => (before, first, after, failed),
        _ => panic!("bad fds line {line:?}"),
    }
}

#[test]
fn descriptors_do_not_leak() {
    let Some(lab) = Lab::builder().timeout(Duration::from_secs(60)).build() else {
        return;
    };
    let client = compile(lab.dir(), "netclient");
    let config = write(&lab, "vpn.toml", VPN);
    let vars = bound_vars(&config, "vpn");

    // 3000 connections and 2999 datagrams, while the config file changes
    // (same rules, new mtime) every 200 ms, so that it is reloaded.
    let args = [path_str(&client), "fds", "3000", TARGET, "80"];
    let out = thread::scope(|scope| {
        let run = scope.spawn(|| lab.run_client(&args, &as_refs(&vars)));
        while !run.is_finished() {
            thread::sleep(Duration::from_millis(200));
            fs::write(&config, VPN).unwrap();
        }
        run.join().expect("the client run panicked")
    });
    let (before, first, after, failed) = fd_counts(out.assert_success());
    assert_eq!(failed, 0, "{out}");
    assert_eq!((first, after), (before, before), "{out}");
    assert!(
        out.stdout.contains("wan=0 vpn=5999 alt=0 other=0 failed=0"),
        "{out}"
    );
    eprintln!("without a log file: fds before={before} first={first} after={after}");

    // With a log file: one descriptor more from the first call on, and no
    // more after that.
    let log = lab.dir().join("shim.log");
    let mut vars = vars;
    vars.push(("BINDTO_LOG".to_owned(), "debug".to_owned()));
    vars.push(("BINDTO_LOG_FILE".to_owned(), path_str(&log).to_owned()));
    let out = lab.run_client(
        &[path_str(&client), "fds", "500", TARGET, "80"],
        &as_refs(&vars),
    );
    let (before, first, after, failed) = fd_counts(out.assert_success());
    assert_eq!(failed, 0, "{out}");
    assert_eq!((first, after), (before + 1, before + 1), "{out}");
    let logged = fs::read_to_string(&log).unwrap();
    assert!(logged.lines().count() >= 999, "{logged}");
    eprintln!("with a log file: fds before={before} first={first} after={after}");
}

#[test]
fn valgrind_finds_no_invalid_access_and_no_definite_leak() {
    let Some(lab) = Lab::builder().timeout(Duration::from_secs(90)).build() else {
        return;
    };
    let client = compile(lab.dir(), "netclient");
    let config = write(&lab, "vpn.toml", VPN);
    let vars = bound_vars(&config, "vpn");

    // 60 connections and 60 datagrams (sendto and sendmsg) in the main
    // thread and in each of 3 more threads, which then exit.
    let out = lab.run_client(
        &[
            "valgrind",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--error-exitcode=99",
            "--trace-children=no",
            path_str(&client),
            "mixed",
            "60",
            "3",
            TARGET,
            "80",
        ],
        &as_refs(&vars),
    );
    assert!(
        !out.stderr.contains("command not found") && !out.stderr.contains("No such file"),
        "valgrind is not installed: {out}"
    );
    assert_eq!(
        out.assert_success(),
        "wan=0 vpn=480 alt=0 other=0 failed=0\n",
        "{out}"
    );
    assert!(out.stderr.contains("ERROR SUMMARY: 0 errors"), "{out}");
    assert!(
        out.stderr.contains("definitely lost: 0 bytes")
            || out.stderr.contains("no leaks are possible"),
        "{out}"
    );
    let summary: Vec<&str> = out
        .stderr
        .lines()
        .filter(|line| {
            ["in use at exit", "lost:", "reachable:", "ERROR SUMMARY"]
                .iter()
                .any(|key| line.contains(key))
        })
        .collect();
    eprintln!("valgrind:\n{}", summary.join("\n"));
}
