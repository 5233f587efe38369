//! Inputs for bindto's benchmarks: random profiles of any size (as a
//! [`Profile`] for the table, or as a TOML file for the shim), random
//! destinations, and the naive linear scan that the compiled table is
//! measured against.
//!
//! Everything is seeded, so a benchmark sees the same rules and destinations
//! on every run and instruction counts can be compared across runs.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bindto_core::addr::{PerFamily, unmap};
use bindto_core::profile::{Action, Route};
use bindto_core::{
    Binding, DnsOptions, IfName, OnFailure, Origin, PortRange, Profile, Protocol, RuleKind,
};
use ipnet::IpNet;

/// SplitMix64: small, seedable, good enough to scatter prefixes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator that always yields the same sequence for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One generated rule, before it becomes part of a [`Profile`] or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// The destination network.
    pub net: IpNet,
    /// Whether it is an exclude rather than a route.
    pub exclude: bool,
    /// Port filter (routes only); empty means every port.
    pub ports: Vec<PortRange>,
    /// Protocol filter (routes only).
    pub protocol: Option<Protocol>,
    /// What the route does.
    pub action: Action,
    /// Interface of a bind route.
    pub interface: &'static str,
}

const V4_LENGTHS: [u8; 10] = [8, 12, 16, 16, 20, 24, 24, 24, 28, 32];
const V6_LENGTHS: [u8; 10] = [16, 32, 32, 48, 48, 56, 64, 64, 96, 128];

/// A random network of either family. Never one that holds 127.0.0.0/8,
/// `::1` or IPv4-mapped space, so loopback destinations stay unmatched.
pub fn random_net(rng: &mut Rng) -> IpNet {
    loop {
        let net = if rng.percent(50) {
            let addr = Ipv4Addr::from(rng.next_u64() as u32);
            IpNet::new(addr.into(), *rng.pick(&V4_LENGTHS))
        } else {
            let addr =
                Ipv6Addr::from(u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()));
            IpNet::new(addr.into(), *rng.pick(&V6_LENGTHS))
        };
        let net = net.expect("prefix lengths are in range").trunc();
        let loopback = match net.addr() {
            IpAddr::V4(a) => a.octets()[0] == 127,
            IpAddr::V6(a) => a.segments()[0] == 0,
        };
        if !loopback {
            return net;
        }
    }
}

/// `n` random rules: about 90 % routes and 10 % excludes, half IPv4 and half
/// IPv6; a fifth of the routes filter ports and a fifth a protocol; routes
/// mostly bind (to one of `interfaces`), some go direct or block.
pub fn random_rules(n: usize, seed: u64, interfaces: &[&'static str]) -> Vec<RuleSpec> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let net = random_net(&mut rng);
            if rng.percent(10) {
                return RuleSpec {
                    net,
                    exclude: true,
                    ports: Vec::new(),
                    protocol: None,
                    action: Action::Direct,
                    interface: "",
                };
            }
            let ports = match rng.below(10) {
                0 => vec![PortRange {
                    first: 443,
                    last: 443,
                }],
                1 => vec![
                    PortRange {
                        first: 80,
                        last: 80,
                    },
                    PortRange {
                        first: 8000,
                        last: 8999,
                    },
                ],
                _ => Vec::new(),
            };
            let protocol = match rng.below(10) {
                0 => Some(Protocol::Tcp),
                1 => Some(Protocol::Udp),
                _ => None,
            };
            let action = match rng.below(10) {
                0 => Action::Direct,
                1 => Action::Block,
                _ => Action::Bind,
            };
            RuleSpec {
                net,
                exclude: false,
                ports,
                protocol,
                action,
                interface: interfaces[rng.below(interfaces.len())],
            }
        })
        .collect()
}

fn origin(kind: RuleKind) -> Origin {
    Origin {
        profile: Arc::from("bench"),
        kind,
        location: None,
    }
}

fn binding(interface: &str) -> Binding {
    Binding {
        interface: Some(IfName::new(interface).expect("a valid interface name")),
        source: PerFamily::default(),
    }
}

