//! The exported functions that stand in for libc's.
//!
//! Each runs inside the panic [`boundary`], decides, and calls the real
//! function. What the calls do, and the errno of each refusal:
//!
//! | call | socket | what the shim does |
//! | --- | --- | --- |
//! | `connect` | TCP, UDP | SO_BINDTODEVICE + source bind, DNS rewrite |
//! | `sendto`, `sendmsg`, `sendmmsg` with `MSG_FASTOPEN` | TCP | as `connect` |
//! | `sendto`, `sendmsg`, `sendmmsg` with a destination | UDP | IP_PKTINFO / IPV6_PKTINFO per datagram, DNS rewrite |
//! | `bind` to 0.0.0.0 or `::` | TCP, UDP | the profile's `listen` address instead, port kept |
//!
//! | refusal | errno |
//! | --- | --- |
//! | the config cannot be read (unknown profile, syntax error, ...) | EPERM, for every intercepted call |
//! | a route with `action = "block"` | EPERM |
//! | SO_BINDTODEVICE refused, interface missing | the kernel's (EPERM, ENODEV) |
//! | interface missing, for a datagram | ENODEV |
//! | source address cannot be bound | the kernel's (EADDRNOTAVAIL) |
//! | the binding names no interface and no source of the destination's family | ENETUNREACH |
//! | a DNS rewrite to an IPv6 server for an IPv4 socket | EAFNOSUPPORT |
//! | a wildcard bind with no `listen` address the socket can take | EADDRNOTAVAIL |
//! | a panic inside the shim | EPERM |
//! | a call from a signal handler that interrupted the shim's own work in the same thread | EAGAIN |
//!
//! With `on_failure = "allow"`, a binding that cannot be made (the
//! interface, source, family and listen cases) is a warning and the call
//! goes ahead unbound; blocks and broken configs still refuse.
//!
//! A wildcard bind on an IPv6 socket takes the IPv6 `listen` address; if the
//! profile has only an IPv4 one, the socket gets it IPv4-mapped
//! (::ffff:a.b.c.d), or, if it is IPV6_V6ONLY, has no address it can take.
//!
//! Everything that goes straight to libc is a [`Bypass`], with errno as the
//! caller left it.

use std::net::{IpAddr, SocketAddr};
use std::ptr;

use bindto_core::{Binding, IfName, OnFailure, Protocol, Verdict};
use libc::{c_int, c_uint, c_void, iovec, mmsghdr, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use crate::apply::{self, ControlBuf, Failure, Pktinfo};
use crate::boundary::{self, Failed};
use crate::errno;
use crate::fds::{self, Family, Inet};
use crate::guard::Guard;
use crate::log::{self, Notice};
use crate::real;
use crate::sockaddr::{Raw, is_wildcard, read as read_addr, readable};
use crate::state::{self, Loaded, Mode, Rules, State};

/// Why a call goes straight to the real function, untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bypass {
    /// No profile and none of the older tools' variables.
    NoProfile,
    /// No address, or not IPv4 / IPv6 (AF_UNIX, AF_UNSPEC, ...).
    OtherFamily,
    /// Not a TCP or UDP socket (raw, ICMP, netlink, not a socket).
    OtherType,
    /// A send on a connected socket, or a TCP send that does not connect.
    NoDestination,
    /// The profile leaves this destination alone.
    Direct,
    /// A bind to an explicit address, or a profile without `listen`.
    ExplicitBind,
}

/// What becomes of an intercepted call when it does not just go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Bypass(Bypass),
    /// Fail with this errno.
    Refuse(c_int),
}

impl From<Bypass> for Stop {
    fn from(bypass: Bypass) -> Stop {
        Stop::Bypass(bypass)
    }
}

/// How an outgoing call picks its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// The socket itself is bound (connect, TCP Fast Open).
    Socket,
    /// Each datagram carries its own pktinfo (unconnected UDP).
    Datagram,
}

/// What an outgoing call goes ahead with.
#[derive(Debug, Clone, Copy, Default)]
struct Go {
    /// The rewritten destination, for the socket's family.
    target: Option<Raw>,
    /// Ancillary data for the datagram.
    pktinfo: Option<Datagram>,
}

