//! Putting a decision into effect on a socket: SO_BINDTODEVICE and the
//! source address for connected sockets, IP_PKTINFO / IPV6_PKTINFO
//! ancillary data for each datagram of an unconnected UDP socket.
//!
//! Sockets the program set up itself: the profile wins for the device, the
//! program keeps its own address.
//! - Device: the shim sets SO_BINDTODEVICE whatever the program did. If the
//!   kernel refuses (EPERM: an unprivileged process cannot change a device
//!   once set), the socket is accepted only if it is already bound to the
//!   profile's interface; otherwise the call fails closed.
//! - Source: bound only if the program has not bound the socket (bind says
//!   EINVAL when it has); a program that chose its own address keeps it.

use std::net::IpAddr;

use bindto_core::{Binding, IfName};
use libc::{c_int, c_void, socklen_t};

use crate::errno;
use crate::fds::Family;
use crate::real;
use crate::sockaddr::SockaddrBuf;

/// Why a binding could not be made, with the errno the call fails with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindError {
    /// SO_BINDTODEVICE failed, or (for IP_PKTINFO) the interface does not
    /// exist.
    Interface(IfName, c_int),
    /// Binding the source address failed.
    Source(IpAddr, c_int),
    /// The binding has no interface and no source of this family.
    Family(IpAddr),
}

impl BindError {
    /// The errno the refused call fails with: the kernel's own for a failed
    /// setsockopt or bind, ENETUNREACH when the profile offers no way to
    /// the destination's family (so that a program falls back to the other
    /// family, as it would on a host without that family's route).
    pub(crate) fn errno(&self) -> c_int {
        match *self {
            BindError::Interface(_, e) | BindError::Source(_, e) => e,
            BindError::Family(_) => libc::ENETUNREACH,
        }
    }
}

/// Binds a socket about to connect to `destination` (decided, so never
/// IPv4-mapped) as `binding` says: device first, then the source address
/// of the destination's family.
#[inline(always)]
pub(crate) fn connected(
    fd: c_int,
    family: Family,
    binding: &Binding,
    destination: IpAddr,
) -> Result<(), BindError> {
    let source = binding.source.for_family_of(destination);
    if binding.interface.is_none() && source.is_none() {
        return Err(BindError::Family(destination));
    }
    if let Some(name) = &binding.interface {
        device(fd, name).map_err(|e| BindError::Interface(*name, e))?;
    }
    if let Some(source) = source {
        bind_source(fd, family, source).map_err(|e| BindError::Source(source, e))?;
    }
    Ok(())
}

/// SO_BINDTODEVICE, accepting a refusal when the socket is already there.
#[inline(always)]
pub(crate) fn device(fd: c_int, name: &IfName) -> Result<(), c_int> {
    let name = name.as_padded();
    if setsockopt(fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, name) == 0 {
        crate::fds::mark_device(fd);
        return Ok(());
    }
    device_refused(fd, name)
}

/// After SO_BINDTODEVICE failed: EPERM is no failure if the socket is
/// already bound to `name` (NUL-padded). Out of line, to keep the
/// connect hook's frame small.
#[cold]
#[inline(never)]
fn device_refused(fd: c_int, name: &[u8]) -> Result<(), c_int> {
    let error = errno::get();
    if error == libc::EPERM
        && bound_device(fd)
            .as_ref()
            .is_some_and(|b| b.starts_with(name))
    {
        return Ok(());
    }
    Err(error)
}

/// Undoes the shim's own SO_BINDTODEVICE before a connection the profile
/// leaves alone (a UDP socket connected again elsewhere).
pub(crate) fn clear_device(fd: c_int) -> Result<(), c_int> {
    if setsockopt(fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, &[] as &[u8]) == 0 {
        crate::fds::unmark_device(fd);
        Ok(())
    } else {
        Err(errno::get())
    }
}