/// A profile named `bench` that binds to `interface` by default, with
/// `rules` as its routes and excludes.
pub fn profile(rules: &[RuleSpec], interface: &str) -> Profile {
    let mut routes = Vec::new();
    let mut exclude = Vec::new();
    for rule in rules {
        if rule.exclude {
            exclude.push((rule.net, origin(RuleKind::Exclude(exclude.len()))));
            continue;
        }
        routes.push(Route {
            to: vec![rule.net],
            ports: rule.ports.clone(),
            protocol: rule.protocol,
            action: rule.action,
            binding: match rule.action {
                Action::Bind => binding(rule.interface),
                _ => Binding::default(),
            },
            origin: origin(RuleKind::Route(routes.len())),
        });
    }
    Profile {
        name: "bench".into(),
        binding: binding(interface),
        listen: PerFamily::default(),
        on_failure: OnFailure::Block,
        exclude,
        routes,
        dns: Vec::new(),
        dns_options: DnsOptions::default(),
        origin: origin(RuleKind::Default),
    }
}

/// The same rules as a profiles file: profile `name` binds to `interface`,
/// also excludes `extra_exclude`, and has `rules` after it.
pub fn profile_toml(
    name: &str,
    interface: &str,
    extra_exclude: &[&str],
    rules: &[RuleSpec],
) -> String {
    let mut out = format!("[profile.{name}]\ninterface = \"{interface}\"\nexclude = [");
    let excludes = extra_exclude.iter().map(|e| e.to_string()).chain(
        rules
            .iter()
            .filter(|r| r.exclude)
            .map(|r| r.net.to_string()),
    );
    for (i, e) in excludes.enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}\"{e}\"");
    }
    out.push_str("]\n");
    for rule in rules.iter().filter(|r| !r.exclude) {
        let _ = write!(out, "\n[[profile.{name}.route]]\nto = \"{}\"\n", rule.net);
        if !rule.ports.is_empty() {
            let ports: Vec<String> = rule
                .ports
                .iter()
                .map(|p| match p.first == p.last {
                    true => p.first.to_string(),
                    false => format!("\"{}-{}\"", p.first, p.last),
                })
                .collect();
            let _ = writeln!(out, "ports = [{}]", ports.join(", "));
        }
        match rule.protocol {
            Some(Protocol::Tcp) => out.push_str("protocol = \"tcp\"\n"),
            Some(Protocol::Udp) => out.push_str("protocol = \"udp\"\n"),
            None => {}
        }
        match rule.action {
            Action::Bind => {
                let _ = writeln!(out, "interface = \"{}\"", rule.interface);
            }
            Action::Direct => out.push_str("action = \"direct\"\n"),
            Action::Block => out.push_str("action = \"block\"\n"),
        }
    }
    out
}

/// `count` random destinations for `rules`: half inside a random rule's
/// network (random host bits), half anywhere in either family; common and
/// random ports; both protocols.
pub fn destinations(rules: &[RuleSpec], count: usize, seed: u64) -> Vec<(SocketAddr, Protocol)> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let ip = if !rules.is_empty() && rng.percent(50) {
                let net = rng.pick(rules).net;
                let noise = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
                match net {
                    IpNet::V4(n) => {
                        let host = !u32::from(n.netmask());
                        IpAddr::V4((u32::from(n.network()) | (noise as u32 & host)).into())
                    }
                    IpNet::V6(n) => {
                        let host = !u128::from(n.netmask());
                        IpAddr::V6((u128::from(n.network()) | (noise & host)).into())
                    }
                }
            } else {
                random_net(&mut rng).addr()
            };
            let port = match rng.below(6) {
                0 => 53,
                1 => 80,
                2 => 443,
                3 => 8080,
                4 => 8443,
                _ => rng.next_u64() as u16,
            };
            let protocol = match rng.percent(50) {
                true => Protocol::Tcp,
                false => Protocol::Udp,
            };
            (SocketAddr::new(ip, port), protocol)
        })
        .collect()
}

/// What the linear scan decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearVerdict<'p> {
    /// Leave it alone.
    Direct,
    /// Bind as this says.
    Bind(&'p Binding),
    /// Fail the call.
    Block,
}

