//! The common calls settled in one straight line, without touching errno:
//! a connect bound to its interface, a datagram with its pktinfo, or a
//! destination left alone. Anything else goes the long way
//! ([`super::decide`]), which starts again from nothing.

use bindto_core::{Protocol, Verdict};
use libc::{c_int, sockaddr, socklen_t};

use crate::apply::{self, Pktinfo};
use crate::fds;
use crate::guard::Guard;
use crate::log;
use crate::sockaddr::{read as read_addr, read_unspec};
use crate::state::{self, Mode, QuickConnect, Rules};

use super::decide::{Scope, pktinfo, send_scope};

/// The common connects, settled without touching errno: `true` when the
/// socket is ready for the caller's connect as it is, because the shim
/// has nothing to do, the profile leaves the destination alone, or the
/// socket has just been bound to its interface. `false` sends the call
/// the long way ([`super::connect_decided`]), which starts again from nothing:
/// nothing done here needs undoing or remembering.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
#[inline(always)]
pub(super) unsafe fn ready_to_connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> bool {
    // The process's mode is not asked: a thread has current rules cached
    // only in an active process, and the long way settles the rest. The
    // address is read after the calls that find the rules, so that it
    // stays in registers.
    let Some(socket) = fds::inet(fd) else {
        // SAFETY: as the caller promises.
        return unsafe { unrecorded(addr, len) };
    };
    if !state::checked_now() {
        return false;
    }
    let Some(guard) = Guard::enter() else {
        return false;
    };
    let Some(Rules::Table(loaded)) = state::settled(&guard).map(|s| &s.rules) else {
        return false;
    };
    let protocol = socket.protocol();
    // SAFETY: as the caller promises.
    let Some(destination) = (unsafe { read_addr(addr, len) }) else {
        return true;
    };
    // A profile that rewrites has no entries: the long way.
    match loaded.quick_connect(loaded.table.verdict_id(destination, protocol)) {
        // On failure the long way tries again and reports it. errno is
        // then the failure's, not the caller's, which only shows if
        // `on_failure = "allow"` lets the connect go on and succeed:
        // errno after a successful call is unspecified (POSIX), and
        // saving it here would cost every connect.
        QuickConnect::Device(name) => apply::device(fd, name).is_ok(),
        QuickConnect::Leave => !socket.device_set(),
        QuickConnect::Long => false,
    }
}

/// A connect on a socket without a record of a TCP or UDP socket: ready
/// unless its name is IPv4 or IPv6, when the record may be stale and the
/// long way asks the kernel. Out of line: inlined, its answer would cost
/// every bound connect a test of one more flag.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
#[cold]
#[inline(never)]
unsafe fn unrecorded(addr: *const sockaddr, len: socklen_t) -> bool {
    // SAFETY: as the caller promises.
    unsafe { read_addr(addr, len) }.is_none()
}

/// What the quick datagram path makes of a send.
pub(super) enum Quick {
    /// The real call as it is: nothing to do (no profile, no destination
    /// the kernel sends to, a destination the profile leaves alone).
    Pass,
    /// A datagram to send with this pktinfo appended to its control data.
    Send(Pktinfo),
    /// Anything else, decided again from nothing by the long way.
    Long,
}

/// The common sends, decided without touching errno: the process is set
/// up, the rules are this thread's and current, nothing is logged, the
/// destination is not rewritten, and it is either left alone or bound
/// to an interface whose index is cached (and perhaps a source). Nothing
/// done here needs undoing, so [`Quick::Long`] can start again from
/// nothing; and only the caller's own errno is in place when the real
/// call is made.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
#[inline(always)]
pub(super) unsafe fn quick_datagram(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
    flags: c_int,
) -> Quick {
    match state::mode() {
        Mode::PassThrough => return Quick::Pass,
        Mode::Active => {}
        Mode::Uninitialised => return Quick::Long,
    }
    // A TCP Fast Open connects; a UDP record for one may be stale (see
    // decide::socket_for).
    if flags & libc::MSG_FASTOPEN != 0 {
        return Quick::Long;
    }
    // SAFETY: as the caller promises.
    let read = unsafe { read_addr(addr, len) };
    let Some(destination) = &read else {
        // SAFETY: as the caller promises.
        return unsafe { unnamed(addr, len) };
    };
    // No record of a TCP or UDP socket: it may be stale.
    let Some(socket) = fds::inet(fd) else {
        return Quick::Long;
    };
    // Only a UDP record is trusted here, for a datagram.
    match send_scope(socket, flags) {
        Ok(Scope::Datagram) => {}
        _ => return Quick::Long,
    }
    if !state::checked_now() {
        return Quick::Long;
    }
    let Some(guard) = Guard::enter() else {
        return Quick::Long;
    };
    let Some(Rules::Table(loaded)) = state::settled(&guard).map(|s| &s.rules) else {
        return Quick::Long;
    };
    if log::enabled() {
        return Quick::Long;
    }
    let decision = loaded.table.decide(*destination, Protocol::Udp);
    if decision.rewrite.is_some() {
        return Quick::Long;
    }
    match decision.verdict {
        Verdict::Bind(binding) if binding.interface.is_some() => {
            let Some(ifindex) = loaded.cached_ifindex(loaded.index_of(binding)) else {
                return Quick::Long;
            };
            let destination = decision.destination.ip();
            let source = binding.source.for_family_of(destination);
            Quick::Send(pktinfo(ifindex, source, destination))
        }
        Verdict::Direct => Quick::Pass,
        _ => Quick::Long,
    }
}

/// A send without an IPv4 or IPv6 name: the long way when it is
/// AF_UNSPEC, which an IPv4 UDP socket sends to, else nothing to do.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
#[cold]
unsafe fn unnamed(addr: *const sockaddr, len: socklen_t) -> Quick {
    // SAFETY: as the caller promises.
    if unsafe { read_unspec(addr, len) }.is_some() {
        Quick::Long
    } else {
        Quick::Pass
    }
}
