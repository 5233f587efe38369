//! The compiled decision table.
//!
//! Each address family has a sorted list of interval starts that partitions
//! its whole address space: every address in one interval is matched by the
//! same set of prefixes. Each interval holds one 32-bit *value*, its answer:
//! either a *leaf*, the verdict and the deciding rule's origin packed side
//! by side, for the usual interval whose best prefix has one rule without
//! port or protocol filter (or no prefix at all: the profile's own
//! binding); or the start of a precomputed *chain*, the rules of those
//! prefixes in decision order (longest prefix first; at equal length, rules
//! with a port or protocol filter first, then routes before excludes, then
//! the order written), cut after the first rule without a filter, since
//! nothing after it can ever decide, and ending with the profile's own
//! binding where no rule is unfiltered.
//!
//! Once the table is large (64 intervals or more), a direct index on the
//! top bits of the address (up to 32 768 buckets, about one per two IPv4
//! or four IPv6 intervals) gives each bucket a *slot* of one cache line
//! (two for IPv6) that holds the bucket's intervals itself, up to 8 of
//! IPv4 or 7 of IPv6: a lookup finds the address among them in three
//! compares, without branches, and takes that value. A bucket with more intervals
//! points instead at its own run of entries, searched by halving, as the
//! one run of a small table is. A lookup is then usually one load from
//! memory, plus a chain's rules only for filtered ones: no allocation, no
//! lock, and a cost that does not follow the rule count.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::addr::{PerFamily, PortRange};
use crate::profile::{
    Action, Binding, DnsOptions, LOOPBACK, OnFailure, Origin, Profile, Protocol, RuleKind,
};

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

/// A [`Verdict`] as a table stores it: its place in [`Table::verdicts`],
/// leave alone, block, then each of [`Table::bindings`] in order. One
/// number, so that a leaf holds it in a few bits and the hooks index their
/// own per-verdict arrays with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VerdictId(u32);

impl VerdictId {
    /// [`Verdict::Direct`].
    pub const DIRECT: VerdictId = VerdictId(0);
    /// [`Verdict::Block`].
    pub const BLOCK: VerdictId = VerdictId(1);
    /// How many ids come before the first binding's.
    const BINDINGS_FROM: u32 = 2;

    /// [`Verdict::Bind`] to binding `n` of [`Table::bindings`].
    fn bind(n: usize) -> VerdictId {
        VerdictId(u32::try_from(n).map_or(u32::MAX, |n| n.saturating_add(Self::BINDINGS_FROM)))
    }

    /// How many ids a table of `bindings` bindings has.
    fn count(bindings: usize) -> usize {
        bindings.saturating_add(Self::BINDINGS_FROM as usize)
    }

    /// Its place in [`Table::verdicts`].
    #[inline(always)]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    verdict: VerdictId,
    origin: u32,
    /// Index in `Table::filters`.
    filter: u32,
}

impl Rule {
    fn is_filtered(&self) -> bool {
        self.filter != 0
    }
}

/// Which connections a rule takes. Filters are interned, the one that
/// takes everything first, so that the few a table has stay in cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Filter {
    protocol: Option<Protocol>,
    /// Range of `Table::ports`; empty means every port.
    ports: (u32, u32),
}

impl Filter {
    const ANY: Filter = Filter {
        protocol: None,
        ports: (0, 0),
    };
}

/// In a bucket only: the bucket's intervals are the run of `Lpm::entries`
/// starting at the index below this bit.
const RUN: u32 = 1 << 31;
/// The interval's chain starts at the index of `Table::chains` below this
/// bit. Without it (and without [`RUN`]), the value is a leaf
/// ([`LeafLayout`]).
const CHAIN: u32 = 1 << 30;

/// One entry of a run: where an interval starts, and its value. The first
/// entry of each run holds the run's length in place of its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interval<S> {
    start: S,
    value: u32,
}

