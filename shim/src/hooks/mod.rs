//! The exported functions that stand in for libc's.
//!
//! Each runs inside the panic [`boundary`], decides, and calls the real
//! function. What the calls do:
//!
//! | call | socket | what the shim does |
//! | --- | --- | --- |
//! | `connect` | TCP, UDP | SO_BINDTODEVICE + source bind, DNS rewrite |
//! | `sendto`, `sendmsg`, `sendmmsg` with `MSG_FASTOPEN` | TCP | as `connect` |
//! | `sendto`, `sendmsg`, `sendmmsg` with a destination | UDP | IP_PKTINFO / IPV6_PKTINFO per datagram, DNS rewrite |
//! | `bind` to 0.0.0.0 or `::` | TCP, UDP | the profile's `listen` address instead, port kept |
//! | `bind` to an address of the profile's own interface | TCP, UDP | SO_BINDTODEVICE to it too |
//!
//! The errno of each refusal is listed once, in docs/REFERENCE.md
//! ("Errno of each refusal"), which `tests/tests/docs.rs` checks against
//! the code.
//!
//! With `on_failure = "allow"`, a binding that cannot be made (the
//! interface, source, family and listen cases) is a warning and the call
//! goes ahead unbound; blocks and broken configs still refuse.
//!
//! A wildcard bind on an IPv6 socket takes the IPv6 `listen` address; if the
//! profile has only an IPv4 one, the socket gets it IPv4-mapped
//! (::ffff:a.b.c.d), or, if it is IPV6_V6ONLY, has no address it can take.
//!
//! Everything that goes straight to libc is a [`decide::Bypass`], with errno as the
//! caller left it.

mod decide;
pub mod dns;
pub mod gai_async;
mod listen;
mod quick;
pub mod res;
mod send;

use libc::{c_int, c_uint, c_void, iovec, mmsghdr, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use crate::apply::Pktinfo;
use crate::boundary::{self, NoCancel};
use crate::errno;
use crate::fds;
use crate::real;
use crate::sockaddr::{SockaddrBuf, readable};

use decide::{Call, Prepared, Unbound, outgoing, target_or};
use listen::decide_bind;
use quick::{Quick, quick_datagram, ready_to_connect};
use send::{send_many, send_quick, send_with_pktinfo, sendto_message};

/// `socket()`: records what kind of socket the descriptor is.
///
/// # Safety
/// As libc's `socket`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    boundary::call(|| {
        // Classified first, so that only the record waits across the call.
        let kind = fds::classify(domain, ty, protocol);
        // SAFETY: the caller's arguments, as given.
        let fd = unsafe { real::socket(domain, ty, protocol) };
        fds::record(fd, kind);
        fd
    })
}

/// `close()`: forgets the descriptor.
///
/// # Safety
/// As libc's `close`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn close(fd: c_int) -> c_int {
    boundary::call_then(
        || {
            fds::forget(fd);
            Err(())
        },
        // SAFETY: the caller's argument, as given.
        |()| unsafe { real::close(fd) },
    )
}

/// `close_range()`: forgets the descriptors it closes. With
/// CLOSE_RANGE_CLOEXEC they only close at exec, which takes the records
/// with it.
///
/// # Safety
/// As libc's `close_range`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    boundary::call(|| {
        if flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 {
            fds::forget_range(first, last);
        }
        // SAFETY: the caller's arguments, as given.
        unsafe { real::close_range(first, last, flags) }
    })
}

/// `closefrom()`: forgets every descriptor from `low` on.
///
/// # Safety
/// As libc's `closefrom`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn closefrom(low: c_int) {
    boundary::call(|| {
        if let Ok(low) = c_uint::try_from(low) {
            fds::forget_range(low, c_uint::MAX);
        }
        // SAFETY: the caller's argument, as given.
        unsafe { real::closefrom(low) }
    })
}

/// `dup2()`: `new` becomes what `old` is.
///
/// # Safety
/// As libc's `dup2`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn dup2(old: c_int, new: c_int) -> c_int {
    boundary::call(|| {
        if old != new {
            fds::forget(new);
        }
        // SAFETY: the caller's arguments, as given.
        let rc = unsafe { real::dup2(old, new) };
        if rc >= 0 && old != new {
            fds::copy(old, new);
        }
        rc
    })
}

/// `dup3()`: `new` becomes what `old` is.
///
/// # Safety
/// As libc's `dup3`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    boundary::call(|| {
        if old != new {
            fds::forget(new);
        }
        // SAFETY: the caller's arguments, as given.
        let rc = unsafe { real::dup3(old, new, flags) };
        if rc >= 0 {
            fds::copy(old, new);
        }
        rc
    })
}

