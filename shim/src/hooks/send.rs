//! Sending with ancillary data: the pktinfo appended to the caller's own
//! control data, and `sendmmsg` taken apart into runs of messages.

use std::ptr;

use bindto_core::Protocol;
use libc::{c_int, c_uint, c_void, iovec, mmsghdr, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use crate::apply::{ControlBuf, Pktinfo, kernel_read};
use crate::boundary::NoCancel;
use crate::errno;
use crate::fds::Inet;
use crate::guard::Guard;
use crate::real;
use crate::sockaddr::{SockaddrBuf, read as read_addr, read_unspec, readable};
use crate::state::{self, State};

use super::decide::{
    Call, Datagram, Prepared, Scope, Unbound, outbound, socket_for, unspec_datagram,
};
use super::sendmsg;

/// Sends `msg` with `pktinfo` appended to its control data; on ENODEV or
/// ENXIO, looks the interface up again and, if its index changed, retries
/// once.
///
/// # Safety
/// `msg` is a valid message for sendmsg.
pub(super) unsafe fn send_with_pktinfo(
    fd: c_int,
    msg: &msghdr,
    flags: c_int,
    pktinfo: &Datagram,
) -> ssize_t {
    // SAFETY: as the caller promises.
    let sent = unsafe { send_appended(fd, msg, flags, &pktinfo.info) };
    if sent < 0 && matches!(errno::get(), libc::ENODEV | libc::ENXIO) {
        if let Some(fresh) = pktinfo.refresh() {
            // SAFETY: as above.
            return unsafe { send_appended(fd, msg, flags, &fresh) };
        }
    }
    sent
}

/// Sends `msg` with `info` appended to its control data: as the only
/// control message, built in place, when the caller has none (the common
/// case), else after a copy of the caller's.
///
/// # Safety
/// `msg` is a valid message for sendmsg.
#[inline(always)]
pub(super) unsafe fn send_appended(
    fd: c_int,
    msg: &msghdr,
    flags: c_int,
    info: &Pktinfo,
) -> ssize_t {
    if msg.msg_controllen != 0 {
        // SAFETY: as the caller promises.
        return unsafe { send_after_control(fd, msg, flags, info) };
    }
    let (cmsg, space) = info.cmsg();
    let mut local = *msg;
    local.msg_control = cmsg.as_ptr().cast_mut().cast();
    local.msg_controllen = space;
    // SAFETY: the caller's valid message, with a control message that
    // lives until the call returns.
    unsafe { real::sendmsg(fd, &local, flags) }
}

/// [`send_appended`] for a message with control data of its own.
///
/// # Safety
/// `msg` is a valid message for sendmsg.
#[inline(never)]
pub(super) unsafe fn send_after_control(
    fd: c_int,
    msg: &msghdr,
    flags: c_int,
    info: &Pktinfo,
) -> ssize_t {
    // SAFETY: the caller's message describes `msg_controllen` readable
    // bytes at `msg_control`, or is refused here as the kernel would.
    let control = match unsafe { control_bytes(msg) } {
        Ok(control) => control,
        Err(e) => {
            errno::set(e);
            return -1;
        }
    };
    let mut buf = ControlBuf::for_control(control);
    let Some(len) = info.append(control, buf.bytes()) else {
        // for_control always makes room; a shortfall is a shim bug.
        errno::set(libc::EPERM);
        return -1;
    };
    let mut local = *msg;
    local.msg_control = buf.bytes().as_mut_ptr().cast::<c_void>();
    local.msg_controllen = len as size_t;
    // SAFETY: `local` is the caller's valid message with a control
    // buffer that lives until the call returns.
    unsafe { real::sendmsg(fd, &local, flags) }
}

/// The most control data the shim copies to append a pktinfo. The kernel
/// refuses more than `net.core.optmem_max` (20 KiB to 128 KiB) with
/// ENOBUFS before reading any; a UDP socket's real control data is a few
/// dozen bytes.
pub(super) const MAX_CONTROL: usize = 64 * 1024;

/// The caller's control data as the kernel reads it ([`kernel_read`]), or
/// the errno with which the kernel would refuse it without sending:
/// ENOBUFS for a length it will not allocate, EFAULT for a length with no
/// readable buffer, EINVAL for a malformed message.
///
/// # Safety
/// `msg.msg_control` is valid for reads of `msg.msg_controllen` bytes
/// for the returned lifetime, or not [`readable`].
pub(super) unsafe fn control_bytes<'m>(msg: &msghdr) -> Result<&'m [u8], c_int> {
    let len = msg.msg_controllen;
    if len == 0 {
        return Ok(&[]);
    }
    if len > MAX_CONTROL {
        return Err(libc::ENOBUFS);
    }
    if !readable(msg.msg_control, len) {
        return Err(libc::EFAULT);
    }
    // SAFETY: as the caller promises.
    let control = unsafe { std::slice::from_raw_parts(msg.msg_control.cast::<u8>(), len) };
    kernel_read(control).ok_or(libc::EINVAL)
}

/// The message `sendto(fd, iov, addr, len)` sends, for `sendmsg`.
#[inline(always)]
pub(super) fn sendto_message(iov: &mut iovec, addr: *const sockaddr, len: socklen_t) -> msghdr {
    msghdr {
        msg_name: addr.cast_mut().cast(),
        msg_namelen: len,
        msg_iov: iov,
        msg_iovlen: 1,
        msg_control: ptr::null_mut(),
        msg_controllen: 0,
        msg_flags: 0,
    }
}

/// Sends `msg` with `info` appended to its control data. `None` when the
/// kernel says the interface is gone (ENODEV, ENXIO): nothing was sent,
/// and the long way looks it up again (it may have been recreated under a
/// new index) and retries.
///
/// # Safety
/// `msg` is a valid message for sendmsg.
#[inline(always)]
pub(super) unsafe fn send_quick(
    fd: c_int,
    msg: &msghdr,
    flags: c_int,
    info: &Pktinfo,
) -> Option<ssize_t> {
    // SAFETY: as the caller promises.
    let sent = unsafe { send_appended(fd, msg, flags, info) };
    if sent < 0 && matches!(errno::get(), libc::ENODEV | libc::ENXIO) {
        return None;
    }
    Some(sent)
}

/// A TCP Fast Open connect riding on `sendmmsg`: the first message goes as
/// `sendmsg` sends it (decided, bound, rewritten), and the call returns 1,
/// a short count the caller already handles; the rest follow on the then
/// connected socket.
#[cold]
pub(super) fn fast_open_first(fd: c_int, msg: &mut mmsghdr, flags: c_int) -> c_int {
    // SAFETY: the caller's message, valid as libc requires.
    let sent = unsafe { sendmsg(fd, &msg.msg_hdr, flags) };
    match u32::try_from(sent) {
        Ok(len) => {
            msg.msg_len = len;
            1
        }
        Err(_) => -1,
    }
}

/// Messages prepared and sent together by `sendmmsg`.
pub(super) const RUN: usize = 8;

/// The kernel's limit on messages per `sendmmsg` (UIO_MAXIOV).
pub(super) const MAX_MESSAGES: usize = 1024;

/// One run of `sendmmsg` messages, copied so that names and control data
/// can be replaced without writing to the caller's.
pub(super) struct Run {
    msgs: [mmsghdr; RUN],
    targets: [Option<SockaddrBuf>; RUN],
    controls: [Option<ControlBuf>; RUN],
    /// Messages ready to send.
    ready: usize,
    /// The errno of the message that stopped the run, if one did.
    refused: Option<c_int>,
}

impl Run {
    /// Copies and decides `msgs` (at most RUN).
    fn prepare(state: &State, fd: c_int, socket: Inet, msgs: &[mmsghdr]) -> Run {
        let mut run = Run {
            msgs: [msgs[0]; RUN],
            targets: [None; RUN],
            controls: Default::default(),
            ready: 0,
            refused: None,
        };
        for (i, msg) in msgs.iter().enumerate() {
            run.msgs[i] = *msg;
            let hdr = &mut run.msgs[i].msg_hdr;
            let (name, namelen) = (hdr.msg_name.cast(), hdr.msg_namelen);
            // SAFETY: each message's name is valid as libc requires.
            let read = unsafe { read_addr(name, namelen) }
                // SAFETY: as above.
                .or_else(|| unsafe { unspec_datagram(fd, name, namelen) }.map(|(_, d)| d));
            if let Some(destination) = read {
                let mut prepared = Prepared::default();
                match outbound(
                    state,
                    fd,
                    socket,
                    &destination,
                    Scope::Datagram,
                    &mut prepared,
                ) {
                    Ok(()) => {}
                    Err(Unbound::Bypass(_)) => prepared = Prepared::default(),
                    Err(Unbound::Refuse(e)) => {
                        run.refused = Some(e);
                        break;
                    }
                }
                if let Some(target) = prepared.target {
                    let target = run.targets[i].insert(target);
                    hdr.msg_name = target.as_ptr().cast_mut().cast();
                    hdr.msg_namelen = target.len();
                }
                if let Some(pktinfo) = prepared.pktinfo {
                    // SAFETY: the caller's control data is valid, or
                    // refused as the kernel would.
                    let control = match unsafe { control_bytes(hdr) } {
                        Ok(control) => control,
                        Err(e) => {
                            run.refused = Some(e);
                            break;
                        }
                    };
                    let buf = run.controls[i].insert(ControlBuf::for_control(control));
                    let Some(len) = pktinfo.info.append(control, buf.bytes()) else {
                        run.refused = Some(libc::EPERM);
                        break;
                    };
                    hdr.msg_control = buf.bytes().as_mut_ptr().cast();
                    hdr.msg_controllen = len as size_t;
                }
            }
            run.ready += 1;
        }
        run
    }
}

/// Whether `msg` names a destination the kernel may send to: IPv4, IPv6,
/// or AF_UNSPEC (which an IPv4 UDP socket sends to as IPv4).
///
/// # Safety
/// The message's name is null or valid for `msg_namelen` bytes.
unsafe fn named(msg: &msghdr) -> bool {
    let (name, len) = (msg.msg_name.cast(), msg.msg_namelen);
    // SAFETY: as the caller promises (each call).
    unsafe { read_addr(name, len) }.is_some() || unsafe { read_unspec(name, len) }.is_some()
}

/// `Err` when the call goes to the real `sendmmsg` as it is, after the
/// panic boundary (a cancellation point); the messages the shim decides
/// are sent here, with cancellation off (`crate::boundary`).
///
/// # Safety
/// As libc's `sendmmsg`.
pub(super) unsafe fn send_many(
    fd: c_int,
    msgs: *mut mmsghdr,
    vlen: c_uint,
    flags: c_int,
) -> Result<c_int, ()> {
    let saved = errno::get();
    let pass = || {
        errno::set(saved);
        Err(())
    };
    let count = (vlen as usize).min(MAX_MESSAGES);
    // An array the kernel cannot read fails on its first message (EFAULT),
    // before anything is sent.
    if !readable(msgs, count * size_of::<mmsghdr>()) || vlen == 0 || state::passing_through() {
        return pass();
    }
    // SAFETY: the caller passes `vlen` valid messages.
    let msgs = unsafe { std::slice::from_raw_parts_mut(msgs, count) };
    // SAFETY: each message's name is valid as libc requires.
    if !msgs.iter().any(|m| unsafe { named(&m.msg_hdr) }) {
        return pass();
    }
    let _no_cancel = NoCancel::new();
    // SAFETY: as the caller promises.
    Ok(unsafe { send_decided(fd, msgs, flags, saved) })
}

/// `sendmmsg` of messages of which some have a destination.
///
/// # Safety
/// As libc's `sendmmsg`; `saved` is the caller's errno.
unsafe fn send_decided(fd: c_int, msgs: &mut [mmsghdr], flags: c_int, saved: c_int) -> c_int {
    let count = msgs.len();
    let pass = |msgs: &mut [mmsghdr]| {
        errno::set(saved);
        // SAFETY: the caller's messages, as given.
        unsafe { real::sendmmsg(fd, msgs.as_mut_ptr(), count as c_uint, flags) }
    };
    let socket = socket_for(fd, Call::Send(flags));
    if flags & libc::MSG_FASTOPEN != 0 && socket.is_some_and(|s| s.protocol() == Protocol::Tcp) {
        return fast_open_first(fd, &mut msgs[0], flags);
    }
    let mut sent = 0;
    while sent < count {
        let chunk = &mut msgs[sent..count.min(sent + RUN)];
        let Some(mut guard) = Guard::enter() else {
            // See REENTERED.
            if sent == 0 {
                errno::set(libc::EAGAIN);
                return -1;
            }
            return sent as c_int;
        };
        let prepared = socket
            .filter(|s| s.protocol() == Protocol::Udp)
            .and_then(|socket| {
                state::with(&mut guard, |state| Run::prepare(state, fd, socket, chunk))
            });
        drop(guard);
        let Some(mut run) = prepared else {
            // Only possible for the first run: the socket and the rules do
            // not change under a call. Never send a message twice.
            return if sent == 0 { pass(msgs) } else { sent as c_int };
        };
        if run.ready > 0 {
            errno::set(saved);
            // SAFETY: `run.msgs` holds `ready` valid messages whose names
            // and control data live in `run` or the caller's buffers.
            let rc =
                unsafe { real::sendmmsg(fd, run.msgs.as_mut_ptr(), run.ready as c_uint, flags) };
            let Ok(done) = usize::try_from(rc) else {
                return if sent == 0 { rc } else { sent as c_int };
            };
            for (msg, local) in chunk.iter_mut().zip(&run.msgs[..done]) {
                msg.msg_len = local.msg_len;
            }
            sent += done;
            if done < run.ready {
                return sent as c_int;
            }
        }
        if let Some(e) = run.refused {
            if sent == 0 {
                errno::set(e);
                return -1;
            }
            return sent as c_int;
        }
    }
    sent as c_int
}