/// Whether interface `name` holds address `ip` now (getifaddrs: a netlink
/// dump, for a bind, never a connect or send).
pub(crate) fn holds(name: &IfName, ip: IpAddr) -> bool {
    let mut found = false;
    crate::sockaddr::each_interface_address(|ifname, addr| {
        found |= addr == ip && ifname.to_bytes() == name.as_str().as_bytes();
    });
    found
}

/// The device the socket is bound to, NUL-terminated, if any.
fn bound_device(fd: c_int) -> Option<[u8; IfName::CAPACITY + 1]> {
    let mut buf = [0u8; IfName::CAPACITY + 1];
    let mut len = IfName::CAPACITY as socklen_t;
    // SAFETY: `buf` is writable for `len` bytes (one spare NUL after them).
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0 && len > 0).then_some(buf)
}

/// Binds `source` with port 0, asking the kernel to pick the port at
/// connect time (IP_BIND_ADDRESS_NO_PORT) so that binding uses up no
/// ephemeral port of its own. EINVAL means the program bound the socket
/// already: it keeps its address.
fn bind_source(fd: c_int, family: Family, source: IpAddr) -> Result<(), c_int> {
    let addr = SockaddrBuf::source(source, family).ok_or(libc::EAFNOSUPPORT)?;
    // Best effort: without it the bind still holds, only less thriftily.
    setsockopt(
        fd,
        libc::SOL_IP,
        libc::IP_BIND_ADDRESS_NO_PORT,
        &1 as &c_int,
    );
    // SAFETY: `addr` is a valid socket address of `addr.len()` bytes.
    if unsafe { real::bind(fd, addr.as_ptr(), addr.len()) } == 0 {
        return Ok(());
    }
    match errno::get() {
        libc::EINVAL => Ok(()),
        e => Err(e),
    }
}

fn setsockopt<T: ?Sized>(fd: c_int, level: c_int, name: c_int, value: &T) -> c_int {
    // SAFETY: `value` is valid for reads of its size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast::<c_void>(),
            size_of_val(value) as socklen_t,
        )
    }
}

/// The ancillary data that sends one datagram out of an interface and/or
/// from a source address: IP_PKTINFO for an IPv4 destination (also
/// IPv4-mapped on an IPv6 socket), IPV6_PKTINFO for IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pktinfo {
    /// Interface index, 0 for "any".
    pub(crate) ifindex: u32,
    /// Source address (of the destination's family), if any.
    pub(crate) source: Option<IpAddr>,
    /// Whether the destination is IPv6 (not mapped).
    pub(crate) v6: bool,
}

/// `struct cmsghdr` on Linux: `size_t` length, `int` level, `int` type.
const CMSG_HEADER: usize = size_of::<usize>() + 2 * size_of::<c_int>();
/// `in_pktinfo`: ifindex, spec_dst, addr.
const IN_PKTINFO: usize = 12;
/// `in6_pktinfo`: addr, ifindex.
const IN6_PKTINFO: usize = 20;

const fn align(len: usize) -> usize {
    (len + size_of::<usize>() - 1) & !(size_of::<usize>() - 1)
}

/// The room an IP_PKTINFO message takes (its CMSG_SPACE).
const IPV4_SPACE: usize = CMSG_HEADER + align(IN_PKTINFO);
/// The room an IPV6_PKTINFO message takes.
const IPV6_SPACE: usize = CMSG_HEADER + align(IN6_PKTINFO);

/// The most room a [`Pktinfo`] takes after the caller's control data.
pub(crate) const PKTINFO_SPACE: usize = IPV6_SPACE;

