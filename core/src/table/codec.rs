//! A compiled table as bytes, for [`crate::cache`]: little-endian integers
//! of fixed width, lists prefixed by their length.
//!
//! A submodule of `table`, so that the table's layout stays private there.
//! Decoding checks every length against the bytes left (a corrupt length
//! cannot make it allocate much) and every index against what it points
//! into, and stores each family as its plain list of intervals, from which
//! it rebuilds the slots and runs rather than trusting stored ones:
//! whatever the bytes, the result is `None` or a table whose lookups stay
//! in bounds.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use super::{CHAIN, Filter, Key, Leaves, Lpm, RUN, Rule, Table};
use crate::addr::{IfName, PerFamily, PortRange};
use crate::profile::{Binding, DnsOptions, OnFailure, Origin, Protocol, RuleKind};

impl Table {
    /// The table as bytes; `None` for a table that names an older tool's
    /// variable (those come from the environment alone, never cached).
    pub(crate) fn encode(&self) -> Option<Vec<u8>> {
        // Every field named, so that a field added to Table does not
        // compile until it is written here (and read in `decode`, and
        // cache::FORMAT bumped: the golden test below checks that).
        let Table {
            profile,
            on_failure,
            listen,
            dns_options,
            dns,
            rule_count,
            default,
            bindings,
            origins,
            filters,
            ports,
            chains,
            // Follows from the number of bindings; `decode` rebuilds it.
            leaves: _,
            v4,
            v6,
        } = self;
        let DnsOptions {
            search,
            ndots,
            timeout_ms,
            attempts,
        } = dns_options;
        let mut w = Writer::default();
        w.bytes(profile.as_bytes());
        w.u8(match on_failure {
            OnFailure::Block => 0,
            OnFailure::Allow => 1,
        });
        w.per_family(*listen);
        w.option(search.as_ref(), |w, list| {
            w.list(list, |w, s| w.bytes(s.as_bytes()));
        });
        w.option(*ndots, Writer::u8);
        w.option(*timeout_ms, Writer::u32);
        w.option(*attempts, Writer::u8);
        w.list(dns, |w, &(port, server, origin)| {
            w.u16(port);
            w.socket_addr(server);
            w.u32(origin);
        });
        w.u64(*rule_count as u64);
        w.rule(default);
        w.list(bindings, |w, b| {
            w.option(b.interface, |w, name| w.bytes(name.as_str().as_bytes()));
            w.per_family(b.source);
        });
        w.origins(origins)?;
        w.list(ports, |w, p| {
            w.u16(p.first);
            w.u16(p.last);
        });
        w.list(filters, |w, f| {
            w.u8(match f.protocol {
                None => 0,
                Some(Protocol::Tcp) => 1,
                Some(Protocol::Udp) => 2,
            });
            w.u32(f.ports.0);
            w.u32(f.ports.1);
        });
        w.list(chains, Writer::rule);
        w.list(&v4.intervals(), |w, &(k, value)| {
            w.u32(k);
            w.u32(value);
        });
        w.list(&v6.intervals(), |w, &(k, value)| {
            w.u128(k);
            w.u32(value);
        });
        Some(w.0)
    }

