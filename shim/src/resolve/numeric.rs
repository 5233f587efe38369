//! Numeric host strings, as glibc's getaddrinfo reads them: IPv4 in any
//! form `inet_aton` takes (`127.1`, `0x7f.1`), IPv6 with an optional zone
//! (`fe80::1%eth0` or `%2`). They never cause a query.

use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A numeric address and its IPv6 zone (scope id, 0 for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Numeric {
    pub(crate) ip: IpAddr,
    pub(crate) scope: u32,
}

/// `text` as a numeric address, or `None` if it is a name (or a zone names
/// no interface).
pub(crate) fn parse(text: &str) -> Option<Numeric> {
    if let Some(v4) = inet_aton(text) {
        return Some(Numeric {
            ip: IpAddr::V4(v4),
            scope: 0,
        });
    }
    let (addr, zone) = match text.split_once('%') {
        Some((addr, zone)) => (addr, Some(zone)),
        None => (text, None),
    };
    let ip: Ipv6Addr = addr.parse().ok()?;
    let scope = match zone {
        None => 0,
        Some(zone) => zone.parse().ok().or_else(|| ifindex(zone))?,
    };
    Some(Numeric {
        ip: IpAddr::V6(ip),
        scope,
    })
}

fn ifindex(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    // SAFETY: `name` is NUL-terminated.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// `inet_aton` without its tolerance of trailing text: one to four parts,
/// each decimal, octal (`0` prefix) or hex (`0x`); the last fills the
/// remaining bytes.
fn inet_aton(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u32> = text.split('.').map(part).collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|&p| p > 0xff) {
        return None;
    }
    let room = 32 - 8 * head.len() as u32;
    if room < 32 && *last >> room != 0 {
        return None;
    }
    let high = head
        .iter()
        .enumerate()
        .fold(0u32, |n, (i, &p)| n | p << (24 - 8 * i as u32));
    Some(Ipv4Addr::from(high | last))
}

fn part(text: &str) -> Option<u32> {
    let (digits, radix) =
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            (hex, 16)
        } else if text.len() > 1 && text.starts_with('0') {
            (&text[1..], 8)
        } else {
            (text, 10)
        };
    if (digits.is_empty() && radix != 16) || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if digits.is_empty() {
        // "0x" alone is 0, as inet_aton reads it.
        return Some(0);
    }
    u32::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> Option<String> {
        inet_aton(text).map(|a| a.to_string())
    }

    #[test]
    fn every_inet_aton_form() {
        assert_eq!(v4("198.19.0.1").as_deref(), Some("198.19.0.1"));
        assert_eq!(v4("127.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(v4("0x7f.0.0.01").as_deref(), Some("127.0.0.1"));
        assert_eq!(v4("3323133953").as_deref(), Some("198.19.0.1"));
        for bad in [
            "",
            "1.2.3.4.5",
            "256.1.1.1",
            "1.2.3.256",
            "1.2.3.4 ",
            "a.b.c.d",
            "1..2",
            "08",
        ] {
            assert_eq!(v4(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ipv6_with_zones() {
        let plain = parse("2001:db8:ff::1").unwrap();
        assert_eq!(
            (plain.ip.to_string().as_str(), plain.scope),
            ("2001:db8:ff::1", 0)
        );
        assert_eq!(parse("fe80::1%7").unwrap().scope, 7);
        assert_eq!(parse("fe80::1%lo").unwrap().scope, 1);
        assert_eq!(parse("fe80::1%no-such-if0"), None);
        assert_eq!(parse("host.bindto.test"), None);
    }
}
