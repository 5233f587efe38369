//! Edge cases of the decision, written out.

use std::net::SocketAddr;

use bindto_core::{Config, Layer, Protocol, RuleKind, Source, Table, Verdict};

fn table(text: &str) -> Table {
    let layer = Layer {
        source: Source::Given,
        path: "edges.toml".into(),
        text: text.into(),
        stamp: None,
    };
    let config = Config::from_layers(vec![layer]).unwrap_or_else(|e| panic!("{e}"));
    Table::compile(config.profile("p").unwrap())
}

fn kind(t: &Table, dest: &str, proto: Protocol) -> (String, RuleKind) {
    let d = t.decide(dest.parse::<SocketAddr>().unwrap(), proto);
    let verdict = match d.verdict {
        Verdict::Direct => "direct".to_owned(),
        Verdict::Bind(b) => format!("bind {}", b.interface.map_or("-".into(), |i| i.to_string())),
        Verdict::Block => "block".to_owned(),
    };
    (verdict, d.origin.kind)
}

const PROFILE: &str = r#"
[profile.p]
interface = "vpn0"
exclude = ["198.18.0.0/16", "fe80::/10", "0.0.0.0/32"]

[[profile.p.route]]
to = "198.18.0.0/16"
interface = "alt0"

[[profile.p.route]]
to = "198.18.7.0/24"
ports = [53]
action = "block"

[[profile.p.route]]
to = "198.18.7.0/24"
protocol = "udp"
interface = "wan0"
"#;

#[test]
fn a_route_beats_an_exclude_of_the_same_prefix() {
    let t = table(PROFILE);
    assert_eq!(
        kind(&t, "198.18.1.1:80", Protocol::Tcp),
        ("bind alt0".into(), RuleKind::Route(0))
    );
}

#[test]
fn overlapping_filtered_routes_fall_through_in_order() {
    let t = table(PROFILE);
    // Both /24 routes have filters; the one written first wins when both match.
    assert_eq!(
        kind(&t, "198.18.7.1:53", Protocol::Udp),
        ("block".into(), RuleKind::Route(1))
    );
    assert_eq!(
        kind(&t, "198.18.7.1:54", Protocol::Udp),
        ("bind wan0".into(), RuleKind::Route(2))
    );
    // Neither filter matches: the shorter /16 route decides.
    assert_eq!(
        kind(&t, "198.18.7.1:54", Protocol::Tcp),
        ("bind alt0".into(), RuleKind::Route(0))
    );
}

#[test]
fn mapped_wildcard_port_zero_and_scoped_destinations() {
    let t = table(PROFILE);
    assert_eq!(
        kind(&t, "[::ffff:198.18.1.1]:80", Protocol::Tcp),
        ("bind alt0".into(), RuleKind::Route(0))
    );
    assert_eq!(
        kind(&t, "0.0.0.0:80", Protocol::Tcp),
        ("direct".into(), RuleKind::Exclude(2))
    );
    assert_eq!(
        kind(&t, "[::]:80", Protocol::Tcp),
        ("bind vpn0".into(), RuleKind::Default)
    );
    assert_eq!(
        kind(&t, "198.19.0.1:0", Protocol::Udp),
        ("bind vpn0".into(), RuleKind::Default)
    );
    assert_eq!(
        kind(&t, "[fe80::1%2]:22", Protocol::Tcp),
        ("direct".into(), RuleKind::Exclude(1))
    );
    // The scope id survives the decision.
    let d = t.decide("[2001:db8::1%7]:80".parse().unwrap(), Protocol::Tcp);
    assert_eq!(d.destination, "[2001:db8::1%7]:80".parse().unwrap());
}

#[test]
fn extreme_addresses_with_and_without_a_bucket_index() {
    // Found by fuzz/decide: a v6 address of all ones once overflowed the
    // bucket arithmetic of a table without an index.
    let small = table(PROFILE);
    let mut big_text = String::from(PROFILE);
    big_text.push_str("[profile.q]\ninterface = \"vpn0\"\nexclude = [");
    for i in 0..300 {
        big_text.push_str(&format!(
            "\"2001:db8:{i:x}::/48\", \"198.{}.{}.0/24\",",
            i % 256,
            i / 256
        ));
    }
    big_text.push_str("]\n");
    let layer = Layer {
        source: Source::Given,
        path: "big.toml".into(),
        text: big_text,
        stamp: None,
    };
    let big = Table::compile(
        Config::from_layers(vec![layer])
            .unwrap()
            .profile("q")
            .unwrap(),
    );
    for t in [&small, &big] {
        for dest in [
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:2560",
            "[::]:0",
            "255.255.255.255:65535",
            "0.0.0.0:1",
        ] {
            t.decide(dest.parse().unwrap(), Protocol::Tcp);
        }
    }
    assert_eq!(
        kind(&big, "[2001:db8:12b::1]:80", Protocol::Tcp).0,
        "direct"
    );
    assert_eq!(
        kind(&big, "[2001:db8:12c::1]:80", Protocol::Tcp).0,
        "bind vpn0"
    );
    assert_eq!(kind(&big, "198.43.1.9:80", Protocol::Tcp).0, "direct");
}