/// A datagram's pktinfo, and which binding's interface it names.
#[derive(Debug, Clone, Copy)]
struct Datagram {
    info: Pktinfo,
    /// Index in the table's bindings and interface name, to look the
    /// interface up again when a send says it is gone.
    interface: Option<(usize, IfName)>,
}

impl Datagram {
    /// After ENODEV or ENXIO: the interface may have been recreated under a
    /// new index. The pktinfo with the new index, if it changed.
    fn refresh(&self) -> Option<Pktinfo> {
        let (index, name) = self.interface?;
        let saved = errno::get();
        let mut guard = Guard::enter()?;
        let found = state::with(&mut guard, |state| match &state.rules {
            Rules::Table(loaded) => loaded.refresh(index, &name),
            Rules::Broken(_) => None,
        });
        errno::set(saved);
        let ifindex = found.flatten().filter(|&i| i != self.info.ifindex)?;
        Some(Pktinfo {
            ifindex,
            ..self.info
        })
    }
}

/// The table, or the refusal of a process whose config is broken.
#[inline(always)]
fn loaded(state: &State) -> Result<&Loaded, Stop> {
    match &state.rules {
        Rules::Table(loaded) => Ok(loaded),
        Rules::Broken(error) => Err(broken(error)),
    }
}

/// The refusal of every call in a process whose config is broken.
#[cold]
#[inline(never)]
fn broken(error: &str) -> Stop {
    log::notice(
        Notice::Setup,
        format_args!("{error}; network calls are blocked"),
    );
    Stop::Refuse(libc::EPERM)
}

/// Decides an outgoing call on `fd` to `destination`, prepares the socket
/// and fills in `go` (an out-parameter: it is large, and this is the hot
/// path).
///
/// Only the common cases are handled here: no log, no DNS rewrite, and
/// either a connect bound to an interface alone, a datagram bound as the
/// profile says, or a destination left alone. Everything else (refusals,
/// rewrites, source addresses, notices) is in [`outbound_rest`], out of
/// line, so that the hooks this is inlined into keep a small frame.
#[inline(always)]
fn outbound(
    state: &State,
    fd: c_int,
    socket: Inet,
    destination: &SocketAddr,
    way: Way,
    go: &mut Go,
) -> Result<(), Stop> {
    let loaded = loaded(state)?;
    let decision = loaded.table.decide(*destination, socket.protocol());
    if decision.rewrite.is_none() && !log::enabled() {
        match (decision.verdict, way) {
            (
                Verdict::Bind(Binding {
                    interface: Some(name),
                    source,
                }),
                Way::Socket,
            ) if source.is_empty() => {
                return match apply::device(fd, name) {
                    Ok(()) => Ok(()),
                    Err(e) => failed(loaded, Failure::Interface(*name, e), decision.origin, way),
                };
            }
            (Verdict::Bind(binding), Way::Datagram) => {
                return match datagram(loaded, binding, decision.destination.ip()) {
                    Ok(d) => {
                        go.pktinfo = Some(d);
                        Ok(())
                    }
                    Err(failure) => failed(loaded, failure, decision.origin, way),
                };
            }
            (Verdict::Direct, _) if way == Way::Datagram || !socket.device_set() => {
                return Err(Bypass::Direct.into());
            }
            _ => {}
        }
    }
    outbound_rest(loaded, fd, socket, destination, way, &decision, go)
}

/// [`outbound`] for everything but its common cases.
#[cold]
#[inline(never)]
fn outbound_rest(
    loaded: &Loaded,
    fd: c_int,
    socket: Inet,
    destination: &SocketAddr,
    way: Way,
    decision: &bindto_core::Decision<'_>,
    go: &mut Go,
) -> Result<(), Stop> {
    if log::enabled() {
        log_decision(fd, socket, *destination, way, decision);
    }
    if let Some(origin) = decision.rewrite {
        go.target = Some(
            Raw::new(decision.destination, socket.family()).ok_or_else(|| {
                log::notice(
                    Notice::Family,
                    format_args!(
                        "cannot send to {} (from {origin}) on an IPv4 socket; blocked",
                        decision.destination
                    ),
                );
                Stop::Refuse(libc::EAFNOSUPPORT)
            })?,
        );
    }
    let binding = match decision.verdict {
        Verdict::Bind(binding) => binding,
        Verdict::Direct => {
            if way == Way::Socket && socket.device_set() {
                unbind(fd, decision)?;
            }
            return match go.target {
                None => Err(Bypass::Direct.into()),
                Some(_) => Ok(()),
            };
        }
        Verdict::Block => {
            log::notice(
                Notice::Blocked,
                format_args!(
                    "{} to {} blocked by {}",
                    match socket.protocol() {
                        Protocol::Tcp => "connection",
                        Protocol::Udp => "traffic",
                    },
                    decision.destination,
                    decision.origin
                ),
            );
            return Err(Stop::Refuse(libc::EPERM));
        }
    };
    let destination = decision.destination.ip();
    let bound = match way {
        Way::Socket => apply::connected(fd, socket.family(), binding, destination),
        Way::Datagram => datagram(loaded, binding, destination).map(|d| go.pktinfo = Some(d)),
    };
    if let Err(failure) = bound {
        failed(loaded, failure, decision.origin, way)?;
    }
    Ok(())
}

