//! The exported name-resolution functions: `getaddrinfo`, `freeaddrinfo`,
//! `gethostbyname`, `gethostbyname2`, `gethostbyname_r`,
//! `gethostbyname2_r`, `gethostbyaddr`, `gethostbyaddr_r` and `getnameinfo`.
//!
//! Only when the process's profile names a DNS server (a port-53 entry in
//! `[profile.X.dns]`, or `DNS_OVERRIDE_IP`) does the shim resolve by itself
//! ([`crate::resolve`]); otherwise, and for the shim's own calls, each goes
//! to libc untouched, with the re-entrancy guard released so that whatever
//! libc's NSS modules connect to is decided as usual. A config that cannot
//! be read resolves numbers and `/etc/hosts` only: libc's resolver would
//! leak and the shim cannot know the server.
//!
//! A panic inside fails the call: EAI_FAIL, or NULL / ENOENT with h_errno
//! NO_RECOVERY. A lookup from a signal handler that interrupted a hook in
//! the same thread fails as one to retry: EAI_AGAIN, or NULL / EAGAIN with
//! h_errno TRY_AGAIN ([`crate::guard`]).

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_void};
use std::net::{IpAddr, SocketAddr};
use std::ptr;
use std::sync::Arc;

use libc::{addrinfo, c_char, c_int, hostent, size_t, sockaddr, socklen_t};

use crate::boundary;
use crate::boundary::NoCancel;
use crate::cancel;
use crate::guard::{Guard, Inside};
use crate::log::{self, Notice};
use crate::real;
use crate::resolve::gai::{self, Hints};
use crate::resolve::hostent::Host;
use crate::resolve::{self, LookupError, Resolver, Want, addrinfo as list, numeric, service};
use crate::state::{self, Rules};

unsafe extern "C" {
    fn __h_errno_location() -> *mut c_int;
}

pub(crate) fn set_h_errno(value: c_int) {
    // SAFETY: no preconditions.
    let slot = unsafe { __h_errno_location() };
    // SAFETY: the calling thread's h_errno slot, valid for its lifetime.
    unsafe { *slot = value };
}

/// A lookup that libc's function answers.
pub(crate) struct Libc;

/// Runs a name-resolution export: `own` with the resolver when the profile
/// names a DNS server, else libc's `real`. `failed` is the call's failure:
/// [`LookupError::Fail`] after a panic, [`LookupError::Again`] for a signal handler
/// that interrupted a hook in the same thread (the interrupted hook cannot
/// be re-entered, and libc's resolver would leave by the default route).
///
/// A lookup is a cancellation point, as libc's. The resolver's waits are
/// the shim's own, inside the panic boundary, where cancellation is off:
/// a `pthread_cancel` meanwhile ends them ([`crate::cancel`]) and acts
/// after the boundary. libc's function runs after the boundary, where it
/// is cancelled as without the shim (`crate::boundary`).
pub(crate) fn resolving<R>(
    failed: impl Fn(LookupError) -> R,
    own: impl FnOnce(&Resolver<'_>) -> R,
    real: impl FnOnce() -> R,
) -> R {
    cancel::forget();
    boundary::testcancel();
    match boundary::call_or(|| Ok(failed(LookupError::Fail)), || route(own, &failed)) {
        Ok(result) => {
            boundary::testcancel();
            result
        }
        Err(Libc) => real(),
    }
}

/// [`resolving`]'s decision, inside the boundary.
fn route<R>(
    own: impl FnOnce(&Resolver<'_>) -> R,
    failed: &impl Fn(LookupError) -> R,
) -> Result<R, Libc> {
    if state::passing_through() {
        return Err(Libc);
    }
    let mut guard = match Guard::try_enter() {
        Ok(guard) => guard,
        // The shim's own lookup: libc's.
        Err(Inside::Own) => return Err(Libc),
        Err(Inside::Interrupted) => return Ok(failed(LookupError::Again)),
    };
    let _no_cancel = NoCancel::new();
    // The table is taken out of the state, so that nothing of the state is
    // borrowed while the resolver waits for the network.
    let rules = state::with(&mut guard, |state| match &state.rules {
        Rules::Table(loaded) => Ok(Arc::clone(loaded)),
        Rules::Broken(error) => Err(error.clone()),
    })
    .ok_or(Libc)?;
    let resolver = match &rules {
        Ok(loaded) => Resolver::new(loaded).ok_or(Libc)?,
        Err(error) => {
            log::notice(
                Notice::Setup,
                format_args!("{error}; network calls are blocked"),
            );
            Resolver::broken()
        }
    };
    Ok(own(&resolver))
}

/// The C string at `p`, if not null.
///
/// # Safety
/// `p` is null or a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn text<'a>(p: *const c_char) -> Option<&'a CStr> {
    // SAFETY: as the caller promises.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) })
}

/// `getaddrinfo()`: resolved by the shim when the profile has a DNS server.
///
/// # Safety
/// As libc's `getaddrinfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    // SAFETY: the caller's arguments, as given.
    let real = || unsafe { real::getaddrinfo(node, service, hints, res) };
    resolving(
        LookupError::eai,
        |resolver| {
            // SAFETY: the caller passes null or valid pointers.
            let node = unsafe { text(node) };
            // SAFETY: as above.
            let service = unsafe { text(service) };
            let hints = if hints.is_null() {
                Hints::default()
            } else {
                // SAFETY: non-null hints point to an addrinfo.
                let h = unsafe { &*hints };
                Hints {
                    flags: h.ai_flags,
                    family: h.ai_family,
                    socktype: h.ai_socktype,
                    protocol: h.ai_protocol,
                }
            };
            let result = gai::lookup(resolver, node, service, hints);
            if log::enabled() {
                tracing::debug!("getaddrinfo {node:?} {service:?}: {result:?}");
            }
            match result {
                Ok((entries, canonical)) => {
                    match list::build(&entries, canonical.as_deref()) {
                        Some(head) => {
                            // SAFETY: `res` is the caller's out pointer.
                            unsafe { *res = head };
                            0
                        }
                        None => libc::EAI_MEMORY,
                    }
                }
                Err(code) => code,
            }
        },
        real,
    )
}

