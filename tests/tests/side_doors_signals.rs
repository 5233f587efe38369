//! Side doors through signals, cancellation and the program's own
//! descriptor bookkeeping (issue 16): under `[profile.vpn] interface =
//! "vpn0"`, in a client whose default route is wan0, nothing may leave
//! unbound, fail for good, abort the process or land in the program's
//! descriptors.
//!
//! - a lookup abandoned by `siglongjmp` (the `alarm()` timeout around
//!   `getaddrinfo`), and a signal handler that looks a name up while its
//!   thread waits in the shim: `tests/programs/sigjmp.c`;
//! - `pthread_cancel` of threads blocked in `connect` and `getaddrinfo`:
//!   `tests/programs/cancel.c`;
//! - the log file's descriptor after the program closed and reused its
//!   number (`closefrom(3)`, a raw close syscall): `tests/programs/logfd.c`.
//!
//! The name lookups use the DNS servers of `tests/tests/dns.rs`: the
//! profile's on the vpn side, and the one the client's resolv.conf names on
//! the wan side, which must never get a query while a profile is asked.

use std::fs;
use std::net::IpAddr;
use std::time::Duration;

use bindto_tests::clients::VPN_PROFILE;
use bindto_tests::dns::{self, DnsServer};
use bindto_tests::programs::{TARGET, compile, path_str, shim};
use bindto_tests::{HTTP_PORT, Lab, RunOutput, UPLINKS, VPN, WAN};

/// Binds to vpn0 and names the vpn-side server for DNS.
const PROFILE: &str =
    "[profile.vpn]\ninterface = \"vpn0\"\n\n[profile.vpn.dns]\n53 = \"198.18.2.1\"\n";

/// The same, with the black hole's range excluded: its connects go
/// unbound, by the default route.
const EXCLUDED: &str = "[profile.vpn]\ninterface = \"vpn0\"\nexclude = [\"198.18.97.0/24\"]\n\n\
                        [profile.vpn.dns]\n53 = \"198.18.2.1\"\n";

/// An address whose SYNs every uplink's server drops without an answer.
const BLACKHOLE: &str = "198.18.97.1";

/// A lab with both DNS servers and the black hole; dropped servers first,
/// then the lab.
struct Dns {
    vpn: DnsServer,
    wan: DnsServer,
    lab: Lab,
}

fn lab() -> Option<Dns> {
    let lab = Lab::builder()
        .ports([HTTP_PORT])
        .timeout(Duration::from_secs(30))
        .build()?;
    let resolv = format!(
        "nameserver {}\noptions timeout:1 attempts:2\n",
        WAN.server_v4()
    );
    lab.set_client_file("resolv.conf", &resolv);
    // Each server forwards what is not its own, and discards the black
    // hole's range silently (a blackhole route drops a forwarded packet
    // without an ICMP error; without forwarding the server would answer
    // host unreachable).
    for uplink in UPLINKS {
        lab.run_server(
            uplink.name,
            &[
                "sh",
                "-c",
                "echo 1 > /proc/sys/net/ipv4/ip_forward && ip route add blackhole 198.18.97.0/24",
            ],
            &[],
        )
        .assert_success();
    }
    Some(Dns {
        vpn: DnsServer::start(&lab, "vpn"),
        wan: DnsServer::start(&lab, "wan"),
        lab,
    })
}

impl Dns {
    /// Runs `tests/programs/<program>.c` under the shim, with `profile`
    /// asked, or none.
    fn run(&self, profile: Option<&str>, program: &str, args: &[&str]) -> RunOutput {
        let program = compile(self.lab.dir(), program);
        let mut all = vec![path_str(&program)];
        all.extend_from_slice(args);
        match profile {
            Some(profile) => self.lab.run_bound(profile, "vpn", &all, &[]),
            None => self.lab.run_client(&all, &[("LD_PRELOAD", &shim())]),
        }
    }

    /// Asserts that the wan-side server got nothing, and that everything
    /// the vpn-side one got came from the client's vpn0 address.
    #[track_caller]
    fn assert_no_leak(&self) {
        assert_eq!(
            self.wan.queries(),
            [],
            "queries leaked to the wan nameserver"
        );
        for query in self.vpn.queries() {
            assert_eq!(query.peer.ip(), IpAddr::from(VPN.client_v4()), "{query:?}");
        }
    }
}

#[test]
fn a_lookup_abandoned_by_siglongjmp_leaves_the_next_lookup_and_connect_bound() {
    let Some(dns) = lab() else { return };
    let out = dns.run(Some(PROFILE), "sigjmp", &[dns::SILENT, dns::HOST, TARGET]);
    let text = out.assert_success();
    let lines: Vec<&str> = text.lines().collect();
    // The vpn server's answer (the wan one's is 198.19.0.2), and a bound
    // connect, after each abandoned lookup.
    let after = ["lookup host.bindto.test=198.19.0.1", "connect=ok"];
    assert_eq!(lines.first(), Some(&"interrupted"), "{out}");
    assert_eq!(lines.get(1..3), Some(&after[..]), "{out}");
    assert_eq!(lines.get(3), Some(&"interrupted"), "{out}");
    assert_eq!(lines.get(5..7), Some(&after[..]), "{out}");
    dns.assert_no_leak();
}

