//! Issue 16, "No side doors": calls the kernel takes for TCP or UDP that
//! a shim could let through undecided, each run under
//! `[profile.vpn] interface = "vpn0"` in the lab, whose default route is
//! wan0. Each shows the call decided (answered through vpn) or refused,
//! never sent by the default route.
//!
//! - AF_UNSPEC names: udp_sendmsg reads them as AF_INET; inet_bind takes
//!   AF_UNSPEC with INADDR_ANY as a wildcard; an IPv6 socket's
//!   udpv6_sendmsg takes AF_UNSPEC as no name and AF_INET through
//!   udp_sendmsg; connect(AF_UNSPEC) dissolves an association.
//! - Stale descriptor records: a socket closed inside libc or by a raw
//!   syscall, its number taken by a socket of another kind.
//! - Control data: a malformed header, the caller's own pktinfo.
//! - Inbound connections: a server on vpn0's address answers through vpn0.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;

use bindto_tests::clients::*;
use bindto_tests::programs::{compile, path_str, shim};
use bindto_tests::{ECHO_PORT, HTTP_PORT, Lab, RunOutput};

/// vpn's answer to a datagram or connection from the client's vpn0.
const VIA_VPN: &str = "vpn 198.18.2.2\n";

/// The lab and its `sidedoors` program (tests/programs/sidedoors.c).
fn lab() -> Option<(Lab, PathBuf)> {
    let lab = Lab::new()?;
    let program = compile(lab.dir(), "sidedoors");
    Some((lab, program))
}

/// `sidedoors ARGS` under the profile `vpn` of [`VPN_PROFILE`], with `vars`.
fn bound(lab: &Lab, program: &Path, args: &[&str], vars: &[(&str, &str)]) -> RunOutput {
    let mut all = vec![path_str(program)];
    all.extend_from_slice(args);
    lab.run_bound(VPN_PROFILE, "vpn", &all, vars)
}

/// Each of `modes` of `sidedoors` to TARGET's echo port, as [`bound`]:
/// what each printed, in order, so that a failure shows all of them.
fn each(lab: &Lab, program: &Path, modes: &[&str], vars: &[(&str, &str)]) -> Vec<String> {
    modes
        .iter()
        .map(|how| {
            let out = bound(lab, program, &[how, TARGET, &echo()], vars);
            out.assert_success().to_owned()
        })
        .collect()
}

/// The three ways to send a datagram with a destination.
const SENDS: [&str; 3] = ["unspec-sendto", "unspec-sendmsg", "unspec-sendmmsg"];

const TARGET: &str = "198.19.0.1";
const TARGET_V6: &str = "2001:db8:ff::1";

fn echo() -> String {
    ECHO_PORT.to_string()
}

#[test]
fn af_unspec_datagram_names_on_an_ipv4_socket_are_bound() {
    let Some((lab, program)) = lab() else { return };
    let got = each(&lab, &program, &SENDS, &[]);
    assert_eq!(got, [VIA_VPN; 3]);
    assert_eq!(lab.count("wan"), 0);
}

#[test]
fn af_unspec_datagrams_are_refused_under_an_unknown_profile() {
    let Some((lab, program)) = lab() else { return };
    let got = each(&lab, &program, &SENDS, &[("BIND_PROFILE", "nosuch")]);
    assert_eq!(got, ["send error EPERM\n"; 3]);
    assert_eq!(lab.count("wan"), 0);
}

#[test]
fn a_front_without_its_engine_refuses_af_unspec_datagrams() {
    let Some((lab, program)) = lab() else { return };
    let alone = lab.dir().join("alone");
    fs::create_dir_all(&alone).unwrap();
    let front = alone.join("libbindto.so");
    fs::copy(shim(), &front).unwrap();
    let got = each(&lab, &program, &SENDS, &[("LD_PRELOAD", path_str(&front))]);
    assert_eq!(got, ["send error EPERM\n"; 3]);
    assert_eq!(lab.count("wan"), 0);
}