/// `freeaddrinfo()`: frees the shim's lists itself, libc's through libc.
///
/// # Safety
/// As libc's `freeaddrinfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn freeaddrinfo(res: *mut addrinfo) {
    boundary::call_or(
        || (),
        || {
            if list::release(res) {
                return;
            }
            // SAFETY: a list libc made, handed back to libc.
            unsafe { real::freeaddrinfo(res) }
        },
    )
}

/// The families gethostbyname2 takes.
fn want_of(family: c_int) -> Option<Want> {
    match family {
        libc::AF_INET => Some(Want::V4),
        libc::AF_INET6 => Some(Want::V6),
        _ => None,
    }
}

/// Looks `name` up for a hostent of `family`: a number as itself, else
/// hosts and DNS.
fn host_lookup(
    resolver: &Resolver<'_>,
    name: &CStr,
    family: c_int,
) -> Result<resolve::Resolved, LookupError> {
    let want = want_of(family).ok_or(LookupError::NoName)?;
    let text = name.to_str().map_err(|_| LookupError::NoName)?;
    if let Some(number) = numeric::parse(text) {
        return if want.accepts(number.ip) {
            Ok(resolve::Resolved {
                canonical: text.to_owned(),
                aliases: Vec::new(),
                addrs: vec![number.ip],
            })
        } else {
            Err(LookupError::NoName)
        };
    }
    resolver.lookup(text, want)
}

/// The out arguments of the `_r` functions.
struct Out {
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
}

/// gethostbyname2_r's work, for the shim.
///
/// # Safety
/// As libc's `gethostbyname2_r`.
unsafe fn own_gethostbyname2_r(
    resolver: &Resolver<'_>,
    name: *const c_char,
    family: c_int,
    out: Out,
) -> c_int {
    // SAFETY: a NUL-terminated name, as the caller promises.
    let found = match unsafe { text(name) } {
        Some(name) => host_lookup(resolver, name, family),
        None => Err(LookupError::NoName),
    };
    let host = found.as_ref().map(|found| Host {
        name: &found.canonical,
        aliases: &found.aliases,
        addrs: &found.addrs,
        v6: family == libc::AF_INET6,
    });
    // SAFETY: the caller's out arguments.
    unsafe { answer_r(host.map_err(|f| *f), out) }
}