/// `connect()`: binds the socket as the profile says for `addr`.
///
/// # Safety
/// As libc's `connect`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    boundary::call_then(
        || {
            // SAFETY: `addr` and `len` are the caller's, valid as libc
            // requires (here and below).
            if unsafe { ready_to_connect(fd, addr, len) } {
                return Err(None);
            }
            // SAFETY: as above.
            unsafe { connect_decided(fd, addr, len) }
        },
        |target| match target {
            // SAFETY: the planned destination, a local copy that outlives
            // the call.
            Some(target) => unsafe { real::connect(fd, target.as_ptr(), target.len()) },
            // SAFETY: the caller's arguments, as given.
            None => unsafe { real::connect(fd, addr, len) },
        },
    )
}

/// `connect` decided the long way: first call, refusals, rewrites, source
/// addresses, logging. `Err` is the destination of the real call if it is
/// not the caller's: the whole plan would cost every connect its copies.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
#[inline(never)]
unsafe fn connect_decided(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> Result<c_int, Option<SockaddrBuf>> {
    // SAFETY: as the caller promises.
    unsafe { outgoing(fd, addr, len, Call::Connect) }.map_err(|prepared| prepared.target)
}

/// What a send leaves to do after the panic boundary.
enum Then {
    /// The real call, as planned.
    Real(Prepared),
    /// The datagram, sent with this pktinfo: the quick way.
    Quick(Pktinfo),
}

impl Then {
    fn of(quick: Quick, long: impl FnOnce() -> Result<ssize_t, Prepared>) -> Result<ssize_t, Then> {
        match quick {
            Quick::Pass => Err(Then::Real(Prepared::default())),
            Quick::Send(info) => Err(Then::Quick(info)),
            Quick::Long => long().map_err(Then::Real),
        }
    }
}

/// `sendto()`: a UDP datagram to `addr` leaves as the profile says; a TCP
/// Fast Open connects as `connect` does.
///
/// # Safety
/// As libc's `sendto`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> ssize_t {
    // SAFETY (every block below): the caller's arguments, valid as libc
    // requires; the messages built point at them or at local copies that
    // outlive the calls.
    let long = || {
        // SAFETY: as above.
        unsafe { sendto_decided(fd, buf, n, flags, addr, len) }
    };
    let real = |prepared: Prepared| {
        let (addr, len) = target_or(&prepared, addr, len);
        // SAFETY: as above.
        unsafe { real::sendto(fd, buf, n, flags, addr, len) }
    };
    boundary::call_then(
        // SAFETY: as above.
        || Then::of(unsafe { quick_datagram(fd, addr, len, flags) }, long),
        |then| match then {
            Then::Real(prepared) => real(prepared),
            Then::Quick(info) => {
                let mut iov = iovec {
                    iov_base: buf.cast_mut(),
                    iov_len: n,
                };
                // SAFETY: as above.
                match unsafe { send_quick(fd, &sendto_message(&mut iov, addr, len), flags, &info) }
                {
                    Some(sent) => sent,
                    // The interface is gone: the long way looks it up again.
                    None => boundary::call_then(long, real),
                }
            }
        },
    )
}