/// On an IPv6 socket, an AF_INET name goes through udp_sendmsg (decided
/// as IPv4), and AF_UNSPEC means no name: unconnected, EDESTADDRREQ.
#[test]
fn ipv6_sockets_decide_af_inet_names_and_send_af_unspec_nowhere() {
    let Some((lab, program)) = lab() else { return };
    let out = bound(
        &lab,
        &program,
        &["v6-names", TARGET_V6, TARGET, &echo()],
        &[],
    );
    assert_eq!(
        out.assert_success(),
        format!("{VIA_VPN}unspec error EDESTADDRREQ\n")
    );
    assert_eq!(lab.count("wan"), 0);
}

#[test]
fn connect_af_unspec_still_dissolves_an_association() {
    let Some((lab, program)) = lab() else { return };
    let out = bound(&lab, &program, &["unspec-disconnect", TARGET, &echo()], &[]);
    assert_eq!(
        out.assert_success(),
        "disconnect rc=0\nsend error EDESTADDRREQ\n"
    );
}

#[test]
fn an_af_unspec_wildcard_bind_takes_the_listen_address() {
    let Some((lab, program)) = lab() else { return };
    let config = profile("vpn", "interface = \"vpn0\"\nlisten = \"198.18.2.2\"\n");
    let out = lab.run_bound(
        &config,
        "vpn",
        &[path_str(&program), "unspec-bind", "9101"],
        &[],
    );
    assert_eq!(out.assert_success(), "bound 198.18.2.2\n");
}

#[test]
fn a_udp_duplicate_on_a_number_closed_behind_the_shim_is_bound() {
    let Some((lab, program)) = lab() else { return };
    let got = each(
        &lab,
        &program,
        &["stale-fdopen", "stale-syscall", "stale-dupfd"],
        &[],
    );
    assert_eq!(got, [VIA_VPN; 3]);
    assert_eq!(lab.count("wan"), 0);
}

#[test]
fn a_tcp_fast_open_on_a_stale_udp_number_is_bound() {
    let Some((lab, program)) = lab() else { return };
    let port = HTTP_PORT.to_string();
    let out = bound(&lab, &program, &["stale-udp-tfo", TARGET, &port], &[]);
    assert_eq!(out.assert_success(), VIA_VPN);
    assert_eq!(lab.count("wan"), 0);
}

#[test]
fn control_data_longer_than_its_buffer_fails_as_without_the_shim() {
    let Some((lab, program)) = lab() else { return };
    let args = ["cmsg-overlong", TARGET, &echo()];
    let mut all = vec![path_str(&program)];
    all.extend_from_slice(&args);
    let plain = lab.run_client(&all, &[]);
    assert_eq!(plain.assert_success(), "send error EINVAL\n");
    let out = bound(&lab, &program, &args, &[]);
    assert_eq!(out.assert_success(), "send error EINVAL\n");
    assert_eq!(lab.count("wan"), 0);
}

/// The caller's own IP_PKTINFO naming wan0 does not take the datagram
/// there; for IPv6 the kernel refuses two pktinfos naming different
/// interfaces (EINVAL), which sends nothing either.
#[test]
fn the_callers_own_pktinfo_does_not_override_the_binding() {
    let Some((lab, program)) = lab() else { return };
    let out = bound(
        &lab,
        &program,
        &["cmsg-pktinfo", TARGET, &echo(), "wan0"],
        &[],
    );
    assert_eq!(out.assert_success(), VIA_VPN);
    let out = bound(
        &lab,
        &program,
        &["cmsg-pktinfo6", TARGET_V6, &echo(), "wan0"],
        &[],
    );
    assert_eq!(out.assert_success(), "send error EINVAL\n");
    assert_eq!(lab.count("wan"), 0);
}

const PORT: u16 = 9102;

