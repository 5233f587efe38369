//! The compiled decision table.
//!
//! Each address family has a sorted array of interval starts that partitions
//! its whole address space: every address in one interval is matched by the
//! same set of prefixes. Each interval points at a precomputed *chain*, the
//! rules of those prefixes in decision order (longest prefix first; at equal
//! length, rules with a port or protocol filter first, then routes before
//! excludes, then the order written), cut after the first rule without a
//! filter, since nothing after it can ever decide. A lookup is one binary
//! search (narrowed by a 65 536-bucket index on the top 16 bits once the
//! table is large) and a walk along a chain that is usually one rule long:
//! no allocation, no lock, and a cost that does not follow the rule count.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::addr::{PerFamily, PortRange};
use crate::profile::{Action, Binding, DnsOptions, OnFailure, Origin, Profile, Protocol};

mod codec;

/// What to do with a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'t> {
    /// Leave it alone.
    Direct,
    /// Bind it to this interface and/or source.
    Bind(&'t Binding),
    /// Fail the call.
    Block,
}

/// The decision for one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'t> {
    /// What to do.
    pub verdict: Verdict<'t>,
    /// The destination to use: the caller's, unmapped to IPv4 where it was
    /// IPv4-mapped, or the DNS server it was rewritten to.
    pub destination: SocketAddr,
    /// The DNS rewrite that changed the destination, if one did.
    pub rewrite: Option<&'t Origin>,
    /// The rule that chose the verdict.
    pub origin: &'t Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Direct,
    Bind(u32),
    Block,
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    act: Act,
    protocol: Option<Protocol>,
    /// Range of `Table::ports`; empty means every port.
    ports: (u32, u32),
    origin: u32,
}

impl Rule {
    fn is_filtered(&self) -> bool {
        self.protocol.is_some() || self.ports.0 != self.ports.1
    }
}

/// A run of `Table::chains`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
struct Span {
    start: u32,
    end: u32,
}

/// Longest-prefix match over one family, keyed by the address as an integer.
#[derive(Debug, Clone)]
struct Lpm<K> {
    /// Interval starts with their chains, side by side: the search and the
    /// answer share cache lines.
    entries: Vec<(K, Span)>,
    /// For big tables: `buckets[b]` is the interval holding the first
    /// address whose top bits are `b`, plus one entry for the end, so a
    /// lookup searches only its bucket's few intervals.
    buckets: Vec<u32>,
    /// Shift that turns an address into its bucket.
    shift: u32,
}

trait Key: Copy + Ord + Hash {
    const ZERO: Self;
    const BITS: u32;
    fn net(net: &IpNet) -> Option<(Self, Self)>;
    fn next(self) -> Option<Self>;
    fn bucket(self, shift: u32) -> usize;
    fn bucket_start(bucket: usize, shift: u32) -> Self;
}

macro_rules! key_impl {
    ($int:ty, $variant:ident) => {
        impl Key for $int {
            const ZERO: Self = 0;
            const BITS: u32 = <$int>::BITS;
            fn net(net: &IpNet) -> Option<(Self, Self)> {
                match net {
                    IpNet::$variant(n) => Some((n.network().into(), n.broadcast().into())),
                    _ => None,
                }
            }
            fn next(self) -> Option<Self> {
                self.checked_add(1)
            }
            fn bucket(self, shift: u32) -> usize {
                (self >> shift) as usize
            }
            fn bucket_start(bucket: usize, shift: u32) -> Self {
                (bucket as $int) << shift
            }
        }
    };
}
key_impl!(u32, V4);
key_impl!(u128, V6);

/// Interval count from which a bucket index is built; below it a plain
/// binary search is as fast.
const BUCKETS_FROM: usize = 64;

