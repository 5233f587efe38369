//! `/etc/hosts`, read first as glibc's "files" source would: `localhost`
//! and the machine's own names resolve without any query.

use std::net::IpAddr;

use super::{Resolved, Want};

/// `/etc/hosts`, parsed: each line with an address and at least one name.
#[derive(Debug, Default)]
pub(crate) struct Hosts {
    lines: Vec<(IpAddr, Vec<Box<str>>)>,
}

impl Hosts {
    /// An IPv6 address with a zone (`fe80::1%eth0`) is skipped: nothing
    /// here can carry it.
    pub(crate) fn parse(text: &str) -> Hosts {
        let lines = text
            .lines()
            .filter_map(|line| {
                let line = line.split('#').next().unwrap_or_default();
                let mut words = line.split_whitespace();
                let addr = words.next()?.parse().ok()?;
                let names: Vec<Box<str>> = words.map(Box::from).collect();
                (!names.is_empty()).then_some((addr, names))
            })
            .collect();
        Hosts { lines }
    }

    /// The addresses of the families `want` asks for that name `name`,
    /// with the canonical name (the first name of the first matching
    /// line) and that line's other names as aliases. `None` if no line of
    /// a wanted family names it.
    pub(crate) fn lookup(&self, name: &str, want: Want) -> Option<Resolved> {
        let name = name.strip_suffix('.').unwrap_or(name);
        let mut found: Option<Resolved> = None;
        for (addr, names) in &self.lines {
            if !want.accepts(*addr) || !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                continue;
            }
            let found = found.get_or_insert_with(|| Resolved {
                canonical: names[0].to_string(),
                aliases: names[1..].iter().map(|n| n.to_string()).collect(),
                addrs: Vec::new(),
            });
            if !found.addrs.contains(addr) {
                found.addrs.push(*addr);
            }
        }
        found
    }

    /// The first name given `ip`, for reverse lookups.
    pub(crate) fn reverse(&self, ip: IpAddr) -> Option<String> {
        self.lines
            .iter()
            .find(|(addr, _)| *addr == ip)
            .map(|(_, names)| names[0].to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost # loopback\n\
                         198.18.9.9 files.bindto.test files alias\n\
                         2001:db8::9 FILES.bindto.test FILES\nfe80::1%eth0 files\n# 198.18.9.8 files\n";

    #[test]
    fn a_name_gets_every_address_of_the_wanted_families() {
        let hosts = Hosts::parse(HOSTS);
        let search = |_: &str, name, want| hosts.lookup(name, want);
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
        let first = Hosts::parse(HOSTS).reverse(ip);
        assert_eq!(first.as_deref(), Some("files.bindto.test"));
    }
}