#[test]
fn a_signal_handler_looking_a_name_up_inside_a_hook_fails_rather_than_leaks() {
    let Some(dns) = lab() else { return };
    let out = dns.run(Some(PROFILE), "sigjmp", &[dns::SILENT, dns::HOST, TARGET]);
    let text = out.assert_success();
    let handler = text.lines().nth(4).unwrap_or_default();
    assert!(
        handler == "handler lookup=EAI_AGAIN" || handler == "handler lookup=EAI_SYSTEM",
        "{out}"
    );
    dns.assert_no_leak();
}

/// Runs `cancel` and checks that both threads were cancelled at once and
/// joined, and that the main thread then connects.
#[track_caller]
fn assert_cancelled(dns: &Dns, profile: Option<&str>) {
    let out = dns.run(profile, "cancel", &[BLACKHOLE, dns::SILENT, TARGET]);
    let text = out.assert_success();
    for (line, what) in text.lines().zip(["connect", "getaddrinfo"]) {
        let prefix = format!("{what} cancelled=1 ms=");
        let ms: u64 = line
            .strip_prefix(&prefix)
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("{what} not cancelled: {out}"));
        // The lookup waits at most 1 s per attempt (resolv.conf).
        assert!(ms < 500, "{what} cancelled after {ms} ms: {out}");
    }
    assert_eq!(text.lines().nth(2), Some("after connect=ok"), "{out}");
}

#[test]
fn pthread_cancel_in_connect_and_getaddrinfo_cancels_the_thread_under_a_profile() {
    let Some(dns) = lab() else { return };
    assert_cancelled(&dns, Some(PROFILE));
    dns.assert_no_leak();
}

#[test]
fn pthread_cancel_in_an_excluded_connect_cancels_the_thread() {
    let Some(dns) = lab() else { return };
    assert_cancelled(&dns, Some(EXCLUDED));
    dns.assert_no_leak();
}

#[test]
fn pthread_cancel_without_a_profile_cancels_the_thread() {
    let Some(dns) = lab() else { return };
    assert_cancelled(&dns, None);
}

/// The debug log's line for each decided connect.
fn connect_lines(log: &str) -> usize {
    log.lines().filter(|l| l.contains(" connect fd ")).count()
}

/// `logfd` in `mode`, logging to a file: what it printed, and the log.
fn logfd(mode: &str) -> Option<(String, String)> {
    let lab = Lab::new()?;
    let program = compile(lab.dir(), "logfd");
    let log = lab.dir().join("shim.log");
    let victim = lab.dir().join("victim");
    let mut args = vec![path_str(&program), TARGET, path_str(&log), mode];
    if mode == "closefrom" {
        args.push(path_str(&victim));
    }
    let vars = [("BINDTO_LOG", "debug"), ("BINDTO_LOG_FILE", path_str(&log))];
    let out = lab.run_bound(VPN_PROFILE, "vpn", &args, &vars);
    let printed = out.assert_success().to_owned();
    let logged = fs::read_to_string(&log).unwrap_or_default();
    if mode == "closefrom" {
        let in_victim = fs::read_to_string(&victim).unwrap_or_default();
        assert_eq!(in_victim, "", "the shim wrote into the program's file");
    }
    Some((printed, logged))
}

/// Runs `logfd` in `mode` and checks that the program's descriptor took
/// the log's number (its line starts with `taker`) and got nothing of the
/// shim's (the line ends with `nothing`), that every connect went through,
/// and that the shim opened its file again and went on logging there.
#[track_caller]
fn assert_log_kept_out(mode: &str, taker: &str, nothing: &str) {
    let Some((printed, logged)) = logfd(mode) else {
        return;
    };
    let first = printed.lines().next().unwrap_or_default();
    let number = |key: &str| first.split(key).nth(1).and_then(|r| r.split(' ').next());
    assert_eq!(number(taker), number("log_fd="), "{printed}");
    assert!(first.ends_with(nothing), "{printed}");
    assert!(printed.contains("connects ok=3"), "{printed}");
    assert_eq!(connect_lines(&logged), 3, "{logged}");
}

#[test]
fn after_closefrom_the_log_never_writes_into_the_programs_file() {
    assert_log_kept_out("closefrom", "victim fd=", " bytes=0");
}

#[test]
fn after_a_raw_close_the_log_never_writes_into_the_programs_socket() {
    assert_log_kept_out("rawclose", "pair fd=", " leaked=0");
}