impl<K: Key> Lpm<K> {
    /// `prefixes`: (network, rule) pairs, of both families; this family's
    /// are taken.
    fn build(prefixes: &[(IpNet, u32)], rules: &[Rule], chains: &mut Chains) -> Lpm<K> {
        // Sorted so that outer prefixes come before the ones they contain,
        // and each prefix's rules are in decision order: filtered first,
        // then the order written (routes were numbered before excludes).
        let mut keyed: Vec<(K, K, bool, u32)> = prefixes
            .iter()
            .filter_map(|(net, rule)| {
                let (first, last) = K::net(net)?;
                Some((first, last, !rules[*rule as usize].is_filtered(), *rule))
            })
            .collect();
        keyed.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then(b.1.cmp(&a.1))
                .then((a.2, a.3).cmp(&(b.2, b.3)))
        });
        // Distinct prefixes as (first, last, range of `keyed`).
        let mut nets: Vec<(K, K, usize, usize)> = Vec::new();
        for (i, &(first, last, _, _)) in keyed.iter().enumerate() {
            match nets.last_mut() {
                Some(n) if n.0 == first && n.1 == last => n.3 = i + 1,
                _ => nets.push((first, last, i, i + 1)),
            }
        }

        let mut bounds: Vec<K> = vec![K::ZERO];
        for &(first, last, _, _) in &nets {
            bounds.push(first);
            bounds.extend(last.next());
        }
        bounds.sort_unstable();
        bounds.dedup();

        let mut lpm = Lpm {
            entries: Vec::new(),
            buckets: Vec::new(),
            shift: 0,
        };
        let mut stack: Vec<usize> = Vec::new();
        let mut pending = nets.iter().enumerate().peekable();
        let mut chain = Vec::new();
        for bound in bounds {
            while stack.last().is_some_and(|&n| nets[n].1 < bound) {
                stack.pop();
            }
            while let Some((i, _)) = pending.next_if(|(_, n)| n.0 == bound) {
                stack.push(i);
            }
            chain.clear();
            'chain: for &n in stack.iter().rev() {
                for &(_, _, unfiltered, rule) in &keyed[nets[n].2..nets[n].3] {
                    chain.push(rule);
                    if unfiltered {
                        break 'chain;
                    }
                }
            }
            let span = chains.intern(&chain);
            if lpm.entries.last().map(|e| e.1) != Some(span) {
                lpm.entries.push((bound, span));
            }
        }
        lpm.index();
        lpm
    }

    /// Builds the bucket index, about one bucket per interval.
    fn index(&mut self) {
        let count = self.entries.len();
        if count < BUCKETS_FROM {
            return;
        }
        let bits = (usize::BITS - count.leading_zeros()).min(16);
        self.shift = K::BITS - bits;
        let mut interval = 0;
        self.buckets = (0..1usize << bits)
            .map(|b| {
                let first = K::bucket_start(b, self.shift);
                while interval + 1 < count && self.entries[interval + 1].0 <= first {
                    interval += 1;
                }
                interval as u32
            })
            .chain([(count - 1) as u32])
            .collect();
    }

    #[inline(always)]
    fn lookup(&self, key: K) -> Span {
        // The run's first entry starts at or below key: entries[0] starts
        // at 0 and buckets point at the interval holding their first
        // address. Slices rather than indices: one bounds check each.
        let run = if self.buckets.is_empty() {
            &self.entries[..]
        } else {
            let b = key.bucket(self.shift);
            let edges = &self.buckets[b..b + 2];
            &self.entries[edges[0] as usize..edges[1] as usize + 1]
        };
        // The last entry starting at or below key, by halving: the run's
        // first entry always qualifies. Written out because
        // `partition_point` is not always inlined.
        let (mut low, mut size) = (0, run.len());
        while size > 1 {
            let half = size / 2;
            if run[low + half].0 <= key {
                low += half;
            }
            size -= half;
        }
        run[low].1
    }
}

/// Interned chains, shared by both families. The first `rules.len()`
/// entries are the rule numbers themselves, so a chain of one rule (most
/// of them) needs no entry of its own.
#[derive(Debug)]
struct Chains {
    rules: Vec<u32>,
    seen: HashMap<Vec<u32>, Span>,
}

