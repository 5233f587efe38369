//! Wildcard binds: the profile's `listen` address instead of 0.0.0.0 or
//! `::`, port kept.

use std::net::{IpAddr, SocketAddr};

use bindto_core::OnFailure;
use libc::{c_int, sockaddr, socklen_t};

use crate::boundary::NoCancel;
use crate::fds::{self, Family, Inet};
use crate::guard::Guard;
use crate::log::{self, Notice};
use crate::sockaddr::{Raw, is_wildcard, read as read_addr};
use crate::state::{self, State};

use super::decide::{Bypass, REENTERED, Stop, loaded};

/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
pub(super) unsafe fn decide_bind(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> Result<Raw, Stop> {
    if state::passing_through() {
        return Err(Bypass::NoProfile.into());
    }
    // SAFETY: as the caller promises.
    let requested = unsafe { read_addr(addr, len) }.ok_or(Bypass::OtherFamily)?;
    let socket = fds::inet(fd).ok_or(Bypass::OtherType)?;
    let mut guard = Guard::enter().ok_or(REENTERED)?;
    // The config, the log and the notices are the shim's own libc calls.
    let _no_cancel = NoCancel::new();
    state::with(&mut guard, |state| {
        listen_address(state, fd, socket, requested)
    })
    .unwrap_or(Err(Bypass::NoProfile.into()))
}

/// The address a wildcard bind gets instead.
pub(super) fn listen_address(
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
