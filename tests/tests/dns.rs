//! Name resolution under a profile with a DNS server: the shim resolves by
//! itself, through the profile's interface, and nothing reaches the
//! nameserver of the client's resolv.conf (reachable only through wan0).
//!
//! Each lab runs two `lab-dns` servers (zone: `bindto_tests::dns`): one on
//! the vpn side, the profile's server, and one on the wan side, named by
//! the client's resolv.conf. They answer `host.bindto.test` differently
//! (198.19.0.1 from vpn, 198.19.0.2 from wan), so an answer tells who gave
//! it, and both count the queries they get.

use std::fs;
use std::path::Path;
use std::process::Command;

use bindto_tests::Lab;
use bindto_tests::dns::{self, DnsServer, Transport};
use bindto_tests::programs::{compile, path_str};

use bindto_tests::dns::{DnsLab as Dns, PROFILE};

/// Binds to vpn0, with no DNS server: resolution stays libc's.
const NO_DNS: &str = "[profile.vpn]\ninterface = \"vpn0\"\n";

fn lab() -> Option<Dns> {
    Dns::start()
}

/// The addresses in `getent ahosts*` output, in order, without repeats.
fn getent_addrs(out: &str) -> Vec<String> {
    let mut addrs: Vec<String> = Vec::new();
    for addr in out.lines().filter_map(|l| l.split_whitespace().next()) {
        if !addrs.iter().any(|a| a == addr) {
            addrs.push(addr.to_owned());
        }
    }
    addrs
}

#[test]
fn without_the_shim_the_wan_nameserver_answers() {
    let Some(dns) = lab() else { return };
    let out = dns.lab.run_client(&["getent", "ahosts", dns::HOST], &[]);
    assert_eq!(
        getent_addrs(out.assert_success()),
        ["198.19.0.2", "2001:db8:ff::2"]
    );
    assert!(
        !dns.wan.queries().is_empty(),
        "the leak this guards against"
    );
    assert_eq!(dns.vpn.queries(), []);
}

#[test]
fn a_profile_without_a_dns_server_leaves_resolution_to_libc() {
    let Some(dns) = lab() else { return };
    let out = dns
        .lab
        .run_bound(NO_DNS, "vpn", &["getent", "ahosts", dns::HOST], &[]);
    assert_eq!(
        getent_addrs(out.assert_success()),
        ["198.19.0.2", "2001:db8:ff::2"]
    );
    assert!(!dns.wan.queries().is_empty());
    assert_eq!(dns.vpn.queries(), []);
}

#[test]
fn getent_ahosts_resolves_through_vpn0() {
    let Some(dns) = lab() else { return };
    let out = dns.bound(&["getent", "ahosts", dns::HOST]);
    let text = out.assert_success();
    assert_eq!(getent_addrs(text), ["198.19.0.1", "2001:db8:ff::1"]);
    // getent asks for the canonical name; it is on the first line.
    assert!(text.lines().next().unwrap().ends_with(dns::HOST), "{text}");
    let types: Vec<String> = dns.vpn.queries().into_iter().map(|q| q.qtype).collect();
    assert_eq!(types, ["A", "AAAA"]);
    dns.assert_no_leak();
}

#[test]
fn getent_ahostsv6_asks_for_aaaa_only() {
    let Some(dns) = lab() else { return };
    let out = dns.bound(&["getent", "ahostsv6", dns::HOST]);
    assert_eq!(getent_addrs(out.assert_success()), ["2001:db8:ff::1"]);
    let types: Vec<String> = dns.vpn.queries().into_iter().map(|q| q.qtype).collect();
    assert_eq!(types, ["AAAA"]);
    dns.assert_no_leak();
}

#[test]
fn a_cname_gives_the_canonical_name() {
    let Some(dns) = lab() else { return };
    let out = dns.bound(&["getent", "ahostsv4", dns::ALIAS]);
    let text = out.assert_success();
    assert_eq!(getent_addrs(text), ["198.19.0.1"]);
    assert!(text.lines().next().unwrap().ends_with(dns::HOST), "{text}");
    dns.assert_no_leak();
}

#[test]
fn python_getaddrinfo_resolves_through_vpn0() {
    let Some(dns) = lab() else { return };
    let script = "import socket\n\
                  print(sorted({a[4][0] for a in socket.getaddrinfo('host.bindto.test', 80)}))\n\
                  print(len(socket.getaddrinfo('host.bindto.test', 'http', socket.AF_INET)))\n\
                  for name, family in [('nope.bindto.test', 0), ('v4only.bindto.test', socket.AF_INET6)]:\n\
                  \x20   try:\n\
                  \x20       socket.getaddrinfo(name, 80, family)\n\
                  \x20   except socket.gaierror as e:\n\
                  \x20       print(e.errno)\n";
    let out = dns.bound(&["python3", "-c", script]);
    // Two addresses; 'http' over IPv4: one TCP entry (no http/udp in
    // /etc/services, no raw for a service); then EAI_NONAME, EAI_NODATA.
    assert_eq!(
        out.assert_success(),
        "['198.19.0.1', '2001:db8:ff::1']\n1\n-2\n-5\n"
    );
    dns.assert_no_leak();
}