    /// The table `encode` made these bytes from, or `None` if they are not
    /// exactly such bytes.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Table> {
        let mut r = Reader(bytes);
        let profile = std::str::from_utf8(r.bytes()?).ok()?.to_owned();
        let on_failure = match r.u8()? {
            0 => OnFailure::Block,
            1 => OnFailure::Allow,
            _ => return None,
        };
        let listen = r.per_family()?;
        let dns_options = DnsOptions {
            search: r.option(|r| {
                r.list(4, |r| {
                    Some(std::str::from_utf8(r.bytes()?).ok()?.to_owned())
                })
            })?,
            ndots: r.option(Reader::u8)?,
            timeout_ms: r.option(Reader::u32)?,
            attempts: r.option(Reader::u8)?,
        };
        let dns: Vec<(u16, SocketAddr, u32)> =
            r.list(13, |r| Some((r.u16()?, r.socket_addr()?, r.u32()?)))?;
        let rule_count = usize::try_from(r.u64()?).ok()?;
        let default = r.rule()?;
        let bindings = r.list(2, |r| {
            Some(Binding {
                interface: r.option(|r| IfName::new(std::str::from_utf8(r.bytes()?).ok()?).ok())?,
                source: r.per_family()?,
            })
        })?;
        let origins = r.origins()?;
        let ports = r.list(4, |r| {
            let (first, last) = (r.u16()?, r.u16()?);
            (first <= last).then_some(PortRange { first, last })
        })?;
        let filters = r.list(9, |r| {
            let protocol = match r.u8()? {
                0 => None,
                1 => Some(Protocol::Tcp),
                2 => Some(Protocol::Udp),
                _ => return None,
            };
            let range = (r.u32()?, r.u32()?);
            (range.0 <= range.1 && range.1 as usize <= ports.len()).then_some(Filter {
                protocol,
                ports: range,
            })
        })?;
        let chains = r.list(RULE_SIZE, Reader::rule)?;
        let v4 = r.intervals(8, Reader::u32)?;
        let v6 = r.intervals(20, Reader::u128)?;
        if !r.0.is_empty() {
            return None;
        }

        let leaves = Leaves::new(bindings.len());
        let act_ok = |act: u32| (act as usize) < bindings.len() + 2;
        let rule_ok = |rule: &Rule| {
            act_ok(rule.act)
                && (rule.origin as usize) < origins.len()
                && (rule.filter as usize) < filters.len()
        };
        let value_ok = |value: u32| {
            if value & RUN != 0 {
                false
            } else if value & CHAIN != 0 {
                ((value & !CHAIN) as usize) < chains.len()
            } else {
                act_ok(leaves.act(value)) && (leaves.origin(value) as usize) < origins.len()
            }
        };
        // Every walk along `chains` stops at a rule without filter at the
        // latest: the last one is.
        let valid = rule_ok(&default)
            && chains.iter().all(rule_ok)
            && filters.first() == Some(&Filter::ANY)
            && chains.last().is_none_or(|r| !r.is_filtered())
            && origins.len() == 1 + rule_count.checked_add(dns.len())?
            && dns.iter().all(|d| (d.2 as usize) < origins.len())
            && dns
                .windows(2)
                .all(|w| (w[0].0, w[0].1.is_ipv6()) < (w[1].0, w[1].1.is_ipv6()))
            && v4.iter().all(|e| value_ok(e.1))
            && v6.iter().all(|e| value_ok(e.1));
        valid.then(|| Table {
            profile,
            on_failure,
            listen,
            dns_options,
            dns,
            rule_count,
            default,
            bindings,
            origins,
            filters,
            ports,
            chains,
            leaves,
            v4: Lpm::index(&v4),
            v6: Lpm::index(&v6),
        })
    }
}

