//! The compiled table agrees with a naive linear reading of the decision
//! rules, over random tables and destinations.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bindto_core::addr::{PerFamily, unmap};
use bindto_core::profile::{Action, DnsRewrite, LOOPBACK, Route};
use bindto_core::{
    Binding, IfName, OnFailure, Origin, PortRange, Profile, Protocol, RuleKind, Table, Verdict,
};
use bindto_core::{DnsOptions, Env, cache};
use ipnet::IpNet;
use proptest::prelude::*;

/// (prefix length, has a filter, is a route, minus the order written):
/// the bigger, the better.
type Rank = (u8, bool, bool, i64);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Direct,
    Bind(Binding),
    Block,
}

/// The steps of the README, read literally: rewrite, then the best of all
/// matching rules by (prefix length, has a filter, is a route, earliest),
/// unless loopback's network is longer than the best's, then the profile's
/// default.
fn reference<'p>(p: &'p Profile, dest: SocketAddr, proto: Protocol) -> (Owned, SocketAddr, Origin) {
    let mut dest = SocketAddr::new(unmap(dest.ip()), dest.port());
    if let Some(r) = p.dns.iter().find(|r| r.port == dest.port()) {
        dest = r.server;
    }
    let mut best: Option<(Rank, Owned, &Origin)> = None;
    let mut consider = |key: Rank, verdict: Owned, origin: &'p Origin| {
        if best.as_ref().is_none_or(|b| key > b.0) {
            best = Some((key, verdict, origin));
        }
    };
    for (i, route) in p.routes.iter().enumerate() {
        let port_ok = route.ports.is_empty() || route.ports.iter().any(|r| r.contains(dest.port()));
        let proto_ok = route.protocol.is_none_or(|x| x == proto);
        if !(port_ok && proto_ok) {
            continue;
        }
        let filtered = !route.ports.is_empty() || route.protocol.is_some();
        let verdict = match route.action {
            Action::Bind => Owned::Bind(route.binding),
            Action::Direct => Owned::Direct,
            Action::Block => Owned::Block,
        };
        for net in route.to.iter().filter(|n| n.contains(&dest.ip())) {
            consider(
                (net.prefix_len(), filtered, true, -(i as i64)),
                verdict.clone(),
                &route.origin,
            );
        }
    }
    for (i, (net, origin)) in p.exclude.iter().enumerate() {
        if net.contains(&dest.ip()) {
            consider(
                (net.prefix_len(), false, false, -(i as i64)),
                Owned::Direct,
                origin,
            );
        }
    }
    // The loopback rule: below every rule of the same prefix length.
    let loopback = origin(RuleKind::Loopback);
    if let Some(net) = LOOPBACK.iter().find(|n| n.contains(&dest.ip())) {
        if best.as_ref().is_none_or(|b| b.0.0 < net.prefix_len()) {
            return (Owned::Direct, dest, loopback);
        }
    }
    match best {
        Some((_, verdict, origin)) => (verdict, dest, origin.clone()),
        None if p.binding.is_empty() => (Owned::Direct, dest, p.origin.clone()),
        None => (Owned::Bind(p.binding), dest, p.origin.clone()),
    }
}

fn owned(v: Verdict<'_>) -> Owned {
    match v {
        Verdict::Direct => Owned::Direct,
        Verdict::Bind(b) => Owned::Bind(*b),
        Verdict::Block => Owned::Block,
    }
}

fn origin(kind: RuleKind) -> Origin {
    Origin {
        profile: Arc::from("p"),
        kind,
        location: None,
    }
}

// A small address universe so that random rules overlap and random
// destinations hit them.
fn v4() -> impl Strategy<Value = Ipv4Addr> {
    (0u8..4, 0u8..4, 0u8..8).prop_map(|(a, b, c)| Ipv4Addr::new(198, 18 + (a & 1), b, c))
}

fn v6() -> impl Strategy<Value = Ipv6Addr> {
    (0u16..4, 0u16..4, 0u16..8).prop_map(|(a, b, c)| Ipv6Addr::new(0x2001, 0xdb8, a, 0, 0, 0, b, c))
}

/// Loopback and its neighbours, which its rule must not reach.
fn near_loopback() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..3, 0u8..3).prop_map(|(a, b)| Ipv4Addr::new(126 + a, 0, b, 1).into()),
        (0u16..3).prop_map(|a| Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, a).into()),
    ]
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        4 => v4().prop_map(IpAddr::V4),
        4 => v6().prop_map(IpAddr::V6),
        1 => near_loopback(),
    ]
}

fn net() -> impl Strategy<Value = IpNet> {
    (ip(), 0u8..=8).prop_map(|(ip, k)| {
        let len = match ip {
            IpAddr::V4(_) => [0, 8, 15, 16, 24, 28, 29, 30, 32][k as usize],
            IpAddr::V6(_) => [0, 32, 48, 64, 112, 120, 124, 126, 128][k as usize],
        };
        IpNet::new(ip, len).unwrap().trunc()
    })
}

fn binding() -> impl Strategy<Value = Binding> {
    (0usize..3, any::<bool>()).prop_map(|(i, with_source)| Binding {
        interface: Some(IfName::new(["wan0", "vpn0", "alt0"][i]).unwrap()),
        source: if with_source {
            PerFamily {
                v4: Some(Ipv4Addr::new(198, 18, 2, 2)),
                v6: None,
            }
        } else {
            PerFamily::default()
        },
    })
}