impl Pktinfo {
    /// Appends this pktinfo as a control message after the caller's
    /// `control` bytes (as [`kernel_read`] leaves them) into `out`;
    /// returns the length used, or `None` if `out` is too small.
    pub(crate) fn append(&self, control: &[u8], out: &mut [u8]) -> Option<usize> {
        let start = align(control.len());
        let (cmsg, space) = self.cmsg();
        let end = start + space;
        let out = out.get_mut(..end)?;
        out[..control.len()].copy_from_slice(control);
        // Usually none: most control messages end aligned. A fill of none
        // would still be a call to memset.
        if start > control.len() {
            out[control.len()..start].fill(0);
        }
        // Each length apart, so that the copy is a few moves, not a call.
        let out = &mut out[start..];
        if self.v6 {
            out.copy_from_slice(&cmsg.0[..IPV6_SPACE]);
        } else {
            out.copy_from_slice(&cmsg.0[..IPV4_SPACE]);
        }
        Some(end)
    }

    /// This pktinfo as a control message of its own, and the length the
    /// kernel is given of it (its CMSG_SPACE): what a datagram without
    /// control data of the caller's carries, built in place with no buffer
    /// to clear or copy.
    #[inline(always)]
    pub(crate) fn cmsg(&self) -> (Cmsg, usize) {
        let mut out = Cmsg([0; PKTINFO_SPACE]);
        let (header, payload) = out.0.split_at_mut(CMSG_HEADER);
        let (level, kind, len, space) = if self.v6 {
            if let Some(IpAddr::V6(source)) = self.source {
                payload[..16].copy_from_slice(&source.octets());
            }
            payload[16..20].copy_from_slice(&self.ifindex.to_ne_bytes());
            (libc::SOL_IPV6, libc::IPV6_PKTINFO, IN6_PKTINFO, IPV6_SPACE)
        } else {
            payload[..4].copy_from_slice(&self.ifindex.to_ne_bytes());
            if let Some(IpAddr::V4(source)) = self.source {
                payload[4..8].copy_from_slice(&source.octets());
            }
            (libc::SOL_IP, libc::IP_PKTINFO, IN_PKTINFO, IPV4_SPACE)
        };
        let (cmsg_len, rest) = header.split_at_mut(size_of::<usize>());
        cmsg_len.copy_from_slice(&(CMSG_HEADER + len).to_ne_bytes());
        rest[..4].copy_from_slice(&level.to_ne_bytes());
        rest[4..].copy_from_slice(&kind.to_ne_bytes());
        (out, space)
    }
}

/// One pktinfo control message: `struct cmsghdr`, then `in_pktinfo` or
/// `in6_pktinfo`, padded to the larger one's CMSG_SPACE. 8-byte aligned,
/// as `struct cmsghdr` wants.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct Cmsg([u8; PKTINFO_SPACE]);

impl Cmsg {
    /// The message, for `msg_control`.
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }
}

/// The part of the caller's control data the kernel reads, walked as its
/// CMSG_FIRSTHDR / __cmsg_nxthdr do: messages while a whole header is
/// left. The tail after them is dropped (the kernel ignores it; followed
/// by the pktinfo, it would become a malformed message). `None` when a
/// message fails the kernel's CMSG_OK (a length shorter than its header,
/// or longer than what is left): the kernel refuses the send with EINVAL,
/// and a pktinfo appended after it could become that message's payload
/// and go unread, sending the datagram unbound.
pub(crate) fn kernel_read(control: &[u8]) -> Option<&[u8]> {
    let mut at = 0;
    while control.len().saturating_sub(at) >= CMSG_HEADER {
        let mut len = [0u8; size_of::<usize>()];
        len.copy_from_slice(&control[at..at + size_of::<usize>()]);
        let len = usize::from_ne_bytes(len);
        if len < CMSG_HEADER || len > control.len() - at {
            return None;
        }
        at += align(len);
    }
    Some(&control[..at.min(control.len())])
}

/// Room for the caller's control data plus a pktinfo, on the stack when it
/// fits (it does for every common use: the caller's data is a few dozen
/// bytes if any), else on the heap.
#[derive(Debug)]
// Boxing the stack variant would defeat its purpose.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ControlBuf {
    Stack(Aligned),
    /// The kernel copies control data before parsing it, so the heap
    /// buffer needs no particular alignment.
    Heap(Vec<u8>),
}