impl Chains {
    fn new(rule_count: usize) -> Chains {
        Chains {
            rules: (0..rule_count as u32).collect(),
            seen: HashMap::new(),
        }
    }

    fn intern(&mut self, chain: &[u32]) -> Span {
        match *chain {
            [] => Span::default(),
            [rule] => Span {
                start: rule,
                end: rule + 1,
            },
            _ => {
                if let Some(span) = self.seen.get(chain) {
                    return *span;
                }
                let start = self.rules.len() as u32;
                self.rules.extend_from_slice(chain);
                let span = Span {
                    start,
                    end: self.rules.len() as u32,
                };
                self.seen.insert(chain.to_vec(), span);
                span
            }
        }
    }
}

/// A profile compiled for fast decisions.
#[derive(Debug, Clone)]
pub struct Table {
    profile: String,
    on_failure: OnFailure,
    listen: PerFamily,
    dns_options: DnsOptions,
    /// (port, server, origin), sorted by port.
    dns: Vec<(u16, SocketAddr, u32)>,
    /// Number of rules (routes and excludes).
    rule_count: usize,
    /// The profile's own binding, when no rule matches.
    default: Rule,
    bindings: Vec<Binding>,
    origins: Vec<Origin>,
    ports: Vec<PortRange>,
    /// The chains' rules, copied in place rather than numbered, so that
    /// walking a chain is no further load; the first `rule_count` are the
    /// rules in order (each the chain of itself).
    chains: Vec<Rule>,
    v4: Lpm<u32>,
    v6: Lpm<u128>,
}

impl Table {
    /// Compiles a checked profile.
    pub fn compile(profile: &Profile) -> Table {
        let mut bindings: Vec<Binding> = Vec::new();
        let mut origins = Vec::new();
        let mut ports = Vec::new();
        let mut bind = |binding: Binding| {
            let i = bindings
                .iter()
                .position(|b| *b == binding)
                .unwrap_or_else(|| {
                    bindings.push(binding);
                    bindings.len() - 1
                });
            Act::Bind(i as u32)
        };
        let mut origin = |o: &Origin| {
            origins.push(o.clone());
            (origins.len() - 1) as u32
        };

        let default = Rule {
            act: if profile.binding.is_empty() {
                Act::Direct
            } else {
                bind(profile.binding)
            },
            protocol: None,
            ports: (0, 0),
            origin: origin(&profile.origin),
        };
        let mut rules = Vec::new();
        let mut prefixes: Vec<(IpNet, u32)> = Vec::new();
        for route in &profile.routes {
            let first = ports.len() as u32;
            ports.extend_from_slice(&route.ports);
            let act = match route.action {
                Action::Bind => bind(route.binding),
                Action::Direct => Act::Direct,
                Action::Block => Act::Block,
            };
            let index = rules.len() as u32;
            rules.push(Rule {
                act,
                protocol: route.protocol,
                ports: (first, ports.len() as u32),
                origin: origin(&route.origin),
            });
            prefixes.extend(route.to.iter().map(|net| (*net, index)));
        }
        for (net, o) in &profile.exclude {
            let index = rules.len() as u32;
            rules.push(Rule {
                act: Act::Direct,
                protocol: None,
                ports: (0, 0),
                origin: origin(o),
            });
            prefixes.push((*net, index));
        }
        let dns = profile
            .dns
            .iter()
            .map(|r| (r.port, r.server, origin(&r.origin)))
            .collect();

        let mut chains = Chains::new(rules.len());
        let v4 = Lpm::build(&prefixes, &rules, &mut chains);
        let v6 = Lpm::build(&prefixes, &rules, &mut chains);
        Table {
            profile: profile.name.clone(),
            on_failure: profile.on_failure,
            listen: profile.listen,
            dns_options: profile.dns_options.clone(),
            dns,
            rule_count: rules.len(),
            default,
            bindings,
            origins,
            ports,
            chains: chains.rules.iter().map(|&r| rules[r as usize]).collect(),
            v4,
            v6,
        }
    }

