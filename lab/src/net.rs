//! The lab's fixed addressing plan.
//!
//! Only test ranges are used: 198.18.0.0/15 (RFC 2544), 2001:db8::/32
//! (RFC 3849) and fd00::/8 (ULA), so nothing a test sends can ever mean a
//! real host.
//!
//! ```text
//!                      client namespace
//!          wan0 198.18.1.2/24  fd00:1::2/64   default metric 100
//!          vpn0 198.18.2.2/24  fd00:2::2/64   default metric 200
//!          alt0 198.18.3.2/24  fd00:3::2/64   default metric 300
//!            |                 |                 |
//!   wan: eth0 198.18.1.1  vpn: eth0 198.18.2.1  alt: eth0 198.18.3.1
//!        fd00:1::1             fd00:2::1             fd00:3::1
//!   each server namespace also holds every TARGETS_V4 / TARGETS_V6 on lo
//! ```
//!
//! Because every server namespace holds the same targets, a target's answer
//! (`<uplink name> <client source ip>`) tells which uplink a packet left
//! through and with which source address.
//!
//! There is no policy routing in the client: a socket bound to a source
//! address, but not to a device, still leaves through the best default
//! route (wan). Each server routes all of 198.18.0.0/15 and fd00::/8 back to
//! the client, so such a packet is still answered and logged, e.g. `wan
//! 198.18.2.3`, rather than lost.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Destinations held by every server namespace (on its `lo`).
pub const TARGETS_V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(198, 19, 0, 1),
    Ipv4Addr::new(198, 19, 0, 2),
    Ipv4Addr::new(198, 19, 0, 3),
];

/// IPv6 destinations held by every server namespace (on its `lo`).
pub const TARGETS_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 2),
];

/// The usual IPv4 destination: `198.19.0.1`.
pub const TARGET_V4: Ipv4Addr = TARGETS_V4[0];

/// The usual IPv6 destination: `2001:db8:ff::1`.
pub const TARGET_V6: Ipv6Addr = TARGETS_V6[0];

/// Prefix length of every uplink's IPv4 subnet.
pub const PREFIX_V4: u8 = 24;

/// Prefix length of every uplink's IPv6 subnet.
pub const PREFIX_V6: u8 = 64;

/// Port where the servers answer HTTP (and the plain line protocol).
pub const HTTP_PORT: u16 = 80;
/// Port where the servers answer on UDP and TCP, as DNS would be (the
/// answer is the plain line, not a DNS message).
pub const DNS_PORT: u16 = 53;
/// Port for UDP echo-style tests.
pub const ECHO_PORT: u16 = 7;
/// An unprivileged port, for tests that want one.
pub const HIGH_PORT: u16 = 9000;

/// Ports the servers listen on, TCP and UDP each, unless the lab's builder
/// says otherwise.
pub const DEFAULT_PORTS: [u16; 4] = [HTTP_PORT, DNS_PORT, ECHO_PORT, HIGH_PORT];

/// One of the client's uplinks and the server namespace behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Uplink {
    /// Short name: names the server namespace's role, the server's answers
    /// and its log (`"wan"`, `"vpn"`, `"alt"`).
    pub name: &'static str,
    /// The client's interface for this uplink (`"wan0"`, ...).
    pub dev: &'static str,
    /// Metric of the client's default routes through this uplink: the
    /// lowest (wan) wins while it is up.
    pub metric: u32,
    /// Third octet of the IPv4 subnet and second group of the IPv6 one.
    net: u8,
}

/// The preferred uplink: default routes with metric 100.
pub const WAN: Uplink = Uplink {
    name: "wan",
    dev: "wan0",
    metric: 100,
    net: 1,
};

/// The second uplink: default routes with metric 200.
pub const VPN: Uplink = Uplink {
    name: "vpn",
    dev: "vpn0",
    metric: 200,
    net: 2,
};

/// The third uplink: default routes with metric 300.
pub const ALT: Uplink = Uplink {
    name: "alt",
    dev: "alt0",
    metric: 300,
    net: 3,
};

/// All uplinks, in order of preference.
pub const UPLINKS: [Uplink; 3] = [WAN, VPN, ALT];