/// Hands an answer back through a `_r` function's arguments, as glibc: 0
/// with `*result` set; 0 with a null `*result` and `*h_errnop` set when
/// nothing is found; EAGAIN on a timeout; ERANGE when `buf` is too small.
///
/// # Safety
/// The out arguments are valid as libc's `_r` functions require.
unsafe fn answer_r(answer: Result<Host<'_>, LookupError>, out: Out) -> c_int {
    let Out {
        ret,
        buf,
        buflen,
        result,
        h_errnop,
    } = out;
    // SAFETY: the caller's out pointers are valid for writes.
    unsafe { *result = ptr::null_mut() };
    let host = match answer {
        Ok(host) => host,
        Err(failure) => {
            // SAFETY: as above.
            unsafe { *h_errnop = failure.h_errno() };
            // glibc's resolver sets the thread's h_errno too, and callers
            // read it (CPython does).
            set_h_errno(failure.h_errno());
            return if failure == LookupError::Again {
                libc::EAGAIN
            } else {
                0
            };
        }
    };
    // SAFETY: `ret` and `buf` as the caller promises.
    match unsafe { host.fill(ret, buf, buflen) } {
        Ok(()) => {
            // SAFETY: as above.
            unsafe { *result = ret };
            0
        }
        Err(_) => {
            // SAFETY: as above.
            unsafe { *h_errnop = resolve::NO_RECOVERY };
            crate::errno::set(libc::ERANGE);
            libc::ERANGE
        }
    }
}

/// `gethostbyname2_r()`.
///
/// # Safety
/// As libc's `gethostbyname2_r`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn gethostbyname2_r(
    name: *const c_char,
    family: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: the caller's arguments, as given.
    let real =
        || unsafe { real::gethostbyname2_r(name, family, ret, buf, buflen, result, h_errnop) };
    resolving(
        |failure| failed_r(result, h_errnop, failure),
        // SAFETY: the caller's arguments, as libc requires them.
        |resolver| unsafe {
            let out = Out {
                ret,
                buf,
                buflen,
                result,
                h_errnop,
            };
            own_gethostbyname2_r(resolver, name, family, out)
        },
        real,
    )
}

/// `gethostbyname_r()`: gethostbyname2_r for IPv4.
///
/// # Safety
/// As libc's `gethostbyname_r`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn gethostbyname_r(
    name: *const c_char,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: the caller's arguments, as given.
    let real = || unsafe { real::gethostbyname_r(name, ret, buf, buflen, result, h_errnop) };
    resolving(
        |failure| failed_r(result, h_errnop, failure),
        // SAFETY: the caller's arguments, as libc requires them.
        |resolver| unsafe {
            let out = Out {
                ret,
                buf,
                buflen,
                result,
                h_errnop,
            };
            own_gethostbyname2_r(resolver, name, libc::AF_INET, out)
        },
        real,
    )
}

/// What a `_r` function returns when it fails before looking anything up:
/// ENOENT with NO_RECOVERY after a panic, EAGAIN with TRY_AGAIN (as glibc
/// on a timeout) for a call to retry.
fn failed_r(result: *mut *mut hostent, h_errnop: *mut c_int, failure: LookupError) -> c_int {
    if !result.is_null() {
        // SAFETY: the caller's out pointer.
        unsafe { *result = ptr::null_mut() };
    }
    if !h_errnop.is_null() {
        // SAFETY: the caller's out pointer.
        unsafe { *h_errnop = failure.h_errno() };
    }
    set_h_errno(failure.h_errno());
    if failure == LookupError::Again {
        libc::EAGAIN
    } else {
        libc::ENOENT
    }
}

/// The per-thread answer of the non-reentrant functions, valid until the
/// thread's next call, as glibc's static buffer is until the next call.
struct Static {
    entry: hostent,
    buf: Vec<c_char>,
}

thread_local! {
    static STATIC: RefCell<Static> = const {
        RefCell::new(Static {
            entry: hostent {
                h_name: ptr::null_mut(),
                h_aliases: ptr::null_mut(),
                h_addrtype: 0,
                h_length: 0,
                h_addr_list: ptr::null_mut(),
            },
            buf: Vec::new(),
        })
    };
}

/// Fills the thread's static hostent with `host`.
fn into_static(host: &Host<'_>) -> *mut hostent {
    STATIC
        .try_with(|cell| {
            let mut slot = cell.borrow_mut();
            let Static { entry, buf } = &mut *slot;
            buf.clear();
            buf.resize(host.size(), 0);
            // SAFETY: `entry` is a hostent to write and `buf` holds
            // `size()` bytes; both live as long as the thread.
            match unsafe { host.fill(entry, buf.as_mut_ptr(), buf.len()) } {
                Ok(()) => entry as *mut hostent,
                Err(_) => ptr::null_mut(),
            }
        })
        .unwrap_or(ptr::null_mut())
}