/// Networks anywhere in either family: big tables whose intervals spread over
/// the whole space, so the bucket index is used.
fn wide_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 8u8..=32)
            .prop_map(|(a, len)| IpNet::new(Ipv4Addr::from(a).into(), len).unwrap().trunc()),
        (any::<u128>(), 16u8..=128)
            .prop_map(|(a, len)| IpNet::new(Ipv6Addr::from(a).into(), len).unwrap().trunc()),
    ]
}

fn route(net: BoxedStrategy<IpNet>) -> impl Strategy<Value = Route> {
    let ports = prop_oneof![
        3 => Just(vec![]),
        1 => Just(vec![PortRange { first: 53, last: 53 }]),
        1 => Just(vec![PortRange { first: 80, last: 80 }, PortRange { first: 8000, last: 8999 }]),
    ];
    let protocol = prop_oneof![3 => Just(None), 1 => Just(Some(Protocol::Tcp)), 1 => Just(Some(Protocol::Udp))];
    let action = prop_oneof![
        Just(Action::Bind),
        Just(Action::Direct),
        Just(Action::Block)
    ];
    (
        prop::collection::vec(net, 1..3),
        ports,
        protocol,
        action,
        binding(),
    )
        .prop_map(|(to, ports, protocol, action, binding)| Route {
            to,
            ports,
            protocol,
            action,
            binding: if action == Action::Bind {
                binding
            } else {
                Binding::default()
            },
            origin: origin(RuleKind::Default),
        })
}

fn profile(net: BoxedStrategy<IpNet>, rules: usize) -> impl Strategy<Value = Profile> {
    (
        prop::option::of(binding()),
        prop::collection::vec(route(net.clone()), 0..rules),
        prop::collection::vec(net, 0..rules / 3),
        prop::option::of(ip()),
    )
        .prop_map(|(binding, mut routes, exclude, dns)| {
            for (i, r) in routes.iter_mut().enumerate() {
                r.origin = origin(RuleKind::Route(i));
            }
            Profile {
                name: "p".into(),
                binding: binding.unwrap_or_default(),
                listen: PerFamily::default(),
                on_failure: OnFailure::Block,
                exclude: exclude
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| (n, origin(RuleKind::Exclude(i))))
                    .collect(),
                routes,
                dns: dns
                    .map(|ip| DnsRewrite {
                        port: 53,
                        server: SocketAddr::new(ip, 53),
                        origin: origin(RuleKind::Dns(53)),
                    })
                    .into_iter()
                    .collect(),
                dns_options: DnsOptions::default(),
                origin: origin(RuleKind::Default),
            }
        })
}

fn destination(ip: BoxedStrategy<IpAddr>) -> impl Strategy<Value = (SocketAddr, Protocol)> {
    let port = prop_oneof![
        Just(53u16),
        Just(80),
        Just(443),
        Just(8080),
        Just(0),
        any::<u16>()
    ];
    let mapped = any::<bool>();
    let proto = prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)];
    (ip, port, mapped, proto).prop_map(|(ip, port, mapped, proto)| {
        let ip = match (ip, mapped) {
            (IpAddr::V4(a), true) => IpAddr::V6(a.to_ipv6_mapped()),
            (ip, _) => ip,
        };
        (SocketAddr::new(ip, port), proto)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn table_agrees_with_linear_reference(
        profile in profile(net().boxed(), 300),
        dests in prop::collection::vec(destination(ip().boxed()), 1..64),
    ) {
        check(&profile, &dests)?;
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn big_tables_agree_with_linear_reference(
        profile in profile(wide_net().boxed(), 3000),
        dests in prop::collection::vec(destination(wide_net().prop_map(|n| n.addr()).boxed()), 200),
    ) {
        check(&profile, &dests)?;
    }
}

/// Checks the compiled table, and the same table through the cache's bytes.
fn check(profile: &Profile, dests: &[(SocketAddr, Protocol)]) -> Result<(), TestCaseError> {
    let table = Table::compile(profile);
    let key = cache::Key::new(&Env::default(), &[]);
    let cached = cache::open(&key, &cache::seal(&key, &table).unwrap()).unwrap();
    for (table, dest, proto) in dests
        .iter()
        .flat_map(|&(dest, proto)| [(&table, dest, proto), (&cached, dest, proto)])
    {
        let d = table.decide(dest, proto);
        let (verdict, destination, origin) = reference(profile, dest, proto);
        prop_assert_eq!(
            owned(d.verdict),
            verdict,
            "verdict for {} {:?}",
            dest,
            proto
        );
        prop_assert_eq!(d.destination, destination);
        prop_assert_eq!(d.origin, &origin, "origin for {} {:?}", dest, proto);
        // The hooks' lean question gets decide's answer where the profile
        // does not rewrite.
        prop_assert_eq!(table.rewrites(), !profile.dns.is_empty());
        if !table.rewrites() {
            prop_assert_eq!(
                table.verdicts().nth(table.verdict_id(dest, proto).index()),
                Some(d.verdict),
                "lean verdict for {}",
                dest
            );
        }
    }
    Ok(())
}
