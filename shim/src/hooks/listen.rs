//! Binds: the profile's `listen` address instead of 0.0.0.0 or `::`, port
//! kept; and a socket bound to an address of the profile's own interface
//! (by the program, or by that rewrite) bound to the interface too, so
//! that what it answers leaves where the connection came in.

use std::net::{IpAddr, SocketAddr};

use bindto_core::{OnFailure, Verdict};
use libc::{c_int, sockaddr, socklen_t};

use crate::apply::{self, BindError};
use crate::boundary::NoCancel;
use crate::fds::{Family, Inet};
use crate::guard::Guard;
use crate::log::{self, Notice};
use crate::sockaddr::{SockaddrBuf, is_wildcard, read as read_addr, read_unspec};
use crate::state::{self, Loaded};

use super::decide::{Bypass, Call, REENTERED, Scope, Unbound, failed, loaded, socket_for};

/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
/// The address to bind instead of the caller's, if any.
pub(super) unsafe fn decide_bind(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> Result<Option<SockaddrBuf>, Unbound> {
    if state::passing_through() {
        return Err(Bypass::NoProfile.into());
    }
    // SAFETY: as the caller promises.
    let (socket, requested) = match unsafe { read_addr(addr, len) } {
        Some(requested) => (
            socket_for(fd, Call::Connect).ok_or(Bypass::OtherType)?,
            requested,
        ),
        // SAFETY: as the caller promises.
        None => unsafe { unspec_wildcard(fd, addr, len) }.ok_or(Bypass::OtherFamily)?,
    };
    let mut guard = Guard::enter().ok_or(REENTERED)?;
    // The config, the log and the notices are the shim's own libc calls.
    let _no_cancel = NoCancel::new();
    state::with(&mut guard, |state| {
        let loaded = loaded(state)?;
        let (raw, local) = match listen_address(loaded, fd, socket, requested) {
            Ok((raw, local)) => (Some(raw), local),
            Err(Unbound::Bypass(_)) => (None, requested.ip()),
            Err(refused) => return Err(refused),
        };
        own_interface(loaded, fd, local)?;
        Ok(raw)
    })
    .unwrap_or(Err(Bypass::NoProfile.into()))
}

/// A socket bound to an address of the profile's own interface gets that
/// interface (SO_BINDTODEVICE), before it can listen: otherwise the kernel
/// routes what it sends (a SYN-ACK, an answer) by the main table, out of
/// the default route, though the client came in on the interface (an
/// active-FTP data listener, a server on the tunnel's address). A wildcard
/// that keeps its wildcard listens on every interface, and is left alone.
fn own_interface(loaded: &Loaded, fd: c_int, local: IpAddr) -> Result<(), Unbound> {
    let (Verdict::Bind(binding), origin) = loaded.table.own() else {
        return Ok(());
    };
    let Some(name) = &binding.interface else {
        return Ok(());
    };
    let local = local.to_canonical();
    if local.is_unspecified() || !apply::holds(name, local) {
        return Ok(());
    }
    if log::enabled() {
        tracing::debug!("bind fd {fd} to {local}, an address of {name}: bound to {name}");
    }
    apply::device(fd, name).or_else(|e| {
        failed(
            loaded,
            BindError::Interface(*name, e),
            origin,
            Scope::Socket,
        )
    })
}

/// A bind to AF_UNSPEC with INADDR_ANY, which inet_bind takes as
/// 0.0.0.0 on an IPv4 socket (and refuses with any other address, as
/// inet6_bind refuses AF_UNSPEC on an IPv6 socket): that wildcard.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
#[cold]
unsafe fn unspec_wildcard(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> Option<(Inet, SocketAddr)> {
    // SAFETY: as the caller promises.
    let unspec = unsafe { read_unspec(addr, len) }.filter(|a| a.ip().is_unspecified())?;
    let socket = socket_for(fd, Call::Connect).filter(|s| s.family() == Family::V4)?;
    Some((socket, SocketAddr::V4(unspec)))
}

/// The address a wildcard bind gets instead, and its IP.
pub(super) fn listen_address(
    loaded: &Loaded,
    fd: c_int,
    socket: Inet,
    requested: SocketAddr,
) -> Result<(SockaddrBuf, IpAddr), Unbound> {
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
    let raw = chosen.and_then(|ip| SockaddrBuf::new(SocketAddr::new(ip, requested.port()), family));
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
    if let (Some(raw), Some(ip)) = (raw, chosen) {
        return Ok((raw, ip));
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
        Err(Unbound::Refuse(libc::EADDRNOTAVAIL))
    }
}

/// Whether an IPv6 socket refuses IPv4-mapped addresses.
pub(super) fn v6_only(fd: c_int) -> bool {
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