/// Bytes of one encoded [`Rule`].
const RULE_SIZE: usize = 12;

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn len(&mut self, len: usize) {
        // Nothing in a table comes near 4 G entries; a length that did
        // would make the file unreadable, never wrong.
        self.u32(u32::try_from(len).unwrap_or(u32::MAX));
    }

    fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.0.extend_from_slice(v);
    }

    fn list<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Writer, &T)) {
        self.len(items.len());
        for item in items {
            each(self, item);
        }
    }

    fn option<T>(&mut self, v: Option<T>, some: impl FnOnce(&mut Writer, T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                some(self, v);
            }
        }
    }

    fn per_family(&mut self, v: PerFamily) {
        self.option(v.v4, |w, a| w.u32(a.into()));
        self.option(v.v6, |w, a| w.u128(a.into()));
    }

    fn socket_addr(&mut self, v: SocketAddr) {
        match v {
            SocketAddr::V4(a) => {
                self.u8(4);
                self.u32((*a.ip()).into());
                self.u16(a.port());
            }
            SocketAddr::V6(a) => {
                self.u8(6);
                self.u128((*a.ip()).into());
                self.u16(a.port());
                self.u32(a.flowinfo());
                self.u32(a.scope_id());
            }
        }
    }

    fn rule(&mut self, rule: &Rule) {
        self.u32(rule.act);
        self.u32(rule.origin);
        self.u32(rule.filter);
    }

    /// The origins, their profile names and paths written once each in a
    /// list of their own and named by index: 10 000 rules share one file.
    fn origins(&mut self, origins: &[Origin]) -> Option<()> {
        let mut names = Pool::default();
        let mut paths = Pool::default();
        let mut body = Writer::default();
        for origin in origins {
            body.u32(names.index(origin.profile.as_bytes()));
            let (tag, n) = match origin.kind {
                RuleKind::Default => (0, 0),
                RuleKind::Exclude(i) => (1, i as u64),
                RuleKind::Route(i) => (2, i as u64),
                RuleKind::Dns(port) => (3, port.into()),
                RuleKind::Loopback => (4, 0),
                RuleKind::Variable(_) => return None,
            };
            body.u8(tag);
            body.u64(n);
            body.option(origin.location.as_ref(), |w, (path, line, column)| {
                w.u32(paths.index(path.as_os_str().as_bytes()));
                w.u32(*line);
                w.u32(*column);
            });
        }
        for pool in [names, paths] {
            self.list(&pool.items, |w, s| w.bytes(s));
        }
        self.len(origins.len());
        self.0.extend_from_slice(&body.0);
        Some(())
    }
}

/// Distinct strings in the order first seen. A linear search: a table's
/// origins name one profile and a file or two.
#[derive(Default)]
struct Pool<'a> {
    items: Vec<&'a [u8]>,
}

impl<'a> Pool<'a> {
    fn index(&mut self, item: &'a [u8]) -> u32 {
        let at = self
            .items
            .iter()
            .position(|i| *i == item)
            .unwrap_or_else(|| {
                self.items.push(item);
                self.items.len() - 1
            });
        at as u32
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }

    fn u128(&mut self) -> Option<u128> {
        self.take().map(u128::from_le_bytes)
    }

    /// A length of items that take at least `each` bytes: never more than
    /// the bytes left could hold.
    fn len(&mut self, each: usize) -> Option<usize> {
        let len = self.u32()? as usize;
        (len <= self.0.len() / each).then_some(len)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.len(1)?;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }

    fn list<T>(
        &mut self,
        each: usize,
        mut item: impl FnMut(&mut Reader<'a>) -> Option<T>,
    ) -> Option<Vec<T>> {
        let len = self.len(each)?;
        // Allocated once: `len` is bounded by the bytes left.
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(item(self)?);
        }
        Some(items)
    }