/// (prefix length, has a filter, is a route, minus the order written): the
/// bigger, the better.
type Rank = (u8, bool, bool, i64);

/// The naive reference: every rule of the profile is looked at, for every
/// destination (the README's three steps read literally, without
/// allocating). The compiled table must beat this by orders of magnitude.
pub fn linear(p: &Profile, dest: SocketAddr, proto: Protocol) -> (LinearVerdict<'_>, &Origin) {
    let mut dest = SocketAddr::new(unmap(dest.ip()), dest.port());
    if let Some(r) = p.dns.iter().find(|r| r.port == dest.port()) {
        dest = r.server;
    }
    let mut best: Option<(Rank, LinearVerdict<'_>, &Origin)> = None;
    for (i, route) in p.routes.iter().enumerate() {
        let port_ok = route.ports.is_empty() || route.ports.iter().any(|r| r.contains(dest.port()));
        if !port_ok || !route.protocol.is_none_or(|x| x == proto) {
            continue;
        }
        let filtered = !route.ports.is_empty() || route.protocol.is_some();
        for net in route.to.iter().filter(|n| n.contains(&dest.ip())) {
            let rank = (net.prefix_len(), filtered, true, -(i as i64));
            if best.as_ref().is_none_or(|b| rank > b.0) {
                let verdict = match route.action {
                    Action::Bind if route.binding.is_empty() => LinearVerdict::Bind(&p.binding),
                    Action::Bind => LinearVerdict::Bind(&route.binding),
                    Action::Direct => LinearVerdict::Direct,
                    Action::Block => LinearVerdict::Block,
                };
                best = Some((rank, verdict, &route.origin));
            }
        }
    }
    for (i, (net, origin)) in p.exclude.iter().enumerate() {
        if net.contains(&dest.ip()) {
            let rank = (net.prefix_len(), false, false, -(i as i64));
            if best.as_ref().is_none_or(|b| rank > b.0) {
                best = Some((rank, LinearVerdict::Direct, origin));
            }
        }
    }
    match best {
        Some((_, verdict, origin)) => (verdict, origin),
        None if p.binding.is_empty() => (LinearVerdict::Direct, &p.origin),
        None => (LinearVerdict::Bind(&p.binding), &p.origin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bindto_core::{Table, Verdict};

    /// The benchmark compares like with like: on the generated inputs the
    /// table and the linear scan decide the same.
    #[test]
    fn table_and_linear_agree_on_bench_inputs() {
        for n in [10, 1000, 5000] {
            let rules = random_rules(n, n as u64, &["wan0", "vpn0", "alt0"]);
            let profile = profile(&rules, "lo");
            let table = Table::compile(&profile);
            for (dest, proto) in destinations(&rules, 2000, 7) {
                let d = table.decide(dest, proto);
                let (verdict, origin) = linear(&profile, dest, proto);
                let same = match (d.verdict, verdict) {
                    (Verdict::Direct, LinearVerdict::Direct) => true,
                    (Verdict::Block, LinearVerdict::Block) => true,
                    (Verdict::Bind(a), LinearVerdict::Bind(b)) => a == b,
                    _ => false,
                };
                assert!(same, "{dest} {proto:?}: {:?} vs {verdict:?}", d.verdict);
                assert_eq!(d.origin, origin, "{dest} {proto:?}");
            }
        }
    }

    /// The file form parses back to the same rules.
    #[test]
    fn toml_round_trips() {
        let rules = random_rules(300, 3, &["lo"]);
        let text = profile_toml("bench", "lo", &[], &rules);
        let layer = bindto_core::Layer {
            source: bindto_core::Source::Given,
            path: "bench.toml".into(),
            text,
            stamp: None,
        };
        let config = bindto_core::Config::from_layers(vec![layer]).expect("generated file parses");
        let table = Table::compile(config.profile("bench").expect("profile bench"));
        let direct = Table::compile(&profile(&rules, "lo"));
        for (dest, proto) in destinations(&rules, 2000, 9) {
            let a = table.decide(dest, proto);
            let b = direct.decide(dest, proto);
            assert_eq!(a.verdict, b.verdict);
            assert_eq!(a.origin.kind, b.origin.kind);
        }
    }
}
