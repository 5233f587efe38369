//! Addresses, networks, ports and interface names as profiles write them.

use std::cell::Cell;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net};
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{Deserialize, Deserializer, Error as _, IntoDeserializer, SeqAccess, Visitor};
use toml::Spanned;

/// A network interface name as the kernel takes it for SO_BINDTODEVICE:
/// 1 to 15 bytes, no '/', no whitespace, kept NUL-terminated so the shim can
/// hand it to `setsockopt` without copying.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfName {
    bytes: [u8; IfName::CAPACITY],
    len: u8,
}

impl IfName {
    /// IFNAMSIZ: the kernel's buffer, NUL included.
    pub const CAPACITY: usize = 16;

    /// Checks `name` against the kernel's rules for interface names.
    pub fn new(name: &str) -> Result<IfName, String> {
        let len = name.len();
        if len == 0 || len >= IfName::CAPACITY {
            return Err(format!(
                "interface name {name:?} must be 1 to {} bytes long",
                IfName::CAPACITY - 1
            ));
        }
        if name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "interface name {name:?} must not contain '/', ':' or whitespace"
            ));
        }
        let mut bytes = [0; IfName::CAPACITY];
        bytes[..len].copy_from_slice(name.as_bytes());
        Ok(IfName {
            bytes,
            len: len as u8,
        })
    }

    /// The name without its NUL.
    pub fn as_str(&self) -> &str {
        // The bytes were copied from a &str and never changed.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// The name padded with NULs to [`IfName::CAPACITY`]: a C string,
    /// and what `setsockopt(SO_BINDTODEVICE)` takes as it takes the name
    /// alone (the kernel reads up to the first NUL), with a length known
    /// in advance.
    #[inline]
    pub fn as_padded(&self) -> &[u8; IfName::CAPACITY] {
        // `new` leaves at least the last byte NUL.
        &self.bytes
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IfName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IfName::new(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// An inclusive range of ports, `443` or `"8000-8999"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range (inclusive).
    pub last: u16,
}

impl PortRange {
    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    fn parse(text: &str) -> Result<PortRange, String> {
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (port_number(a.trim())?, port_number(b.trim())?),
            None => {
                let p = port_number(text.trim())?;
                (p, p)
            }
        };
        if first > last {
            return Err(format!("port range \"{text}\" is reversed"));
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// A port from 1 to 65535, from decimal text.
pub(crate) fn port_number(text: &str) -> Result<u16, String> {
    let n: i64 = text
        .parse()
        .map_err(|_| format!("\"{text}\" is not a port number"))?;
    port_from_int(n)
}

fn port_from_int(n: i64) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(format!("port {n} is out of range 1-65535")),
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged, expecting = "a port number or a range such as \"8000-8999\"")]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => port_from_int(n).map(|p| PortRange { first: p, last: p }),
            Raw::Text(t) => PortRange::parse(&t),
        }
        .map_err(D::Error::custom)
    }
}

/// A network from a CIDR or a plain address (a host route). Host bits below
/// the prefix are cleared, and IPv4-mapped IPv6 networks become IPv4, the
/// way destinations are decided.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => text
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("\"{text}\" is neither an address nor a CIDR network"))?,
    };
    Ok(unmap_net(net).trunc())
}

fn unmap_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.addr().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            if let Ok(n) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                return IpNet::V4(n);
            }
        }
    }
    net
}

/// A network as a profile writes it (see [`parse_net`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Net(pub(crate) IpNet);

impl<'de> Deserialize<'de> for Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_net(&String::deserialize(d)?)
            .map(Net)
            .map_err(D::Error::custom)
    }
}

/// An address as a profile writes it.
pub(crate) fn parse_addr(text: &str) -> Result<IpAddr, String> {
    text.parse::<IpAddr>()
        .map(unmap)
        .map_err(|_| format!("\"{text}\" is not an IP address"))
}

/// A server address, `10.8.0.1`, `10.8.0.1:853`, `fd00::1` or
/// `[fd00::1]:853`, with `default_port` where none is written.
pub(crate) fn parse_server(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        if sa.port() == 0 {
            return Err(format!("port 0 is out of range 1-65535 in \"{text}\""));
        }
        return Ok(SocketAddr::new(unmap(sa.ip()), sa.port()));
    }
    parse_addr(text)
        .map(|ip| SocketAddr::new(ip, default_port))
        .map_err(|_| format!("\"{text}\" is not an address or address:port"))
}

/// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are IPv4 for every decision.
pub fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One optional address per family, from a single string or a list.
/// Whether `addr` is a wildcard (0.0.0.0, :: or ::ffff:0.0.0.0): the bind
/// that a profile's `listen` addresses replace.
pub fn is_wildcard(addr: &SocketAddr) -> bool {
    match addr {
        SocketAddr::V4(a) => a.ip().is_unspecified(),
        SocketAddr::V6(a) => {
            a.ip().is_unspecified() || a.ip().to_ipv4_mapped() == Some(Ipv4Addr::UNSPECIFIED)
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerFamily {
    /// The IPv4 address, if one was given.
    pub v4: Option<Ipv4Addr>,
    /// The IPv6 address, if one was given.
    pub v6: Option<Ipv6Addr>,
}

impl PerFamily {
    /// The address of the family of `ip`.
    #[inline]
    pub fn for_family_of(&self, ip: IpAddr) -> Option<IpAddr> {
        match ip {
            IpAddr::V4(_) => self.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.v6.map(IpAddr::V6),
        }
    }

    /// The address a wildcard bind to `requested` takes instead, as the
    /// `listen` addresses say: the IPv4 one for an IPv4 (or IPv4-mapped)
    /// wildcard; for `::`, the IPv6 one, else the IPv4 one (to be
    /// IPv4-mapped) if `dual_stack()` says the socket is IPv6 and takes
    /// IPv4 (not IPV6_V6ONLY). `None`: no address the socket can take.
    pub fn for_wildcard(
        &self,
        requested: SocketAddr,
        dual_stack: impl FnOnce() -> bool,
    ) -> Option<IpAddr> {
        let want_v4 = match requested {
            SocketAddr::V4(_) => true,
            SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
        };
        if want_v4 {
            return self.v4.map(IpAddr::V4);
        }
        self.v6
            .map(IpAddr::V6)
            .or_else(|| self.v4.filter(|_| dual_stack()).map(IpAddr::V4))
    }

    /// Whether neither family has an address.
    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }

    pub(crate) fn from_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut out = PerFamily::default();
        for text in texts {
            match parse_addr(text)? {
                IpAddr::V4(a) if out.v4.is_none() => out.v4 = Some(a),
                IpAddr::V6(a) if out.v6.is_none() => out.v6 = Some(a),
                ip => {
                    let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
                    return Err(format!("more than one {family} address (\"{text}\")"));
                }
            }
        }
        Ok(out)
    }

    /// Both addresses, IPv4 first.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> {
        self.v4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.v6.map(IpAddr::V6))
    }
}