/// Undoes the shim's own SO_BINDTODEVICE for a destination the profile
/// leaves alone (a UDP socket connected again elsewhere).
#[cold]
fn unbind(fd: c_int, decision: &bindto_core::Decision<'_>) -> Result<(), Stop> {
    apply::clear_device(fd).map_err(|e| {
        log::notice(
            Notice::Unbind,
            format_args!(
                "cannot unbind a socket from its interface ({}) for {} by {}; blocked",
                log::strerror(e),
                decision.destination,
                decision.origin
            ),
        );
        Stop::Refuse(e)
    })
}

#[cold]
fn log_decision(
    fd: c_int,
    socket: Inet,
    destination: SocketAddr,
    way: Way,
    decision: &bindto_core::Decision<'_>,
) {
    tracing::debug!(
        "{} fd {fd} to {destination} ({}){}: {} by {}",
        match way {
            Way::Socket => "connect",
            Way::Datagram => "sendto",
        },
        match socket.protocol() {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        },
        match decision.rewrite {
            Some(origin) => format!(", rewritten to {} by {origin}", decision.destination),
            None => String::new(),
        },
        VerdictText(decision.verdict),
        decision.origin,
    );
}

/// Reports a binding that could not be made, and refuses the call unless
/// the profile says `on_failure = "allow"`.
#[cold]
#[inline(never)]
fn failed(
    loaded: &Loaded,
    failure: Failure,
    origin: &bindto_core::Origin,
    way: Way,
) -> Result<(), Stop> {
    let allow = loaded.table.on_failure() == OnFailure::Allow;
    let outcome = match (allow, way) {
        (true, _) => "continuing unbound (on_failure = \"allow\")",
        (false, Way::Socket) => "connection blocked",
        (false, Way::Datagram) => "datagram blocked",
    };
    let (kind, what) = match failure {
        Failure::Interface(name, e) => (
            Notice::Interface,
            format!(
                "cannot bind socket to interface \"{name}\" ({})",
                log::strerror(e)
            ),
        ),
        Failure::Source(ip, e) => (
            Notice::Source,
            format!(
                "cannot bind socket to source address {ip} ({})",
                log::strerror(e)
            ),
        ),
        Failure::Family(ip) => (
            Notice::Family,
            format!(
                "no interface and no {} source to bind a socket to {ip}",
                if ip.is_ipv4() { "IPv4" } else { "IPv6" }
            ),
        ),
    };
    log::notice(kind, format_args!("{what} for {origin}; {outcome}"));
    if allow {
        Ok(())
    } else {
        Err(Stop::Refuse(failure.errno()))
    }
}

/// The pktinfo that sends a datagram to `destination` as `binding` says.
fn datagram(loaded: &Loaded, binding: &Binding, destination: IpAddr) -> Result<Datagram, Failure> {
    let source = binding.source.for_family_of(destination);
    let (ifindex, interface) = match binding.interface {
        None if source.is_none() => return Err(Failure::Family(destination)),
        None => (0, None),
        Some(name) => {
            let index = loaded.index_of(binding);
            let ifindex = loaded
                .ifindex(index, &name)
                .ok_or(Failure::Interface(name, libc::ENODEV))?;
            (ifindex, Some((index, name)))
        }
    };
    Ok(Datagram {
        info: pktinfo(ifindex, source, destination),
        interface,
    })
}

