//! The exported <resolv.h> query functions: `res_query`, `res_search`,
//! `res_querydomain`, `res_send` and their `res_n*` forms (each also
//! under its `__res_*` name, [`crate::front`]).
//!
//! Why: since glibc 2.34 these live in libc and reach the nameserver of
//! `/etc/resolv.conf` through libc-internal sockets that no hook sees, so a
//! bound program's MX, SRV or TXT lookups would leave by the default route.
//! Under the same condition as [`crate::hooks::dns`] (the profile names a DNS
//! server) the shim asks the profile's server itself, over a socket bound
//! as the profile binds, and hands back the server's whole reply as glibc
//! does; otherwise each call goes to libc untouched.
//!
//! The `res_state` of the `res_n*` forms only receives `res_h_errno`: the
//! server, search domains and timeouts are the profile's (as for
//! `getaddrinfo`), and its options (`RES_USEVC`, `RES_DEBUG`, ...) are not
//! read. A panic inside fails the call: -1 with h_errno NO_RECOVERY; a call
//! from a signal handler that interrupted a hook, -1 with TRY_AGAIN.

use std::ffi::c_void;
use std::ptr;

use libc::{c_char, c_int, c_uchar, c_uint, c_ulong, c_ushort};

use crate::errno;
use crate::hooks::dns::{resolving, set_h_errno, text};
use crate::log;
use crate::real;
use crate::resolve::{self, LookupError, Resolver};

/// The smallest answer buffer glibc accepts: one DNS header (`HFIXEDSZ`).
const HEADER: usize = 12;

/// `struct __res_state` (resolv/bits/types/res_state.h) up to the one
/// field the shim writes, `res_h_errno`; only ever used through a pointer
/// to glibc's whole struct, so the fields after it need not be declared.
#[derive(Debug)]
#[repr(C)]
pub struct ResState {
    _retrans: c_int,
    _retry: c_int,
    _options: c_ulong,
    _nscount: c_int,
    _nsaddr_list: [libc::sockaddr_in; 3],
    _id: c_ushort,
    _dnsrch: [*mut c_char; 7],
    _defdname: [c_char; 256],
    _pfcode: c_ulong,
    /// `ndots:4, nsort:4, ipv6_unavail:1, unused:23`: one `unsigned`.
    _bits: c_uint,
    /// `struct { struct in_addr addr; uint32_t mask; } sort_list[10]`.
    _sort_list: [[u32; 2]; 10],
    _qhook: *mut c_void,
    _rhook: *mut c_void,
    res_h_errno: c_int,
}

unsafe extern "C" {
    /// The thread's `_res`, the state of the functions without `n`.
    fn __res_state() -> *mut ResState;
}

/// Sets h_errno as glibc's `RES_SET_H_ERRNO` does: in the state and in the
/// thread's `h_errno`.
fn set_errors(statp: *mut ResState, value: c_int) {
    if !statp.is_null() {
        // SAFETY: a non-null state is the caller's `struct __res_state`
        // (or the thread's `_res`), writable, of glibc's layout.
        unsafe { (*statp).res_h_errno = value };
    }
    set_h_errno(value);
}

/// What one call asks.
#[derive(Clone, Copy)]
struct Call {
    statp: *mut ResState,
    name: *const c_char,
    /// Appended to `name` after a dot (`res_querydomain`), if not null.
    domain: *const c_char,
    class: c_int,
    rtype: c_int,
    answer: *mut c_uchar,
    anslen: c_int,
    /// Through the search domains (`res_search`), or the name as it is.
    search: bool,
}

/// The name `call` asks for, or `None` if it is not text.
///
/// # Safety
/// `call.name` and `call.domain` are null or NUL-terminated strings.
unsafe fn name_of(call: &Call) -> Option<String> {
    // SAFETY: as the caller promises.
    let name = unsafe { text(call.name) };
    // SAFETY: as the caller promises.
    let domain = unsafe { text(call.domain) };
    let name = name?.to_str().ok()?;
    Some(match domain {
        Some(domain) => format!("{name}.{}", domain.to_str().ok()?),
        None => name.to_owned(),
    })
}

/// Copies as much of `reply` as `out` holds, setting TC in the copy when
/// it is cut (as glibc's TCP path marks an answer it cuts), and returns
/// the reply's whole length: a caller whose buffer was too small sees a
/// length over its size and can ask again with a larger one.
fn fit(reply: &[u8], out: &mut [u8]) -> usize {
    let copied = reply.len().min(out.len());
    out[..copied].copy_from_slice(&reply[..copied]);
    if copied < reply.len() && copied > 2 {
        out[2] |= 0x02;
    }
    reply.len()
}

