//! The shim with UDP: unconnected (sendto, sendmmsg: pktinfo per
//! datagram) and connected (SO_BINDTODEVICE), one socket to destinations
//! with different rules, and the port-53 rewrite.

use std::net::{IpAddr, SocketAddr};

use bindto_tests::both_ways;
use bindto_tests::clients::*;
use bindto_tests::{DNS_PORT, ECHO_PORT, Proto, TARGETS_V4, TARGETS_V6};

fn v4(i: usize, port: u16) -> SocketAddr {
    SocketAddr::new(TARGETS_V4[i].into(), port)
}

fn v6(i: usize, port: u16) -> SocketAddr {
    SocketAddr::new(TARGETS_V6[i].into(), port)
}

both_ways! {
    fn unconnected_and_connected_udp_follow_the_profile(lab) {
        for connected in [false, true] {
            let script = udp_script(&[v4(0, ECHO_PORT)], connected, false);
            let out = lab.run_bound(VPN_PROFILE, "vpn", &python(&script), &[]);
            assert_eq!(out.assert_success(), "vpn 198.18.2.2\n", "{out}");
            let script = udp_script(&[v6(0, ECHO_PORT)], connected, true);
            let out = lab.run_bound(VPN_PROFILE, "vpn", &python(&script), &[]);
            assert_eq!(out.assert_success(), "vpn fd00:2::2\n", "{out}");
            assert_eq!(out.stderr, "");
        }
        assert_eq!(counts(lab), (0, 4, 0));
        assert!(lab.received("vpn").iter().all(|l| l.proto == Proto::Udp));
    }
}

both_ways! {
    /// One unconnected socket, destinations with different rules: each
    /// datagram leaves as its own destination's rule says, which
    /// SO_BINDTODEVICE (one device per socket) could not do.
    fn one_socket_sends_each_datagram_its_own_way(lab) {
        let config = profile(
            "vpn",
            "interface = \"vpn0\"\n\
             exclude = [\"198.19.0.3\"]\n\n\
             [[profile.vpn.route]]\n\
             to = [\"198.19.0.2\", \"2001:db8:ff::2\"]\n\
             interface = \"alt0\"\n",
        );
        let targets = [
            v4(0, ECHO_PORT),
            v4(1, ECHO_PORT),
            v4(2, ECHO_PORT),
            v4(0, ECHO_PORT),
        ];
        let script = udp_script(&targets, false, false);
        let out = lab.run_bound(&config, "vpn", &python(&script), &[]);
        assert_eq!(
            out.assert_success(),
            "vpn 198.18.2.2\nalt 198.18.3.2\nwan 198.18.1.2\nvpn 198.18.2.2\n"
        );

        // An IPv6 socket, to IPv6 and IPv4-mapped destinations.
        let mapped = |i: usize| SocketAddr::new(IpAddr::V6(TARGETS_V4[i].to_ipv6_mapped()), ECHO_PORT);
        let targets = [v6(0, ECHO_PORT), v6(1, ECHO_PORT), mapped(0), mapped(1)];
        let script = udp_script(&targets, false, true);
        let out = lab.run_bound(&config, "vpn", &python(&script), &[]);
        assert_eq!(
            out.assert_success(),
            "vpn fd00:2::2\nalt fd00:3::2\nvpn 198.18.2.2\nalt 198.18.3.2\n"
        );
        assert_eq!(counts(lab), (1, 4, 3));
    }
}