/// The pktinfo that sends a datagram to `destination` out of interface
/// `ifindex` (0 for any), from `source` (of the destination's family) if
/// given.
#[inline(always)]
fn pktinfo(ifindex: u32, source: Option<IpAddr>, destination: IpAddr) -> Pktinfo {
    Pktinfo {
        ifindex,
        source,
        v6: destination.is_ipv6(),
    }
}

/// A verdict as the log shows it.
struct VerdictText<'t>(Verdict<'t>);

impl std::fmt::Display for VerdictText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Verdict::Direct => f.write_str("direct"),
            Verdict::Block => f.write_str("block"),
            Verdict::Bind(binding) => {
                f.write_str("bind")?;
                if let Some(name) = &binding.interface {
                    write!(f, " interface {name}")?;
                }
                for source in binding.source.iter() {
                    write!(f, " source {source}")?;
                }
                Ok(())
            }
        }
    }
}

/// Decides an outgoing call about `addr` on `fd`, cheapest checks first,
/// and hands the outcome to `go`, or fails or bypasses as decided. errno
/// is the caller's for the real call. The guard is released before `go`
/// runs, so that a signal handler connecting during the real call is
/// still decided.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
#[inline(always)]
unsafe fn outgoing<R: Failed>(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
    way: impl FnOnce(Inet) -> Result<Way, Bypass>,
    go: impl FnOnce(&Go) -> R,
    bypass: impl FnOnce() -> R,
) -> R {
    let saved = errno::get();
    let mut plan = Go::default();
    // SAFETY: as the caller promises.
    match unsafe { decide_outgoing(fd, addr, len, way, &mut plan) } {
        Ok(()) => {
            errno::set(saved);
            go(&plan)
        }
        Err(Stop::Bypass(_)) => {
            errno::set(saved);
            bypass()
        }
        Err(Stop::Refuse(e)) => {
            errno::set(e);
            R::FAILED
        }
    }
}

/// A socket call on a thread that is already inside the shim. The shim's
/// own work makes none (its resolver calls the real functions directly),
/// so this is a signal handler that interrupted a hook before its real
/// call. The interrupted hook cannot be re-entered safely, and letting the
/// call through undecided would send it unbound: it is refused, with the
/// errno of a call worth retrying.
const REENTERED: Stop = Stop::Refuse(libc::EAGAIN);

/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
unsafe fn decide_outgoing(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
    way: impl FnOnce(Inet) -> Result<Way, Bypass>,
    go: &mut Go,
) -> Result<(), Stop> {
    if state::passing_through() {
        return Err(Bypass::NoProfile.into());
    }
    // SAFETY: as the caller promises.
    let read = unsafe { read_addr(addr, len) };
    // Borrowed where it was read: moved out of the Option, it would be
    // copied in pieces.
    let Some(destination) = &read else {
        return Err(Bypass::OtherFamily.into());
    };
    let socket = fds::inet(fd).ok_or(Bypass::OtherType)?;
    let way = way(socket)?;
    let mut guard = Guard::enter().ok_or(REENTERED)?;
    state::with(&mut guard, |state| {
        outbound(state, fd, socket, destination, way, go)
    })
    .unwrap_or(Err(Bypass::NoProfile.into()))
}

/// The destination of a call, or the caller's.
fn target_or(go: &Go, addr: *const sockaddr, len: socklen_t) -> (*const sockaddr, socklen_t) {
    go.target
        .as_ref()
        .map_or((addr, len), |t| (t.as_ptr(), t.len()))
}

/// How a send with a destination is decided: TCP only when it connects
/// (`MSG_FASTOPEN`), UDP per datagram.
fn send_way(socket: Inet, flags: c_int) -> Result<Way, Bypass> {
    match socket.protocol() {
        Protocol::Tcp if flags & libc::MSG_FASTOPEN != 0 => Ok(Way::Socket),
        Protocol::Tcp => Err(Bypass::NoDestination),
        Protocol::Udp => Ok(Way::Datagram),
    }
}

