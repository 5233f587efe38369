//! The decision's edge cases end to end, where only the shim can tell: a
//! route to an interface that does not exist, under `on_failure = "allow"`
//! (the connection and the datagram go out unbound, with a warning on
//! stderr) and `"block"` (they fail with ENODEV, and nothing leaves).

use bindto_tests::Lab;
use bindto_tests::programs::{as_refs, bound_vars, compile, path_str, write};

/// The route's target: a lab address every server answers on.
const ROUTED: &str = "198.19.0.2";

fn profile(on_failure: &str) -> String {
    format!(
        r#"
[profile.edge]
interface = "vpn0"
on_failure = "{on_failure}"

[[profile.edge.route]]
to = "{ROUTED}/32"
interface = "nosuch0"
"#
    )
}

#[test]
fn a_route_to_a_missing_interface_allows_or_blocks_as_told() {
    let Some(lab) = Lab::new() else { return };
    let client = compile(lab.dir(), "netclient");
    let client = path_str(&client);

    for on_failure in ["allow", "block"] {
        lab.clear_logs();
        let config = write(&lab, &format!("{on_failure}.toml"), &profile(on_failure));
        let vars = bound_vars(&config, "edge");
        let vars = as_refs(&vars);

        // The profile's own interface still works: the route is the edge.
        let out = lab.run_client(&[client, "tcp", "198.19.0.1", "80"], &vars);
        assert_eq!(out.assert_success(), "vpn 198.18.2.2\n", "{on_failure}");
        lab.clear_logs();

        let tcp = lab.run_client(&[client, "tcp", ROUTED, "80"], &vars);
        let udp = lab.run_client(&[client, "udp", ROUTED, "53"], &vars);
        let warning = "cannot bind socket to interface \"nosuch0\" (No such device)";
        for (what, out) in [("tcp", &tcp), ("udp", &udp)] {
            assert!(
                out.stderr.contains(warning),
                "{on_failure} {what}: no warning: {out}"
            );
            assert_eq!(
                out.stderr.lines().count(),
                1,
                "{on_failure} {what}: one line, once: {out}"
            );
        }
        if on_failure == "allow" {
            // Unbound: the default route, wan.
            assert_eq!(tcp.assert_success(), "wan 198.18.1.2\n");
            assert_eq!(udp.assert_success(), "wan 198.18.1.2\n");
            assert!(tcp.stderr.contains("continuing unbound"), "{tcp}");
            assert_eq!((lab.count("wan"), lab.count("vpn")), (2, 0));
        } else {
            tcp.assert_failure();
            udp.assert_failure();
            assert_eq!(tcp.stdout, "error ENODEV\n", "{tcp}");
            assert_eq!(udp.stdout, "error ENODEV\n", "{udp}");
            assert!(tcp.stderr.contains("connection blocked"), "{tcp}");
            assert!(udp.stderr.contains("datagram blocked"), "{udp}");
            for uplink in ["wan", "vpn", "alt"] {
                assert_eq!(lab.count(uplink), 0, "{uplink} saw a packet");
            }
        }
    }
}

/// A descriptor closed by close_range loses its record: the UDP socket
/// that takes its number without going through socket() is asked what it
/// is, not taken for the TCP socket that had the number (whose sendto
/// with a destination the shim would pass through unbound).
#[test]
fn close_range_forgets_the_sockets_it_closes() {
    let Some(lab) = Lab::new() else { return };
    let client = compile(lab.dir(), "netclient");
    let client = path_str(&client);
    let config = write(&lab, "vpn.toml", "[profile.vpn]\ninterface = \"vpn0\"\n");
    let vars = bound_vars(&config, "vpn");
    let out = lab.run_client(&[client, "reuse-udp", "198.19.0.1", "53"], &as_refs(&vars));
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
    assert_eq!(out.stderr, "");
}

/// A TCP Fast Open connect can ride on sendmmsg's first message: it is
/// decided and bound like connect, not passed through.
#[test]
fn tcp_fast_open_through_sendmmsg_is_bound() {
    let Some(lab) = Lab::new() else { return };
    let client = compile(lab.dir(), "netclient");
    let client = path_str(&client);
    let out = lab.run_client(&[client, "tfo-mmsg", "198.19.0.1", "80"], &[]);
    assert_eq!(out.assert_success(), "wan 198.18.1.2\n");
    let config = write(&lab, "vpn.toml", "[profile.vpn]\ninterface = \"vpn0\"\n");
    let vars = bound_vars(&config, "vpn");
    let out = lab.run_client(&[client, "tfo-mmsg", "198.19.0.1", "80"], &as_refs(&vars));
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
    assert_eq!(out.stderr, "");
}
