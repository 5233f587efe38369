//! `getaddrinfo` itself: hints, flags and service as glibc reads them, the
//! host from a number, `/etc/hosts` or the profile's server, and one
//! [`Endpoint`] per address and socket type.
//!
//! Order: addresses in the order found (for a name asked of DNS with
//! AF_UNSPEC: IPv4, then IPv6). glibc's RFC 6724 sorting (gai.conf) is not
//! done.

use std::ffi::{CStr, CString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use libc::c_int;

use super::addrinfo::Endpoint;
use super::numeric::{self, Numeric};
use super::service::{self, Service};
use super::{Resolver, Want};

/// glibc's value; not in the libc crate.
pub(crate) const EAI_ADDRFAMILY: c_int = -9;

/// Flags glibc accepts (the AI_IDN ones are taken and ignored: names go
/// out as the bytes given).
const KNOWN_FLAGS: c_int = libc::AI_PASSIVE
    | libc::AI_CANONNAME
    | libc::AI_NUMERICHOST
    | libc::AI_V4MAPPED
    | libc::AI_ALL
    | libc::AI_ADDRCONFIG
    | libc::AI_NUMERICSERV
    | 0x0040 // AI_IDN
    | 0x0080 // AI_CANONIDN
    | 0x0100 // AI_IDN_ALLOW_UNASSIGNED
    | 0x0200; // AI_IDN_USE_STD3_ASCII_RULES

/// The caller's hints (all zero when it passed none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Hints {
    pub(crate) flags: c_int,
    pub(crate) family: c_int,
    pub(crate) socktype: c_int,
    pub(crate) protocol: c_int,
}

/// What `getaddrinfo` returns: the entries and the canonical name (asked
/// for with AI_CANONNAME), or an EAI error.
pub(crate) fn lookup(
    resolver: &Resolver<'_>,
    node: Option<&CStr>,
    service: Option<&CStr>,
    hints: Hints,
) -> Result<(Vec<Endpoint>, Option<CString>), c_int> {
    let canon = hints.flags & libc::AI_CANONNAME != 0;
    if hints.flags & !KNOWN_FLAGS != 0 || (canon && node.is_none()) {
        return Err(libc::EAI_BADFLAGS);
    }
    if node.is_none() && service.is_none() {
        return Err(libc::EAI_NONAME);
    }
    let mut want = match hints.family {
        libc::AF_UNSPEC => Want::Any,
        libc::AF_INET => Want::V4,
        libc::AF_INET6 => Want::V6,
        _ => return Err(libc::EAI_FAMILY),
    };
    let service = Service::parse(service, hints.flags & libc::AI_NUMERICSERV != 0)?;
    let kinds = service::kinds(hints.socktype, hints.protocol, service)?;
    if hints.flags & libc::AI_ADDRCONFIG != 0 {
        want = addrconfig(want)?;
    }
    let (addrs, canonical) = match node {
        None => (unnamed(want, hints.flags & libc::AI_PASSIVE != 0), None),
        Some(node) => host(resolver, node, want, hints.flags)?,
    };
    let entries = addrs
        .iter()
        .flat_map(|&(ip, scope)| {
            kinds.iter().map(move |kind| Endpoint {
                addr: match ip {
                    IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, kind.port, 0, scope)),
                    IpAddr::V4(_) => SocketAddr::new(ip, kind.port),
                },
                socktype: kind.socktype,
                protocol: kind.protocol,
            })
        })
        .collect();
    let canonical = canonical
        .filter(|_| canon)
        .and_then(|name| CString::new(name).ok());
    Ok((entries, canonical))
}

/// The addresses for a null node: the wildcards for a server (AI_PASSIVE),
/// loopback otherwise, in glibc's order.
fn unnamed(want: Want, passive: bool) -> Vec<(IpAddr, u32)> {
    let all: [IpAddr; 2] = if passive {
        [Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()]
    } else {
        [Ipv6Addr::LOCALHOST.into(), Ipv4Addr::LOCALHOST.into()]
    };
    all.into_iter()
        .filter(|&ip| want.accepts(ip))
        .map(|ip| (ip, 0))
        .collect()
}

type Addrs = Vec<(IpAddr, u32)>;

