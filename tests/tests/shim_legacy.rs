//! The older tools' variables, with no profile: libbindto.so as a drop-in
//! for bindToInterface.so (BIND_INTERFACE, BIND_SOURCE_IP, BIND_EXCLUDE,
//! DNS_OVERRIDE_IP, DNS_OVERRIDE_PORT) and bind.so (BIND_ADDR).

use std::net::{IpAddr, SocketAddr};

use bindto_tests::clients::*;
use bindto_tests::{DNS_PORT, ECHO_PORT, Lab, RunOutput, TARGETS_V4, VPN, shim_path};

/// Runs `args` in the client under the shim with only `vars`: no
/// BINDTO_CONFIG, no BIND_PROFILE.
fn run_legacy(lab: &Lab, args: &[&str], vars: &[(&str, &str)]) -> RunOutput {
    let shim = shim_path();
    let mut all = vec![("LD_PRELOAD", shim.to_str().unwrap())];
    all.extend_from_slice(vars);
    lab.run_client(args, &all)
}

#[test]
fn bind_interface_binds_v4_and_v6() {
    let Some(lab) = Lab::new() else { return };
    let vars = [("BIND_INTERFACE", "vpn0")];
    let out = run_legacy(&lab, &curl(URL_V4), &vars);
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
    let out = run_legacy(&lab, &curl(URL_V6), &vars);
    assert_eq!(out.assert_success(), "vpn fd00:2::2\n");
    assert_eq!(out.stderr, "");
    assert_eq!(counts(&lab), (0, 2, 0));
}

/// `192.168.` style prefixes are octet prefixes: `198.19.0.` excludes
/// 198.19.0.0/24, `198.19.0.1` only that host.
#[test]
fn bind_exclude_leaves_prefixes_direct() {
    let Some(lab) = Lab::new() else { return };
    for (exclude, url, expected) in [
        ("198.19.0.", URL_V4_2, "wan 198.18.1.2\n"),
        ("127.0.0.1,198.19.0.1", URL_V4, "wan 198.18.1.2\n"),
        ("127.0.0.1,198.19.0.1", URL_V4_2, "vpn 198.18.2.2\n"),
        ("198.19.0.10", URL_V4, "vpn 198.18.2.2\n"),
    ] {
        let vars = [("BIND_INTERFACE", "vpn0"), ("BIND_EXCLUDE", exclude)];
        let out = run_legacy(&lab, &curl(url), &vars);
        assert_eq!(
            out.assert_success(),
            expected,
            "BIND_EXCLUDE={exclude} {url}"
        );
    }
}

#[test]
fn bind_source_ip_and_bind_addr_set_the_source() {
    let Some(lab) = Lab::new() else { return };
    lab.add_client_addr("vpn", VPN.host_v4(3).into());
    let vars = [("BIND_INTERFACE", "vpn0"), ("BIND_SOURCE_IP", "198.18.2.3")];
    let out = run_legacy(&lab, &curl(URL_V4), &vars);
    assert_eq!(out.assert_success(), "vpn 198.18.2.3\n");
    // bind.so: the address alone; the default route carries it.
    let out = run_legacy(&lab, &curl(URL_V4), &[("BIND_ADDR", "198.18.2.3")]);
    assert_eq!(out.assert_success(), "wan 198.18.2.3\n");
    assert_eq!(
        peers(&lab, "vpn")
            .into_iter()
            .chain(peers(&lab, "wan"))
            .collect::<Vec<_>>(),
        [IpAddr::from(VPN.host_v4(3)), VPN.host_v4(3).into()]
    );
}

#[test]
fn dns_override_rewrites_port_53() {
    let Some(lab) = Lab::new() else { return };
    let to = |i: usize, port| SocketAddr::new(TARGETS_V4[i].into(), port);
    let script = udp_script(&[to(0, DNS_PORT), to(1, ECHO_PORT)], false, false);
    let vars = [
        ("BIND_INTERFACE", "vpn0"),
        ("DNS_OVERRIDE_IP", "198.19.0.3"),
    ];
    let out = run_legacy(&lab, &python(&script), &vars);
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\nvpn 198.18.2.2\n");
    let locals: Vec<SocketAddr> = lab.received("vpn").iter().map(|l| l.local).collect();
    assert_eq!(locals, [to(2, DNS_PORT), to(1, ECHO_PORT)]);

    // DNS_OVERRIDE_PORT, and an excluded server goes direct.
    lab.clear_logs();
    let vars = [
        ("BIND_INTERFACE", "vpn0"),
        ("DNS_OVERRIDE_IP", "198.19.0.3"),
        ("DNS_OVERRIDE_PORT", "7"),
        ("BIND_EXCLUDE", "198.19.0.3"),
    ];
    let script = udp_script(&[to(0, DNS_PORT)], true, false);
    let out = run_legacy(&lab, &python(&script), &vars);
    assert_eq!(out.assert_success(), "wan 198.18.1.2\n");
    let locals: Vec<SocketAddr> = lab.received("wan").iter().map(|l| l.local).collect();
    assert_eq!(locals, [to(2, ECHO_PORT)]);
}

#[test]
fn a_bad_variable_blocks_with_the_message() {
    let Some(lab) = Lab::new() else { return };
    let vars = [("BIND_INTERFACE", "vpn0"), ("BIND_EXCLUDE", "300.1.")];
    let out = run_legacy(&lab, &curl(URL_V4), &vars);
    out.assert_failure();
    assert_one_notice(&out, &["BIND_EXCLUDE", "network calls are blocked"]);
    assert_nothing_received(&lab);
}