    /// The decision for a TCP or UDP destination (see the crate's README
    /// for the order): DNS rewrite first, then the longest matching prefix,
    /// then the profile's own binding.
    #[inline]
    pub fn decide(&self, destination: SocketAddr, protocol: Protocol) -> Decision<'_> {
        // The common case, small enough to inline into a caller: an IPv4
        // destination in a profile that rewrites nothing.
        if destination.is_ipv4() && self.dns.is_empty() {
            return self.decision(destination, None, protocol);
        }
        self.decide_rewritten(destination, protocol)
    }

    /// [`Table::decide`] for IPv6 destinations (which may be IPv4-mapped)
    /// and profiles with DNS rewrites.
    #[inline(never)]
    fn decide_rewritten(&self, destination: SocketAddr, protocol: Protocol) -> Decision<'_> {
        // Unmapping rebuilds the address; anything else keeps its scope id
        // and flow label.
        let mut destination = match destination {
            SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(v4.into(), a.port()),
                None => destination,
            },
            SocketAddr::V4(_) => destination,
        };
        let mut rewrite = None;
        if let Ok(i) = self.dns.binary_search_by_key(&destination.port(), |d| d.0) {
            let (_, server, origin) = self.dns[i];
            destination = server;
            rewrite = Some(&self.origins[origin as usize]);
        }
        self.decision(destination, rewrite, protocol)
    }

    /// The decision for a destination already rewritten.
    #[inline(always)]
    fn decision<'t>(
        &'t self,
        destination: SocketAddr,
        rewrite: Option<&'t Origin>,
        protocol: Protocol,
    ) -> Decision<'t> {
        let rule = if self.rule_count == 0 {
            &self.default
        } else {
            self.matching(destination, protocol)
        };
        Decision {
            verdict: match rule.act {
                Act::Direct => Verdict::Direct,
                Act::Bind(b) => Verdict::Bind(&self.bindings[b as usize]),
                Act::Block => Verdict::Block,
            },
            destination,
            rewrite,
            origin: &self.origins[rule.origin as usize],
        }
    }

    /// The first rule of the destination's chain that takes this protocol
    /// and port, or the profile's own binding.
    #[inline(always)]
    fn matching(&self, destination: SocketAddr, protocol: Protocol) -> &Rule {
        let span = match destination.ip() {
            IpAddr::V4(a) => self.v4.lookup(a.into()),
            IpAddr::V6(a) => self.v6.lookup(a.into()),
        };
        // Most addresses are matched by no prefix: no chain to walk.
        if span.start == span.end {
            return &self.default;
        }
        let chain = &self.chains[span.start as usize..span.end as usize];
        // Most chains are one rule without filters, which decides alone.
        if let [only] = chain {
            if !only.is_filtered() {
                return only;
            }
        }
        let port = destination.port();
        chain
            .iter()
            .find(|rule| {
                rule.protocol.is_none_or(|p| p == protocol)
                    && (rule.ports.0 == rule.ports.1
                        || self.ports[rule.ports.0 as usize..rule.ports.1 as usize]
                            .iter()
                            .any(|r| r.contains(port)))
            })
            .unwrap_or(&self.default)
    }

    /// The profile's name.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// What to do when a binding cannot be made.
    pub fn on_failure(&self) -> OnFailure {
        self.on_failure
    }

    /// Replacement addresses for wildcard binds.
    pub fn listen(&self) -> PerFamily {
        self.listen
    }

    /// The server port-53 traffic goes to, if the profile has one.
    pub fn dns_server(&self) -> Option<SocketAddr> {
        self.dns.iter().find(|d| d.0 == 53).map(|d| d.1)
    }

    /// Resolver settings of the profile.
    pub fn dns_options(&self) -> &DnsOptions {
        &self.dns_options
    }

    /// Every distinct binding the table can choose.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Number of rules (routes and excludes).
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }
}
