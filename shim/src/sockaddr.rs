//! `sockaddr_in` / `sockaddr_in6` to and from [`SocketAddr`], without
//! allocation, checking lengths the way the kernel does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ptr;

use libc::{sa_family_t, sockaddr, sockaddr_in, sockaddr_in6, socklen_t};

use crate::fds::Family;

/// The kernel takes an IPv6 address without `sin6_scope_id` (RFC 2133).
const IN6_LEN_MIN: usize = 24;

/// The lowest address a process can read: page zero is never mapped
/// (`vm.mmap_min_addr` is at least 4096 unless root lowers it).
const FIRST_USER_ADDRESS: usize = 4096;

/// Above this the address is the kernel's, on every 64-bit Linux: the
/// user's half of the address space never reaches the top bit.
#[cfg(target_pointer_width = "64")]
const USER_END: usize = 1 << 63;
#[cfg(not(target_pointer_width = "64"))]
const USER_END: usize = usize::MAX;

/// Whether `len` bytes at `ptr` could be user memory. `false` for pointers
/// the kernel can never read either (null, page zero, the kernel's half,
/// a range that wraps), which a buggy or testing program may pass: the
/// kernel answers EFAULT, where reading them here would crash the program.
/// A wild pointer into unmapped user memory still passes this check.
pub(crate) fn readable<T>(ptr: *const T, len: usize) -> bool {
    let start = ptr as usize;
    start >= FIRST_USER_ADDRESS && start.checked_add(len).is_some_and(|end| end <= USER_END)
}