/// Longest-prefix match over one family, keyed by the address as an integer.
#[derive(Debug, Clone)]
struct Lpm<K: Key> {
    /// For big tables, by the top bits of the address: the bucket's
    /// intervals in one cache line, or (where they do not fit) [`RUN`] and
    /// where their run of `entries` starts.
    slots: Vec<K::Slot>,
    /// Runs of intervals: the one run of a small table, or those of the
    /// buckets too full for their slot. The first entry of a run is the
    /// interval holding the bucket's first address; those after it start
    /// inside the bucket. The search and the answer share cache lines.
    entries: Vec<Interval<K::Stored>>,
    /// Shift that turns an address into its bucket.
    shift: u32,
}

/// A bucket's intervals in one or two cache lines: `values[0]` from the
/// bucket's first address on, `values[i]` from `starts[i - 1]` on. Unused
/// starts are the family's last address, their values the last one used,
/// so a search by halving needs no length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
struct Slot<S, const V: usize, const N: usize> {
    values: [u32; V],
    starts: [S; N],
}

trait Slots<S>: Copy + std::fmt::Debug {
    fn parts(&self) -> (&[u32], &[S]);
    fn new(fill: S) -> Self;
    fn parts_mut(&mut self) -> (&mut [u32], &mut [S]);
}

impl<S: Copy + std::fmt::Debug, const V: usize, const N: usize> Slots<S> for Slot<S, V, N> {
    #[inline(always)]
    fn parts(&self) -> (&[u32], &[S]) {
        (&self.values, &self.starts)
    }
    fn new(fill: S) -> Self {
        Slot {
            values: [0; V],
            starts: [fill; N],
        }
    }
    fn parts_mut(&mut self) -> (&mut [u32], &mut [S]) {
        (&mut self.values, &mut self.starts)
    }
}

trait Key: Copy + Ord + Hash + std::fmt::Debug {
    /// The key as an entry holds it: IPv6 keys as two words, so that an
    /// entry is 8-byte aligned (24 bytes rather than 32).
    type Stored: Copy + Eq + std::fmt::Debug;
    /// A bucket's slot: 64 bytes and 8 intervals of IPv4, 128 bytes and
    /// 7 of IPv6.
    type Slot: Slots<Self::Stored>;
    const ZERO: Self;
    const MAX: Self;
    /// Halvings of the slot count, against one slot per two intervals.
    const FEWER_SLOTS: u32;
    const BITS: u32;
    fn net(net: &IpNet) -> Option<(Self, Self)>;
    fn next(self) -> Option<Self>;
    fn bucket(self, shift: u32) -> usize;
    fn bucket_start(bucket: usize, shift: u32) -> Self;
    fn store(self) -> Self::Stored;
    fn load(stored: Self::Stored) -> Self;
    fn from_len(len: usize) -> Self;
    fn to_len(self) -> usize;
}

macro_rules! key_impl {
    ($int:ty, $variant:ident, $stored:ty, $slot:ty, $fewer:expr, $store:expr, $load:expr) => {
        impl Key for $int {
            type Stored = $stored;
            type Slot = $slot;
            const ZERO: Self = 0;
            const MAX: Self = <$int>::MAX;
            const FEWER_SLOTS: u32 = $fewer;
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
            #[inline(always)]
            fn bucket(self, shift: u32) -> usize {
                (self >> shift) as usize
            }
            fn bucket_start(bucket: usize, shift: u32) -> Self {
                (bucket as $int) << shift
            }
            #[inline(always)]
            fn store(self) -> $stored {
                $store(self)
            }
            #[inline(always)]
            fn load(stored: $stored) -> Self {
                $load(stored)
            }
            fn from_len(len: usize) -> Self {
                len as $int
            }
            #[inline(always)]
            fn to_len(self) -> usize {
                self as usize
            }
        }
    };
}
// IPv4 starts fill the line to 8, the last never read.
key_impl!(u32, V4, u32, Slot<u32, 8, 8>, 0, |k| k, |s| s);
key_impl!(
    u128,
    V6,
    [u64; 2],
    Slot<[u64; 2], 7, 6>,
    1,
    |k: u128| [(k >> 64) as u64, k as u64],
    |s: [u64; 2]| u128::from(s[0]) << 64 | u128::from(s[1])
);