#[test]
fn curl_by_name_connects_through_vpn0() {
    let Some(dns) = lab() else { return };
    let out = dns.bound(&["curl", "-sS", "--max-time", "5", "http://host.bindto.test/"]);
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
    dns.assert_no_leak();
    assert_eq!(dns.lab.count("wan"), 0);
}

/// node's `http.get` (libuv's getaddrinfo on a worker thread, then its own
/// non-blocking connect) and wget, by name.
#[test]
fn node_and_wget_by_name_connect_through_vpn0() {
    let Some(dns) = lab() else { return };
    let script = "require('http').get('http://host.bindto.test/', r => { \
                  let b = ''; r.on('data', d => b += d); r.on('end', () => process.stdout.write(b)); \
                  }).on('error', e => { console.error(e.message); process.exit(1); });";
    let out = dns.bound(&["node", "-e", script]);
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
    let out = dns.bound(&[
        "wget",
        "-q",
        "-T",
        "5",
        "-t",
        "1",
        "-O",
        "-",
        "http://host.bindto.test/",
    ]);
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
    dns.assert_no_leak();
    assert_eq!(dns.lab.count("wan"), 0);
}

#[test]
fn nxdomain_is_eai_noname_with_nothing_leaked() {
    let Some(dns) = lab() else { return };
    let out = dns.bound(&["getent", "ahosts", "nope.bindto.test"]);
    // getent: 2 is "key not found".
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(!dns.vpn.queries().is_empty());
    dns.assert_no_leak();
}

#[test]
fn hosts_file_names_resolve_without_any_query() {
    let Some(dns) = lab() else { return };
    let out = dns.bound(&["getent", "ahosts", "files"]);
    assert_eq!(getent_addrs(out.assert_success()), ["198.19.0.3"]);
    let out = dns.bound(&["getent", "ahosts", "localhost"]);
    assert_eq!(getent_addrs(out.assert_success()), ["127.0.0.1", "::1"]);
    assert_eq!((dns.vpn.queries(), dns.wan.queries()), (vec![], vec![]));
}

#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    let Some(dns) = lab() else { return };
    let out = dns.bound(&["getent", "ahostsv4", dns::BIG]);
    assert_eq!(
        getent_addrs(out.assert_success()).len(),
        usize::from(dns::BIG_COUNT)
    );
    assert_eq!(
        (dns.vpn.count(Transport::Udp), dns.vpn.count(Transport::Tcp)),
        (1, 1)
    );
    dns.assert_no_leak();
}

const GETHOSTBYNAME_C: &str = r#"
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>

static void print(const struct hostent *h) {
    char text[INET6_ADDRSTRLEN];
    printf("%s", h->h_name);
    for (char **a = h->h_addr_list; *a; a++)
        printf(" %s", inet_ntop(h->h_addrtype, *a, text, sizeof text));
    printf("\n");
}

int main(int argc, char **argv) {
    struct hostent *h = gethostbyname(argv[1]);
    if (h) print(h); else printf("h_errno %d\n", h_errno);
    struct hostent entry, *found;
    char buf[1024];
    int err;
    int rc = gethostbyname2_r(argv[1], AF_INET6, &entry, buf, sizeof buf, &found, &err);
    if (rc == 0 && found) print(found); else printf("rc %d h_errno %d\n", rc, err);
    return 0;
}
"#;

/// Compiles the gethostbyname client into the lab's directory.
fn gethostbyname_client(lab: &Lab) -> String {
    let source = lab.dir().join("ghbn.c");
    let bin = lab.dir().join("ghbn");
    fs::write(&source, GETHOSTBYNAME_C).unwrap();
    let out = Command::new("gcc")
        .arg("-o")
        .arg(&bin)
        .arg(&source)
        .output()
        .expect("gcc runs");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin.to_str().unwrap().to_owned()
}

#[test]
fn gethostbyname_from_c_resolves_through_vpn0() {
    let Some(dns) = lab() else { return };
    let bin = gethostbyname_client(&dns.lab);
    let out = dns.bound(&[&bin, dns::HOST]);
    assert_eq!(
        out.assert_success(),
        "host.bindto.test 198.19.0.1\nhost.bindto.test 2001:db8:ff::1\n"
    );
    // HOST_NOT_FOUND (1) from both.
    let out = dns.bound(&[&bin, "nope.bindto.test"]);
    assert_eq!(out.assert_success(), "h_errno 1\nrc 0 h_errno 1\n");
    dns.assert_no_leak();
}