    /// `Some(None)` for an absent value, `None` for bad bytes.
    fn option<T>(&mut self, some: impl FnOnce(&mut Reader<'a>) -> Option<T>) -> Option<Option<T>> {
        match self.u8()? {
            0 => Some(None),
            1 => some(self).map(Some),
            _ => None,
        }
    }

    fn per_family(&mut self) -> Option<PerFamily> {
        Some(PerFamily {
            v4: self.option(|r| r.u32().map(Ipv4Addr::from))?,
            v6: self.option(|r| r.u128().map(Ipv6Addr::from))?,
        })
    }

    fn socket_addr(&mut self) -> Option<SocketAddr> {
        match self.u8()? {
            4 => Some(SocketAddr::new(
                Ipv4Addr::from(self.u32()?).into(),
                self.u16()?,
            )),
            6 => {
                let ip = Ipv6Addr::from(self.u128()?);
                let port = self.u16()?;
                let v6 = SocketAddrV6::new(ip, port, self.u32()?, self.u32()?);
                Some(v6.into())
            }
            _ => None,
        }
    }

    fn rule(&mut self) -> Option<Rule> {
        Some(Rule {
            act: self.u32()?,
            origin: self.u32()?,
            filter: self.u32()?,
        })
    }

    fn origins(&mut self) -> Option<Vec<Origin>> {
        let names: Vec<Arc<str>> = self.list(4, |r| {
            Some(Arc::from(std::str::from_utf8(r.bytes()?).ok()?))
        })?;
        let paths: Vec<Arc<Path>> = self.list(4, |r| {
            Some(Arc::from(Path::new(OsStr::from_bytes(r.bytes()?))))
        })?;
        self.list(14, |r| {
            let profile = names.get(r.u32()? as usize)?.clone();
            let (tag, n) = (r.u8()?, r.u64()?);
            let kind = match tag {
                0 => RuleKind::Default,
                1 => RuleKind::Exclude(usize::try_from(n).ok()?),
                2 => RuleKind::Route(usize::try_from(n).ok()?),
                3 => RuleKind::Dns(u16::try_from(n).ok()?),
                4 if n == 0 => RuleKind::Loopback,
                _ => return None,
            };
            let location = r.option(|r| {
                let path = paths.get(r.u32()? as usize)?.clone();
                Some((path, r.u32()?, r.u32()?))
            })?;
            Some(Origin {
                profile,
                kind,
                location,
            })
        })
    }

    /// One family's intervals as [`Lpm::index`] takes them: starting at
    /// 0, rising, no two neighbours with the same value (so that the table
    /// encodes back to the same bytes).
    fn intervals<K: Key>(
        &mut self,
        each: usize,
        key: fn(&mut Reader<'a>) -> Option<K>,
    ) -> Option<Vec<(K, u32)>> {
        let intervals: Vec<(K, u32)> = self.list(each, |r| Some((key(r)?, r.u32()?)))?;
        let starts_at_zero = intervals.first().is_some_and(|e| e.0 == K::ZERO);
        let rising = intervals
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 != w[1].1);
        (starts_at_zero && rising).then_some(intervals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Layer, Source};

    /// Every kind of rule, filter and option a table can hold.
    const FULL: &str = r#"
[profile.base]
interface = "wan0"

[profile.p]
extends = "base"
source = ["198.18.2.2", "2001:db8::2"]
listen = "198.18.2.2"
on_failure = "allow"
exclude = ["10.0.0.0/8", "fd00::/8", "10.1.0.0/16"]

[profile.p.dns]
53 = ["198.18.0.53", "2001:db8::53"]
853 = "[2001:db8::53]:853"
search = ["lab", "example"]
ndots = 2
timeout_ms = 500
attempts = 3

[[profile.p.route]]
to = ["10.1.2.0/24", "2001:db8:1::/48"]
interface = "vpn0"
ports = [80, "8000-8999"]
protocol = "tcp"

[[profile.p.route]]
to = "10.1.0.0/16"
action = "block"

[[profile.p.route]]
to = "10.1.2.3"
action = "direct"
protocol = "udp"

[[profile.p.route]]
to = "198.18.9.0/24"
interface = "tun1"
"#;

    pub(crate) fn full_table() -> Table {
        let layer = Layer {
            source: Source::Given,
            path: "/etc/bindto/profiles.toml".into(),
            text: FULL.to_owned(),
            stamp: None,
        };
        let config = Config::from_layers(vec![layer]).unwrap();
        Table::compile(config.profile("p").unwrap())
    }

    #[test]
    fn decodes_to_the_table_encoded() {
        let table = full_table();
        let bytes = table.encode().unwrap();
        let back = Table::decode(&bytes).unwrap();
        assert_eq!(format!("{back:?}"), format!("{table:?}"));
        assert_eq!(back.encode().unwrap(), bytes);
    }

    /// The bytes `encode` wrote for [`FULL`] when `cache::FORMAT` took its
    /// current value. A change of layout that keeps FORMAT would let a
    /// process read another build's cache file as something else: this
    /// fails until FORMAT is bumped and the new bytes are written with
    /// `BINDTO_BLESS=1 cargo test -p bindto-core golden`. (A change of
    /// FULL or of how a profile compiles changes the bytes too: then
    /// rewriting them without a bump is right.)
    #[test]
    fn golden_bytes_change_only_with_the_format() {
        let format = crate::cache::FORMAT;
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/cache/format-{format}.bin"));
        let bytes = full_table().encode().unwrap();
        if std::env::var_os("BINDTO_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let golden = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; a new cache::FORMAT needs its golden bytes: \
                 BINDTO_BLESS=1 cargo test -p bindto-core golden",
                path.display()
            )
        });
        assert!(
            golden == bytes,
            "Table::encode no longer writes {} for FORMAT {format}: bump cache::FORMAT \
             if the layout changed, then BINDTO_BLESS=1 cargo test -p bindto-core golden",
            path.display()
        );
        let back = Table::decode(&golden).unwrap();
        assert_eq!(format!("{back:?}"), format!("{:?}", full_table()));
    }

