//! `/etc/hosts`, read first as glibc's "files" source would: `localhost`
//! and the machine's own names resolve without any query.

use std::net::IpAddr;

use super::{Found, Want};

const HOSTS: &str = "/etc/hosts";

/// The addresses `/etc/hosts` gives `name` in the families `want` asks
/// for, with the canonical name (the first name of the first matching
/// line) and that line's other names as aliases. `None` if no line of a
/// wanted family names it.
pub(crate) fn lookup(name: &str, want: Want) -> Option<Found> {
    let text = std::fs::read_to_string(HOSTS).ok()?;
    search(&text, name, want)
}

/// The first name `/etc/hosts` gives `ip`, for reverse lookups.
pub(crate) fn reverse(ip: IpAddr) -> Option<String> {
    let text = std::fs::read_to_string(HOSTS).ok()?;
    entries(&text)
        .find(|(addr, _)| *addr == ip)
        .and_then(|(_, mut names)| names.next().map(str::to_owned))
}

fn search(text: &str, name: &str, want: Want) -> Option<Found> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut found: Option<Found> = None;
    for (addr, names) in entries(text) {
        if !want.accepts(addr) {
            continue;
        }
        let names: Vec<&str> = names.collect();
        if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        let found = found.get_or_insert_with(|| Found {
            canonical: names[0].to_owned(),
            aliases: names[1..].iter().map(|&n| n.to_owned()).collect(),
            addrs: Vec::new(),
        });
        if !found.addrs.contains(&addr) {
            found.addrs.push(addr);
        }
    }
    found
}

/// Every line with an address and at least one name. An IPv6 address
/// with a zone (`fe80::1%eth0`) is skipped: nothing here can carry it.
fn entries(text: &str) -> impl Iterator<Item = (IpAddr, impl Iterator<Item = &str>)> {
    text.lines().filter_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let addr = words.next()?.parse().ok()?;
        let mut names = words.peekable();
        names.peek()?;
        Some((addr, names))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost # loopback\n\
                         198.18.9.9 files.bindto.test files alias\n\
                         2001:db8::9 FILES.bindto.test FILES\nfe80::1%eth0 files\n# 198.18.9.8 files\n";

    #[test]
    fn a_name_gets_every_address_of_the_wanted_families() {
        let found = search(HOSTS, "files", Want::Any).unwrap();
        assert_eq!(found.canonical, "files.bindto.test");
        assert_eq!(found.aliases, ["files", "alias"]);
        let addrs: Vec<IpAddr> = vec![
            "198.18.9.9".parse().unwrap(),
            "2001:db8::9".parse().unwrap(),
        ];
        assert_eq!(found.addrs, addrs);
        let v6 = search(HOSTS, "files.bindto.test.", Want::V6).unwrap();
        assert_eq!(v6.addrs, addrs[1..]);
        assert_eq!(search(HOSTS, "localhost", Want::V4).unwrap().addrs.len(), 1);
        assert!(search(HOSTS, "ip6-localhost", Want::V4).is_none());
        assert!(search(HOSTS, "nowhere", Want::Any).is_none());
    }

    #[test]
    fn reverse_takes_the_first_name() {
        let ip: IpAddr = "198.18.9.9".parse().unwrap();
        let first = entries(HOSTS).find(|(a, _)| *a == ip).unwrap().1.next();
        assert_eq!(first, Some("files.bindto.test"));
    }
}
