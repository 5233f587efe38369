//! The shim with TCP clients: curl and python, IPv4 and IPv6, through the
//! profile's interface, its excludes and routes, with a source address,
//! from child processes and many threads.

use std::net::{IpAddr, SocketAddr};

use bindto_tests::both_ways;
use bindto_tests::clients::*;
use bindto_tests::{ECHO_PORT, HIGH_PORT, Lab, TARGET_V4, TARGET_V6, VPN, engine_path, shim_path};

both_ways! {
    fn curl_leaves_on_the_profiles_interface_v4_and_v6(lab) {
        let out = lab.run_client(&curl(URL_V4), &[]);
        assert_eq!(out.assert_success(), "wan 198.18.1.2\n");
        let out = lab.run_client(&curl(URL_V6), &[]);
        assert_eq!(out.assert_success(), "wan fd00:1::2\n");
        assert_eq!(counts(lab), (2, 0, 0));

        lab.clear_logs();
        let out = lab.run_bound(VPN_PROFILE, "vpn", &curl(URL_V4), &[]);
        assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
        assert_eq!(out.stderr, "");
        let out = lab.run_bound(VPN_PROFILE, "vpn", &curl(URL_V6), &[]);
        assert_eq!(out.assert_success(), "vpn fd00:2::2\n");
        assert_eq!(counts(lab), (0, 2, 0));
    }
}

both_ways! {
    fn an_exclude_goes_direct(lab) {
        let config = profile(
            "vpn",
            "interface = \"vpn0\"\nexclude = [\"198.19.0.2\", \"2001:db8:ff::2/128\"]\n",
        );
        let out = lab.run_bound(&config, "vpn", &curl(URL_V4_2), &[]);
        assert_eq!(out.assert_success(), "wan 198.18.1.2\n");
        let out = lab.run_bound(&config, "vpn", &curl(URL_V6_2), &[]);
        assert_eq!(out.assert_success(), "wan fd00:1::2\n");
        let out = lab.run_bound(&config, "vpn", &curl(URL_V4), &[]);
        assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
        assert_eq!(counts(lab), (2, 1, 0));
    }
}

both_ways! {
    fn a_route_sends_its_prefix_through_the_third_uplink(lab) {
        let config = profile(
            "vpn",
            "interface = \"vpn0\"\n\n\
             [[profile.vpn.route]]\n\
             to = [\"198.19.0.2/32\", \"2001:db8:ff::2\"]\n\
             interface = \"alt0\"\n",
        );
        for (url, expected) in [
            (URL_V4_2, "alt 198.18.3.2\n"),
            (URL_V6_2, "alt fd00:3::2\n"),
            (URL_V4, "vpn 198.18.2.2\n"),
            (URL_V6, "vpn fd00:2::2\n"),
        ] {
            let out = lab.run_bound(&config, "vpn", &curl(url), &[]);
            assert_eq!(out.assert_success(), expected, "{url}");
        }
        assert_eq!(counts(lab), (0, 2, 2));
    }
}

both_ways! {
    fn the_source_is_the_address_the_server_sees(lab) {
        lab.add_client_addr("vpn", VPN.host_v4(3).into());
        lab.add_client_addr("vpn", VPN.host_v6(3).into());
        let config = profile(
            "vpn",
            "interface = \"vpn0\"\nsource = [\"198.18.2.3\", \"fd00:2::3\"]\n",
        );
        let out = lab.run_bound(&config, "vpn", &curl(URL_V4), &[]);
        assert_eq!(out.assert_success(), "vpn 198.18.2.3\n");
        let out = lab.run_bound(&config, "vpn", &curl(URL_V6), &[]);
        assert_eq!(out.assert_success(), "vpn fd00:2::3\n");
        assert_eq!(
            peers(lab, "vpn"),
            [IpAddr::from(VPN.host_v4(3)), VPN.host_v6(3).into()]
        );

        // A source alone, as bind.c did: no device, so the default route
        // (wan) carries it, from the profile's address.
        let config = profile("src", "source = \"198.18.2.3\"\n");
        let out = lab.run_bound(&config, "src", &curl(URL_V4), &[]);
        assert_eq!(out.assert_success(), "wan 198.18.2.3\n");
    }
}

both_ways! {
    fn children_started_through_a_shell_stay_bound(lab) {
        let script = format!("curl -sS {URL_V4}; sh -c 'curl -sS -g {URL_V6}'");
        let out = lab.run_bound(VPN_PROFILE, "vpn", &["bash", "-c", &script], &[]);
        assert_eq!(out.assert_success(), "vpn 198.18.2.2\nvpn fd00:2::2\n");
        assert_eq!(counts(lab), (0, 2, 0));
    }
}

