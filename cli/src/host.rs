//! This machine's network as `doctor` needs to see it: interfaces (sysfs),
//! addresses (getifaddrs), routes (`ip route`), and sockets bound to a
//! device for a real DNS query.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Interface flags of <linux/if.h>, as /sys/class/net/NAME/flags shows them.
const IFF_UP: u32 = 0x1;
const IFF_POINTOPOINT: u32 = 0x10;
const IFF_NOARP: u32 = 0x80;

/// What sysfs says about one interface.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// Administratively up (IFF_UP).
    pub(crate) admin_up: bool,
    /// /sys/class/net/NAME/operstate: up, down, unknown (tun, lo), dormant...
    pub(crate) operstate: String,
    /// No neighbour discovery: the kernel sends to any destination on the
    /// link without a route (tun devices, point-to-point links).
    pub(crate) on_link: bool,
}

impl Link {
    /// Up, as far as traffic is concerned: "unknown" is what drivers
    /// without carrier reporting (tun, wireguard, lo) show when up.
    pub(crate) fn is_up(&self) -> bool {
        self.admin_up && matches!(self.operstate.as_str(), "up" | "unknown")
    }
}

/// The interface `name`, or `None` if there is none.
pub(crate) fn link(name: &str) -> Option<Link> {
    let dir = Path::new("/sys/class/net").join(name);
    if !dir.exists() {
        return None;
    }
    let read = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let flags = u32::from_str_radix(read("flags").trim_start_matches("0x"), 16).unwrap_or(0);
    Some(Link {
        admin_up: flags & IFF_UP != 0,
        operstate: read("operstate"),
        on_link: flags & (IFF_POINTOPOINT | IFF_NOARP) != 0,
    })
}

/// Names of all interfaces, for "did you mean" hints.
pub(crate) fn link_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every address of every interface: (interface, address).
pub(crate) fn addresses() -> io::Result<Vec<(String, IpAddr)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid place for getifaddrs to store its list.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, which
        // stays allocated until freeifaddrs below.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr whose
        // family says how large it is.
        let family = unsafe { (*entry.ifa_addr).sa_family };
        let address = match i32::from(family) {
            libc::AF_INET => {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_in>() };
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            }
            libc::AF_INET6 => {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_in6>() };
                IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
            }
            _ => continue,
        };
        // SAFETY: ifa_name is a non-null NUL-terminated string of the list.
        let name = unsafe { CStr::from_ptr(entry.ifa_name) };
        out.push((name.to_string_lossy().into_owned(), address));
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// A unicast route through some interface: its prefix and gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) prefix: IpAddr,
    pub(crate) len: u8,
    pub(crate) via: Option<IpAddr>,
}

impl Route {
    /// Whether this route covers the whole network `net`/`len`.
    pub(crate) fn covers(&self, net: IpAddr, len: u8) -> bool {
        self.len <= len && same_prefix(self.prefix, net, self.len)
    }
}