both_ways! {
    /// sendmmsg through ctypes: twelve datagrams to three destinations of
    /// three rules, in one call.
    fn sendmmsg_sends_each_datagram_its_own_way(lab) {
        let config = profile(
            "vpn",
            "interface = \"vpn0\"\n\
             exclude = [\"198.19.0.3\"]\n\n\
             [[profile.vpn.route]]\n\
             to = \"198.19.0.2\"\n\
             interface = \"alt0\"\n",
        );
        let script = format!(
            "import ctypes, socket, struct\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             class iovec(ctypes.Structure):\n\
             \x20   _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]\n\
             class msghdr(ctypes.Structure):\n\
             \x20   _fields_ = [('name', ctypes.c_void_p), ('namelen', ctypes.c_uint32),\n\
             \x20       ('iov', ctypes.POINTER(iovec)), ('iovlen', ctypes.c_size_t),\n\
             \x20       ('control', ctypes.c_void_p), ('controllen', ctypes.c_size_t), ('flags', ctypes.c_int)]\n\
             class mmsghdr(ctypes.Structure):\n\
             \x20   _fields_ = [('hdr', msghdr), ('len', ctypes.c_uint)]\n\
             def sockaddr(ip):\n\
             \x20   return struct.pack('=H', socket.AF_INET) + struct.pack('!H', {ECHO_PORT}) + socket.inet_aton(ip) + bytes(8)\n\
             dests = ['198.19.0.1', '198.19.0.2', '198.19.0.3'] * 4\n\
             keep = []\n\
             msgs = (mmsghdr * len(dests))()\n\
             for i, d in enumerate(dests):\n\
             \x20   name = ctypes.create_string_buffer(sockaddr(d), 16)\n\
             \x20   data = ctypes.create_string_buffer(b'm%02d' % i)\n\
             \x20   iov = ctypes.pointer(iovec(ctypes.cast(data, ctypes.c_void_p), 3))\n\
             \x20   keep += [name, data, iov]\n\
             \x20   msgs[i].hdr = msghdr(ctypes.cast(name, ctypes.c_void_p), 16, iov, 1, None, 0, 0)\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.settimeout(2)\n\
             n = libc.sendmmsg(s.fileno(), msgs, len(dests), 0)\n\
             print(n, sorted(set(m.len for m in msgs)))\n\
             for line in sorted(s.recv(100).decode().strip() for _ in range(n)):\n\
             \x20   print(line)\n"
        );
        let out = lab.run_bound(&config, "vpn", &python(&script), &[]);
        let expected = "12 [3]\n".to_owned()
            + &"alt 198.18.3.2\n".repeat(4)
            + &"vpn 198.18.2.2\n".repeat(4)
            + &"wan 198.18.1.2\n".repeat(4);
        assert_eq!(out.assert_success(), expected);
        assert_eq!(counts(lab), (4, 4, 4));
    }
}

both_ways! {
    /// `[profile.dns] 53 = ...`: traffic to any port-53 destination goes to the
    /// profile's server instead, bound as that server's rule says; an IPv6
    /// socket reaches an IPv4 server IPv4-mapped.
    fn a_port_53_rewrite_reaches_the_profiles_server(lab) {
        let config = profile(
            "vpn",
            "interface = \"vpn0\"\n\n\
             [profile.vpn.dns]\n\
             53 = \"198.19.0.3\"\n\n\
             [[profile.vpn.route]]\n\
             to = \"198.19.0.3\"\n\
             interface = \"alt0\"\n",
        );
        let server = v4(2, DNS_PORT);
        for (connected, ipv6_socket, target) in [
            (false, false, v4(0, DNS_PORT)),
            (true, false, v4(1, DNS_PORT)),
            (false, true, v6(0, DNS_PORT)),
            (true, true, v6(1, DNS_PORT)),
        ] {
            let script = udp_script(&[target], connected, ipv6_socket);
            let out = lab.run_bound(&config, "vpn", &python(&script), &[]);
            assert_eq!(out.assert_success(), "alt 198.18.3.2\n", "to {target}");
        }
        let script = tcp_script(v6(0, DNS_PORT));
        let out = lab.run_bound(&config, "vpn", &python(&script), &[]);
        assert_eq!(out.assert_success(), "alt 198.18.3.2\n");
        let received = lab.received("alt");
        assert_eq!(received.len(), 5);
        assert!(received.iter().all(|l| l.local == server), "{received:?}");
        assert_eq!((lab.count("wan"), lab.count("vpn")), (0, 0));

        // Other ports are not rewritten.
        let script = udp_script(&[v4(0, ECHO_PORT)], false, false);
        let out = lab.run_bound(&config, "vpn", &python(&script), &[]);
        assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
    }
}

both_ways! {
    /// A rewrite to an IPv6 server cannot be followed by an IPv4 socket: the
    /// send fails (EAFNOSUPPORT) instead of going to the old destination.
    fn a_rewrite_an_ipv4_socket_cannot_follow_fails_closed(lab) {
        let config = profile(
            "vpn",
            "interface = \"vpn0\"\n\n[profile.vpn.dns]\n53 = \"2001:db8:ff::2\"\n",
        );
        let script = udp_script(&[v4(0, DNS_PORT)], false, false);
        let out = lab.run_bound(&config, "vpn", &python(&script), &[]);
        assert_eq!(out.assert_success(), "ERR 97\n");
        assert_one_notice(&out, &["2001:db8:ff::2", "IPv4 socket"]);
        assert_nothing_received(lab);
    }
}