impl<'de> Deserialize<'de> for PerFamily {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = OneOrMany::<String>::deserialize(d)?;
        PerFamily::from_texts(list.values().map(String::as_str)).map_err(D::Error::custom)
    }
}

/// A value written either alone or as a list, each item with its byte span
/// in the file when it was written in a list (a lone value has the span of
/// the key it is under).
///
/// Written as a visitor, not an untagged enum: untagged enums buffer the
/// value, which loses both the item spans and the items' own error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OneOrMany<T>(pub(crate) Vec<(Option<Range<usize>>, T)>);

impl<T> OneOrMany<T> {
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|(_, v)| v)
    }
}

thread_local! {
    /// The index of the item that failed the last list to fail. An item's
    /// own conversion error (a bad CIDR, port 0) is raised after the parser
    /// has let go of the item, so it carries the list's span, and the key
    /// path found from that span stops at the list; this names the item.
    static FAILED_ITEM: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Takes the index of the list item that failed last, if one did since the
/// last call.
pub(crate) fn take_failed_item() -> Option<usize> {
    FAILED_ITEM.take()
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(PhantomData<T>);

        impl<T> Visit<T> {
            fn one<'de, E: serde::de::Error>(
                self,
                d: impl Deserializer<'de, Error = serde::de::value::Error>,
            ) -> Result<OneOrMany<T>, E>
            where
                T: Deserialize<'de>,
            {
                T::deserialize(d)
                    .map(|v| OneOrMany(vec![(None, v)]))
                    .map_err(|e| E::custom(e.to_string()))
            }
        }

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Visit<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                loop {
                    match seq.next_element::<Spanned<T>>() {
                        Ok(Some(item)) => {
                            let span = item.span();
                            items.push((Some(span), item.into_inner()));
                        }
                        Ok(None) => return Ok(OneOrMany(items)),
                        Err(e) => {
                            FAILED_ITEM.set(Some(items.len()));
                            return Err(e);
                        }
                    }
                }
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                self.one(v.into_deserializer())
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.one(v.into_deserializer())
            }
        }

        d.deserialize_any(Visit(PhantomData))
    }
}

/// The prefix of an old-style `BIND_EXCLUDE` item, on octet boundaries:
/// `192.168.` and `192.168` are 192.168.0.0/16, `10.1` is 10.1.0.0/16 (never
/// 10.100.x.x), `127.0.0.1` is a host. CIDRs and IPv6 addresses are taken as
/// in profiles.
pub(crate) fn parse_legacy_prefix(text: &str) -> Result<IpNet, String> {
    let trimmed = text.trim().trim_end_matches('.');
    if trimmed.contains(':') || trimmed.contains('/') {
        return parse_net(trimmed);
    }
    let octets: Vec<&str> = trimmed.split('.').collect();
    let bad = || format!("\"{text}\" is not an address, CIDR or octet prefix such as 192.168.");
    if octets.is_empty() || octets.len() > 4 {
        return Err(bad());
    }
    let mut addr = [0u8; 4];
    for (slot, octet) in addr.iter_mut().zip(&octets) {
        *slot = octet.parse().map_err(|_| bad())?;
    }
    let len = 8 * octets.len() as u8;
    Ipv4Net::new(Ipv4Addr::from(addr), len)
        .map(IpNet::V4)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_bind_takes_the_listen_address_of_its_family() {
        let both = PerFamily {
            v4: Some(Ipv4Addr::new(198, 18, 2, 2)),
            v6: Some("fd00:2::2".parse().unwrap()),
        };
        let v4_only = PerFamily { v6: None, ..both };
        let any4: SocketAddr = "0.0.0.0:80".parse().unwrap();
        let any6: SocketAddr = "[::]:80".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:0.0.0.0]:80".parse().unwrap();
        assert!(is_wildcard(&any4) && is_wildcard(&any6) && is_wildcard(&mapped));
        assert!(!is_wildcard(&"198.18.2.2:80".parse().unwrap()));
        assert_eq!(both.for_wildcard(any4, || true), both.v4.map(IpAddr::V4));
        assert_eq!(both.for_wildcard(mapped, || false), both.v4.map(IpAddr::V4));
        assert_eq!(both.for_wildcard(any6, || true), both.v6.map(IpAddr::V6));
        // :: on a dual-stack socket, no IPv6 address: the IPv4 one.
        assert_eq!(v4_only.for_wildcard(any6, || true), both.v4.map(IpAddr::V4));
        assert_eq!(v4_only.for_wildcard(any6, || false), None);
    }
}