/// The unicast routes through `interface`, in every routing table, of
/// both families; `Err` if `ip` cannot be run.
pub(crate) fn routes(interface: &str) -> Result<Vec<Route>, String> {
    let mut out = Vec::new();
    for (family, v6) in [("-4", false), ("-6", true)] {
        let output = Command::new("ip")
            .args([
                family, "-o", "route", "show", "table", "all", "dev", interface,
            ])
            .output()
            .map_err(|e| format!("cannot run `ip route`: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "`ip route` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        out.extend(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|line| parse_route(line, v6)),
        );
    }
    Ok(out)
}

/// One line of `ip -o -4|-6 route show dev X`; `None` for anything but a
/// unicast route (local, broadcast, multicast, unreachable...).
fn parse_route(line: &str, v6: bool) -> Option<Route> {
    let mut words = line.split_whitespace().peekable();
    if words.peek() == Some(&"unicast") {
        words.next();
    }
    let first = words.next()?;
    let (prefix, len) = if first == "default" {
        let any = if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        (any, 0)
    } else {
        let (addr, len) = match first.split_once('/') {
            Some((addr, len)) => (addr, Some(len.parse().ok()?)),
            None => (first, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let full = if addr.is_ipv4() { 32 } else { 128 };
        (addr, len.unwrap_or(full))
    };
    let rest: Vec<&str> = words.collect();
    let via = rest
        .windows(2)
        .find(|w| w[0] == "via")
        .and_then(|w| w[1].parse().ok());
    Some(Route { prefix, len, via })
}

/// Whether `a` and `b` are of one family and share their first `len` bits.
fn same_prefix(a: IpAddr, b: IpAddr, len: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// SO_BINDTODEVICE on `fd`.
pub(crate) fn bind_to_device(fd: RawFd, interface: &str) -> io::Result<()> {
    let name = interface.as_bytes();
    // SAFETY: `name` is valid for `name.len()` bytes during the call; the
    // kernel copies at most IFNAMSIZ of them and needs no NUL.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether this process may bind a fresh socket to `interface`.
pub(crate) fn may_bind_to_device(interface: &str) -> io::Result<()> {
    // SAFETY: socket has no memory preconditions.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    bind_to_device(socket.as_raw_fd(), interface)
}

/// Sends one DNS query (the root's NS records) to `server` from a socket
/// bound as the library would bind it, and waits up to `timeout` for the
/// answer. Any answer counts, even an error code: the server answered.
pub(crate) fn dns_query(
    server: SocketAddr,
    interface: Option<&str>,
    source: Option<IpAddr>,
    timeout: Duration,
) -> io::Result<Duration> {
    let any: IpAddr = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind(SocketAddr::new(source.unwrap_or(any), 0))?;
    if let Some(interface) = interface {
        bind_to_device(socket.as_raw_fd(), interface)?;
    }
    socket.connect(server)?;
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let mut query = Vec::with_capacity(17);
    query.extend_from_slice(&id.to_be_bytes());
    // Flags: recursion desired; one question, no other records.
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    // QNAME "." (root), QTYPE NS (2), QCLASS IN (1).
    query.extend_from_slice(&[0, 0, 2, 0, 1]);
    let start = Instant::now();
    socket.send(&query)?;
    let mut answer = [0u8; 512];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        socket.set_read_timeout(Some(left))?;
        match socket.recv(&mut answer) {
            // Same id and the QR (response) bit.
            Ok(n) if n >= 12 && answer[..2] == id.to_be_bytes() && answer[2] & 0x80 != 0 => {
                return Ok(start.elapsed());
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(io::ErrorKind::TimedOut.into());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The `nameserver` lines of /etc/resolv.conf.
pub(crate) fn nameservers() -> Vec<IpAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next()?.split('%').next()?.parse().ok())
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(line: &str) -> Option<Route> {
        parse_route(line, line.contains(':'))
    }

    #[test]
    fn parses_ip_route_lines() {
        let r = route("default via 198.18.2.1 metric 200 ").unwrap();
        assert_eq!((r.prefix, r.len), ("0.0.0.0".parse().unwrap(), 0));
        assert_eq!(r.via, Some("198.18.2.1".parse().unwrap()));
        let r = route("default via fd00:2::1 metric 1024 pref medium").unwrap();
        assert_eq!((r.prefix, r.len), ("::".parse().unwrap(), 0));
        let r = route("198.18.2.0/24 proto kernel scope link src 198.18.2.2").unwrap();
        assert_eq!(r.len, 24);
        assert!(r.covers("198.18.2.128".parse().unwrap(), 25));
        assert!(!r.covers("198.18.0.0".parse().unwrap(), 16));
        assert!(!r.covers("::".parse().unwrap(), 0));
        assert_eq!(route("10.1.2.3 via 10.0.0.1").unwrap().len, 32);
        assert_eq!(route("unicast 10.0.0.0/8 table 100").unwrap().len, 8);
        assert_eq!(route("local 127.0.0.1 table local proto kernel"), None);
        assert_eq!(route("broadcast 127.255.255.255 table local"), None);
        assert_eq!(route("multicast ff00::/8 table local proto kernel"), None);
    }

    #[test]
    fn loopback_is_there() {
        let lo = link("lo").unwrap();
        assert!(lo.is_up());
        assert!(link("no-such-if0").is_none());
        assert!(
            addresses()
                .unwrap()
                .iter()
                .any(|(n, a)| n == "lo" && a.is_loopback())
        );
    }
}
