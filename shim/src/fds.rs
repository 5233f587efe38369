//! What kind of socket each file descriptor is, recorded when `socket()`
//! creates it, so that a hook knows without a syscall whether a call is
//! one it interposes.
//!
//! A fixed array of atomics, one byte per descriptor below [`CAPACITY`]:
//! no lock, no allocation, and inherited as it is by a forked child. `close`,
//! `dup2` and `dup3` forget the descriptors they close. A descriptor without
//! a record (accepted, inherited across exec, created inside libc, or above
//! the array) is asked with `getsockopt` once and then recorded.
//!
//! `close_range` and `closefrom` forget their ranges. A record can go
//! stale only when a descriptor is closed without going through any of
//! these (a raw syscall, libc's internal closes such as `fclose`'s); the
//! descriptor that takes its number (`dup`, `fcntl(F_DUPFD)`, `accept`,
//! a raw syscall: none of them hooked) then inherits its record. So a
//! record is trusted only where it makes a hook decide the call; where it
//! would let a call with a destination through undecided, the hook asks
//! the kernel again ([`checked`]): one to three `getsockopt`s, on calls
//! that are rare for the sockets they fit (a TCP send with a destination
//! but no Fast Open, a raw socket's send, ...).

use std::sync::atomic::{AtomicU8, Ordering};

use bindto_core::Protocol;
use libc::{c_int, c_uint};

/// Descriptors recorded without a syscall; higher ones are asked every time.
const CAPACITY: usize = 65_536;

const UNKNOWN: u8 = 0;
const OTHER: u8 = 1;
const INET: u8 = 0x10;
const V6: u8 = 0x01;
const UDP: u8 = 0x02;
/// The shim set SO_BINDTODEVICE on this socket (see [`mark_device`]).
const DEVICE: u8 = 0x04;

static KINDS: [AtomicU8; CAPACITY] = [const { AtomicU8::new(UNKNOWN) }; CAPACITY];

/// The address family of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

/// A socket the shim interposes: TCP or UDP over IPv4 or IPv6. Kept as
/// its record byte, decoded where asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inet(u8);

impl Inet {
    pub(crate) fn family(self) -> Family {
        if self.0 & V6 != 0 {
            Family::V6
        } else {
            Family::V4
        }
    }

    pub(crate) fn protocol(self) -> Protocol {
        if self.0 & UDP != 0 {
            Protocol::Udp
        } else {
            Protocol::Tcp
        }
    }

    /// Whether the shim bound it to a device earlier.
    pub(crate) fn device_set(self) -> bool {
        self.0 & DEVICE != 0
    }
}

/// What `socket(domain, ty, protocol)` creates, as [`record`] keeps it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketKind(u8);

/// The kind of socket `socket(domain, ty, protocol)` creates.
#[inline]
pub(crate) fn classify(domain: c_int, ty: c_int, protocol: c_int) -> SocketKind {
    SocketKind(record_of(domain, ty, protocol))
}

/// The record for `socket(domain, ty, protocol)`.
fn record_of(domain: c_int, ty: c_int, protocol: c_int) -> u8 {
    let family = match domain {
        libc::AF_INET => 0,
        libc::AF_INET6 => V6,
        _ => return OTHER,
    };
    let kind = match (ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC), protocol) {
        (libc::SOCK_STREAM, 0 | libc::IPPROTO_TCP | libc::IPPROTO_MPTCP) => 0,
        (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP | libc::IPPROTO_UDPLITE) => UDP,
        // Raw sockets, ICMP "ping" sockets, SCTP: not TCP or UDP.
        _ => return OTHER,
    };
    INET | family | kind
}

fn slot(fd: c_int) -> Option<&'static AtomicU8> {
    usize::try_from(fd).ok().and_then(|i| KINDS.get(i))
}