#[test]
fn threads_resolve_at_once() {
    let Some(dns) = lab() else { return };
    let script = "import socket\n\
                  from concurrent.futures import ThreadPoolExecutor\n\
                  def one(_):\n\
                  \x20   return sorted({a[4][0] for a in socket.getaddrinfo('host.bindto.test', 80)})\n\
                  with ThreadPoolExecutor(16) as pool:\n\
                  \x20   print(len(set(map(tuple, pool.map(one, range(64))))))\n";
    let out = dns.bound(&["python3", "-c", script]);
    assert_eq!(out.assert_success(), "1\n");
    dns.assert_no_leak();
}

/// `socket.getaddrinfo` of `host.bindto.test` under `profile`, printing
/// the EAI code it fails with.
fn gai_error(dns: &Dns, profile: &str) -> String {
    let script = "import socket\n\
                  try:\n\
                  \x20   socket.getaddrinfo('host.bindto.test', 80)\n\
                  except socket.gaierror as e:\n\
                  \x20   print(e.errno)\n";
    let out = dns
        .lab
        .run_bound(profile, "vpn", &["python3", "-c", script], &[]);
    out.assert_success().to_owned()
}

#[test]
fn a_server_that_does_not_answer_is_eai_again() {
    let Some(dns) = lab() else { return };
    // Nothing listens on this port: refused at once. And a silent one (a
    // host nobody has on the vpn link): the timeout.
    let refused = PROFILE.replace("198.18.2.1", "198.18.2.1:5300");
    assert_eq!(gai_error(&dns, &refused), "-3\n");
    let silent = PROFILE.replace(
        "\"198.18.2.1\"",
        "\"198.18.2.9\"\ntimeout_ms = 200\nattempts = 1",
    );
    assert_eq!(gai_error(&dns, &silent), "-3\n");
    dns.assert_no_leak();
}

#[test]
fn a_binding_that_cannot_be_made_is_eai_fail() {
    let Some(dns) = lab() else { return };
    let missing = PROFILE.replace("vpn0", "nope0");
    assert_eq!(gai_error(&dns, &missing), "-4\n");
    assert_eq!((dns.vpn.queries(), dns.wan.queries()), (vec![], vec![]));
}

#[test]
fn reverse_lookups_use_hosts_then_the_profiles_server() {
    let Some(dns) = lab() else { return };
    let script = "import socket\n\
                  print(socket.gethostbyaddr('198.19.0.3')[0])\n\
                  print(socket.getnameinfo(('198.19.0.3', 80), 0))\n\
                  print(socket.getnameinfo(('198.19.0.1', 53), socket.NI_DGRAM))\n\
                  try:\n\
                  \x20   socket.getnameinfo(('198.19.0.1', 80), socket.NI_NAMEREQD)\n\
                  except socket.gaierror as e:\n\
                  \x20   print(e.errno)\n\
                  try:\n\
                  \x20   socket.gethostbyaddr('198.19.0.1')\n\
                  except socket.herror as e:\n\
                  \x20   print(e.errno)\n";
    let out = dns.bound(&["python3", "-c", script]);
    // No PTR records in the lab's zone: NXDOMAIN, so a number, or
    // EAI_NONAME / HOST_NOT_FOUND when a name is required.
    assert_eq!(
        out.assert_success(),
        "files.bindto.test\n('files.bindto.test', 'http')\n('198.19.0.1', 'domain')\n-2\n1\n"
    );
    let types: Vec<String> = dns.vpn.queries().into_iter().map(|q| q.qtype).collect();
    assert_eq!(types, ["PTR", "PTR", "PTR"]);
    dns.assert_no_leak();
}

/// `resquery ARGS...` (tests/programs/resquery.c, compiled at `bin`)
/// under `profile`, or without the shim for `None`: its one line.
fn resquery(dns: &Dns, bin: &Path, profile: Option<&str>, args: &[&str]) -> String {
    let mut argv = vec![path_str(bin)];
    argv.extend_from_slice(args);
    let out = match profile {
        Some(profile) => dns.lab.run_bound(profile, "vpn", &argv, &[]),
        None => dns.lab.run_client(&argv, &[]),
    };
    out.assert_success().trim_end().to_owned()
}

/// The return value on a `resquery` line.
fn ret(line: &str) -> i32 {
    let word = line.split_whitespace().next().unwrap();
    word.strip_prefix("ret=").unwrap().parse().unwrap()
}

/// The `name type` of each query a server got.
fn asked(server: &DnsServer) -> Vec<String> {
    server
        .queries()
        .into_iter()
        .map(|q| format!("{} {}", q.name, q.qtype))
        .collect()
}