/// A python3 server in the client: binds `addr`:PORT (TCP, or UDP when
/// `udp`), prints the address it got, answers one client with `hello`
/// and prints `answered` (gives up after 8 s).
fn server_script(addr: &str, udp: bool) -> String {
    format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.{kind})\n\
         s.bind(('{addr}', {PORT}))\n\
         print(s.getsockname()[0], flush=True)\n\
         s.settimeout(8)\n\
         try:\n\
         \x20   if {udp}:\n\
         \x20       data, peer = s.recvfrom(100)\n\
         \x20       s.sendto(b'hello\\n', peer)\n\
         \x20   else:\n\
         \x20       s.listen(8)\n\
         \x20       c, peer = s.accept()\n\
         \x20       c.sendall(b'hello\\n')\n\
         \x20       c.close()\n\
         \x20   print('answered', flush=True)\n\
         except OSError as e:\n\
         \x20   print('ERR', e, flush=True)\n",
        kind = if udp { "SOCK_DGRAM" } else { "SOCK_STREAM" },
        udp = if udp { "True" } else { "False" },
    )
}

/// A client in vpn's server namespace, from the target address 198.19.0.1
/// (which the client namespace routes by its default route, wan0): connects
/// or sends to 198.18.2.2:PORT, retrying while the server starts, and
/// prints what it read or `ERR`.
fn client_script(udp: bool) -> String {
    format!(
        "import socket, time\n\
         for _ in range(20):\n\
         \x20   s = socket.socket(socket.AF_INET, socket.{kind})\n\
         \x20   s.bind(('{TARGET}', 0))\n\
         \x20   s.settimeout(0.3 if {udp} else 3)\n\
         \x20   try:\n\
         \x20       s.connect(('198.18.2.2', {PORT}))\n\
         \x20       if {udp}:\n\
         \x20           s.send(b'ping')\n\
         \x20       print(s.recv(100).decode().strip())\n\
         \x20       break\n\
         \x20   except ConnectionRefusedError:\n\
         \x20       time.sleep(0.1)\n\
         \x20   except OSError as e:\n\
         \x20       if not {udp}:\n\
         \x20           print('ERR', e)\n\
         \x20           break\n\
         else:\n\
         \x20   print('ERR no answer')\n",
        kind = if udp { "SOCK_DGRAM" } else { "SOCK_STREAM" },
        udp = if udp { "True" } else { "False" },
    )
}

/// Runs the server under `config`, then the client from vpn's namespace;
/// returns (server's output, client's output).
fn serve(lab: &Lab, config: &str, addr: &str, udp: bool) -> (String, String) {
    thread::scope(|scope| {
        let server =
            scope.spawn(|| lab.run_bound(config, "vpn", &python(&server_script(addr, udp)), &[]));
        let client = lab.run_server("vpn", &python(&client_script(udp)), &[]);
        let server = server.join().expect("server thread");
        (
            server.assert_success().to_owned(),
            client.assert_success().to_owned(),
        )
    })
}

#[test]
fn a_tcp_server_on_the_vpn_address_answers_through_vpn0() {
    let Some(lab) = Lab::new() else { return };
    let (server, client) = serve(&lab, VPN_PROFILE, "198.18.2.2", false);
    assert_eq!(client, "hello\n", "server: {server}");
    assert_eq!(server, "198.18.2.2\nanswered\n");
}

#[test]
fn a_tcp_server_on_the_listen_rewrite_answers_through_vpn0() {
    let Some(lab) = Lab::new() else { return };
    let config = profile("vpn", "interface = \"vpn0\"\nlisten = \"198.18.2.2\"\n");
    let (server, client) = serve(&lab, &config, "0.0.0.0", false);
    assert_eq!(client, "hello\n", "server: {server}");
    assert_eq!(server, "198.18.2.2\nanswered\n");
}

/// The answer goes to a client the profile leaves alone (excluded), yet
/// it came in on vpn0 to vpn0's address: it goes back through vpn0.
#[test]
fn a_udp_server_on_the_vpn_address_answers_through_vpn0() {
    let Some(lab) = Lab::new() else { return };
    let config = profile(
        "vpn",
        &format!("interface = \"vpn0\"\nexclude = [\"{TARGET}\"]\n"),
    );
    let (server, client) = serve(&lab, &config, "198.18.2.2", true);
    assert_eq!(client, "hello\n", "server: {server}");
    assert_eq!(server, "198.18.2.2\nanswered\n");
}