both_ways! {
    fn thirty_two_threads_of_ten_connections_are_all_bound(lab) {
        let script = format!(
            "import socket, threading, collections\n\
             seen = collections.Counter()\n\
             lock = threading.Lock()\n\
             def work():\n\
             \x20   for _ in range(10):\n\
             \x20       try:\n\
             \x20           s = socket.create_connection(('{TARGET_V4}', {HIGH_PORT}), timeout=5)\n\
             \x20           s.shutdown(socket.SHUT_WR)\n\
             \x20           line = s.recv(100).decode().strip()\n\
             \x20           s.close()\n\
             \x20       except OSError as e:\n\
             \x20           line = 'ERR %s' % e\n\
             \x20       with lock:\n\
             \x20           seen[line] += 1\n\
             threads = [threading.Thread(target=work) for _ in range(32)]\n\
             for t in threads: t.start()\n\
             for t in threads: t.join()\n\
             for line, n in sorted(seen.items()): print(n, line)\n"
        );
        let out = lab.run_bound(VPN_PROFILE, "vpn", &python(&script), &[]);
        assert_eq!(out.assert_success(), "320 vpn 198.18.2.2\n");
        assert_eq!(counts(lab), (0, 320, 0));
    }
}

both_ways! {
    fn tcp_fast_open_is_bound_like_connect(lab) {
        let script = format!(
            "import socket\n\
             for family, target in ((socket.AF_INET, '{TARGET_V4}'), (socket.AF_INET6, '{TARGET_V6}')):\n\
             \x20   s = socket.socket(family, socket.SOCK_STREAM)\n\
             \x20   s.sendto(b'hello', socket.MSG_FASTOPEN, (target, {HIGH_PORT}))\n\
             \x20   s.settimeout(3)\n\
             \x20   s.shutdown(socket.SHUT_WR)\n\
             \x20   print(s.recv(100).decode().strip())\n"
        );
        let out = lab.run_bound(VPN_PROFILE, "vpn", &python(&script), &[]);
        assert_eq!(out.assert_success(), "vpn 198.18.2.2\nvpn fd00:2::2\n");
        assert_eq!(counts(lab), (0, 2, 0));
    }
}

/// Calls connect through ctypes with errno set to 1234 beforehand, and
/// prints the return value and errno after: on a success, libc leaves errno
/// alone, and so must the shim.
const ERRNO_SCRIPT: &str = "\
import ctypes, os, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
def sockaddr(ip, port):
    return struct.pack('=H', socket.AF_INET) + struct.pack('!H', port) + socket.inet_aton(ip) + bytes(8)
def connect(kind, ip, port):
    s = socket.socket(socket.AF_INET, kind)
    a = sockaddr(ip, port)
    ctypes.set_errno(1234)
    rc = libc.connect(s.fileno(), a, len(a))
    print(ip, port, rc, ctypes.get_errno())
    s.close()
connect(socket.SOCK_DGRAM, '198.19.0.1', 7)
connect(socket.SOCK_STREAM, '198.19.0.1', 9000)
connect(socket.SOCK_STREAM, '198.19.0.1', 9999)
u = socket.socket(socket.AF_UNIX)
a = struct.pack('=H', socket.AF_UNIX) + b'/nonexistent\\0'
ctypes.set_errno(1234)
print('unix', libc.connect(u.fileno(), a, len(a)), ctypes.get_errno())
ctypes.set_errno(1234)
print('close', libc.close(999), ctypes.get_errno())
";

#[test]
fn without_a_profile_the_shim_is_silent_and_changes_nothing() {
    let Some(lab) = Lab::new() else { return };
    let shim = shim_path();
    let preload = [("LD_PRELOAD", shim.to_str().unwrap())];
    for args in [curl(URL_V4), curl(URL_V6), python(ERRNO_SCRIPT)] {
        let plain = lab.run_client(&args, &[]);
        let preloaded = lab.run_client(&args, &preload);
        assert_eq!(preloaded.assert_success(), plain.assert_success());
        assert_eq!(preloaded.stderr, "", "{preloaded}");
    }
    let out = lab.run_client(&python(ERRNO_SCRIPT), &preload);
    assert_eq!(
        out.stdout,
        "198.19.0.1 7 0 1234\n198.19.0.1 9000 0 1234\n198.19.0.1 9999 -1 111\n\
         unix -1 2\nclose -1 9\n"
    );
    assert_eq!(counts(&lab).1 + counts(&lab).2, 0);
}

both_ways! {
    fn a_bound_call_leaves_errno_as_libc_does(lab) {
        let out = lab.run_bound(VPN_PROFILE, "vpn", &python(ERRNO_SCRIPT), &[]);
        assert_eq!(
            out.assert_success(),
            "198.19.0.1 7 0 1234\n198.19.0.1 9000 0 1234\n198.19.0.1 9999 -1 111\n\
             unix -1 2\nclose -1 9\n"
        );
        assert_eq!(out.stderr, "");
        assert_eq!(lab.count("wan"), 0);
    }
}