/// The shim's answer to `call`: the reply's length, or -1 with h_errno
/// (and errno EINVAL for a buffer smaller than a header, as glibc).
///
/// # Safety
/// The call's pointers are valid as libc's `res_nquery` requires them.
unsafe fn own(resolver: &Resolver<'_>, call: Call) -> c_int {
    let Ok(anslen) = usize::try_from(call.anslen) else {
        return invalid(call.statp);
    };
    if call.answer.is_null() || anslen < HEADER {
        return invalid(call.statp);
    }
    // SAFETY: the caller's strings.
    let Some(name) = (unsafe { name_of(&call) }) else {
        set_errors(call.statp, resolve::NO_RECOVERY);
        return -1;
    };
    let (Ok(class), Ok(rtype)) = (u16::try_from(call.class), u16::try_from(call.rtype)) else {
        set_errors(call.statp, resolve::NO_RECOVERY);
        return -1;
    };
    let raw = if call.search {
        resolver.query_search(&name, class, rtype)
    } else {
        resolver.query(&name, class, rtype)
    };
    if log::enabled() {
        tracing::debug!(
            "res_{} {name:?} class {class} type {rtype}: {:?}, {} bytes",
            if call.search { "search" } else { "query" },
            raw.outcome,
            raw.reply.as_ref().map_or(0, Vec::len)
        );
    }
    // glibc receives into the caller's buffer, so even a failed call
    // leaves the reply there (callers read its rcode).
    let len = raw.reply.as_deref().map(|reply| {
        // SAFETY: `answer` is writable for `anslen` bytes, as the caller
        // promises.
        let out = unsafe { std::slice::from_raw_parts_mut(call.answer, anslen) };
        fit(reply, out)
    });
    match (raw.outcome, len) {
        (Ok(()), Some(len)) => c_int::try_from(len).unwrap_or(c_int::MAX),
        (Err(failure), _) => failed(call.statp, failure),
        (Ok(()), None) => failed(call.statp, LookupError::Fail),
    }
}

/// res_send's work: the reply's length, or -1 with errno as glibc's
/// res_send leaves it: EINVAL for a message or buffer smaller than a
/// header, ETIMEDOUT when no answer came, ECONNREFUSED when the server
/// could not be asked. No h_errno: res_send sets none.
///
/// # Safety
/// `msg` is readable for `msglen` bytes and `answer` writable for `anslen`.
unsafe fn own_send(
    resolver: &Resolver<'_>,
    msg: *const c_uchar,
    msglen: c_int,
    answer: *mut c_uchar,
    anslen: c_int,
) -> c_int {
    let (Ok(msglen), Ok(anslen)) = (usize::try_from(msglen), usize::try_from(anslen)) else {
        errno::set(libc::EINVAL);
        return -1;
    };
    if msg.is_null() || answer.is_null() || msglen < HEADER || anslen < HEADER {
        errno::set(libc::EINVAL);
        return -1;
    }
    // SAFETY: as the caller promises.
    let message = unsafe { std::slice::from_raw_parts(msg, msglen) };
    match resolver.send(message) {
        Ok(reply) => {
            // SAFETY: as the caller promises.
            let out = unsafe { std::slice::from_raw_parts_mut(answer, anslen) };
            c_int::try_from(fit(&reply, out)).unwrap_or(c_int::MAX)
        }
        Err(failure) => {
            errno::set(if failure == LookupError::Again {
                libc::ETIMEDOUT
            } else {
                libc::ECONNREFUSED
            });
            -1
        }
    }
}

fn failed(statp: *mut ResState, failure: LookupError) -> c_int {
    set_errors(statp, failure.h_errno());
    -1
}

/// A buffer glibc refuses before sending: EINVAL, and TRY_AGAIN as
/// res_nquery reports any failure to send.
fn invalid(statp: *mut ResState) -> c_int {
    errno::set(libc::EINVAL);
    failed(statp, LookupError::Again)
}

/// What an export returns when it fails before asking anything: -1 with
/// h_errno (NO_RECOVERY after a panic, TRY_AGAIN for a call to retry).
fn failed_h(failure: LookupError) -> c_int {
    set_h_errno(failure.h_errno());
    -1
}