/// Sends `msg` with `pktinfo` appended to its control data; on ENODEV or
/// ENXIO, looks the interface up again and, if its index changed, retries
/// once.
///
/// # Safety
/// `msg` is a valid message for sendmsg.
unsafe fn send_with_pktinfo(fd: c_int, msg: &msghdr, flags: c_int, pktinfo: &Datagram) -> ssize_t {
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
unsafe fn send_appended(fd: c_int, msg: &msghdr, flags: c_int, info: &Pktinfo) -> ssize_t {
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
unsafe fn send_after_control(fd: c_int, msg: &msghdr, flags: c_int, info: &Pktinfo) -> ssize_t {
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
const MAX_CONTROL: usize = 64 * 1024;

/// The caller's control data, or the errno with which the kernel would
/// refuse it without sending: ENOBUFS for a length it will not allocate,
/// EFAULT for a length with no readable buffer.
///
/// # Safety
/// `msg.msg_control` is valid for reads of `msg.msg_controllen` bytes
/// for the returned lifetime, or not [`readable`].
unsafe fn control_bytes<'m>(msg: &msghdr) -> Result<&'m [u8], c_int> {
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
    Ok(unsafe { std::slice::from_raw_parts(msg.msg_control.cast::<u8>(), len) })
}

/// `socket()`: records what kind of socket the descriptor is.
///
/// # Safety
/// As libc's `socket`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    boundary::call(|| {
        // SAFETY: the caller's arguments, as given.
        let fd = unsafe { real::socket(domain, ty, protocol) };
        if fd >= 0 {
            fds::record(fd, domain, ty, protocol);
        }
        fd
    })
}

/// `close()`: forgets the descriptor.
///
/// # Safety
/// As libc's `close`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    boundary::call(|| {
        fds::forget(fd);
        // SAFETY: the caller's argument, as given.
        unsafe { real::close(fd) }
    })
}

/// `close_range()`: forgets the descriptors it closes. With
/// CLOSE_RANGE_CLOEXEC they only close at exec, which takes the records
/// with it.
///
/// # Safety
/// As libc's `close_range`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
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
pub unsafe extern "C" fn closefrom(low: c_int) {
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
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
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
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
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
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    boundary::call(|| {
        // SAFETY: `addr` and `len` are the caller's, valid as libc
        // requires; every real call below passes them on or a local copy.
        unsafe {
            if ready_to_connect(fd, addr, len) {
                return real::connect(fd, addr, len);
            }
            connect_decided(fd, addr, len)
        }
    })
}

/// The common connects, settled without touching errno: `true` when the
/// socket is ready for the caller's connect as it is, because the shim
/// has nothing to do, the profile leaves the destination alone, or the
/// socket has just been bound to its interface. `false` sends the call
/// the long way ([`connect_decided`]), which starts again from nothing:
/// nothing done here needs undoing or remembering.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
#[inline(always)]
unsafe fn ready_to_connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> bool {
    match state::mode() {
        Mode::PassThrough => return true,
        Mode::Active => {}
        Mode::Uninitialised => return false,
    }
    // SAFETY: as the caller promises.
    let read = unsafe { read_addr(addr, len) };
    let (Some(destination), Some(socket)) = (&read, fds::inet(fd)) else {
        return true;
    };
    let Some(guard) = Guard::enter() else {
        return false;
    };
    let Some(Rules::Table(loaded)) = state::settled(&guard).map(|s| &s.rules) else {
        return false;
    };
    if log::enabled() {
        return false;
    }
    let decision = loaded.table.decide(*destination, socket.protocol());
    if decision.rewrite.is_some() {
        return false;
    }
    match decision.verdict {
        Verdict::Bind(Binding {
            interface: Some(name),
            source,
        }) if source.is_empty() => {
            // On failure the long way tries again and reports it. errno is
            // then the failure's, not the caller's, which only shows if
            // `on_failure = "allow"` lets the connect go on and succeed:
            // errno after a successful call is unspecified (POSIX), and
            // saving it here would cost every connect.
            apply::device(fd, name).is_ok()
        }
        Verdict::Direct => !socket.device_set(),
        _ => false,
    }
}

/// `connect` decided the long way: first call, refusals, rewrites, source
/// addresses, logging.
///
/// # Safety
/// As libc's `connect`.
#[inline(never)]
unsafe fn connect_decided(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: as the caller promises; the planned destination is a local
    // copy that outlives the call.
    unsafe {
        outgoing(
            fd,
            addr,
            len,
            |_| Ok(Way::Socket),
            |go| {
                let (addr, len) = target_or(go, addr, len);
                real::connect(fd, addr, len)
            },
            || real::connect(fd, addr, len),
        )
    }
}

