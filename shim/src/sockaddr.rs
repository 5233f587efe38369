//! `sockaddr_in` / `sockaddr_in6` to and from [`SocketAddr`], without
//! allocation, checking lengths the way the kernel does.

use std::ffi::CStr;
use std::mem::offset_of;
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
/// A 32-bit process: the top of an IA-32 task's address space on an x86_64
/// kernel (`IA32_PAGE_OFFSET`); a 32-bit kernel's is lower still.
#[cfg(not(target_pointer_width = "64"))]
const USER_END: usize = 0xFFFF_E000;

/// Whether `len` bytes at `ptr` could be user memory. `false` for pointers
/// the kernel can never read either (null, page zero, the kernel's half,
/// a range that wraps), which a buggy or testing program may pass: the
/// kernel answers EFAULT, where reading them here would crash the program.
/// A wild pointer into unmapped user memory still passes this check.
pub(crate) fn readable<T>(ptr: *const T, len: usize) -> bool {
    let start = ptr as usize;
    start >= FIRST_USER_ADDRESS && start.checked_add(len).is_some_and(|end| end <= USER_END)
}

/// [`readable`] for a socket address of any length, in one comparison:
/// whether a whole sockaddr_storage could be user memory. Stricter than
/// `readable(addr, len)` only for the last bytes below USER_END, which
/// are never mapped (no Linux gives a process an address space that
/// large): the kernel refuses those with EFAULT either way.
fn readable_name(addr: *const sockaddr) -> bool {
    const MOST: usize = size_of::<libc::sockaddr_storage>();
    (addr as usize).wrapping_sub(FIRST_USER_ADDRESS) <= USER_END - FIRST_USER_ADDRESS - MOST
}

/// Reads an IPv4 or IPv6 socket address. `None` for a null pointer, one
/// the kernel cannot read either ([`readable`]), any other family (AF_UNIX,
/// AF_UNSPEC: see [`read_unspec`], ...) or a length too short for the
/// family: the real call then says what the kernel thinks (EFAULT, EINVAL,
/// ...), and, unable to read the address, sends nothing.
///
/// # Safety
/// `addr` is null, not [`readable`], or valid for reads of `len` bytes.
// Inlined, with the IPv6 half apart: the IPv4 half is a few loads, and
// the callers borrow the result where it lies rather than move it.
#[inline(always)]
pub(crate) unsafe fn read(addr: *const sockaddr, len: socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    // Shorter than a sockaddr_in is no address of either family (an IPv6
    // one needs IN6_LEN_MIN): checked first, it also covers the family
    // field. The kernel reads at most a sockaddr_storage of a longer name
    // (and refuses or truncates the rest).
    // Two branches rather than one `||`, which compiles to flag arithmetic
    // that costs more than it saves.
    if len < size_of::<sockaddr_in>() {
        return None;
    }
    if !readable_name(addr) {
        return None;
    }
    // SAFETY: the caller's buffer holds at least a sockaddr_in, so the
    // family; read_unaligned because C callers may pass any byte buffer.
    let family = unsafe { ptr::read_unaligned(addr.cast::<sa_family_t>()) };
    match c_int(family) {
        libc::AF_INET => {
            // SAFETY: the length covers a sockaddr_in.
            let sin = unsafe { ptr::read_unaligned(addr.cast::<sockaddr_in>()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        // SAFETY: the length covers the fields read_v6 reads.
        libc::AF_INET6 if len >= IN6_LEN_MIN => Some(SocketAddr::V6(unsafe { read_v6(addr, len) })),
        _ => None,
    }
}

/// Reads a name of family AF_UNSPEC as the kernel's IPv4 paths read it:
/// as a `sockaddr_in`. `udp_sendmsg` sends to it as to AF_INET, and
/// `inet_bind` takes it as AF_INET when its address is INADDR_ANY (a
/// compatibility rule); `connect` takes AF_UNSPEC to dissolve an
/// association instead, and an IPv6 socket's `udpv6_sendmsg` as no name.
/// `None` for another family, or a name [`read`] would not read either.
///
/// # Safety
/// As [`read`].
#[cold]
pub(crate) unsafe fn read_unspec(addr: *const sockaddr, len: socklen_t) -> Option<SocketAddrV4> {
    if (len as usize) < size_of::<sockaddr_in>() || !readable_name(addr) {
        return None;
    }
    // SAFETY: as in `read`: the length covers a sockaddr_in.
    let sin = unsafe { ptr::read_unaligned(addr.cast::<sockaddr_in>()) };
    (c_int(sin.sin_family) == libc::AF_UNSPEC).then(|| {
        SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
            u16::from_be(sin.sin_port),
        )
    })
}

/// Calls `f` with the name and the IPv4 or IPv6 address of each address
/// the host's interfaces hold (getifaddrs); `false` when the list cannot
/// be had.
pub(crate) fn each_interface_address(mut f: impl FnMut(&CStr, IpAddr)) -> bool {
    let mut list: *mut libc::ifaddrs = ptr::null_mut();
    // SAFETY: `list` is valid for writes; freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return false;
    }
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*entry };
        // SAFETY: ifa_addr is null or points into glibc's per-entry
        // storage, a union as large as a sockaddr_in6.
        let addr = unsafe { read(ifa.ifa_addr, size_of::<sockaddr_in6>() as socklen_t) };
        if let (Some(addr), false) = (addr, ifa.ifa_name.is_null()) {
            // SAFETY: a non-null name is glibc's C string for the entry.
            f(unsafe { CStr::from_ptr(ifa.ifa_name) }, addr.ip());
        }
        entry = ifa.ifa_next;
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(list) };
    true
}

