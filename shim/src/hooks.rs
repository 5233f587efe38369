//! The exported functions that stand in for libc's.
//!
//! Each runs inside the panic [`boundary`], decides, and calls the real
//! function. What the calls do, and the errno of each refusal:
//!
//! | call | socket | what the shim does |
//! | --- | --- | --- |
//! | `connect` | TCP, UDP | SO_BINDTODEVICE + source bind, DNS rewrite |
//! | `sendto`, `sendmsg` with `MSG_FASTOPEN` | TCP | as `connect` |
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
use crate::boundary;
use crate::errno;
use crate::fds::{self, Family, Inet};
use crate::guard::Guard;
use crate::log::{self, Notice};
use crate::real;
use crate::sockaddr::{Raw, is_wildcard, read as read_addr};
use crate::state::{self, Loaded, Rules, Snapshot};

/// Why a call goes straight to the real function, untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bypass {
    /// No profile and none of the older tools' variables.
    NoProfile,
    /// The shim itself is calling.
    Reentrant,
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

/// An intercepted call on a TCP or UDP socket of a process with rules.
#[derive(Debug)]
struct Intercepted {
    fd: c_int,
    socket: Inet,
    state: Snapshot,
}

/// The cheap checks, in order of cost, that decide whether a call about
/// `addr` on `fd` is one to interpose. The guard must be held until the
/// decision is made and released before the real call, so that a signal
/// handler connecting meanwhile is still decided.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
unsafe fn intercept(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> Result<(Guard, Intercepted, SocketAddr), Bypass> {
    if state::passing_through() {
        return Err(Bypass::NoProfile);
    }
    // SAFETY: as the caller promises.
    let addr = unsafe { read_addr(addr, len) }.ok_or(Bypass::OtherFamily)?;
    let guard = Guard::enter().ok_or(Bypass::Reentrant)?;
    let socket = fds::inet(fd).ok_or(Bypass::OtherType)?;
    let state = state::current().ok_or(Bypass::NoProfile)?;
    Ok((guard, Intercepted { fd, socket, state }, addr))
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
#[derive(Debug, Default)]
struct Go<'s> {
    /// The rewritten destination, for the socket's family.
    target: Option<Raw>,
    /// Ancillary data for the datagram.
    pktinfo: Option<Datagram<'s>>,
}

/// A datagram's pktinfo, and how to refresh its interface index.
#[derive(Debug, Clone, Copy)]
struct Datagram<'s> {
    info: Pktinfo,
    interface: Option<(&'s Loaded, &'s Binding, IfName)>,
}

impl Datagram<'_> {
    /// After ENODEV or ENXIO: the interface may have been recreated under a
    /// new index. The new index if it changed.
    fn refresh(&self) -> Option<Pktinfo> {
        let (loaded, binding, name) = self.interface?;
        let saved = errno::get();
        let index = loaded.resolve(binding, &name);
        errno::set(saved);
        let index = index.filter(|&i| i != self.info.ifindex)?;
        Some(Pktinfo {
            ifindex: index,
            ..self.info
        })
    }
}

impl Intercepted {
    /// The table, or the refusal of a process whose config is broken.
    fn loaded(&self) -> Result<&Loaded, Stop> {
        match &self.state.rules {
            Rules::Table(loaded) => Ok(loaded),
            Rules::Broken(error) => {
                log::notice(
                    Notice::Setup,
                    format_args!("{error}; network calls are blocked"),
                );
                Err(Stop::Refuse(libc::EPERM))
            }
        }
    }