/// The engine can be preloaded without the front (benches/run.sh measures
/// the front's saving that way): then it keeps its per-thread state itself
/// and finds libc's functions on its own, and still binds every call.
#[test]
fn the_engine_preloaded_directly_binds_as_the_front_does() {
    let Some(lab) = Lab::new() else { return };
    let engine = engine_path();
    let preload = [("LD_PRELOAD", engine.to_str().unwrap())];
    let datagram = udp_script(
        &[SocketAddr::new(TARGET_V4.into(), ECHO_PORT)],
        false,
        false,
    );
    for (args, expected) in [
        (curl(URL_V4), "vpn 198.18.2.2\n"),
        (curl(URL_V6), "vpn fd00:2::2\n"),
        (python(&datagram), "vpn 198.18.2.2\n"),
        (
            python(ERRNO_SCRIPT),
            "198.19.0.1 7 0 1234\n198.19.0.1 9000 0 1234\n198.19.0.1 9999 -1 111\n\
             unix -1 2\nclose -1 9\n",
        ),
    ] {
        let out = lab.run_bound(VPN_PROFILE, "vpn", &args, &preload);
        assert_eq!(out.assert_success(), expected);
        assert_eq!(out.stderr, "", "{out}");
    }
    assert_eq!((lab.count("wan"), lab.count("alt")), (0, 0));
}

both_ways! {
    /// The documented policy for sockets a program set up itself: the profile
    /// wins for the device (where the kernel lets it: root may move a socket to
    /// another device; an unprivileged process may not, and then the call
    /// fails closed unless the socket is already on the profile's device); the
    /// program keeps its own source address.
    fn the_profile_wins_the_device_and_the_program_keeps_its_address(lab) {
        lab.add_client_addr("vpn", VPN.host_v4(3).into());
        lab.add_client_addr("vpn", VPN.host_v4(4).into());
        let target = SocketAddr::new(TARGET_V4.into(), HIGH_PORT);

        // Root: the program's wan0 becomes the profile's vpn0.
        let script = own_socket_script(Some("wan0"), None, target);
        let out = lab.run_bound(VPN_PROFILE, "vpn", &python(&script), &[]);
        assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");

        // The program's own address stays, not the profile's source.
        let config = profile("vpn", "interface = \"vpn0\"\nsource = \"198.18.2.4\"\n");
        let script = own_socket_script(None, Some(VPN.host_v4(3).into()), target);
        let out = lab.run_bound(&config, "vpn", &python(&script), &[]);
        assert_eq!(out.assert_success(), "vpn 198.18.2.3\n");
        assert_eq!(counts(lab), (0, 2, 0));

        // Unprivileged, needs a uid other than root: not in a user namespace
        // the lab made, which maps only root.
        if std::env::var_os(bindto_tests::privilege::CHILD_VAR).is_some() {
            return;
        }
        let unprivileged = |device: Option<&str>| {
            let script = own_socket_script(device, None, target);
            let args = [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                &script,
            ];
            // The older tools' variable: no config file for nobody to read.
            let shim = shim_path();
            let vars = [
                ("LD_PRELOAD", shim.to_str().unwrap()),
                ("BIND_INTERFACE", "vpn0"),
            ];
            lab.run_client(&args, &vars)
        };
        lab.clear_logs();
        let out = unprivileged(None);
        assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
        let out = unprivileged(Some("vpn0"));
        assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
        let out = unprivileged(Some("wan0"));
        assert_eq!(out.assert_success(), "ERR 1\n");
        assert_one_notice(
            &out,
            &[
                "cannot bind socket to interface \"vpn0\" (Operation not permitted)",
                "connection blocked",
            ],
        );
        assert_eq!(counts(lab), (0, 2, 0));
    }
}

#[test]
fn debug_log_names_the_rule_and_goes_where_asked() {
    let Some(lab) = Lab::new() else { return };
    let config = profile(
        "vpn",
        "interface = \"vpn0\"\n\n\
         [[profile.vpn.route]]\n\
         to = \"198.19.0.2\"\n\
         interface = \"alt0\"\n",
    );
    let out = lab.run_bound(&config, "vpn", &curl(URL_V4_2), &[("BINDTO_LOG", "debug")]);
    assert_eq!(out.assert_success(), "alt 198.18.3.2\n");
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("connect") && l.contains("198.19.0.2:80"))
        .unwrap_or_else(|| panic!("no decision logged: {out}"));
    assert!(line.contains("bind interface alt0"), "{line}");
    assert!(line.contains("route #1 of profile \"vpn\""), "{line}");
    assert!(line.contains(".toml:4:1)"), "{line}");

    let log = lab.dir().join("shim.log");
    let log_var = log.to_str().unwrap();
    let vars = [("BINDTO_LOG", "debug"), ("BINDTO_LOG_FILE", log_var)];
    let out = lab.run_bound(&config, "vpn", &curl(URL_V4), &vars);
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
    assert_eq!(out.stderr, "");
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(
        written.contains("198.19.0.1:80 (tcp): bind interface vpn0 by profile \"vpn\""),
        "{written}"
    );
    // Nothing on stdout but the program's own output, ever.
    assert!(!out.stdout.contains("bindto"));
}