/// The profile's own verdict is what a destination no rule matches gets,
/// whatever the rules say of others.
#[test]
fn the_profiles_own_verdict_is_the_unmatched_destinations() {
    let t = table(PROFILE);
    let (verdict, origin) = t.own();
    let unmatched = t.decide("198.19.0.1:80".parse().unwrap(), Protocol::Tcp);
    assert_eq!(verdict, unmatched.verdict);
    assert_eq!(origin, unmatched.origin);
    assert!(matches!(verdict, Verdict::Bind(b) if b.interface.unwrap().as_str() == "vpn0"));
    let plain = table("[profile.p]\nexclude = [\"10.0.0.0/8\"]\n");
    assert_eq!(plain.own().0, Verdict::Direct);
}

/// Loopback cannot leave through another device: bound to vpn0, a connect
/// to 127.0.0.1 hangs. Left alone unless a rule of at least loopback's own
/// prefix length names it; a wider one (0.0.0.0/0) does not. IPv4-mapped
/// loopback is loopback.
#[test]
fn loopback_is_direct_unless_a_rule_names_it() {
    let t = table(
        r#"
[profile.p]
interface = "vpn0"

[[profile.p.route]]
to = ["0.0.0.0/0", "::/0"]
interface = "alt0"

[[profile.p.route]]
to = ["127.0.0.53", "::1"]
ports = [53]
action = "block"
"#,
    );
    let direct = ("direct".to_owned(), RuleKind::Loopback);
    for dest in [
        "127.0.0.1:80",
        "127.255.255.254:80",
        "[::1]:80",
        "[::ffff:127.0.0.1]:80",
        "127.0.0.53:80",
    ] {
        assert_eq!(kind(&t, dest, Protocol::Tcp), direct, "{dest}");
        assert_eq!(kind(&t, dest, Protocol::Udp), direct, "{dest}");
    }
    for dest in ["127.0.0.53:53", "[::1]:53", "[::ffff:127.0.0.53]:53"] {
        assert_eq!(
            kind(&t, dest, Protocol::Udp),
            ("block".into(), RuleKind::Route(1)),
            "{dest}"
        );
    }
    for dest in ["126.255.255.255:80", "128.0.0.0:80", "[::2]:80"] {
        assert_eq!(
            kind(&t, dest, Protocol::Tcp),
            ("bind alt0".into(), RuleKind::Route(0)),
            "{dest}"
        );
    }
    // An exclude of loopback's own length is the user's rule, and says so.
    let t = table("[profile.p]\ninterface = \"vpn0\"\nexclude = \"127.0.0.0/8\"\n");
    assert_eq!(
        kind(&t, "127.0.0.1:80", Protocol::Tcp),
        ("direct".into(), RuleKind::Exclude(0))
    );
    assert_eq!(kind(&t, "[::1]:80", Protocol::Tcp), direct);
    assert_eq!(
        kind(&t, "198.18.0.1:80", Protocol::Tcp),
        ("bind vpn0".into(), RuleKind::Default)
    );
}

#[test]
fn port_53_goes_to_the_dns_server_of_the_destinations_family() {
    let both = table(
        "[profile.p]\ninterface = \"vpn0\"\n[profile.p.dns]\n53 = [\"fd00:8::1\", \"198.18.8.1\"]\n853 = \"198.18.8.1:853\"\n",
    );
    let to = |t: &Table, dest: &str| {
        t.decide(dest.parse().unwrap(), Protocol::Udp)
            .destination
            .to_string()
    };
    assert_eq!(to(&both, "198.18.0.53:53"), "198.18.8.1:53");
    assert_eq!(to(&both, "[2001:db8::53]:53"), "[fd00:8::1]:53");
    assert_eq!(to(&both, "[::ffff:198.18.0.53]:53"), "198.18.8.1:53");
    assert_eq!(to(&both, "[2001:db8::53]:853"), "198.18.8.1:853");
    assert_eq!(
        both.dns_servers()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
        ["198.18.8.1:53", "[fd00:8::1]:53"]
    );
    // One IPv4 server: an IPv6 destination goes to it all the same (and
    // an IPv6-only socket then fails with ENETUNREACH).
    let one = table("[profile.p]\ninterface = \"vpn0\"\n[profile.p.dns]\n53 = [\"198.18.8.1\"]\n");
    assert_eq!(to(&one, "[2001:db8::53]:53"), "198.18.8.1:53");
}
