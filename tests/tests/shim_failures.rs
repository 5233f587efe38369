//! Failing closed: a missing or down interface, an unknown profile, a
//! broken config, a block rule, a binding with nothing for the
//! destination's family. The call fails, nothing reaches any server, and
//! stderr says why in one line; `on_failure = "allow"` makes it a warning.

use std::net::SocketAddr;

use bindto_tests::clients::*;
use bindto_tests::{ECHO_PORT, HIGH_PORT, Lab, TARGET_V4, TARGET_V6};

fn echo_v4() -> SocketAddr {
    SocketAddr::new(TARGET_V4.into(), ECHO_PORT)
}

fn echo_v6() -> SocketAddr {
    SocketAddr::new(TARGET_V6.into(), ECHO_PORT)
}

#[test]
fn a_missing_interface_blocks_with_one_line() {
    let Some(lab) = Lab::new() else { return };
    let config = profile("gone", "interface = \"nope0\"\n");
    let out = lab.run_bound(&config, "gone", &curl(URL_V4), &[]);
    out.assert_failure();
    assert_one_notice(
        &out,
        &[
            "bindto: cannot bind socket to interface \"nope0\" (No such device) for profile \"gone\"",
            "; connection blocked",
        ],
    );
    // Connected and unconnected UDP, v4 and v6: ENODEV.
    for (target, v6) in [(echo_v4(), false), (echo_v6(), true)] {
        for connected in [false, true] {
            let script = udp_script(&[target, target], connected, v6);
            let out = lab.run_bound(&config, "gone", &python(&script), &[]);
            assert_eq!(out.assert_success(), "ERR 19\nERR 19\n");
            assert_one_notice(&out, &["\"nope0\" (No such device)"]);
        }
    }
    assert_nothing_received(&lab);
}

#[test]
fn an_interface_that_is_down_or_deleted_lets_nothing_out() {
    let Some(lab) = Lab::new() else { return };
    lab.set_uplink_down("vpn");
    for url in [URL_V4, URL_V6] {
        lab.run_bound(VPN_PROFILE, "vpn", &curl(url), &[])
            .assert_failure();
    }
    for (target, v6) in [(echo_v4(), false), (echo_v6(), true)] {
        for connected in [false, true] {
            let script = udp_script(&[target], connected, v6);
            let out = lab.run_bound(VPN_PROFILE, "vpn", &python(&script), &[]);
            // ENETUNREACH from the kernel: the device has no route.
            assert_eq!(out.assert_success(), "ERR 101\n", "{target} {connected}");
        }
    }
    assert_nothing_received(&lab);

    lab.set_uplink_up("vpn");
    let out = lab.run_bound(VPN_PROFILE, "vpn", &curl(URL_V4), &[]);
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");

    lab.clear_logs();
    lab.delete_uplink("vpn");
    let out = lab.run_bound(VPN_PROFILE, "vpn", &curl(URL_V4), &[]);
    out.assert_failure();
    assert_one_notice(&out, &["\"vpn0\" (No such device)"]);
    let script = udp_script(&[echo_v4()], false, false);
    let out = lab.run_bound(VPN_PROFILE, "vpn", &python(&script), &[]);
    assert_eq!(out.assert_success(), "ERR 19\n");
    assert_nothing_received(&lab);
}

#[test]
fn an_unknown_profile_blocks_everything_with_the_message() {
    let Some(lab) = Lab::new() else { return };
    let config = VPN_PROFILE;
    let script = format!(
        "{}\n{}",
        tcp_script(SocketAddr::new(TARGET_V4.into(), HIGH_PORT)),
        udp_script(&[echo_v6()], false, true)
    );
    let out = lab.run_bound(config, "nosuch", &python(&script), &[]);
    assert_eq!(out.assert_success(), "ERR 1\nERR 1\n");
    let notice = assert_one_notice(
        &out,
        &[
            "bindto: profile \"nosuch\" not found in ",
            "; network calls are blocked",
        ],
    );
    assert!(notice.contains(lab.dir().to_str().unwrap()), "{notice}");
    assert_nothing_received(&lab);
}