/// Interval count from which slots are built; below it a plain binary
/// search is as fast, and the table stays small.
const BUCKETS_FROM: usize = 64;
/// Most bits of the bucket index: 32 768 slots, 2 MiB of IPv4, 4 of IPv6.
const BUCKET_BITS: u32 = 15;

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

        let mut intervals: Vec<(K, u32)> = Vec::new();
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
            let value = chains.value(&chain);
            if intervals.last().map(|e| e.1) != Some(value) {
                intervals.push((bound, value));
            }
        }
        Lpm::index(&intervals)
    }

    /// The lookup structure for `intervals`: (start, value), starting at
    /// zero, rising, no two neighbours with the same value.
    fn index(intervals: &[(K, u32)]) -> Lpm<K> {
        let count = intervals.len();
        let mut lpm = Lpm {
            slots: Vec::new(),
            entries: Vec::new(),
            shift: 0,
        };
        if count < BUCKETS_FROM {
            lpm.push_run(intervals);
            return lpm;
        }
        // About one slot per two intervals (IPv4) or four (IPv6).
        let bits = (usize::BITS - 1 - count.leading_zeros())
            .saturating_sub(K::FEWER_SLOTS)
            .min(BUCKET_BITS);
        lpm.shift = K::BITS - bits;
        let mut first = 0;
        lpm.slots = (0..1usize << bits)
            .map(|b| {
                // `first`: the interval holding the bucket's first address;
                // `last`: the one holding its last.
                let start = K::bucket_start(b, lpm.shift);
                while first + 1 < count && intervals[first + 1].0 <= start {
                    first += 1;
                }
                let mut last = first;
                while last + 1 < count && intervals[last + 1].0.bucket(lpm.shift) == b {
                    last += 1;
                }
                let mut slot = K::Slot::new(K::MAX.store());
                let (values, starts) = slot.parts_mut();
                if last - first < values.len() {
                    let run = &intervals[first..=last];
                    values.fill(run[run.len() - 1].1);
                    values[0] = run[0].1;
                    for (i, &(start, value)) in run.iter().enumerate().skip(1) {
                        starts[i - 1] = start.store();
                        values[i] = value;
                    }
                } else {
                    values[0] = RUN | lpm.entries.len() as u32;
                    lpm.push_run(&intervals[first..=last]);
                }
                slot
            })
            .collect();
        lpm
    }

    fn push_run(&mut self, run: &[(K, u32)]) {
        self.entries
            .extend(run.iter().enumerate().map(|(i, &(start, value))| {
                Interval {
                    start: if i == 0 {
                        K::from_len(run.len())
                    } else {
                        start
                    }
                    .store(),
                    value,
                }
            }));
    }

    /// The intervals [`Lpm::index`] was given.
    fn intervals(&self) -> Vec<(K, u32)> {
        // Every bucket's value, or run, from its first address on; then
        // neighbours with the same value merged back.
        let mut all: Vec<(K, u32)> = Vec::new();
        let run = |all: &mut Vec<(K, u32)>, at: usize, start: K| {
            let len = K::load(self.entries[at].start).to_len();
            for (i, e) in self.entries[at..at + len].iter().enumerate() {
                all.push((if i == 0 { start } else { K::load(e.start) }, e.value));
            }
        };
        if self.slots.is_empty() {
            run(&mut all, 0, K::ZERO);
        } else {
            // Unused starts come last, with the last value used: merged.
            for (b, slot) in self.slots.iter().enumerate() {
                let start = K::bucket_start(b, self.shift);
                let (values, starts) = slot.parts();
                if values[0] & RUN == 0 {
                    all.push((start, values[0]));
                    all.extend(
                        starts
                            .iter()
                            .map(|&s| K::load(s))
                            .zip(values[1..].iter().copied()),
                    );
                } else {
                    run(&mut all, (values[0] & !RUN) as usize, start);
                }
            }
        }
        all.dedup_by_key(|e| e.1);
        all
    }

    #[inline(always)]
    fn lookup(&self, key: K) -> u32 {
        let run = if self.slots.is_empty() {
            &self.entries[..]
        } else {
            let (values, starts) = self.slots[key.bucket(self.shift)].parts();
            if values[0] & RUN == 0 {
                // Unused starts are the family's last address, where every
                // value from the last used on is the same.
                return values[last_at_or_below(values.len(), key, |i| K::load(starts[i - 1]))];
            }
            let run = &self.entries[(values[0] & !RUN) as usize..];
            &run[..K::load(run[0].start).to_len()]
        };
        run[last_at_or_below(run.len(), key, |i| K::load(run[i].start))].value
    }
}