    #[test]
    fn truncated_bytes_are_refused() {
        let bytes = full_table().encode().unwrap();
        for len in 0..bytes.len() {
            assert!(Table::decode(&bytes[..len]).is_none(), "{len} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Table::decode(&longer).is_none());
    }

    #[test]
    fn any_changed_byte_decodes_to_nothing_or_to_a_table_in_bounds() {
        let bytes = full_table().encode().unwrap();
        let destinations: Vec<SocketAddr> = [
            "10.1.2.3:53",
            "10.1.2.4:80",
            "10.9.9.9:8080",
            "8.8.8.8:53",
            "[2001:db8:1::1]:80",
            "[fd00::1]:443",
            "[::ffff:10.1.2.3]:53",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for at in 0..bytes.len() {
            for value in [0, 1, 0x7f, 0xff, bytes[at] ^ 0x10] {
                let mut changed = bytes.clone();
                changed[at] = value;
                if let Some(table) = Table::decode(&changed) {
                    for &d in &destinations {
                        table.decide(d, Protocol::Tcp);
                        table.decide(d, Protocol::Udp);
                    }
                }
            }
        }
    }

    /// `full_table` with one interval's value changed.
    fn with_v4_value(at: usize, value: u32) -> Table {
        let mut table = full_table();
        let mut intervals = table.v4.intervals();
        intervals[at].1 = value;
        table.v4 = Lpm::index(&intervals);
        table
    }

    #[test]
    fn an_index_out_of_bounds_is_refused() {
        let table = full_table();
        assert!(!table.chains.is_empty());
        let (chains, bindings) = (table.chains.len() as u32, table.bindings.len() as u32);
        let (leaves, origins) = (table.leaves, table.origins.len() as u32);

        let mut table = full_table();
        table.chains[0].act = bindings + 2;
        assert!(Table::decode(&table.encode().unwrap()).is_none());

        let mut table = full_table();
        let last = table.chains.len() - 1;
        table.chains[last].filter = 1;
        assert!(Table::decode(&table.encode().unwrap()).is_none());

        let mut table = full_table();
        table.chains[0].filter = table.filters.len() as u32;
        assert!(Table::decode(&table.encode().unwrap()).is_none());

        let mut table = full_table();
        table.filters[0] = table.filters[1];
        assert!(Table::decode(&table.encode().unwrap()).is_none());

        // A leaf's act past the bindings: FULL has three, so that the
        // leaf's bits can say one.
        assert!(leaves.mask >= bindings + 2, "{bindings} bindings");
        for value in [CHAIN | chains, bindings + 2, origins << leaves.bits, RUN] {
            let table = with_v4_value(1, value);
            assert!(
                Table::decode(&table.encode().unwrap()).is_none(),
                "{value:#x}"
            );
        }
        let table = with_v4_value(1, CHAIN | (chains - 1));
        assert!(Table::decode(&table.encode().unwrap()).is_some());

        let mut table = full_table();
        let mut intervals = table.v6.intervals();
        intervals.swap(0, 1);
        table.v6 = Lpm::index(&intervals);
        assert!(Table::decode(&table.encode().unwrap()).is_none());
    }

    #[test]
    fn tables_of_the_older_tools_are_not_encoded() {
        let env = crate::Env::from_pairs([("BIND_INTERFACE", "wan0")]);
        let profile = crate::legacy::profile(&env).unwrap().unwrap();
        assert!(Table::compile(&profile).encode().is_none());
    }
}