/// 8-byte aligned bytes, as `struct cmsghdr` wants.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct Aligned([u8; 256]);

impl ControlBuf {
    /// A buffer for `control` plus a pktinfo.
    pub(crate) fn for_control(control: &[u8]) -> ControlBuf {
        let need = align(control.len()) + PKTINFO_SPACE;
        if need <= size_of::<Aligned>() {
            ControlBuf::Stack(Aligned([0; 256]))
        } else {
            ControlBuf::Heap(vec![0; need])
        }
    }

    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        match self {
            ControlBuf::Stack(a) => &mut a.0,
            ControlBuf::Heap(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_pktinfo_follows_the_callers_control_data() {
        let caller = [7u8; 20];
        let info = Pktinfo {
            ifindex: 3,
            source: Some("198.18.2.2".parse().unwrap()),
            v6: false,
        };
        let mut out = [0xffu8; 128];
        let n = info.append(&caller, &mut out).unwrap();
        assert_eq!(n, 24 + 16 + 16);
        assert_eq!(&out[..20], &caller);
        assert_eq!(&out[20..24], &[0; 4]);
        assert_eq!(out[24..32], 28usize.to_ne_bytes());
        assert_eq!(out[32..36], libc::SOL_IP.to_ne_bytes());
        assert_eq!(out[36..40], libc::IP_PKTINFO.to_ne_bytes());
        assert_eq!(out[40..44], 3u32.to_ne_bytes());
        assert_eq!(out[44..48], [198, 18, 2, 2]);
        assert_eq!(out[48..56], [0; 8]);
    }

    #[test]
    fn the_kernel_reads_whole_messages_and_refuses_malformed_ones() {
        // Eight bytes: no message the kernel would read.
        assert_eq!(kernel_read(&[0; 8]), Some(&[][..]));
        // One whole message (IP_TOS, 20 bytes) and a tail of 7.
        let mut tos = [0u8; 24 + 7];
        tos[..8].copy_from_slice(&20usize.to_ne_bytes());
        assert_eq!(kernel_read(&tos).map(<[u8]>::len), Some(24));
        // The same message unpadded at the end: read whole.
        assert_eq!(kernel_read(&tos[..20]).map(<[u8]>::len), Some(20));
        // A length longer than what is left, or shorter than a header.
        for len in [25usize, 15] {
            let mut bad = [0u8; 24];
            bad[..8].copy_from_slice(&len.to_ne_bytes());
            assert_eq!(kernel_read(&bad), None, "{len}");
        }
        // Malformed after a good message.
        let mut two = [0u8; 48];
        two[..8].copy_from_slice(&20usize.to_ne_bytes());
        two[24..32].copy_from_slice(&99usize.to_ne_bytes());
        assert_eq!(kernel_read(&two), None);
    }

    #[test]
    fn ipv4_pktinfo_as_a_message_of_its_own() {
        let info = Pktinfo {
            ifindex: 3,
            source: Some("198.18.2.2".parse().unwrap()),
            v6: false,
        };
        let (cmsg, space) = info.cmsg();
        assert_eq!(space, 16 + 16);
        let mut appended = [0xffu8; 128];
        assert_eq!(info.append(&[], &mut appended), Some(space));
        assert_eq!(cmsg.0[..space], appended[..space]);
        assert_eq!(cmsg.as_ptr() as usize % 8, 0);
    }

    #[test]
    fn ipv6_pktinfo_alone() {
        let info = Pktinfo {
            ifindex: 9,
            source: None,
            v6: true,
        };
        let mut out = [0u8; PKTINFO_SPACE];
        assert_eq!(info.append(&[], &mut out), Some(PKTINFO_SPACE));
        assert_eq!(out[..8], 36usize.to_ne_bytes());
        assert_eq!(out[16..32], [0; 16]);
        assert_eq!(out[32..36], 9u32.to_ne_bytes());
        assert_eq!(info.append(&[], &mut out[..PKTINFO_SPACE - 1]), None);
    }
}