/// `sendto` decided the long way: first call, refusals, rewrites, TCP Fast
/// Open, logging, interfaces not looked up yet or gone. A datagram with a
/// pktinfo is sent here, with cancellation off (`boundary`); anything else
/// is left to the real call.
///
/// # Safety
/// As libc's `sendto`.
#[inline(never)]
unsafe fn sendto_decided(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> Result<ssize_t, Prepared> {
    // SAFETY: as the caller promises.
    let prepared = match unsafe { outgoing(fd, addr, len, Call::Send(flags)) } {
        Err(prepared) if prepared.pktinfo.is_some() => prepared,
        other => return other,
    };
    let _no_cancel = NoCancel::new();
    let (addr, len) = target_or(&prepared, addr, len);
    let mut iov = iovec {
        iov_base: buf.cast_mut(),
        iov_len: n,
    };
    let msg = sendto_message(&mut iov, addr, len);
    // SAFETY: the caller's buffer, the planned destination (a local copy).
    Ok(prepared.pktinfo.as_ref().map_or(-1, |pktinfo| unsafe {
        send_with_pktinfo(fd, &msg, flags, pktinfo)
    }))
}

/// `sendmsg()`: as `sendto`, with the caller's control data kept.
///
/// # Safety
/// As libc's `sendmsg`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    if !readable(msg, size_of::<msghdr>()) {
        // SAFETY: passed on as given; the kernel reports EFAULT.
        return unsafe { real::sendmsg(fd, msg, flags) };
    }
    // SAFETY: a readable `msg` is a valid msghdr, as libc requires.
    let caller = unsafe { *msg };
    // SAFETY (every block below): the caller's message, valid as libc
    // requires; local copies outlive the calls they are passed to.
    let long = || {
        // SAFETY: as above.
        unsafe { sendmsg_decided(fd, &caller, flags) }
    };
    let real = |prepared: Prepared| {
        let mut local = caller;
        let (addr, len) = target_or(&prepared, local.msg_name.cast(), local.msg_namelen);
        local.msg_name = addr.cast_mut().cast();
        local.msg_namelen = len;
        // SAFETY: as above.
        unsafe { real::sendmsg(fd, &local, flags) }
    };
    boundary::call_then(
        || {
            // SAFETY: as above.
            let quick = unsafe {
                quick_datagram(
                    fd,
                    caller.msg_name.cast_const().cast(),
                    caller.msg_namelen,
                    flags,
                )
            };
            Then::of(quick, long)
        },
        |then| match then {
            Then::Real(prepared) => real(prepared),
            // SAFETY: as above.
            Then::Quick(info) => match unsafe { send_quick(fd, &caller, flags, &info) } {
                Some(sent) => sent,
                None => boundary::call_then(long, real),
            },
        },
    )
}

/// `sendmsg` decided the long way, as `sendto_decided`.
///
/// # Safety
/// As libc's `sendmsg`; `caller` is a copy of the caller's message.
#[inline(never)]
unsafe fn sendmsg_decided(fd: c_int, caller: &msghdr, flags: c_int) -> Result<ssize_t, Prepared> {
    // SAFETY: as the caller promises.
    let prepared = match unsafe {
        outgoing(
            fd,
            caller.msg_name.cast_const().cast(),
            caller.msg_namelen,
            Call::Send(flags),
        )
    } {
        Err(prepared) if prepared.pktinfo.is_some() => prepared,
        other => return other,
    };
    let _no_cancel = NoCancel::new();
    let mut local = *caller;
    let (addr, len) = target_or(&prepared, local.msg_name.cast(), local.msg_namelen);
    local.msg_name = addr.cast_mut().cast();
    local.msg_namelen = len;
    // SAFETY: the caller's message with the planned destination, a local
    // copy.
    Ok(prepared.pktinfo.as_ref().map_or(-1, |pktinfo| unsafe {
        send_with_pktinfo(fd, &local, flags, pktinfo)
    }))
}

/// `sendmmsg()`: each datagram with a destination leaves as the profile
/// says for it. Sent in runs of up to [`send::RUN`] messages; a refused message
/// ends the call there and, as the kernel does for an error after the first
/// message, the call returns the number sent before it (or fails with its
/// errno if it is the first). A datagram whose interface was recreated
/// fails once with ENODEV; the next call uses the new one.
///
/// # Safety
/// As libc's `sendmmsg`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn sendmmsg(
    fd: c_int,
    msgs: *mut mmsghdr,
    vlen: c_uint,
    flags: c_int,
) -> c_int {
    boundary::call_then(
        // SAFETY: the caller's arguments, valid as libc requires.
        || unsafe { send_many(fd, msgs, vlen, flags) },
        // SAFETY: the caller's arguments, as given.
        |()| unsafe { real::sendmmsg(fd, msgs, vlen, flags) },
    )
}

/// `bind()`: a wildcard address becomes the profile's `listen` address of
/// that family, port kept; explicit addresses are left alone.
///
/// # Safety
/// As libc's `bind`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    boundary::call(|| {
        let saved = errno::get();
        // SAFETY: the caller's address, valid as libc requires.
        match unsafe { decide_bind(fd, addr, len) } {
            Ok(Some(raw)) => {
                errno::set(saved);
                // SAFETY: a valid address of `raw.len()` bytes.
                unsafe { real::bind(fd, raw.as_ptr(), raw.len()) }
            }
            Ok(None) | Err(Unbound::Bypass(_)) => {
                errno::set(saved);
                // SAFETY: the caller's arguments, as given.
                unsafe { real::bind(fd, addr, len) }
            }
            Err(Unbound::Refuse(e)) => {
                errno::set(e);
                -1
            }
        }
    })
}