/// Of `len` intervals, the first of which holds `key`, the last one whose
/// start (`start(i)`, never asked for 0) is at or below it, by halving.
/// Written out because `partition_point` is not always inlined, and with
/// a select rather than a branch that random keys mispredict; a slot's
/// fixed length unrolls it to three compares.
#[inline(always)]
fn last_at_or_below<K: Ord>(len: usize, key: K, start: impl Fn(usize) -> K) -> usize {
    let (mut low, mut size) = (0, len);
    while size > 1 {
        let half = size / 2;
        low = [low, low + half][usize::from(start(low + half) <= key)];
        size -= half;
    }
    low
}

/// Turns each interval's chain into its value: a leaf where one can say
/// it, else a chain of `links`, interned.
#[derive(Debug)]
struct Chains<'r> {
    rules: &'r [Rule],
    default: Rule,
    leaves: LeafLayout,
    links: Vec<Rule>,
    seen: HashMap<Vec<u32>, u32>,
}

impl Chains<'_> {
    fn value(&mut self, chain: &[u32]) -> u32 {
        let alone = match *chain {
            [] => Some(self.default),
            [rule] => Some(self.rules[rule as usize]).filter(|r| !r.is_filtered()),
            _ => None,
        };
        if let Some(leaf) = alone.and_then(|r| self.leaves.leaf(r.verdict, r.origin)) {
            return leaf;
        }
        if let Some(&value) = self.seen.get(chain) {
            return value;
        }
        let start = self.links.len() as u32;
        assert!(start < CHAIN, "more chained rules than a table can hold");
        self.links
            .extend(chain.iter().map(|&r| self.rules[r as usize]));
        if chain
            .last()
            .is_none_or(|&r| self.rules[r as usize].is_filtered())
        {
            self.links.push(self.default);
        }
        self.seen.insert(chain.to_vec(), CHAIN | start);
        CHAIN | start
    }
}

/// `destination` with an IPv4-mapped IPv6 address made IPv4, as it is
/// decided. Unmapping rebuilds the address; anything else keeps its scope
/// id and flow label.
#[inline(always)]
fn unmapped(destination: SocketAddr) -> SocketAddr {
    match destination {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), a.port()),
            None => destination,
        },
        SocketAddr::V4(_) => destination,
    }
}

/// How a leaf holds its [`VerdictId`] and origin: the verdict in the low
/// bits, as few as a table's verdicts need, so that the hooks' question
/// (the verdict alone) is one mask; the origin's index above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LeafLayout {
    /// Bits of the verdict (at most 30: a table with more verdicts has no
    /// leaves).
    bits: u32,
    /// Those bits set: kept rather than derived, so that the verdict is one
    /// `and` with a loaded word.
    mask: u32,
}

impl LeafLayout {
    /// The layout for a table of `bindings` bindings.
    fn new(bindings: usize) -> LeafLayout {
        let verdicts = VerdictId::count(bindings);
        let bits = (usize::BITS - (verdicts - 1).leading_zeros()).min(30);
        LeafLayout {
            bits,
            mask: !(u32::MAX << bits),
        }
    }

