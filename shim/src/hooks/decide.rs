//! How an intercepted call is decided the long way: the profile's
//! verdict for its destination, applied to the socket, with the refusals,
//! rewrites, notices and `on_failure` policy that the quick paths
//! ([`super::quick`]) leave to it.

use std::net::{IpAddr, SocketAddr};

use bindto_core::{Binding, IfName, OnFailure, Protocol, Verdict};
use libc::{c_int, sockaddr, socklen_t};

use crate::apply::{self, BindError, Pktinfo};
use crate::boundary::{Failed, NoCancel};
use crate::errno;
use crate::fds::{self, Family, Inet};
use crate::guard::Guard;
use crate::log::{self, Notice};
use crate::sockaddr::{SockaddrBuf, read as read_addr, read_unspec};
use crate::state::{self, Loaded, Rules, State};

/// Why a call goes straight to the real function, untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bypass {
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
pub(super) enum Unbound {
    Bypass(Bypass),
    /// Fail with this errno.
    Refuse(c_int),
}

impl From<Bypass> for Unbound {
    fn from(bypass: Bypass) -> Unbound {
        Unbound::Bypass(bypass)
    }
}

/// What an outgoing call's binding applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// The socket itself is bound (connect, TCP Fast Open).
    Socket,
    /// Each datagram carries its own pktinfo (unconnected UDP).
    Datagram,
}

/// What an outgoing call goes ahead with.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Prepared {
    /// The rewritten destination, for the socket's family.
    pub(super) target: Option<SockaddrBuf>,
    /// Ancillary data for the datagram.
    pub(super) pktinfo: Option<Datagram>,
}

/// A datagram's pktinfo, and which binding's interface it names.
#[derive(Debug, Clone, Copy)]
pub(super) struct Datagram {
    pub(super) info: Pktinfo,
    /// Index in the table's bindings and interface name, to look the
    /// interface up again when a send says it is gone.
    pub(super) interface: Option<(usize, IfName)>,
}