/// Records what `socket()` returned: a descriptor of `kind`, or an
/// error (negative), which records nothing.
pub(crate) fn record(fd: c_int, kind: SocketKind) {
    if let Some(slot) = slot(fd) {
        slot.store(kind.0, Ordering::Relaxed);
    }
}

/// Forgets `fd`, which is being closed or replaced. Done before the real
/// call: a socket that reuses the number afterwards records itself.
pub(crate) fn forget(fd: c_int) {
    if let Some(slot) = slot(fd) {
        slot.store(UNKNOWN, Ordering::Relaxed);
    }
}

/// Forgets every descriptor from `first` to `last`, both included.
pub(crate) fn forget_range(first: c_uint, last: c_uint) {
    let end = usize::try_from(last).map_or(CAPACITY, |last| last.saturating_add(1));
    let start = usize::try_from(first).unwrap_or(usize::MAX);
    for slot in KINDS.get(start..end.min(CAPACITY)).unwrap_or_default() {
        slot.store(UNKNOWN, Ordering::Relaxed);
    }
}

/// `new` is now a duplicate of `old`.
pub(crate) fn copy(old: c_int, new: c_int) {
    if let (Some(old), Some(new)) = (slot(old), slot(new)) {
        new.store(old.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Notes that the shim set SO_BINDTODEVICE on `fd`, so that a later
/// decision to leave it alone knows to undo that.
pub(crate) fn mark_device(fd: c_int) {
    if let Some(slot) = slot(fd) {
        slot.fetch_or(DEVICE, Ordering::Relaxed);
    }
}

/// Notes that `fd` is no longer bound to a device by the shim.
pub(crate) fn unmark_device(fd: c_int) {
    if let Some(slot) = slot(fd) {
        slot.fetch_and(!DEVICE, Ordering::Relaxed);
    }
}

/// The kind of `fd` if it is a socket the shim interposes.
#[inline]
pub(crate) fn inet(fd: c_int) -> Option<Inet> {
    let slot = slot(fd);
    let mut record = slot.map_or(UNKNOWN, |s| s.load(Ordering::Relaxed));
    if record == UNKNOWN {
        record = ask(fd)?;
        if let Some(slot) = slot {
            slot.store(record, Ordering::Relaxed);
        }
    }
    (record & INET != 0).then_some(Inet(record))
}

/// The kind of `fd` as the kernel says it is now, recorded: for a hook
/// whose record would let its call through undecided, and may be stale.
/// The shim's DEVICE mark stays if the socket is still of the recorded
/// kind.
#[cold]
#[inline(never)]
pub(crate) fn checked(fd: c_int) -> Option<Inet> {
    let record = ask(fd);
    if let Some(slot) = slot(fd) {
        let old = slot.load(Ordering::Relaxed);
        let new = match record {
            Some(kind) if kind == old & !DEVICE => old,
            Some(kind) => kind,
            None => UNKNOWN,
        };
        slot.store(new, Ordering::Relaxed);
    }
    record.filter(|r| r & INET != 0).map(Inet)
}

/// Asks the kernel what `fd` is; `None` if it is not a socket (nothing is
/// recorded then: the number may become a socket without our knowing).
/// The type first: a raw socket, the commonest socket [`checked`] asks
/// about that is not TCP or UDP, costs one `getsockopt`.
#[cold]
fn ask(fd: c_int) -> Option<u8> {
    let ty = sockopt(fd, libc::SO_TYPE)?;
    if ty != libc::SOCK_STREAM && ty != libc::SOCK_DGRAM {
        return Some(OTHER);
    }
    let domain = sockopt(fd, libc::SO_DOMAIN)?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Some(OTHER);
    }
    Some(record_of(domain, ty, sockopt(fd, libc::SO_PROTOCOL)?))
}

/// An integer SOL_SOCKET option of `fd`, `None` if getsockopt fails.
pub(crate) fn sockopt(fd: c_int, name: c_int) -> Option<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes and `len` is the size
    // of `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value)
}