    /// The leaf for this verdict and origin, if both fit below [`CHAIN`].
    fn leaf(self, verdict: VerdictId, origin: u32) -> Option<u32> {
        let leaf = u64::from(origin) << self.bits | u64::from(verdict.0);
        (verdict.0 & !self.mask == 0 && leaf < u64::from(CHAIN)).then_some(leaf as u32)
    }

    #[inline(always)]
    fn verdict(self, leaf: u32) -> VerdictId {
        VerdictId(leaf & self.mask)
    }

    #[inline(always)]
    fn origin(self, leaf: u32) -> u32 {
        leaf >> self.bits
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
    /// Number of rules: routes, excludes and the loopback rule.
    rule_count: usize,
    /// The profile's own binding, when no rule matches.
    default: Rule,
    bindings: Vec<Binding>,
    origins: Vec<Origin>,
    /// Distinct filters, [`Filter::ANY`] first.
    filters: Vec<Filter>,
    ports: Vec<PortRange>,
    /// The chains' rules, copied in place rather than numbered, so that
    /// walking a chain is no further load; each chain ends with a rule
    /// without filter.
    chains: Vec<Rule>,
    /// How leaves hold their verdict and origin.
    leaves: LeafLayout,
    v4: Lpm<u32>,
    v6: Lpm<u128>,
}

impl Table {
    /// Compiles a checked profile.
    pub fn compile(profile: &Profile) -> Table {
        let mut bindings: Vec<Binding> = Vec::new();
        let mut origins = Vec::new();
        let mut ports = Vec::new();
        let mut filters = vec![Filter::ANY];
        // By protocol and ports as (first, last).
        type FilterKey = (Option<Protocol>, Vec<(u16, u16)>);
        let mut seen_filters: HashMap<FilterKey, u32> = HashMap::from([((None, Vec::new()), 0)]);
        let mut filter = |protocol: Option<Protocol>, list: &[PortRange]| {
            let key = (protocol, list.iter().map(|p| (p.first, p.last)).collect());
            *seen_filters.entry(key).or_insert_with(|| {
                let first = ports.len() as u32;
                ports.extend_from_slice(list);
                filters.push(Filter {
                    protocol,
                    ports: (first, ports.len() as u32),
                });
                (filters.len() - 1) as u32
            })
        };
        let mut bind = |binding: Binding| {
            let i = bindings
                .iter()
                .position(|b| *b == binding)
                .unwrap_or_else(|| {
                    bindings.push(binding);
                    bindings.len() - 1
                });
            VerdictId::bind(i)
        };
        let mut origin = |o: &Origin| {
            origins.push(o.clone());
            (origins.len() - 1) as u32
        };

        let default = Rule {
            verdict: if profile.binding.is_empty() {
                VerdictId::DIRECT
            } else {
                bind(profile.binding)
            },
            origin: origin(&profile.origin),
            filter: 0,
        };
        let mut rules = Vec::new();
        let mut prefixes: Vec<(IpNet, u32)> = Vec::new();
        for route in &profile.routes {
            let verdict = match route.action {
                Action::Bind => bind(route.binding),
                Action::Direct => VerdictId::DIRECT,
                Action::Block => VerdictId::BLOCK,
            };
            let index = rules.len() as u32;
            rules.push(Rule {
                verdict,
                origin: origin(&route.origin),
                filter: filter(route.protocol, &route.ports),
            });
            prefixes.extend(route.to.iter().map(|net| (*net, index)));
        }
        for (net, o) in &profile.exclude {
            let index = rules.len() as u32;
            rules.push(Rule {
                verdict: VerdictId::DIRECT,
                origin: origin(o),
                filter: 0,
            });
            prefixes.push((*net, index));
        }
        // Last, so that any rule of the profile of the same prefix length
        // comes first in the decision order.
        let index = rules.len() as u32;
        rules.push(Rule {
            verdict: VerdictId::DIRECT,
            origin: origin(&Origin {
                profile: profile.origin.profile.clone(),
                kind: RuleKind::Loopback,
                location: None,
            }),
            filter: 0,
        });
        prefixes.extend(LOOPBACK.map(|net| (net, index)));
        let dns = profile
            .dns
            .iter()
            .map(|r| (r.port, r.server, origin(&r.origin)))
            .collect();

        let leaves = LeafLayout::new(bindings.len());
        let mut chains = Chains {
            rules: &rules,
            default,
            leaves,
            links: Vec::new(),
            seen: HashMap::new(),
        };
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
            filters,
            ports,
            chains: chains.links,
            leaves,
            v4,
            v6,
        }
    }