fn own_gethostbyname2(resolver: &Resolver<'_>, name: *const c_char, family: c_int) -> *mut hostent {
    // SAFETY: a NUL-terminated name, as the caller promises.
    let Some(name) = (unsafe { text(name) }) else {
        set_h_errno(resolve::HOST_NOT_FOUND);
        return ptr::null_mut();
    };
    match host_lookup(resolver, name, family) {
        Ok(found) => into_static(&Host {
            name: &found.canonical,
            aliases: &found.aliases,
            addrs: &found.addrs,
            v6: family == libc::AF_INET6,
        }),
        Err(failure) => {
            set_h_errno(failure.h_errno());
            ptr::null_mut()
        }
    }
}

/// What a function answering in a per-thread buffer returns when it fails
/// before looking anything up: NULL, with h_errno.
fn failed_static(failure: LookupError) -> *mut hostent {
    set_h_errno(failure.h_errno());
    ptr::null_mut()
}

/// `gethostbyname()`: IPv4 addresses, in a per-thread buffer.
///
/// # Safety
/// As libc's `gethostbyname`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn gethostbyname(name: *const c_char) -> *mut hostent {
    // SAFETY: the caller's argument, as given.
    let real = || unsafe { real::gethostbyname(name) };
    resolving(
        failed_static,
        |resolver| own_gethostbyname2(resolver, name, libc::AF_INET),
        real,
    )
}

/// `gethostbyname2()`: addresses of `family`, in a per-thread buffer.
///
/// # Safety
/// As libc's `gethostbyname2`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn gethostbyname2(name: *const c_char, family: c_int) -> *mut hostent {
    // SAFETY: the caller's arguments, as given.
    let real = || unsafe { real::gethostbyname2(name, family) };
    resolving(
        failed_static,
        |resolver| own_gethostbyname2(resolver, name, family),
        real,
    )
}

/// The address `len` bytes at `addr` hold, for `family`.
///
/// # Safety
/// `addr` is valid for reads of `len` bytes.
unsafe fn raw_ip(addr: *const c_void, len: socklen_t, family: c_int) -> Option<IpAddr> {
    match (family, len) {
        (libc::AF_INET, 4) => {
            // SAFETY: 4 readable bytes.
            let octets = unsafe { ptr::read_unaligned(addr.cast::<[u8; 4]>()) };
            Some(IpAddr::from(octets))
        }
        (libc::AF_INET6, 16) => {
            // SAFETY: 16 readable bytes.
            let octets = unsafe { ptr::read_unaligned(addr.cast::<[u8; 16]>()) };
            Some(IpAddr::from(octets))
        }
        _ => None,
    }
}

/// The address to look up for `ip`: an IPv4-mapped address as its IPv4
/// self, as glibc does.
fn unmapped(ip: IpAddr) -> IpAddr {
    bindto_core::addr::unmap(ip)
}

/// The name of the address `len` bytes at `addr` hold (hosts, then a PTR
/// query), and that address.
///
/// # Safety
/// `addr` is valid for reads of `len` bytes.
unsafe fn reverse_lookup(
    resolver: &Resolver<'_>,
    addr: *const c_void,
    len: socklen_t,
    family: c_int,
) -> Result<(String, IpAddr), LookupError> {
    // SAFETY: as the caller promises.
    let ip = unsafe { raw_ip(addr, len, family) }.ok_or(LookupError::Fail)?;
    resolver.reverse(unmapped(ip)).map(|name| (name, ip))
}

/// `gethostbyaddr()`: the name of an address, in a per-thread buffer.
///
/// # Safety
/// As libc's `gethostbyaddr`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn gethostbyaddr(
    addr: *const c_void,
    len: socklen_t,
    family: c_int,
) -> *mut hostent {
    // SAFETY: the caller's arguments, as given.
    let real = || unsafe { real::gethostbyaddr(addr, len, family) };
    resolving(
        failed_static,
        // SAFETY: the caller's address of `len` bytes.
        |resolver| match unsafe { reverse_lookup(resolver, addr, len, family) } {
            Ok((name, ip)) => into_static(&Host {
                name: &name,
                aliases: &[],
                addrs: &[ip],
                v6: ip.is_ipv6(),
            }),
            Err(failure) => {
                set_h_errno(failure.h_errno());
                ptr::null_mut()
            }
        },
        real,
    )
}

/// `gethostbyaddr_r()`: the name of an address, in the caller's buffer.
///
/// # Safety
/// As libc's `gethostbyaddr_r`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn gethostbyaddr_r(
    addr: *const c_void,
    len: socklen_t,
    family: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: the caller's arguments, as given.
    let real =
        || unsafe { real::gethostbyaddr_r(addr, len, family, ret, buf, buflen, result, h_errnop) };
    resolving(
        |failure| failed_r(result, h_errnop, failure),
        |resolver| {
            // SAFETY: the caller's address of `len` bytes.
            let found = unsafe { reverse_lookup(resolver, addr, len, family) };
            let host = found.as_ref().map(|(name, ip)| Host {
                name,
                aliases: &[],
                addrs: std::slice::from_ref(ip),
                v6: ip.is_ipv6(),
            });
            let out = Out {
                ret,
                buf,
                buflen,
                result,
                h_errnop,
            };
            // SAFETY: the caller's out arguments.
            unsafe { answer_r(host.map_err(|f| *f), out) }
        },
        real,
    )
}