/// The IPv6 half of [`read`], apart so that the IPv4 half needs no stack
/// frame. Field by field: the scope id only when `len` covers it.
///
/// # Safety
/// `addr` is valid for reads of `len` bytes, `len >= IN6_LEN_MIN`.
#[inline(never)]
unsafe fn read_v6(addr: *const sockaddr, len: usize) -> SocketAddrV6 {
    let at = |offset: usize| addr.cast::<u8>().wrapping_add(offset);
    // SAFETY: the first IN6_LEN_MIN bytes are readable, and this field
    // and the next two lie within them; read_unaligned as in `read`.
    let port =
        unsafe { ptr::read_unaligned(at(offset_of!(sockaddr_in6, sin6_port)).cast::<u16>()) };
    // SAFETY: as above.
    let flowinfo =
        unsafe { ptr::read_unaligned(at(offset_of!(sockaddr_in6, sin6_flowinfo)).cast::<u32>()) };
    // SAFETY: as above.
    let ip =
        unsafe { ptr::read_unaligned(at(offset_of!(sockaddr_in6, sin6_addr)).cast::<[u8; 16]>()) };
    let scope_id = if len >= size_of::<sockaddr_in6>() {
        // SAFETY: `len` covers the whole sockaddr_in6.
        unsafe { ptr::read_unaligned(at(offset_of!(sockaddr_in6, sin6_scope_id)).cast::<u32>()) }
    } else {
        0
    };
    // A type of its own, not `SocketAddr`: written through the return
    // pointer into the caller's `SocketAddr`, it would keep the IPv4 half
    // of `read` in memory too.
    SocketAddrV6::new(
        Ipv6Addr::from(ip),
        u16::from_be(port),
        u32::from_be(flowinfo),
        scope_id,
    )
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
pub(crate) struct SockaddrBuf {
    storage: Storage,
    len: socklen_t,
}

#[derive(Clone, Copy)]
#[repr(C)]
union Storage {
    v4: sockaddr_in,
    v6: sockaddr_in6,
}

impl std::fmt::Debug for SockaddrBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SockaddrBuf")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl SockaddrBuf {
    /// `addr` as a socket of `family` takes it: an IPv4 address on an IPv6
    /// socket becomes IPv4-mapped (::ffff:a.b.c.d). `None` when the socket
    /// cannot reach that family (an IPv6 address for an IPv4 socket).
    pub(crate) fn new(addr: SocketAddr, family: Family) -> Option<SockaddrBuf> {
        let v6 = |ip: Ipv6Addr, flowinfo: u32, scope_id: u32| {
            let mut sin6 = zeroed_in6();
            sin6.sin6_family = libc::AF_INET6 as sa_family_t;
            sin6.sin6_port = addr.port().to_be();
            sin6.sin6_flowinfo = flowinfo.to_be();
            sin6.sin6_addr.s6_addr = ip.octets();
            sin6.sin6_scope_id = scope_id;
            SockaddrBuf {
                storage: Storage { v6: sin6 },
                len: size_of::<sockaddr_in6>() as socklen_t,
            }
        };
        match (addr, family) {
            (SocketAddr::V4(a), Family::V4) => Some(SockaddrBuf {
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
    pub(crate) fn source(ip: IpAddr, family: Family) -> Option<SockaddrBuf> {
        SockaddrBuf::new(SocketAddr::new(ip, 0), family)
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
        let raw = SockaddrBuf::new(addr, family)?;
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
        let raw = SockaddrBuf::new("198.19.0.1:80".parse().unwrap(), Family::V4).unwrap();
        // SAFETY: shorter than what `raw` holds.
        assert_eq!(unsafe { read(raw.as_ptr(), raw.len() - 1) }, None);
        // SAFETY: a null pointer is allowed.
        assert_eq!(unsafe { read(ptr::null(), 16) }, None);
        let family = (libc::AF_UNIX as sa_family_t).to_ne_bytes();
        let unix = [family[0], family[1], b'/', 0];
        // SAFETY: four readable bytes.
        assert_eq!(unsafe { read(unix.as_ptr().cast(), 4) }, None);
        let v6 = SockaddrBuf::new("[2001:db8::1]:53".parse().unwrap(), Family::V6).unwrap();
        // SAFETY: 24 of its 28 bytes: the RFC 2133 length.
        let short = unsafe { read(v6.as_ptr(), 24) };
        assert_eq!(short, Some("[2001:db8::1]:53".parse().unwrap()));
    }

    #[test]
    fn af_unspec_names_are_read_as_ipv4_only_when_asked() {
        let mut raw = SockaddrBuf::new("198.19.0.1:7".parse().unwrap(), Family::V4).unwrap();
        raw.storage.v4.sin_family = libc::AF_UNSPEC as sa_family_t;
        // SAFETY: `raw` holds `raw.len()` initialised bytes.
        assert_eq!(unsafe { read(raw.as_ptr(), raw.len()) }, None);
        // SAFETY: as above.
        let unspec = unsafe { read_unspec(raw.as_ptr(), raw.len()) };
        assert_eq!(unspec, Some("198.19.0.1:7".parse().unwrap()));
        // SAFETY: shorter than what `raw` holds.
        assert_eq!(unsafe { read_unspec(raw.as_ptr(), raw.len() - 1) }, None);
        let v4 = SockaddrBuf::new("198.19.0.1:7".parse().unwrap(), Family::V4).unwrap();
        // SAFETY: as above.
        assert_eq!(unsafe { read_unspec(v4.as_ptr(), v4.len()) }, None);
    }

    #[test]
    fn pointers_the_kernel_cannot_read_are_not_read() {
        for bad in [1usize, 4095, usize::MAX, usize::MAX - 15] {
            // SAFETY: not readable, so never dereferenced.
            let got = unsafe { read(bad as *const sockaddr, 16) };
            assert_eq!(got, None, "{bad:#x}");
        }
        let v4 = SockaddrBuf::new("198.19.0.1:80".parse().unwrap(), Family::V4).unwrap();
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