    /// Decides an outgoing call to `destination` and prepares the socket.
    fn outbound(&self, destination: SocketAddr, way: Way) -> Result<Go<'_>, Stop> {
        let loaded = self.loaded()?;
        let protocol = self.socket.protocol;
        let decision = loaded.table.decide(destination, protocol);
        if log::enabled() {
            tracing::debug!(
                "{} fd {} to {destination} ({}){}: {} by {}",
                match way {
                    Way::Socket => "connect",
                    Way::Datagram => "sendto",
                },
                self.fd,
                match protocol {
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
        let target = match decision.rewrite {
            None => None,
            Some(origin) => Some(
                Raw::new(decision.destination, self.socket.family).ok_or_else(|| {
                    log::notice(
                        Notice::Family,
                        format_args!(
                            "cannot send to {} (from {origin}) on an IPv4 socket; blocked",
                            decision.destination
                        ),
                    );
                    Stop::Refuse(libc::EAFNOSUPPORT)
                })?,
            ),
        };
        let binding = match decision.verdict {
            Verdict::Block => {
                log::notice(
                    Notice::Blocked,
                    format_args!(
                        "{} to {} blocked by {}",
                        match protocol {
                            Protocol::Tcp => "connection",
                            Protocol::Udp => "traffic",
                        },
                        decision.destination,
                        decision.origin
                    ),
                );
                return Err(Stop::Refuse(libc::EPERM));
            }
            Verdict::Direct => {
                if way == Way::Socket && self.socket.device_set {
                    apply::clear_device(self.fd).map_err(|e| {
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
                    })?;
                }
                return match target {
                    None => Err(Bypass::Direct.into()),
                    Some(_) => Ok(Go {
                        target,
                        pktinfo: None,
                    }),
                };
            }
            Verdict::Bind(binding) => binding,
        };
        let bound = match way {
            Way::Socket => apply::connected(
                self.fd,
                self.socket.family,
                binding,
                decision.destination.ip(),
            )
            .map(|()| None),
            Way::Datagram => datagram(loaded, binding, decision.destination.ip()).map(Some),
        };
        let pktinfo = match bound {
            Ok(pktinfo) => pktinfo,
            Err(failure) => {
                self.failed(loaded, failure, &decision.origin.to_string(), way)?;
                None
            }
        };
        Ok(Go { target, pktinfo })
    }

    /// Reports a binding that could not be made, and refuses the call
    /// unless the profile says `on_failure = "allow"`.
    fn failed(
        &self,
        loaded: &Loaded,
        failure: Failure,
        origin: &str,
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
}

/// The pktinfo that sends a datagram to `destination` as `binding` says.
fn datagram<'s>(
    loaded: &'s Loaded,
    binding: &'s Binding,
    destination: IpAddr,
) -> Result<Datagram<'s>, Failure> {
    let source = binding.source.for_family_of(destination);
    let (ifindex, interface) = match binding.interface {
        None if source.is_none() => return Err(Failure::Family(destination)),
        None => (0, None),
        Some(name) => (
            loaded
                .ifindex(binding, &name)
                .ok_or(Failure::Interface(name, libc::ENODEV))?,
            Some((loaded, binding, name)),
        ),
    };
    Ok(Datagram {
        info: Pktinfo {
            ifindex,
            source,
            v6: destination.is_ipv6(),
        },
        interface,
    })
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

/// Runs the decision for an outgoing call and hands its outcome to
/// `go`, or fails or bypasses as decided; errno is the caller's for the
/// real call. The guard is released before `go` runs.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
unsafe fn outgoing<R: boundary::Failed>(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
    way: impl FnOnce(Inet) -> Result<Way, Bypass>,
    go: impl FnOnce(Go<'_>) -> R,
    bypass: impl FnOnce() -> R,
) -> R {
    let saved = errno::get();
    // SAFETY: as the caller promises.
    let decided = unsafe { intercept(fd, addr, len) }.and_then(|(guard, call, destination)| {
        let way = way(call.socket)?;
        Ok((guard, call, destination, way))
    });
    let (guard, call, destination, way) = match decided {
        Ok(decided) => decided,
        Err(_) => {
            errno::set(saved);
            return bypass();
        }
    };
    let outcome = call.outbound(destination, way);
    drop(guard);
    match outcome {
        Ok(plan) => {
            errno::set(saved);
            go(plan)
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

/// The destination of a send, or the caller's.
fn target_or(go: &Go<'_>, addr: *const sockaddr, len: socklen_t) -> (*const sockaddr, socklen_t) {
    go.target
        .as_ref()
        .map_or((addr, len), |t| (t.as_ptr(), t.len()))
}

/// How a send with a destination is decided: TCP only when it connects
/// (`MSG_FASTOPEN`), UDP per datagram.
fn send_way(socket: Inet, flags: c_int) -> Result<Way, Bypass> {
    match socket.protocol {
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
unsafe fn send_with_pktinfo(
    fd: c_int,
    msg: &msghdr,
    flags: c_int,
    pktinfo: &Datagram<'_>,
) -> ssize_t {
    // SAFETY: the caller's message describes `msg_controllen` readable
    // bytes at `msg_control` when that is not null.
    let control = unsafe { control_bytes(msg) };
    let send = |info: &Pktinfo| {
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
    };
    let sent = send(&pktinfo.info);
    if sent < 0 && matches!(errno::get(), libc::ENODEV | libc::ENXIO) {
        if let Some(fresh) = pktinfo.refresh() {
            return send(&fresh);
        }
    }
    sent
}

/// The caller's control data.
///
/// # Safety
/// `msg.msg_control` is null or valid for reads of `msg.msg_controllen`
/// bytes for the returned lifetime.
unsafe fn control_bytes<'m>(msg: &msghdr) -> &'m [u8] {
    if msg.msg_control.is_null() || msg.msg_controllen == 0 {
        return &[];
    }
    // SAFETY: as the caller promises.
    unsafe { std::slice::from_raw_parts(msg.msg_control.cast::<u8>(), msg.msg_controllen) }
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
            outgoing(
                fd,
                addr,
                len,
                |_| Ok(Way::Socket),
                |go| {
                    let (addr, len) = target_or(&go, addr, len);
                    real::connect(fd, addr, len)
                },
                || real::connect(fd, addr, len),
            )
        }
    })
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
            outgoing(
                fd,
                addr,
                len,
                |socket| send_way(socket, flags),
                |go| {
                    let (addr, len) = target_or(&go, addr, len);
                    let Some(pktinfo) = &go.pktinfo else {
                        return real::sendto(fd, buf, n, flags, addr, len);
                    };
                    let mut iov = iovec {
                        iov_base: buf.cast_mut(),
                        iov_len: n,
                    };
                    let msg = msghdr {
                        msg_name: addr.cast_mut().cast(),
                        msg_namelen: len,
                        msg_iov: &mut iov,
                        msg_iovlen: 1,
                        msg_control: ptr::null_mut(),
                        msg_controllen: 0,
                        msg_flags: 0,
                    };
                    send_with_pktinfo(fd, &msg, flags, pktinfo)
                },
                || real::sendto(fd, buf, n, flags, addr, len),
            )
        }
    })
}

/// `sendmsg()`: as `sendto`, with the caller's control data kept.
///
/// # Safety
/// As libc's `sendmsg`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    boundary::call(|| {
        if msg.is_null() {
            // SAFETY: passed on as given; the kernel reports EFAULT.
            return unsafe { real::sendmsg(fd, msg, flags) };
        }
        // SAFETY: a non-null `msg` is a valid msghdr, as libc requires.
        let caller = unsafe { *msg };
        // SAFETY: the caller's message, valid as libc requires; local
        // copies outlive the calls they are passed to.
        unsafe {
            outgoing(
                fd,
                caller.msg_name.cast_const().cast(),
                caller.msg_namelen,
                |socket| send_way(socket, flags),
                |go| {
                    let mut local = caller;
                    let (addr, len) = target_or(&go, local.msg_name.cast(), local.msg_namelen);
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
    })
}

/// `sendmmsg()`: each datagram with a destination leaves as the profile
/// says for it. Sent in runs of up to [`RUN`] messages; a refused message
/// ends the call there, and, as the kernel does for an error after the
/// first message, the call returns the number sent before it (or fails
/// with its errno if it is the first).
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

/// # Safety
/// As libc's `sendmmsg`.
unsafe fn send_many(fd: c_int, msgs: *mut mmsghdr, vlen: c_uint, flags: c_int) -> c_int {
    let saved = errno::get();
    let pass = || {
        errno::set(saved);
        // SAFETY: the caller's arguments, as given.
        unsafe { real::sendmmsg(fd, msgs, vlen, flags) }
    };
    if msgs.is_null() || vlen == 0 || state::passing_through() {
        return pass();
    }
    let count = (vlen as usize).min(MAX_MESSAGES);
    // SAFETY: the caller passes `vlen` valid messages.
    let msgs = unsafe { std::slice::from_raw_parts_mut(msgs, count) };
    if msgs.iter().all(|m| m.msg_hdr.msg_name.is_null()) {
        return pass();
    }
    let Some(guard) = Guard::enter() else {
        return pass();
    };
    let Some(socket) = fds::inet(fd).filter(|s| s.protocol == Protocol::Udp) else {
        return pass();
    };
    let Some(state) = state::current() else {
        return pass();
    };
    let call = Intercepted { fd, socket, state };
    drop(guard);

    let mut sent = 0;
    while sent < count {
        let run = &mut msgs[sent..count.min(sent + RUN)];
        let mut local: [mmsghdr; RUN] = [run[0]; RUN];
        let mut targets: [Option<Raw>; RUN] = [None; RUN];
        let mut controls: [Option<ControlBuf>; RUN] = Default::default();
        let mut refused = None;
        let mut ready = 0;
        let guard = Guard::enter();
        for (i, msg) in run.iter().enumerate() {
            local[i] = *msg;
            let hdr = &mut local[i].msg_hdr;
            // SAFETY: each message's name is valid as libc requires.
            let Some(destination) = (unsafe { read_addr(hdr.msg_name.cast(), hdr.msg_namelen) })
            else {
                ready += 1;
                continue;
            };
            match call.outbound(destination, Way::Datagram) {
                Ok(go) => {
                    if let Some(target) = go.target {
                        let target = targets[i].insert(target);
                        hdr.msg_name = target.as_ptr().cast_mut().cast();
                        hdr.msg_namelen = target.len();
                    }
                    if let Some(pktinfo) = go.pktinfo {
                        // SAFETY: the caller's control data is valid.
                        let control = unsafe { control_bytes(hdr) };
                        let buf = controls[i].insert(ControlBuf::for_control(control));
                        let Some(len) = pktinfo.info.append(control, buf.bytes()) else {
                            refused = Some(libc::EPERM);
                            break;
                        };
                        hdr.msg_control = buf.bytes().as_mut_ptr().cast();
                        hdr.msg_controllen = len as size_t;
                    }
                }
                Err(Stop::Bypass(_)) => {}
                Err(Stop::Refuse(e)) => {
                    refused = Some(e);
                    break;
                }
            }
            ready += 1;
        }
        drop(guard);
        if ready > 0 {
            errno::set(saved);
            // SAFETY: `local` holds `ready` valid messages whose names and
            // control data live in `targets`, `controls` or the caller's
            // buffers until the call returns.
            let rc = unsafe { real::sendmmsg(fd, local.as_mut_ptr(), ready as c_uint, flags) };
            let Ok(done) = usize::try_from(rc) else {
                return if sent == 0 { rc } else { sent as c_int };
            };
            for (msg, local) in run.iter_mut().zip(&local[..done]) {
                msg.msg_len = local.msg_len;
            }
            sent += done;
            if done < ready {
                return sent as c_int;
            }
        }
        if let Some(e) = refused {
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
        match unsafe { listen_address(fd, addr, len) } {
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

/// The address a wildcard bind gets instead.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
unsafe fn listen_address(fd: c_int, addr: *const sockaddr, len: socklen_t) -> Result<Raw, Stop> {
    // SAFETY: as the caller promises.
    let (_guard, call, requested) = unsafe { intercept(fd, addr, len) }?;
    let loaded = call.loaded()?;
    let listen = loaded.table.listen();
    if !is_wildcard(&requested) || listen.is_empty() {
        return Err(Bypass::ExplicitBind.into());
    }
    let family = call.socket.family;
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