/// Copies `text` into a caller's buffer of `len` bytes, or EAI_OVERFLOW.
///
/// # Safety
/// `out` is valid for writes of `len` bytes.
unsafe fn copy_out(text: &CStr, out: *mut c_char, len: socklen_t) -> Result<(), c_int> {
    let bytes = text.to_bytes_with_nul();
    if bytes.len() > len as usize {
        return Err(libc::EAI_OVERFLOW);
    }
    // SAFETY: `bytes.len() <= len` writable bytes.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), out.cast::<u8>(), bytes.len()) };
    Ok(())
}

/// The host part of getnameinfo.
fn name_info_host(
    resolver: &Resolver<'_>,
    addr: SocketAddr,
    flags: c_int,
) -> Result<CString, c_int> {
    let numeric = || {
        let text = match addr {
            SocketAddr::V6(a) if a.scope_id() != 0 => format!("{}%{}", a.ip(), a.scope_id()),
            _ => addr.ip().to_string(),
        };
        CString::new(text).map_err(|_| libc::EAI_FAIL)
    };
    if flags & libc::NI_NUMERICHOST != 0 {
        return numeric();
    }
    match resolver.reverse(unmapped(addr.ip())) {
        Ok(name) => CString::new(name).map_err(|_| libc::EAI_FAIL),
        Err(_) if flags & libc::NI_NAMEREQD == 0 => numeric(),
        Err(LookupError::Again) => Err(libc::EAI_AGAIN),
        Err(_) => Err(libc::EAI_NONAME),
    }
}

/// `getnameinfo()`: host names by hosts and PTR query, services from the
/// services database.
///
/// # Safety
/// As libc's `getnameinfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn getnameinfo(
    sa: *const sockaddr,
    salen: socklen_t,
    host: *mut c_char,
    hostlen: socklen_t,
    serv: *mut c_char,
    servlen: socklen_t,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's arguments, as given.
    let real = || unsafe { real::getnameinfo(sa, salen, host, hostlen, serv, servlen, flags) };
    resolving(
        LookupError::eai,
        |resolver| {
            // SAFETY: the caller's address of `salen` bytes.
            let Some(addr) = (unsafe { crate::sockaddr::read(sa, salen) }) else {
                return libc::EAI_FAMILY;
            };
            let wants_host = !host.is_null() && hostlen > 0;
            let wants_serv = !serv.is_null() && servlen > 0;
            if !wants_host && !wants_serv {
                return libc::EAI_NONAME;
            }
            let mut outcome = Ok(());
            if wants_host {
                // SAFETY: the caller's buffer of `hostlen` bytes.
                outcome = name_info_host(resolver, addr, flags)
                    .and_then(|name| unsafe { copy_out(&name, host, hostlen) });
            }
            if wants_serv && outcome.is_ok() {
                let proto = if flags & libc::NI_DGRAM != 0 {
                    c"udp"
                } else {
                    c"tcp"
                };
                let name = (flags & libc::NI_NUMERICSERV == 0)
                    .then(|| service::name_of(addr.port(), proto))
                    .flatten()
                    .unwrap_or_else(|| CString::new(addr.port().to_string()).unwrap_or_default());
                // SAFETY: the caller's buffer of `servlen` bytes.
                outcome = unsafe { copy_out(&name, serv, servlen) };
            }
            outcome.err().unwrap_or(0)
        },
        real,
    )
}

/// `pthread_cancel()`: libc's, then noted for the shim's resolver, whose
/// waits libc cannot interrupt ([`crate::cancel`]).
///
/// # Safety
/// As libc's `pthread_cancel`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn pthread_cancel(thread: libc::pthread_t) -> c_int {
    // SAFETY: the caller's argument, as given. A thread cancelling itself
    // (deferred) is cancelled at its next cancellation point, not here.
    let rc = unsafe { real::pthread_cancel(thread) };
    // Noted after libc's, so that the lookup, once it gives up, finds the
    // cancellation pending.
    if rc == 0 {
        boundary::call_or(|| (), || cancel::ask(thread));
    }
    rc
}