    /// The decision for a TCP or UDP destination (see the crate's README
    /// for the order): DNS rewrite first, then the longest matching prefix
    /// (loopback's own rule among them, last at its length), then the
    /// profile's own binding.
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
        let mut destination = unmapped(destination);
        let mut rewrite = None;
        let port = destination.port();
        let servers = &self.dns[self.dns.partition_point(|d| d.0 < port)..];
        let servers = &servers[..servers.iter().take_while(|d| d.0 == port).count()];
        // The server of the destination's family, else the only one: an
        // IPv6-only socket can reach an IPv6 server alone.
        if let Some(&(_, server, origin)) = servers
            .iter()
            .find(|d| d.1.is_ipv4() == destination.is_ipv4())
            .or(servers.first())
        {
            destination = server;
            rewrite = Some(&self.origins[origin as usize]);
        }
        self.decision(destination, rewrite, protocol)
    }

    /// The verdict for `destination` as it is, not rewritten, by its id,
    /// for a caller that keeps something of its own per verdict: the
    /// verdict [`Table::decide`] gives unless the table
    /// [`Table::rewrites`]. Leaner than `decide` once inlined: no
    /// destination or origin to carry out, and no rewrite to look for.
    #[inline(always)]
    pub fn verdict_id(&self, destination: SocketAddr, protocol: Protocol) -> VerdictId {
        self.matching(unmapped(destination), protocol).0
    }

    /// Whether the profile rewrites some destinations (DNS).
    pub fn rewrites(&self) -> bool {
        !self.dns.is_empty()
    }

    /// Every verdict the table can give, each once, in the order of their
    /// [`VerdictId`]s: leave alone, block, then each of [`Table::bindings`].
    pub fn verdicts(&self) -> impl ExactSizeIterator<Item = Verdict<'_>> {
        (0..VerdictId::count(self.bindings.len()) as u32).map(|id| self.verdict(VerdictId(id)))
    }

    /// The decision for a destination already rewritten.
    #[inline(always)]
    fn decision<'t>(
        &'t self,
        destination: SocketAddr,
        rewrite: Option<&'t Origin>,
        protocol: Protocol,
    ) -> Decision<'t> {
        let (verdict, origin) = self.matching(destination, protocol);
        Decision {
            verdict: self.verdict(verdict),
            destination,
            rewrite,
            origin: &self.origins[origin as usize],
        }
    }

    /// The verdict an id stands for.
    #[inline(always)]
    fn verdict(&self, id: VerdictId) -> Verdict<'_> {
        match id {
            VerdictId::DIRECT => Verdict::Direct,
            VerdictId::BLOCK => Verdict::Block,
            VerdictId(n) => Verdict::Bind(&self.bindings[(n - VerdictId::BINDINGS_FROM) as usize]),
        }
    }

    /// The verdict and origin of the first rule of the destination's chain
    /// that takes this protocol and port, or of the profile's own binding.
    /// Every table has a rule (loopback's), so every destination is looked
    /// up.
    #[inline(always)]
    fn matching(&self, destination: SocketAddr, protocol: Protocol) -> (VerdictId, u32) {
        let value = match destination.ip() {
            IpAddr::V4(a) => self.v4.lookup(a.into()),
            IpAddr::V6(a) => self.v6.lookup(a.into()),
        };
        // Most intervals decide alone: no chain to walk.
        if value & CHAIN == 0 {
            return (self.leaves.verdict(value), self.leaves.origin(value));
        }
        let rule = self.walk((value & !CHAIN) as usize, destination.port(), protocol);
        (rule.verdict, rule.origin)
    }

    /// The first rule of the chain at `start` that takes this protocol and
    /// port; a chain ends with a rule that takes any.
    #[inline(never)]
    fn walk(&self, start: usize, port: u16, protocol: Protocol) -> &Rule {
        self.chains[start..]
            .iter()
            .find(|rule| {
                let filter = &self.filters[rule.filter as usize];
                filter.protocol.is_none_or(|p| p == protocol)
                    && (filter.ports.0 == filter.ports.1
                        || self.ports[filter.ports.0 as usize..filter.ports.1 as usize]
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

    /// The servers port-53 traffic goes to (none, one, or one per family,
    /// IPv4 first): the profile's DNS servers.
    pub fn dns_servers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.dns.iter().filter(|d| d.0 == 53).map(|d| d.1)
    }

    /// Resolver settings of the profile.
    pub fn dns_options(&self) -> &DnsOptions {
        &self.dns_options
    }

    /// The profile's own verdict (what a destination no rule matches
    /// gets) and where the profile says it.
    pub fn own(&self) -> (Verdict<'_>, &Origin) {
        (
            self.verdict(self.default.verdict),
            &self.origins[self.default.origin as usize],
        )
    }

    /// Every distinct binding the table can choose.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value `intervals` give `key`, the slow way.
    fn naive<K: Key>(intervals: &[(K, u32)], key: K) -> u32 {
        intervals.iter().rev().find(|e| e.0 <= key).unwrap().1
    }

    /// Intervals at `starts` (plus 0) with distinct values, looked up at
    /// each start, next to it, and at both ends of the space.
    fn check<K: Key + std::ops::Sub<Output = K>>(mut starts: Vec<K>, one: K) {
        starts.push(K::ZERO);
        starts.sort_unstable();
        starts.dedup();
        let intervals: Vec<(K, u32)> = starts.iter().zip(0..).map(|(&k, v)| (k, v)).collect();
        let lpm = Lpm::index(&intervals);
        assert_eq!(lpm.slots.is_empty(), intervals.len() < BUCKETS_FROM);
        assert_eq!(lpm.intervals(), intervals);
        let near = starts.iter().flat_map(|&k| {
            [(k != K::ZERO).then(|| k - one), Some(k), k.next()]
                .into_iter()
                .flatten()
        });
        for key in near.chain([K::ZERO, K::MAX]) {
            assert_eq!(lpm.lookup(key), naive(&intervals, key), "{key:?}");
        }
    }

    /// SplitMix64.
    fn random(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Small tables, big ones whose slots hold their buckets, buckets too
    /// crowded for their slot (a run of starts close together), and an
    /// interval starting at the last address, which unused starts equal.
    #[test]
    fn lookups_find_the_interval_holding_the_address() {
        let mut state = 7;
        for count in [0, 5, 62, 63, 64, 200, 5000] {
            for crowd in [0, 3, 40] {
                let mut v4: Vec<u32> = (0..count).map(|_| random(&mut state) as u32).collect();
                v4.extend((0..crowd).map(|i| 0x0a00_0000 + 3 * i));
                let mut v6: Vec<u128> = (0..count)
                    .map(|_| u128::from(random(&mut state)) << 64 | u128::from(random(&mut state)))
                    .collect();
                v6.extend((0..crowd).map(|i| 0x2001_0db8 << 96 | u128::from(i) << 40));
                check(v4.clone(), 1);
                check(v6.clone(), 1);
                v4.push(u32::MAX);
                v6.push(u128::MAX);
                check(v4, 1);
                check(v6, 1);
            }
        }
    }
}
