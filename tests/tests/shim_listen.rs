//! A server's wildcard bind (0.0.0.0, ::) takes the profile's `listen`
//! address (the bind.c case): reachable there, and only there.

use std::thread;

use bindto_tests::clients::*;
use bindto_tests::{Lab, RunOutput};

const PORT: u16 = 9100;

/// A python3 server in the client: binds the wildcard of `family` on PORT,
/// prints the address it got, answers `accepts` connections with `hello`,
/// and exits (after 8 s at most).
fn server_script(family: &str, wildcard: &str, v6only: bool, accepts: usize) -> String {
    format!(
        "import socket\n\
         s = socket.socket(socket.{family})\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         if {v6only}:\n\
         \x20   s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n\
         try:\n\
         \x20   s.bind(('{wildcard}', {PORT}))\n\
         except OSError as e:\n\
         \x20   print('ERR', e.errno)\n\
         \x20   raise SystemExit\n\
         s.listen(8)\n\
         print(s.getsockname()[0], flush=True)\n\
         s.settimeout(8)\n\
         for _ in range({accepts}):\n\
         \x20   c, peer = s.accept()\n\
         \x20   c.sendall(b'hello\\n')\n\
         \x20   c.close()\n\
         \x20   print('accepted', peer[0], flush=True)\n",
        v6only = if v6only { "True" } else { "False" },
    )
}

/// A client in `uplink`'s server namespace: connects to `addr`:PORT,
/// retrying while the server starts, and prints what it read or `ERR`.
fn client_script(addr: &str) -> String {
    format!(
        "import socket, time\n\
         for _ in range(40):\n\
         \x20   try:\n\
         \x20       s = socket.create_connection(('{addr}', {PORT}), timeout=2)\n\
         \x20       print(s.recv(100).decode().strip())\n\
         \x20       break\n\
         \x20   except ConnectionRefusedError:\n\
         \x20       time.sleep(0.1)\n\
         else:\n\
         \x20   print('ERR refused')\n"
    )
}

/// Runs the server under `config` while `probe` runs in the server
/// namespaces; returns the server's output.
fn serve(lab: &Lab, config: &str, script: &str, probe: impl FnOnce()) -> RunOutput {
    thread::scope(|scope| {
        let server = scope.spawn(|| lab.run_bound(config, "game", &python(script), &[]));
        probe();
        server.join().expect("server thread")
    })
}

#[test]
fn an_ipv4_wildcard_listens_only_on_the_listen_address() {
    let Some(lab) = Lab::new() else { return };
    let config = profile("game", "listen = \"198.18.2.2\"\n");
    let out = serve(
        &lab,
        &config,
        &server_script("AF_INET", "0.0.0.0", false, 2),
        || {
            let hello = lab.run_server("vpn", &python(&client_script("198.18.2.2")), &[]);
            assert_eq!(hello.assert_success(), "hello\n");
            // The server is up and still listening: wan's side of the
            // client refuses.
            let refused = lab.run_server("wan", &python(&client_script("198.18.1.2")), &[]);
            assert_eq!(refused.assert_success(), "ERR refused\n");
            let hello = lab.run_server("vpn", &python(&client_script("198.18.2.2")), &[]);
            assert_eq!(hello.assert_success(), "hello\n");
        },
    );
    assert_eq!(
        out.assert_success(),
        "198.18.2.2\naccepted 198.18.2.1\naccepted 198.18.2.1\n"
    );
}

#[test]
fn an_ipv6_wildcard_takes_the_ipv6_listen_address_or_a_mapped_ipv4_one() {
    let Some(lab) = Lab::new() else { return };
    let both = profile("game", "listen = [\"198.18.2.2\", \"fd00:2::2\"]\n");
    let out = serve(
        &lab,
        &both,
        &server_script("AF_INET6", "::", false, 1),
        || {
            let hello = lab.run_server("vpn", &python(&client_script("fd00:2::2")), &[]);
            assert_eq!(hello.assert_success(), "hello\n");
        },
    );
    assert_eq!(out.assert_success(), "fd00:2::2\naccepted fd00:2::1\n");

    // Only an IPv4 listen address: a dual-stack socket gets it mapped.
    let v4 = profile("game", "listen = \"198.18.2.2\"\n");
    let out = serve(
        &lab,
        &v4,
        &server_script("AF_INET6", "::", false, 1),
        || {
            let hello = lab.run_server("vpn", &python(&client_script("198.18.2.2")), &[]);
            assert_eq!(hello.assert_success(), "hello\n");
        },
    );
    assert_eq!(
        out.assert_success(),
        "::ffff:198.18.2.2\naccepted ::ffff:198.18.2.1\n"
    );

    // ... and an IPV6_V6ONLY socket has no address it could take.
    let out = lab.run_bound(
        &v4,
        "game",
        &python(&server_script("AF_INET6", "::", true, 1)),
        &[],
    );
    assert_eq!(out.assert_success(), "ERR 99\n");
    assert_one_notice(&out, &["no IPv6 listen address", "bind blocked"]);
}

#[test]
fn explicit_addresses_and_profiles_without_listen_are_untouched() {
    let Some(lab) = Lab::new() else { return };
    let script = "import socket\n\
                  for addr in ('0.0.0.0', '127.0.0.1'):\n\
                  \x20   s = socket.socket()\n\
                  \x20   s.bind((addr, 0))\n\
                  \x20   print(s.getsockname()[0])\n";
    let out = lab.run_bound(VPN_PROFILE, "vpn", &python(script), &[]);
    assert_eq!(out.assert_success(), "0.0.0.0\n127.0.0.1\n");
    let config = profile("game", "listen = \"198.18.2.2\"\n");
    let out = lab.run_bound(&config, "game", &python(script), &[]);
    assert_eq!(out.assert_success(), "198.18.2.2\n127.0.0.1\n");
}
