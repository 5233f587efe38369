//! The older tools' variables compile to the profile they always meant.

use std::net::{IpAddr, SocketAddr};

use bindto_core::{Env, Protocol, Setup, Table, Verdict, legacy, setup};

fn table(pairs: &[(&str, &str)]) -> Table {
    let profile = legacy::profile(&Env::from_pairs(pairs.iter().copied()))
        .unwrap()
        .unwrap();
    Table::compile(&profile)
}

fn verdict(t: &Table, ip: &str) -> String {
    let d = t.decide(SocketAddr::new(ip.parse().unwrap(), 80), Protocol::Tcp);
    match d.verdict {
        Verdict::Direct => "direct".into(),
        Verdict::Bind(b) => format!(
            "bind {:?} {:?}",
            b.interface.map(|i| i.to_string()),
            b.source.v4
        ),
        Verdict::Block => "block".into(),
    }
}

#[test]
fn bind_exclude_matches_on_octet_boundaries() {
    let t = table(&[
        ("BIND_INTERFACE", "vpn0"),
        ("BIND_EXCLUDE", "198.18.0.1, 192.168.,10.1"),
    ]);
    assert_eq!(verdict(&t, "198.18.0.1"), "direct");
    assert_eq!(verdict(&t, "198.18.0.2"), r#"bind Some("vpn0") None"#);
    assert_eq!(verdict(&t, "192.168.44.1"), "direct");
    assert_eq!(verdict(&t, "10.1.9.9"), "direct");
    // The old text-prefix match took 10.100.x.x for 10.1: not any more.
    assert_eq!(verdict(&t, "10.100.0.1"), r#"bind Some("vpn0") None"#);
    assert_eq!(verdict(&t, "::ffff:192.168.0.1"), "direct");
}

#[test]
fn bind_addr_is_source_and_listen() {
    let p = legacy::profile(&Env::from_pairs([("BIND_ADDR", "198.18.2.2")]))
        .unwrap()
        .unwrap();
    assert_eq!(
        p.listen.v4.map(IpAddr::V4),
        Some("198.18.2.2".parse().unwrap())
    );
    let t = Table::compile(&p);
    assert_eq!(verdict(&t, "198.19.0.1"), "bind None Some(198.18.2.2)");
}

#[test]
fn bind_source_ip_wins_over_bind_addr_for_connects() {
    let t = table(&[
        ("BIND_ADDR", "198.18.2.2"),
        ("BIND_SOURCE_IP", "198.18.2.3"),
        ("BIND_INTERFACE", "vpn0"),
    ]);
    assert_eq!(
        verdict(&t, "198.19.0.1"),
        r#"bind Some("vpn0") Some(198.18.2.3)"#
    );
}

#[test]
fn dns_override_rewrites_port_53() {
    let t = table(&[
        ("BIND_INTERFACE", "vpn0"),
        ("DNS_OVERRIDE_IP", "198.18.2.1"),
        ("DNS_OVERRIDE_PORT", "5353"),
    ]);
    let d = t.decide("127.0.0.53:53".parse().unwrap(), Protocol::Udp);
    assert_eq!(d.destination, "198.18.2.1:5353".parse().unwrap());
    assert!(d.rewrite.is_some());
    let d = t.decide("127.0.0.53:54".parse().unwrap(), Protocol::Udp);
    assert_eq!(d.destination, "127.0.0.53:54".parse().unwrap());
}

#[test]
fn errors_name_the_variable() {
    let err = legacy::profile(&Env::from_pairs([("BIND_EXCLUDE", "10.300")])).unwrap_err();
    assert!(err.to_string().starts_with("BIND_EXCLUDE: "), "{err}");
    let err = legacy::profile(&Env::from_pairs([("BIND_INTERFACE", "a/b")])).unwrap_err();
    assert!(err.to_string().starts_with("BIND_INTERFACE: "), "{err}");
}

#[test]
fn nothing_set_is_pass_through_and_bind_profile_wins() {
    assert!(matches!(
        setup(&Env::default(), false, None),
        Ok((Setup::PassThrough, None))
    ));
    assert!(matches!(
        setup(&Env::from_pairs([("BIND_PROFILE", "")]), false, None),
        Ok((Setup::PassThrough, None))
    ));
    let env = Env::from_pairs([
        ("BIND_PROFILE", "x"),
        ("BIND_INTERFACE", "vpn0"),
        ("BINDTO_CONFIG", "/nonexistent/p.toml"),
    ]);
    // BIND_PROFILE selects a profile, so the legacy variable is not used.
    assert!(setup(&env, false, None).is_err());
}

/// In a setuid program the older tools' variables are the invoking user's
/// word: ignored, so that they cannot choose its interface, excludes or
/// DNS server. `BIND_PROFILE` still selects a profile of the system file.
#[test]
fn a_privileged_process_ignores_the_older_tools_variables() {
    let vars = [
        ("BIND_INTERFACE", "vpn0"),
        ("BIND_SOURCE_IP", "198.18.2.2"),
        ("BIND_ADDR", "198.18.2.2"),
        ("BIND_EXCLUDE", "198.19.0.0/16"),
        ("DNS_OVERRIDE_IP", "198.19.0.2"),
        ("DNS_OVERRIDE_PORT", "5353"),
    ];
    for var in vars {
        let env = Env::from_pairs([var]);
        assert!(env.asks_anything() || var.0 == "DNS_OVERRIDE_PORT");
        let env = env.privileged();
        assert_eq!(env, Env::default(), "{var:?}");
        assert!(!env.asks_anything());
        assert!(matches!(
            setup(&env, true, None),
            Ok((Setup::PassThrough, None))
        ));
    }
    let mut all = vars.to_vec();
    all.push(("BIND_PROFILE", "sec"));
    all.push(("HOME", "/home/u"));
    let kept = Env::from_pairs(all).privileged();
    assert_eq!(
        kept,
        Env::from_pairs([("BIND_PROFILE", "sec"), ("HOME", "/home/u")])
    );
}