/// A node's addresses and canonical name.
fn host(
    resolver: &Resolver<'_>,
    node: &CStr,
    want: Want,
    flags: c_int,
) -> Result<(Addrs, Option<String>), c_int> {
    // A name that is not UTF-8 cannot be a hosts entry or a query here.
    let text = node.to_str().map_err(|_| libc::EAI_NONAME)?;
    let mapped = want == Want::V6 && flags & libc::AI_V4MAPPED != 0;
    if let Some(Numeric { ip, scope }) = numeric::parse(text) {
        return match ip {
            IpAddr::V4(v4) if mapped => {
                Ok((vec![(v4.to_ipv6_mapped().into(), 0)], Some(text.into())))
            }
            _ if want.accepts(ip) => Ok((vec![(ip, scope)], Some(text.into()))),
            _ => Err(EAI_ADDRFAMILY),
        };
    }
    if flags & libc::AI_NUMERICHOST != 0 {
        return Err(libc::EAI_NONAME);
    }
    let found = resolver.lookup(text, want);
    let found = if mapped {
        // AI_V4MAPPED: IPv4 addresses, mapped, when there is no IPv6 one;
        // with AI_ALL, as well as the IPv6 ones.
        let all = flags & libc::AI_ALL != 0;
        match found {
            Ok(found) if !all => Ok(found),
            Ok(_) | Err(super::LookupError::NoData | super::LookupError::NoName) => {
                let v4 = resolver.lookup(text, Want::V4).map(|mut v4| {
                    for ip in &mut v4.addrs {
                        if let IpAddr::V4(a) = ip {
                            *ip = a.to_ipv6_mapped().into();
                        }
                    }
                    v4
                });
                match (found, v4) {
                    (Ok(mut v6), Ok(v4)) => {
                        v6.addrs.extend(v4.addrs);
                        Ok(v6)
                    }
                    (Ok(found), Err(_)) | (Err(_), Ok(found)) => Ok(found),
                    (Err(_), Err(e)) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    } else {
        found
    };
    let found = found.map_err(|failure| match failure {
        // glibc's AF_INET path without AI_CANONNAME asks
        // gethostbyname2_r, whose NO_RECOVERY it reports as EAI_NODATA.
        super::LookupError::Unanswered if want == Want::V4 && flags & libc::AI_CANONNAME == 0 => {
            libc::EAI_NODATA
        }
        failure => failure.eai(),
    })?;
    let addrs = found.addrs.iter().map(|&ip| (ip, 0)).collect();
    Ok((addrs, Some(found.canonical)))
}

/// AI_ADDRCONFIG, as glibc: a family is asked for only if the host has an
/// address of it other than 127.0.0.1 and ::1; with neither, both.
fn addrconfig(want: Want) -> Result<Want, c_int> {
    let (v4, v6) = configured();
    match want {
        Want::V4 if !v4 && v6 => Err(libc::EAI_NONAME),
        Want::V6 if !v6 && v4 => Err(libc::EAI_NONAME),
        Want::Any if v4 && !v6 => Ok(Want::V4),
        Want::Any if v6 && !v4 => Ok(Want::V6),
        _ => Ok(want),
    }
}

/// Whether the host has a non-loopback IPv4 and IPv6 address.
fn configured() -> (bool, bool) {
    let (mut v4, mut v6) = (false, false);
    let listed = crate::sockaddr::each_interface_address(|_, ip| match ip {
        IpAddr::V4(a) => v4 |= a != Ipv4Addr::LOCALHOST,
        IpAddr::V6(a) => v6 |= a != Ipv6Addr::LOCALHOST,
    });
    if !listed {
        return (true, true);
    }
    (v4, v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(
        node: Option<&CStr>,
        service: Option<&CStr>,
        hints: Hints,
    ) -> Result<Vec<String>, c_int> {
        let (entries, _) = lookup(&Resolver::broken(), node, service, hints)?;
        Ok(entries
            .iter()
            .map(|e| format!("{} {} {}", e.addr, e.socktype, e.protocol))
            .collect())
    }

    fn hints(flags: c_int, family: c_int, socktype: c_int) -> Hints {
        Hints {
            flags,
            family,
            socktype,
            protocol: 0,
        }
    }

    #[test]
    fn numbers_and_null_nodes() {
        let stream = hints(0, libc::AF_UNSPEC, libc::SOCK_STREAM);
        assert_eq!(
            entries(Some(c"198.19.0.1"), Some(c"80"), stream).unwrap(),
            ["198.19.0.1:80 1 6"]
        );
        assert_eq!(
            entries(
                None,
                Some(c"80"),
                hints(libc::AI_PASSIVE, 0, libc::SOCK_DGRAM)
            )
            .unwrap(),
            ["0.0.0.0:80 2 17", "[::]:80 2 17"]
        );
        assert_eq!(
            entries(None, Some(c"80"), stream).unwrap(),
            ["[::1]:80 1 6", "127.0.0.1:80 1 6"]
        );
        let mapped = hints(libc::AI_V4MAPPED, libc::AF_INET6, libc::SOCK_STREAM);
        assert_eq!(
            entries(Some(c"127.1"), None, mapped).unwrap(),
            ["[::ffff:127.0.0.1]:0 1 6"]
        );
        let v6 = hints(0, libc::AF_INET6, 0);
        assert_eq!(entries(Some(c"198.19.0.1"), None, v6), Err(EAI_ADDRFAMILY));
        assert_eq!(
            entries(Some(c"fe80::1%1"), None, stream).unwrap(),
            ["[fe80::1%1]:0 1 6"]
        );
    }

    #[test]
    fn errors_before_any_lookup() {
        let none = Hints::default();
        assert_eq!(entries(None, None, none), Err(libc::EAI_NONAME));
        assert_eq!(
            entries(None, Some(c"80"), hints(libc::AI_CANONNAME, 0, 0)),
            Err(libc::EAI_BADFLAGS)
        );
        assert_eq!(
            entries(Some(c"x"), None, hints(0x8000, 0, 0)),
            Err(libc::EAI_BADFLAGS)
        );
        assert_eq!(
            entries(Some(c"x"), None, hints(0, libc::AF_UNIX, 0)),
            Err(libc::EAI_FAMILY)
        );
        assert_eq!(
            entries(
                Some(c"name.bindto.test"),
                None,
                hints(libc::AI_NUMERICHOST, 0, 0)
            ),
            Err(libc::EAI_NONAME)
        );
        // A broken config: no server to ask.
        assert_eq!(
            entries(Some(c"name.bindto.test"), None, none),
            Err(libc::EAI_FAIL)
        );
    }

    #[test]
    fn canonical_name_only_when_asked() {
        let resolver = Resolver::broken();
        let flags = hints(libc::AI_CANONNAME, 0, libc::SOCK_STREAM);
        let (_, canonical) = lookup(&resolver, Some(c"198.19.0.1"), None, flags).unwrap();
        assert_eq!(canonical.as_deref(), Some(c"198.19.0.1"));
        let (_, canonical) =
            lookup(&resolver, Some(c"198.19.0.1"), None, Hints::default()).unwrap();
        assert_eq!(canonical, None);
    }
}