impl Datagram {
    /// After ENODEV or ENXIO: the interface may have been recreated under a
    /// new index. The pktinfo with the new index, if it changed.
    pub(super) fn refresh(&self) -> Option<Pktinfo> {
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
pub(super) fn loaded(state: &State) -> Result<&Loaded, Unbound> {
    match &state.rules {
        Rules::Table(loaded) => Ok(loaded),
        Rules::Broken(error) => Err(broken(error)),
    }
}

/// The refusal of every call in a process whose config is broken.
#[cold]
#[inline(never)]
pub(super) fn broken(error: &str) -> Unbound {
    log::notice(
        Notice::Setup,
        format_args!("{error}; network calls are blocked"),
    );
    Unbound::Refuse(libc::EPERM)
}

/// Decides an outgoing call on `fd` to `destination` the long way,
/// prepares the socket and fills in `prepared`: every verdict, refusal, rewrite,
/// source address and notice. The common cases have settled in
/// [`super::quick`] before; only sendmmsg's messages come here first.
pub(super) fn outbound(
    state: &State,
    fd: c_int,
    socket: Inet,
    destination: &SocketAddr,
    scope: Scope,
    prepared: &mut Prepared,
) -> Result<(), Unbound> {
    let loaded = loaded(state)?;
    let decision = &loaded.table.decide(*destination, socket.protocol());
    if log::enabled() {
        log_decision(fd, socket, *destination, scope, decision);
    }
    if let Some(origin) = decision.rewrite {
        prepared.target = Some(
            SockaddrBuf::new(decision.destination, socket.family()).ok_or_else(|| {
                log::notice(
                    Notice::Family,
                    format_args!(
                        "cannot send to {} (from {origin}) on an IPv4 socket; blocked",
                        decision.destination
                    ),
                );
                Unbound::Refuse(libc::EAFNOSUPPORT)
            })?,
        );
    }
    let binding = match decision.verdict {
        Verdict::Bind(binding) => binding,
        Verdict::Direct => {
            if scope == Scope::Socket && socket.device_set() {
                unbind(fd, decision)?;
            }
            return match prepared.target {
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
            return Err(Unbound::Refuse(libc::EPERM));
        }
    };
    let destination = decision.destination.ip();
    let bound = match scope {
        Scope::Socket => apply::connected(fd, socket.family(), binding, destination),
        Scope::Datagram => {
            datagram(loaded, binding, destination).map(|d| prepared.pktinfo = Some(d))
        }
    };
    if let Err(failure) = bound {
        failed(loaded, failure, decision.origin, scope)?;
    }
    Ok(())
}

/// Undoes the shim's own SO_BINDTODEVICE for a destination the profile
/// leaves alone (a UDP socket connected again elsewhere).
#[cold]
pub(super) fn unbind(fd: c_int, decision: &bindto_core::Decision<'_>) -> Result<(), Unbound> {
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
        Unbound::Refuse(e)
    })
}

#[cold]
pub(super) fn log_decision(
    fd: c_int,
    socket: Inet,
    destination: SocketAddr,
    scope: Scope,
    decision: &bindto_core::Decision<'_>,
) {
    tracing::debug!(
        "{} fd {fd} to {destination} ({}){}: {} by {}",
        match scope {
            Scope::Socket => "connect",
            Scope::Datagram => "sendto",
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
pub(super) fn failed(
    loaded: &Loaded,
    failure: BindError,
    origin: &bindto_core::Origin,
    scope: Scope,
) -> Result<(), Unbound> {
    let allow = loaded.table.on_failure() == OnFailure::Allow;
    let outcome = match (allow, scope) {
        (true, _) => "continuing unbound (on_failure = \"allow\")",
        (false, Scope::Socket) => "connection blocked",
        (false, Scope::Datagram) => "datagram blocked",
    };
    let (kind, what) = match failure {
        BindError::Interface(name, e) => (
            Notice::Interface,
            format!(
                "cannot bind socket to interface \"{name}\" ({})",
                log::strerror(e)
            ),
        ),
        BindError::Source(ip, e) => (
            Notice::Source,
            format!(
                "cannot bind socket to source address {ip} ({})",
                log::strerror(e)
            ),
        ),
        BindError::Family(ip) => (
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
        Err(Unbound::Refuse(failure.errno()))
    }
}

/// The pktinfo that sends a datagram to `destination` as `binding` says.
pub(super) fn datagram(
    loaded: &Loaded,
    binding: &Binding,
    destination: IpAddr,
) -> Result<Datagram, BindError> {
    let source = binding.source.for_family_of(destination);
    let (ifindex, interface) = match binding.interface {
        None if source.is_none() => return Err(BindError::Family(destination)),
        None => (0, None),
        Some(name) => {
            let index = loaded.index_of(binding);
            let ifindex = loaded
                .ifindex(index, &name)
                .ok_or(BindError::Interface(name, libc::ENODEV))?;
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
pub(super) fn pktinfo(ifindex: u32, source: Option<IpAddr>, destination: IpAddr) -> Pktinfo {
    Pktinfo {
        ifindex,
        source,
        v6: destination.is_ipv6(),
    }
}

/// A verdict as the log shows it.
pub(super) struct VerdictText<'t>(Verdict<'t>);

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

/// An outgoing call, as far as it tells what the shim may trust of its
/// record of the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    /// `connect`, or `bind`: any record of a TCP or UDP socket has it
    /// decided.
    Connect,
    /// `sendto`, `sendmsg`, `sendmmsg`, with their flags.
    Send(c_int),
}

impl Call {
    /// What the binding of this call on `socket` applies to.
    pub(super) fn scope(self, socket: Inet) -> Result<Scope, Bypass> {
        match self {
            Call::Connect => Ok(Scope::Socket),
            Call::Send(flags) => send_scope(socket, flags),
        }
    }
}

/// The socket `fd` is, for a call with a destination: its record when
/// that has the shim decide the call as the kernel will take it, else what
/// the kernel says ([`fds::checked`]), since the record may be stale (see
/// [`crate::fds`]). Checked: no record of a TCP or UDP socket (which lets
/// any call through), a TCP record for a send that does not connect (which
/// lets it through: a UDP socket would send it unbound), a UDP record for a
/// send with MSG_FASTOPEN (decided as a datagram: a TCP socket would
/// connect unbound).
#[inline(always)]
pub(super) fn socket_for(fd: c_int, call: Call) -> Option<Inet> {
    match (fds::inet(fd), call) {
        (Some(socket), Call::Send(flags))
            if (socket.protocol() == Protocol::Tcp) != (flags & libc::MSG_FASTOPEN != 0) =>
        {
            fds::checked(fd)
        }
        (Some(socket), _) => Some(socket),
        (None, _) => fds::checked(fd),
    }
}

/// The socket and destination of an outgoing call, as the kernel will
/// take them, or why the shim has none to decide.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
#[inline(always)]
unsafe fn destination(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
    call: Call,
) -> Result<(Inet, SocketAddr), Bypass> {
    // SAFETY: as the caller promises.
    if let Some(destination) = unsafe { read_addr(addr, len) } {
        return Ok((socket_for(fd, call).ok_or(Bypass::OtherType)?, destination));
    }
    match call {
        // SAFETY: as the caller promises.
        Call::Send(_) => unsafe { unspec_datagram(fd, addr, len) }.ok_or(Bypass::OtherFamily),
        // connect dissolves an association; bind is not decided here.
        Call::Connect => Err(Bypass::OtherFamily),
    }
}

/// A send's name of family AF_UNSPEC ([`read_unspec`]): the destination
/// of a datagram from an IPv4 UDP socket, which udp_sendmsg sends to as
/// AF_INET; no destination on any other socket (udpv6_sendmsg takes it as
/// no name, TCP does not connect to it). The socket is the kernel's word,
/// not its record, which may be stale.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
#[cold]
pub(super) unsafe fn unspec_datagram(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> Option<(Inet, SocketAddr)> {
    // SAFETY: as the caller promises.
    let unspec = unsafe { read_unspec(addr, len) }?;
    let socket = fds::checked(fd)?;
    (socket.family() == Family::V4 && socket.protocol() == Protocol::Udp)
        .then_some((socket, SocketAddr::V4(unspec)))
}

/// Decides an outgoing call about `addr` on `fd`, cheapest checks first:
/// `Ok` with the failed call's value when refused, else the plan of the
/// real call, which runs after the panic boundary
/// ([`crate::boundary::call_then`]; a call that goes straight to the real
/// function gets an empty plan), with errno the caller's for it. The guard
/// is released before the real call, so that a signal handler connecting
/// during it is still decided.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
#[inline(always)]
pub(super) unsafe fn outgoing<R: Failed>(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
    call: Call,
) -> Result<R, Prepared> {
    let saved = errno::get();
    let mut plan = Prepared::default();
    // SAFETY: as the caller promises.
    match unsafe { decide_outgoing(fd, addr, len, call, &mut plan) } {
        Ok(()) => {
            errno::set(saved);
            Err(plan)
        }
        Err(Unbound::Bypass(_)) => {
            errno::set(saved);
            Err(Prepared::default())
        }
        Err(Unbound::Refuse(e)) => {
            errno::set(e);
            Ok(R::FAILED)
        }
    }
}

/// A socket call on a thread that is already inside the shim. The shim's
/// own work makes none (its resolver calls the real functions directly),
/// so this is a signal handler that interrupted a hook before its real
/// call. The interrupted hook cannot be re-entered safely, and letting the
/// call through undecided would send it unbound: it is refused, with the
/// errno of a call worth retrying.
pub(super) const REENTERED: Unbound = Unbound::Refuse(libc::EAGAIN);

/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
pub(super) unsafe fn decide_outgoing(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
    call: Call,
    prepared: &mut Prepared,
) -> Result<(), Unbound> {
    if state::passing_through() {
        return Err(Bypass::NoProfile.into());
    }
    // SAFETY: as the caller promises.
    let (socket, destination) = unsafe { destination(fd, addr, len, call) }?;
    let scope = call.scope(socket)?;
    let mut guard = Guard::enter().ok_or(REENTERED)?;
    // The config, the log and the notices are the shim's own libc calls.
    let _no_cancel = NoCancel::new();
    state::with(&mut guard, |state| {
        outbound(state, fd, socket, &destination, scope, prepared)
    })
    .unwrap_or(Err(Bypass::NoProfile.into()))
}

/// The destination of a call, or the caller's.
pub(super) fn target_or(
    prepared: &Prepared,
    addr: *const sockaddr,
    len: socklen_t,
) -> (*const sockaddr, socklen_t) {
    prepared
        .target
        .as_ref()
        .map_or((addr, len), |t| (t.as_ptr(), t.len()))
}

/// How a send with a destination is decided: TCP only when it connects
/// (`MSG_FASTOPEN`), UDP per datagram.
pub(super) fn send_scope(socket: Inet, flags: c_int) -> Result<Scope, Bypass> {
    match socket.protocol() {
        Protocol::Tcp if flags & libc::MSG_FASTOPEN != 0 => Ok(Scope::Socket),
        Protocol::Tcp => Err(Bypass::NoDestination),
        Protocol::Udp => Ok(Scope::Datagram),
    }
}