/// `sendto()`: a UDP datagram to `addr` leaves as the profile says; a TCP
/// Fast Open connects as `connect` does.
///
/// # Safety
/// As libc's `sendto`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> ssize_t {
    boundary::call(|| {
        // SAFETY: the caller's arguments, valid as libc requires; the
        // message built here points at them or at local copies that
        // outlive the call.
        unsafe {
            let info = match quick_datagram(fd, addr, len, flags) {
                Quick::Pass => return real::sendto(fd, buf, n, flags, addr, len),
                Quick::Send(info) => info,
                Quick::Long => return sendto_decided(fd, buf, n, flags, addr, len),
            };
            let mut iov = iovec {
                iov_base: buf.cast_mut(),
                iov_len: n,
            };
            match send_quick(fd, &sendto_message(&mut iov, addr, len), flags, &info) {
                Some(sent) => sent,
                None => sendto_decided(fd, buf, n, flags, addr, len),
            }
        }
    })
}

/// The message `sendto(fd, iov, addr, len)` sends, for `sendmsg`.
#[inline(always)]
fn sendto_message(iov: &mut iovec, addr: *const sockaddr, len: socklen_t) -> msghdr {
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

/// `sendto` decided the long way: first call, refusals, rewrites, TCP Fast
/// Open, logging, interfaces not looked up yet or gone.
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
) -> ssize_t {
    // SAFETY: the caller's arguments, valid as libc requires; the message
    // built here points at them or at local copies that outlive the call.
    unsafe {
        outgoing(
            fd,
            addr,
            len,
            |socket| send_way(socket, flags),
            |go| {
                let (addr, len) = target_or(go, addr, len);
                let Some(pktinfo) = &go.pktinfo else {
                    return real::sendto(fd, buf, n, flags, addr, len);
                };
                let mut iov = iovec {
                    iov_base: buf.cast_mut(),
                    iov_len: n,
                };
                send_with_pktinfo(fd, &sendto_message(&mut iov, addr, len), flags, pktinfo)
            },
            || real::sendto(fd, buf, n, flags, addr, len),
        )
    }
}

/// `sendmsg()`: as `sendto`, with the caller's control data kept.
///
/// # Safety
/// As libc's `sendmsg`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    boundary::call(|| {
        if !readable(msg, size_of::<msghdr>()) {
            // SAFETY: passed on as given; the kernel reports EFAULT.
            return unsafe { real::sendmsg(fd, msg, flags) };
        }
        // SAFETY: a readable `msg` is a valid msghdr, as libc requires.
        let caller = unsafe { *msg };
        // SAFETY: the caller's message, valid as libc requires.
        match unsafe {
            quick_datagram(
                fd,
                caller.msg_name.cast_const().cast(),
                caller.msg_namelen,
                flags,
            )
        } {
            // SAFETY: the caller's arguments, as given.
            Quick::Pass => return unsafe { real::sendmsg(fd, msg, flags) },
            Quick::Send(info) => {
                // SAFETY: the caller's valid message.
                if let Some(sent) = unsafe { send_quick(fd, &caller, flags, &info) } {
                    return sent;
                }
            }
            Quick::Long => {}
        }
        // SAFETY: as the caller promises.
        unsafe { sendmsg_decided(fd, msg, &caller, flags) }
    })
}

/// `sendmsg` decided the long way, as `sendto_decided`.
///
/// # Safety
/// As libc's `sendmsg`; `caller` is a copy of `*msg`.
#[inline(never)]
unsafe fn sendmsg_decided(fd: c_int, msg: *const msghdr, caller: &msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the caller's message, valid as libc requires; local copies
    // outlive the calls they are passed to.
    unsafe {
        outgoing(
            fd,
            caller.msg_name.cast_const().cast(),
            caller.msg_namelen,
            |socket| send_way(socket, flags),
            |go| {
                let mut local = *caller;
                let (addr, len) = target_or(go, local.msg_name.cast(), local.msg_namelen);
                local.msg_name = addr.cast_mut().cast();
                local.msg_namelen = len;
                match &go.pktinfo {
                    Some(pktinfo) => send_with_pktinfo(fd, &local, flags, pktinfo),
                    None => real::sendmsg(fd, &local, flags),
                }
            },
            || real::sendmsg(fd, msg, flags),
        )
    }
}