impl Uplink {
    /// The uplink called `name` (`"wan"`, `"vpn"` or `"alt"`).
    pub fn by_name(name: &str) -> Option<Uplink> {
        UPLINKS.into_iter().find(|uplink| uplink.name == name)
    }

    /// The uplink whose client interface is `dev` (`"wan0"`, ...).
    pub fn by_dev(dev: &str) -> Option<Uplink> {
        UPLINKS.into_iter().find(|uplink| uplink.dev == dev)
    }

    /// The uplink called `name`, for the lab's `&str` APIs.
    #[track_caller]
    pub(crate) fn named(name: &str) -> Uplink {
        Uplink::by_name(name)
            .unwrap_or_else(|| panic!("no uplink named {name:?}: use wan, vpn or alt"))
    }

    /// Host `host` of this uplink's IPv4 subnet, e.g. a second client
    /// address for `source` tests (`.1` is the server, `.2` the client).
    pub const fn host_v4(self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.net, host)
    }

    /// Host `host` of this uplink's IPv6 subnet (`::1` is the server, `::2`
    /// the client).
    pub const fn host_v6(self, host: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, self.net as u16, 0, 0, 0, 0, 0, host)
    }

    /// The client's IPv4 address on this uplink (`198.18.N.2`).
    pub const fn client_v4(self) -> Ipv4Addr {
        self.host_v4(2)
    }

    /// The client's IPv6 address on this uplink (`fd00:N::2`).
    pub const fn client_v6(self) -> Ipv6Addr {
        self.host_v6(2)
    }

    /// The server end of the link, the client's gateway (`198.18.N.1`).
    pub const fn server_v4(self) -> Ipv4Addr {
        self.host_v4(1)
    }

    /// The server end of the link, the client's gateway (`fd00:N::1`).
    pub const fn server_v6(self) -> Ipv6Addr {
        self.host_v6(1)
    }

    /// Whether `addr` lies in one of this uplink's subnets, i.e. whether
    /// the server can answer it without any extra route.
    pub fn contains(self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(v4) => v4.octets()[..3] == self.client_v4().octets()[..3],
            IpAddr::V6(v6) => v6.segments()[..4] == self.client_v6().segments()[..4],
        }
    }

    /// Every address the server namespace answers on: its end of the link
    /// and all the targets.
    pub fn server_addrs(self) -> Vec<IpAddr> {
        [IpAddr::V4(self.server_v4()), IpAddr::V6(self.server_v6())]
            .into_iter()
            .chain(TARGETS_V4.map(IpAddr::V4))
            .chain(TARGETS_V6.map(IpAddr::V6))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_plan() {
        assert_eq!(VPN.client_v4(), Ipv4Addr::new(198, 18, 2, 2));
        assert_eq!(VPN.server_v6().to_string(), "fd00:2::1");
        assert_eq!(ALT.client_v6().to_string(), "fd00:3::2");
        assert_eq!(TARGET_V6.to_string(), "2001:db8:ff::1");
    }

    #[test]
    fn lookups_and_subnets() {
        assert_eq!(Uplink::by_name("alt"), Some(ALT));
        assert_eq!(Uplink::by_dev("vpn0"), Some(VPN));
        assert_eq!(Uplink::by_name("lan"), None);
        assert!(VPN.contains(VPN.host_v4(77).into()));
        assert!(VPN.contains(VPN.host_v6(0x77).into()));
        assert!(!VPN.contains(WAN.client_v4().into()));
        assert!(!WAN.contains(TARGET_V4.into()));
    }

    #[test]
    fn every_address_is_in_a_test_range() {
        let test_range = |addr: IpAddr| match addr {
            IpAddr::V4(v4) => v4.octets()[0] == 198 && v4.octets()[1] & 0xfe == 18,
            IpAddr::V6(v6) => {
                v6.segments()[..2] == [0x2001, 0xdb8] || v6.segments()[0] & 0xff00 == 0xfd00
            }
        };
        for uplink in UPLINKS {
            let mut all = uplink.server_addrs();
            all.extend([IpAddr::from(uplink.client_v4()), uplink.client_v6().into()]);
            assert!(all.into_iter().all(test_range), "{uplink:?}");
        }
    }
}