/// The thread's `_res`, for the functions without a state argument.
fn thread_state() -> *mut ResState {
    // SAFETY: no arguments; glibc returns the calling thread's `_res`.
    unsafe { __res_state() }
}

/// Defines a function and its `res_n*` form (their `__res_*` names, which
/// programs built against glibc before 2.34 bind to, are the hook list's
/// aliases, [`crate::front`]): the shim's answer when the profile has a
/// DNS server, else libc's function of the plain name. The form without `n` works on the thread's `_res`. `@one`: one
/// function, with the shim's answer written out.
macro_rules! export {
    (
        $(#[$doc:meta])*
        fn $name:ident,
        $(#[$ndoc:meta])*
        fn $nname:ident,
        ($($arg:ident: $ty:ty),*) asks $asked:expr, $domain:expr, search: $search:expr
    ) => {
        export!(@one $(#[$doc])* $name (
            $($arg: $ty,)* class: c_int, rtype: c_int, answer: *mut c_uchar, anslen: c_int
        ) => |resolver| own(resolver, Call {
            statp: thread_state(),
            name: $asked,
            domain: $domain,
            class, rtype, answer, anslen,
            search: $search,
        }));
        export!(@one $(#[$ndoc])* $nname (
            statp: *mut ResState,
            $($arg: $ty,)* class: c_int, rtype: c_int, answer: *mut c_uchar, anslen: c_int
        ) => |resolver| own(resolver, Call {
            statp,
            name: $asked,
            domain: $domain,
            class, rtype, answer, anslen,
            search: $search,
        }));
    };
    (
        @one $(#[$doc:meta])* $name:ident ($($arg:ident: $ty:ty),*)
        => |$resolver:ident| $own:expr
    ) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// As libc's function of the same name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn $name($($arg: $ty),*) -> c_int {
            // SAFETY: the caller's arguments, as given.
            let real = || unsafe { real::$name($($arg),*) };
            // SAFETY: the caller's arguments, as libc requires them.
            resolving(failed_h, |$resolver| unsafe { $own }, real)
        }
    };
}

export! {
    /// `res_query()`: the reply to one query for `dname` as it is.
    fn res_query,
    /// `res_nquery()`: res_query with h_errno also in `statp`.
    fn res_nquery,
    (dname: *const c_char) asks dname, ptr::null(), search: false
}

export! {
    /// `res_search()`: the first reply with answers for `dname` under the
    /// search domains, as the profile's (or resolv.conf's) `search` and
    /// `ndots` say.
    fn res_search,
    /// `res_nsearch()`: res_search with h_errno also in `statp`.
    fn res_nsearch,
    (dname: *const c_char) asks dname, ptr::null(), search: true
}

export! {
    /// `res_querydomain()`: res_query for `name.domain`.
    fn res_querydomain,
    /// `res_nquerydomain()`: res_querydomain with h_errno also in `statp`.
    fn res_nquerydomain,
    (name: *const c_char, domain: *const c_char) asks name, domain, search: false
}

export!(@one
    /// `res_send()`: the reply to a query the caller built, from the
    /// profile's server instead of resolv.conf's.
    res_send(
        msg: *const c_uchar,
        msglen: c_int,
        answer: *mut c_uchar,
        anslen: c_int
    ) => |resolver| own_send(resolver, msg, msglen, answer, anslen)
);

export!(@one
    /// `res_nsend()`: res_send; the state is not read.
    res_nsend(
        statp: *mut ResState,
        msg: *const c_uchar,
        msglen: c_int,
        answer: *mut c_uchar,
        anslen: c_int
    ) => |resolver| own_send(resolver, msg, msglen, answer, anslen)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_too_big_is_cut_marked_and_its_whole_length_returned() {
        let reply: Vec<u8> = (0..40).collect();
        let mut small = [0u8; 16];
        assert_eq!(fit(&reply, &mut small), 40);
        assert_eq!(small[..2], reply[..2]);
        assert_eq!(small[2], reply[2] | 0x02, "TC set in the cut copy");
        assert_eq!(small[3..], reply[3..16]);
        let mut big = [0u8; 64];
        assert_eq!(fit(&reply, &mut big), 40);
        assert_eq!(big[..40], reply[..]);
        assert_eq!(big[40..], [0u8; 24], "nothing written past the reply");
    }

    #[test]
    fn the_state_layout_is_glibcs() {
        // offsetof(struct __res_state, res_h_errno) on LP64 glibc.
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::offset_of!(ResState, res_h_errno), 496);
    }
}