/// What the quick datagram path makes of a send.
enum Quick {
    /// The real call as it is: nothing to do (no profile, not an IPv4 or
    /// IPv6 destination, not a TCP or UDP socket, a TCP send that does not
    /// connect, a destination the profile leaves alone).
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
unsafe fn quick_datagram(fd: c_int, addr: *const sockaddr, len: socklen_t, flags: c_int) -> Quick {
    match state::mode() {
        Mode::PassThrough => return Quick::Pass,
        Mode::Active => {}
        Mode::Uninitialised => return Quick::Long,
    }
    // SAFETY: as the caller promises.
    let read = unsafe { read_addr(addr, len) };
    let (Some(destination), Some(socket)) = (&read, fds::inet(fd)) else {
        return Quick::Pass;
    };
    match send_way(socket, flags) {
        Ok(Way::Datagram) => {}
        Ok(Way::Socket) => return Quick::Long,
        Err(_) => return Quick::Pass,
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

/// Sends `msg` with `info` appended to its control data. `None` when the
/// kernel says the interface is gone (ENODEV, ENXIO): nothing was sent,
/// and the long way looks it up again (it may have been recreated under a
/// new index) and retries.
///
/// # Safety
/// `msg` is a valid message for sendmsg.
#[inline(always)]
unsafe fn send_quick(fd: c_int, msg: &msghdr, flags: c_int, info: &Pktinfo) -> Option<ssize_t> {
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
fn fast_open_first(fd: c_int, msg: &mut mmsghdr, flags: c_int) -> c_int {
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

/// `sendmmsg()`: each datagram with a destination leaves as the profile
/// says for it. Sent in runs of up to [`RUN`] messages; a refused message
/// ends the call there and, as the kernel does for an error after the first
/// message, the call returns the number sent before it (or fails with its
/// errno if it is the first). A datagram whose interface was recreated
/// fails once with ENODEV; the next call uses the new one.
///
/// # Safety
/// As libc's `sendmmsg`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    msgs: *mut mmsghdr,
    vlen: c_uint,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's arguments, valid as libc requires.
    boundary::call(|| unsafe { send_many(fd, msgs, vlen, flags) })
}

/// Messages prepared and sent together by `sendmmsg`.
const RUN: usize = 8;

/// The kernel's limit on messages per `sendmmsg` (UIO_MAXIOV).
const MAX_MESSAGES: usize = 1024;

/// One run of `sendmmsg` messages, copied so that names and control data
/// can be replaced without writing to the caller's.
struct Run {
    msgs: [mmsghdr; RUN],
    targets: [Option<Raw>; RUN],
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
            // SAFETY: each message's name is valid as libc requires.
            if let Some(destination) = unsafe { read_addr(hdr.msg_name.cast(), hdr.msg_namelen) } {
                let mut go = Go::default();
                match outbound(state, fd, socket, &destination, Way::Datagram, &mut go) {
                    Ok(()) => {}
                    Err(Stop::Bypass(_)) => go = Go::default(),
                    Err(Stop::Refuse(e)) => {
                        run.refused = Some(e);
                        break;
                    }
                }
                if let Some(target) = go.target {
                    let target = run.targets[i].insert(target);
                    hdr.msg_name = target.as_ptr().cast_mut().cast();
                    hdr.msg_namelen = target.len();
                }
                if let Some(pktinfo) = go.pktinfo {
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

/// # Safety
/// As libc's `sendmmsg`.
unsafe fn send_many(fd: c_int, msgs: *mut mmsghdr, vlen: c_uint, flags: c_int) -> c_int {
    let saved = errno::get();
    let pass = || {
        errno::set(saved);
        // SAFETY: the caller's arguments, as given.
        unsafe { real::sendmmsg(fd, msgs, vlen, flags) }
    };
    let count = (vlen as usize).min(MAX_MESSAGES);
    // An array the kernel cannot read fails on its first message (EFAULT),
    // before anything is sent.
    if !readable(msgs, count * size_of::<mmsghdr>()) || vlen == 0 || state::passing_through() {
        return pass();
    }
    // SAFETY: the caller passes `vlen` valid messages.
    let msgs = unsafe { std::slice::from_raw_parts_mut(msgs, count) };
    if msgs.iter().all(|m| m.msg_hdr.msg_name.is_null()) {
        return pass();
    }
    if flags & libc::MSG_FASTOPEN != 0
        && fds::inet(fd).is_some_and(|s| s.protocol() == Protocol::Tcp)
    {
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
        let prepared = fds::inet(fd)
            .filter(|s| s.protocol() == Protocol::Udp)
            .and_then(|socket| {
                state::with(&mut guard, |state| Run::prepare(state, fd, socket, chunk))
            });
        drop(guard);
        let Some(mut run) = prepared else {
            // Only possible for the first run: the socket and the rules do
            // not change under a call. Never send a message twice.
            return if sent == 0 { pass() } else { sent as c_int };
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

/// `bind()`: a wildcard address becomes the profile's `listen` address of
/// that family, port kept; explicit addresses are left alone.
///
/// # Safety
/// As libc's `bind`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    boundary::call(|| {
        let saved = errno::get();
        // SAFETY: the caller's address, valid as libc requires.
        match unsafe { decide_bind(fd, addr, len) } {
            Ok(raw) => {
                errno::set(saved);
                // SAFETY: a valid address of `raw.len()` bytes.
                unsafe { real::bind(fd, raw.as_ptr(), raw.len()) }
            }
            Err(Stop::Bypass(_)) => {
                errno::set(saved);
                // SAFETY: the caller's arguments, as given.
                unsafe { real::bind(fd, addr, len) }
            }
            Err(Stop::Refuse(e)) => {
                errno::set(e);
                -1
            }
        }
    })
}

/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
unsafe fn decide_bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> Result<Raw, Stop> {
    if state::passing_through() {
        return Err(Bypass::NoProfile.into());
    }
    // SAFETY: as the caller promises.
    let requested = unsafe { read_addr(addr, len) }.ok_or(Bypass::OtherFamily)?;
    let socket = fds::inet(fd).ok_or(Bypass::OtherType)?;
    let mut guard = Guard::enter().ok_or(REENTERED)?;
    state::with(&mut guard, |state| {
        listen_address(state, fd, socket, requested)
    })
    .unwrap_or(Err(Bypass::NoProfile.into()))
}

/// The address a wildcard bind gets instead.
fn listen_address(
    state: &State,
    fd: c_int,
    socket: Inet,
    requested: SocketAddr,
) -> Result<Raw, Stop> {
    let loaded = loaded(state)?;
    let listen = loaded.table.listen();
    if !is_wildcard(&requested) || listen.is_empty() {
        return Err(Bypass::ExplicitBind.into());
    }
    let family = socket.family();
    let want_v4 = match requested {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
    };
    let chosen = if want_v4 {
        listen.v4.map(IpAddr::V4)
    } else {
        listen.v6.map(IpAddr::V6).or_else(|| {
            listen
                .v4
                .filter(|_| family == Family::V6 && !v6_only(fd))
                .map(IpAddr::V4)
        })
    };
    let raw = chosen.and_then(|ip| Raw::new(SocketAddr::new(ip, requested.port()), family));
    if log::enabled() {
        tracing::debug!(
            "bind fd {fd} to {requested}: {} by the listen addresses of profile \"{}\"",
            match chosen {
                Some(ip) => format!("bound to {}", SocketAddr::new(ip, requested.port())),
                None => "no listen address of this family".to_owned(),
            },
            loaded.table.profile()
        );
    }
    if let Some(raw) = raw {
        return Ok(raw);
    }
    let allow = loaded.table.on_failure() == OnFailure::Allow;
    log::notice(
        Notice::Listen,
        format_args!(
            "cannot bind {requested}: profile \"{}\" has no {} listen address this socket can take; {}",
            loaded.table.profile(),
            if want_v4 { "IPv4" } else { "IPv6" },
            if allow {
                "listening on the wildcard (on_failure = \"allow\")"
            } else {
                "bind blocked"
            }
        ),
    );
    if allow {
        Err(Bypass::ExplicitBind.into())
    } else {
        Err(Stop::Refuse(libc::EADDRNOTAVAIL))
    }
}

/// Whether an IPv6 socket refuses IPv4-mapped addresses.
fn v6_only(fd: c_int) -> bool {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `value` and `len` are valid for writes, `len` its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    rc == 0 && value != 0
}