#[test]
fn a_broken_config_blocks_everything_with_the_message() {
    let Some(lab) = Lab::new() else { return };
    let config = "[profile.vpn]\ninterface = \"vpn0\n";
    let out = lab.run_bound(config, "vpn", &curl(URL_V4), &[]);
    out.assert_failure();
    assert_one_notice(&out, &[".toml:2:", "; network calls are blocked"]);

    let config = "[profile.vpn]\ninterface = \"vpn0\"\nsorce = \"10.0.0.1\"\n";
    let out = lab.run_bound(config, "vpn", &curl(URL_V4), &[]);
    out.assert_failure();
    assert_one_notice(&out, &[".toml:3:", "sorce", "; network calls are blocked"]);

    // A bind() is an intercepted call too.
    let script = "import socket\n\
                  s = socket.socket()\n\
                  try:\n\
                  \x20   s.bind(('127.0.0.1', 0))\n\
                  \x20   print('bound')\n\
                  except OSError as e:\n\
                  \x20   print('ERR', e.errno)\n";
    let out = lab.run_bound(config, "vpn", &python(script), &[]);
    assert_eq!(out.assert_success(), "ERR 1\n");
    assert_nothing_received(&lab);
}

#[test]
fn on_failure_allow_warns_and_goes_out_unbound() {
    let Some(lab) = Lab::new() else { return };
    let config = profile("soft", "interface = \"nope0\"\non_failure = \"allow\"\n");
    let out = lab.run_bound(&config, "soft", &curl(URL_V4), &[]);
    assert_eq!(out.assert_success(), "wan 198.18.1.2\n");
    assert_one_notice(
        &out,
        &[
            "\"nope0\" (No such device)",
            "continuing unbound (on_failure = \"allow\")",
        ],
    );
    let script = udp_script(&[echo_v4()], false, false);
    let out = lab.run_bound(&config, "soft", &python(&script), &[]);
    assert_eq!(out.assert_success(), "wan 198.18.1.2\n");
    assert_eq!(counts(&lab), (2, 0, 0));
}

#[test]
fn a_block_route_refuses_with_eperm() {
    let Some(lab) = Lab::new() else { return };
    let config = profile(
        "vpn",
        "interface = \"vpn0\"\n\n\
         [[profile.vpn.route]]\n\
         to = [\"198.19.0.0/24\", \"2001:db8:ff::/64\"]\n\
         ports = [7]\n\
         action = \"block\"\n",
    );
    for (target, v6) in [(echo_v4(), false), (echo_v6(), true)] {
        let script = udp_script(&[target, target], false, v6);
        let out = lab.run_bound(&config, "vpn", &python(&script), &[]);
        assert_eq!(out.assert_success(), "ERR 1\nERR 1\n");
        assert_one_notice(&out, &["blocked by route #1 of profile \"vpn\""]);
    }
    // Other ports still go, bound.
    let out = lab.run_bound(&config, "vpn", &curl(URL_V6), &[]);
    assert_eq!(out.assert_success(), "vpn fd00:2::2\n");
    assert_eq!(counts(&lab), (0, 1, 0));
}

/// A profile with only an IPv4 source has no way to bind an IPv6 socket:
/// ENETUNREACH, as on a host without IPv6, so that a dual-stack client
/// falls back to IPv4.
#[test]
fn a_binding_with_nothing_for_the_family_is_a_failure() {
    let Some(lab) = Lab::new() else { return };
    let config = profile("src", "source = \"198.18.1.2\"\n");
    let out = lab.run_bound(&config, "src", &curl(URL_V6), &[]);
    out.assert_failure();
    assert_one_notice(
        &out,
        &[
            "no interface and no IPv6 source",
            "for profile \"src\"",
            "connection blocked",
        ],
    );
    let script = udp_script(&[echo_v6()], false, true);
    let out = lab.run_bound(&config, "src", &python(&script), &[]);
    assert_eq!(out.assert_success(), "ERR 101\n");
    assert_nothing_received(&lab);
}