#[test]
fn res_query_and_res_search_ask_the_profiles_server() {
    let Some(dns) = lab() else { return };
    let searching = PROFILE.replace(
        "53 = \"198.18.2.1\"",
        "53 = \"198.18.2.1\"\nsearch = [\"bindto.test\"]",
    );
    let bin = compile(dns.lab.dir(), "resquery");
    let run = |args: &[&str]| resquery(&dns, &bin, Some(&searching), args);
    let line = run(&["query", "A", "512", dns::HOST]);
    assert!(
        line.ends_with(" h_errno=0 state=0 rcode=0 an=1 A 198.19.0.1"),
        "{line}"
    );
    assert!(ret(&line) > 0, "{line}");
    let line = run(&["query", "TXT", "512", dns::HOST]);
    assert!(line.ends_with(" rcode=0 an=1 TXT vpn"), "{line}");
    // The search domain: `host` has fewer dots than ndots (1).
    let line = run(&["search", "TXT", "512", "host"]);
    assert!(line.ends_with(" rcode=0 an=1 TXT vpn"), "{line}");
    let line = run(&["nsearch", "A", "512", "host"]);
    assert!(line.ends_with(" rcode=0 an=1 A 198.19.0.1"), "{line}");
    let line = run(&["querydomain", "TXT", "512", "host", "bindto.test"]);
    assert!(line.ends_with(" rcode=0 an=1 TXT vpn"), "{line}");
    let line = run(&["nquerydomain", "A", "512", "host", "bindto.test"]);
    assert!(line.ends_with(" rcode=0 an=1 A 198.19.0.1"), "{line}");
    // res_send hands back any reply, NXDOMAIN too, with no h_errno.
    let line = run(&["send", "TXT", "512", dns::HOST]);
    assert!(line.ends_with(" rcode=0 an=1 TXT vpn"), "{line}");
    let line = run(&["nsend", "A", "512", "nope.bindto.test"]);
    assert!(line.ends_with(" h_errno=0 state=0 rcode=3 an=0"), "{line}");
    assert!(ret(&line) > 0, "{line}");
    // NXDOMAIN: -1, HOST_NOT_FOUND (1) in h_errno and in the state, and
    // the reply left in the buffer.
    let line = run(&["nquery", "A", "512", "nope.bindto.test"]);
    assert_eq!(line, "ret=-1 h_errno=1 state=1 rcode=3 an=0");
    // NOERROR without an answer of that type: NO_DATA (4).
    let line = run(&["query", "MX", "512", dns::HOST]);
    assert_eq!(line, "ret=-1 h_errno=4 state=4 rcode=0 an=0");
    assert_eq!(
        asked(&dns.vpn),
        [
            "host.bindto.test A",
            "host.bindto.test TXT",
            "host.bindto.test TXT",
            "host.bindto.test A",
            "host.bindto.test TXT",
            "host.bindto.test A",
            "host.bindto.test TXT",
            "nope.bindto.test A",
            "nope.bindto.test A",
            "host.bindto.test MX",
        ]
    );
    dns.assert_no_leak();
}

#[test]
fn res_query_returns_the_whole_length_of_a_reply_it_cuts() {
    let Some(dns) = lab() else { return };
    let bin = compile(dns.lab.dir(), "resquery");
    let whole = resquery(&dns, &bin, Some(PROFILE), &["query", "A", "512", dns::HOST]);
    let cut = resquery(&dns, &bin, Some(PROFILE), &["query", "A", "20", dns::HOST]);
    assert_eq!(ret(&cut), ret(&whole), "{cut} / {whole}");
    assert!(cut.ends_with(" cut"), "{cut}");
    // Truncated over UDP: asked again over TCP, whole.
    let big = resquery(&dns, &bin, Some(PROFILE), &["query", "A", "4096", dns::BIG]);
    assert!(big.contains(&format!(" an={} ", dns::BIG_COUNT)), "{big}");
    assert_eq!(
        (dns.vpn.count(Transport::Udp), dns.vpn.count(Transport::Tcp)),
        (3, 1)
    );
    dns.assert_no_leak();
}

#[test]
fn without_the_shim_or_a_dns_server_res_query_asks_resolv_confs_server() {
    let Some(dns) = lab() else { return };
    let bin = compile(dns.lab.dir(), "resquery");
    let line = resquery(&dns, &bin, None, &["query", "TXT", "512", dns::HOST]);
    assert!(line.ends_with(" rcode=0 an=1 TXT wan"), "{line}");
    for func in ["search", "send"] {
        let line = resquery(&dns, &bin, Some(NO_DNS), &[func, "TXT", "512", dns::HOST]);
        assert!(
            line.ends_with(" rcode=0 an=1 TXT wan"),
            "the leak this guards against: {line}"
        );
    }
    assert_eq!(asked(&dns.wan), ["host.bindto.test TXT"; 3]);
    assert_eq!(dns.vpn.queries(), []);
}