/// Reads an IPv4 or IPv6 socket address. `None` for a null pointer, one
/// the kernel cannot read either ([`readable`]), any other family (AF_UNIX,
/// AF_UNSPEC to disconnect, ...) or a length too short for the family: the
/// real call then says what the kernel thinks (EFAULT, EINVAL, ...), and,
/// unable to read the address, sends nothing.
///
/// # Safety
/// `addr` is null, not [`readable`], or valid for reads of `len` bytes.
// Not inlined: the address then lives in memory, in one piece, where the
// callers hand it on; inlined, it is split into bytes and put back
// together for each use, at several times the cost.
#[inline(never)]
pub(crate) unsafe fn read(addr: *const sockaddr, len: socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    // The kernel reads at most a sockaddr_storage of a longer name (and
    // refuses or truncates the rest).
    let reads = len.min(size_of::<libc::sockaddr_storage>());
    if addr.is_null() || len < size_of::<sa_family_t>() || !readable(addr, reads) {
        return None;
    }
    // SAFETY: the caller's buffer holds at least the family; read_unaligned
    // because C callers may pass any byte buffer.
    let family = unsafe { ptr::read_unaligned(addr.cast::<sa_family_t>()) };
    match c_int(family) {
        libc::AF_INET if len >= size_of::<sockaddr_in>() => {
            // SAFETY: the length covers a sockaddr_in.
            let sin = unsafe { ptr::read_unaligned(addr.cast::<sockaddr_in>()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= IN6_LEN_MIN => {
            let mut sin6 = zeroed_in6();
            let n = len.min(size_of::<sockaddr_in6>());
            // SAFETY: `n` bytes are readable at `addr` (n <= len) and
            // writable in `sin6` (n <= its size); the two cannot overlap.
            unsafe {
                ptr::copy_nonoverlapping(addr.cast::<u8>(), (&raw mut sin6).cast::<u8>(), n);
            }
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn c_int(family: sa_family_t) -> libc::c_int {
    libc::c_int::from(family)
}

fn zeroed_in6() -> sockaddr_in6 {
    sockaddr_in6 {
        sin6_family: 0,
        sin6_port: 0,
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
        sin6_scope_id: 0,
    }
}

/// A socket address built by the shim, for a socket of a given family.
#[derive(Clone, Copy)]
pub(crate) struct Raw {
    storage: Storage,
    len: socklen_t,
}

#[derive(Clone, Copy)]
#[repr(C)]
union Storage {
    v4: sockaddr_in,
    v6: sockaddr_in6,
}

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Raw")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Raw {
    /// `addr` as a socket of `family` takes it: an IPv4 address on an IPv6
    /// socket becomes IPv4-mapped (::ffff:a.b.c.d). `None` when the socket
    /// cannot reach that family (an IPv6 address for an IPv4 socket).
    pub(crate) fn new(addr: SocketAddr, family: Family) -> Option<Raw> {
        let v6 = |ip: Ipv6Addr, flowinfo: u32, scope_id: u32| {
            let mut sin6 = zeroed_in6();
            sin6.sin6_family = libc::AF_INET6 as sa_family_t;
            sin6.sin6_port = addr.port().to_be();
            sin6.sin6_flowinfo = flowinfo.to_be();
            sin6.sin6_addr.s6_addr = ip.octets();
            sin6.sin6_scope_id = scope_id;
            Raw {
                storage: Storage { v6: sin6 },
                len: size_of::<sockaddr_in6>() as socklen_t,
            }
        };
        match (addr, family) {
            (SocketAddr::V4(a), Family::V4) => Some(Raw {
                storage: Storage {
                    v4: sockaddr_in {
                        sin_family: libc::AF_INET as sa_family_t,
                        sin_port: a.port().to_be(),
                        sin_addr: libc::in_addr {
                            s_addr: u32::from(*a.ip()).to_be(),
                        },
                        sin_zero: [0; 8],
                    },
                },
                len: size_of::<sockaddr_in>() as socklen_t,
            }),
            (SocketAddr::V4(a), Family::V6) => Some(v6(a.ip().to_ipv6_mapped(), 0, 0)),
            (SocketAddr::V6(a), Family::V6) => Some(v6(*a.ip(), a.flowinfo(), a.scope_id())),
            (SocketAddr::V6(_), Family::V4) => None,
        }
    }

    /// `ip` with port 0, as a socket of `family` binds it.
    pub(crate) fn source(ip: IpAddr, family: Family) -> Option<Raw> {
        Raw::new(SocketAddr::new(ip, 0), family)
    }

    pub(crate) fn as_ptr(&self) -> *const sockaddr {
        (&raw const self.storage).cast()
    }

    pub(crate) fn len(&self) -> socklen_t {
        self.len
    }
}

/// Whether `addr` is a wildcard (0.0.0.0, :: or ::ffff:0.0.0.0).
pub(crate) fn is_wildcard(addr: &SocketAddr) -> bool {
    match addr {
        SocketAddr::V4(a) => a.ip().is_unspecified(),
        SocketAddr::V6(a) => {
            a.ip().is_unspecified() || a.ip().to_ipv4_mapped() == Some(Ipv4Addr::UNSPECIFIED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(addr: SocketAddr, family: Family) -> Option<SocketAddr> {
        let raw = Raw::new(addr, family)?;
        // SAFETY: `raw` holds `raw.len()` initialised bytes.
        unsafe { read(raw.as_ptr(), raw.len()) }
    }

    #[test]
    fn round_trips_in_the_socket_family() {
        let v4: SocketAddr = "198.19.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[2001:db8:ff::1%3]:443".parse().unwrap();
        assert_eq!(round_trip(v4, Family::V4), Some(v4));
        assert_eq!(round_trip(v6, Family::V6), Some(v6));
        assert_eq!(
            round_trip(v4, Family::V6),
            Some("[::ffff:198.19.0.1]:80".parse().unwrap())
        );
        assert_eq!(round_trip(v6, Family::V4), None);
    }

    #[test]
    fn short_and_foreign_addresses_are_not_read() {
        let raw = Raw::new("198.19.0.1:80".parse().unwrap(), Family::V4).unwrap();
        // SAFETY: shorter than what `raw` holds.
        assert_eq!(unsafe { read(raw.as_ptr(), raw.len() - 1) }, None);
        // SAFETY: a null pointer is allowed.
        assert_eq!(unsafe { read(ptr::null(), 16) }, None);
        let family = (libc::AF_UNIX as sa_family_t).to_ne_bytes();
        let unix = [family[0], family[1], b'/', 0];
        // SAFETY: four readable bytes.
        assert_eq!(unsafe { read(unix.as_ptr().cast(), 4) }, None);
        let v6 = Raw::new("[2001:db8::1]:53".parse().unwrap(), Family::V6).unwrap();
        // SAFETY: 24 of its 28 bytes: the RFC 2133 length.
        let short = unsafe { read(v6.as_ptr(), 24) };
        assert_eq!(short, Some("[2001:db8::1]:53".parse().unwrap()));
    }

    #[test]
    fn pointers_the_kernel_cannot_read_are_not_read() {
        for bad in [1usize, 4095, usize::MAX, usize::MAX - 15] {
            // SAFETY: not readable, so never dereferenced.
            let got = unsafe { read(bad as *const sockaddr, 16) };
            assert_eq!(got, None, "{bad:#x}");
        }
        let v4 = Raw::new("198.19.0.1:80".parse().unwrap(), Family::V4).unwrap();
        assert!(readable(v4.as_ptr(), 16));
        assert!(!readable(usize::MAX as *const u8, 1));
    }

    #[test]
    fn wildcards() {
        for text in ["0.0.0.0:80", "[::]:80", "[::ffff:0.0.0.0]:80"] {
            assert!(is_wildcard(&text.parse().unwrap()), "{text}");
        }
        assert!(!is_wildcard(&"198.18.2.2:80".parse().unwrap()));
    }
}
