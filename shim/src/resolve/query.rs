//! Asking the profile's server: all queries of one name at once over UDP,
//! resent each attempt until every one is answered; those whose answer
//! came back truncated are asked again over TCP.
//!
//! The sockets come from the caller, already bound the way the profile
//! binds (see [`super::Dns::open`]); they are made with the real `socket`
//! and the re-entrancy guard is held throughout, so nothing here is
//! decided again by the shim's own hooks.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bindto_core::Protocol;
use libc::c_int;

use super::wire;
use crate::cancel;
use crate::errno;
use crate::fds::{self, Family};
use crate::real;
use crate::sockaddr::SockaddrBuf;

/// The largest DNS message, over TCP.
const MAX_MESSAGE: usize = 65_535;

thread_local! {
    /// The datagram buffer, allocated once per thread and never zeroed:
    /// `recv` writes what is read.
    static DATAGRAM: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Why no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Error {
    /// No answer within the attempts.
    Timeout,
    /// The server or the way to it refused: ICMP unreachable, a reset.
    Unreachable(c_int),
    /// The profile does not let a socket reach the server: blocked, or its
    /// binding could not be made (with the errno).
    Refused(c_int),
    /// The thread's cancellation was asked (`crate::cancel`).
    Cancelled,
}

/// A socket of the shim's own, closed on drop.
#[derive(Debug)]
pub(crate) struct Socket(c_int);

impl Socket {
    /// A non-blocking socket of `family` for `protocol`, not yet bound.
    pub(crate) fn new(family: Family, protocol: Protocol) -> Result<Socket, c_int> {
        let domain = match family {
            Family::V4 => libc::AF_INET,
            Family::V6 => libc::AF_INET6,
        };
        let ty = match protocol {
            Protocol::Tcp => libc::SOCK_STREAM,
            Protocol::Udp => libc::SOCK_DGRAM,
        };
        // SAFETY: plain integer arguments.
        let fd = unsafe { real::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            Err(errno::get())
        } else {
            Ok(Socket(fd))
        }
    }

    pub(crate) fn fd(&self) -> c_int {
        self.0
    }

    /// Connects to `server` within `deadline` (at once for UDP).
    fn connect(&self, server: SocketAddr, deadline: Instant) -> Result<(), Error> {
        let family = if server.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        let raw = SockaddrBuf::new(server, family).ok_or(Error::Unreachable(libc::EAFNOSUPPORT))?;
        // SAFETY: `raw` holds a socket address of `raw.len()` bytes.
        if unsafe { real::connect(self.0, raw.as_ptr(), raw.len()) } == 0 {
            return Ok(());
        }
        match errno::get() {
            libc::EINPROGRESS => {
                wait(self.0, libc::POLLOUT, deadline)?;
                match sockopt_error(self.0) {
                    0 => Ok(()),
                    e => Err(Error::Unreachable(e)),
                }
            }
            e => Err(Error::Unreachable(e)),
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // The shim's socket hook never saw this descriptor, but apply may
        // have marked it: clear the record for whoever gets the number next.
        fds::forget(self.0);
        // SAFETY: the descriptor is ours and closed once.
        unsafe { real::close(self.0) };
    }
}

/// Where and how to ask.
pub(crate) struct Exchange<'a> {
    pub(crate) server: SocketAddr,
    pub(crate) timeout: Duration,
    pub(crate) attempts: u8,
    /// A socket bound as the profile says, for UDP or TCP.
    pub(crate) open: &'a dyn Fn(Protocol) -> Result<Socket, c_int>,
}

impl Exchange<'_> {
    /// The replies to `queries` (whole messages), in their order.
    pub(crate) fn ask(&self, queries: &[&[u8]]) -> Result<Vec<Vec<u8>>, Error> {
        if cancel::asked() {
            return Err(Error::Cancelled);
        }
        let mut replies = self.udp(queries)?;
        for (query, reply) in queries.iter().zip(replies.iter_mut()) {
            // Each reply answers its query (`udp` matched it): TC alone is
            // left to read.
            if wire::truncated(reply) {
                *reply = self.tcp(query)?;
            }
        }
        Ok(replies)
    }

    fn udp(&self, queries: &[&[u8]]) -> Result<Vec<Vec<u8>>, Error> {
        DATAGRAM.with(|buf| match buf.try_borrow_mut() {
            Ok(mut buf) => self.udp_into(queries, &mut buf),
            // Cannot happen (nothing here calls back into a lookup).
            Err(_) => self.udp_into(queries, &mut Vec::new()),
        })
    }

    fn udp_into(&self, queries: &[&[u8]], buf: &mut Vec<u8>) -> Result<Vec<Vec<u8>>, Error> {
        let socket = (self.open)(Protocol::Udp).map_err(Error::Refused)?;
        socket.connect(self.server, Instant::now())?;
        let mut replies: Vec<Option<Vec<u8>>> = vec![None; queries.len()];
        buf.clear();
        buf.reserve(MAX_MESSAGE);
        for _ in 0..self.attempts {
            for (query, _) in queries.iter().zip(&replies).filter(|(_, r)| r.is_none()) {
                // SAFETY: the query's bytes are valid for reads.
                let sent =
                    unsafe { libc::send(socket.fd(), query.as_ptr().cast(), query.len(), 0) };
                if sent < 0 {
                    return Err(Error::Unreachable(errno::get()));
                }
            }
            let deadline = Instant::now() + self.timeout;
            while replies.iter().any(Option::is_none) {
                match wait(socket.fd(), libc::POLLIN, deadline) {
                    Ok(()) => {}
                    Err(Error::Timeout) => break,
                    Err(e) => return Err(e),
                }
                let spare = buf.spare_capacity_mut();
                // SAFETY: `spare` is writable for its length.
                let n =
                    unsafe { libc::recv(socket.fd(), spare.as_mut_ptr().cast(), spare.len(), 0) };
                let Ok(n) = usize::try_from(n) else {
                    match errno::get() {
                        libc::EAGAIN | libc::EINTR => continue,
                        e => return Err(Error::Unreachable(e)),
                    }
                };
                // SAFETY: recv wrote the first `n` bytes.
                let message = unsafe { std::slice::from_raw_parts(buf.as_ptr(), n) };
                // A datagram that answers none of the queries (a late
                // answer to an earlier attempt's ID, junk) is ignored.
                if let Some((_, reply)) = queries
                    .iter()
                    .zip(replies.iter_mut())
                    .find(|(query, reply)| reply.is_none() && wire::heard(query, message))
                {
                    *reply = Some(message.to_vec());
                }
            }
            if replies.iter().all(Option::is_some) {
                return Ok(replies.into_iter().flatten().collect());
            }
        }
        Err(Error::Timeout)
    }

    fn tcp(&self, query: &[u8]) -> Result<Vec<u8>, Error> {
        let deadline = Instant::now() + self.timeout;
        let socket = (self.open)(Protocol::Tcp).map_err(Error::Refused)?;
        socket.connect(self.server, deadline)?;
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        write_all(socket.fd(), &framed, deadline)?;
        let mut len = [0u8; 2];
        read_exact(socket.fd(), &mut len, deadline)?;
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
        read_exact(socket.fd(), &mut message, deadline)?;
        // Over TCP a stranger's message cannot be waited out: the
        // connection is broken. (Truncated even over TCP is returned as it
        // is: the server has nothing better.)
        if wire::heard(query, &message) {
            Ok(message)
        } else {
            Err(Error::Unreachable(libc::EPROTO))
        }
    }
}

fn write_all(fd: c_int, mut bytes: &[u8], deadline: Instant) -> Result<(), Error> {
    while !bytes.is_empty() {
        wait(fd, libc::POLLOUT, deadline)?;
        // SAFETY: `bytes` is valid for reads of its length. MSG_NOSIGNAL: a
        // reset peer must not kill the program with SIGPIPE.
        let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
        match usize::try_from(n) {
            Ok(n) => bytes = &bytes[n..],
            Err(_) => match errno::get() {
                libc::EAGAIN | libc::EINTR => {}
                e => return Err(Error::Unreachable(e)),
            },
        }
    }
    Ok(())
}

fn read_exact(fd: c_int, mut buf: &mut [u8], deadline: Instant) -> Result<(), Error> {
    while !buf.is_empty() {
        wait(fd, libc::POLLIN, deadline)?;
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        match usize::try_from(n) {
            Ok(0) => return Err(Error::Unreachable(libc::ECONNRESET)),
            Ok(n) => buf = &mut buf[n..],
            Err(_) => match errno::get() {
                libc::EAGAIN | libc::EINTR => {}
                e => return Err(Error::Unreachable(e)),
            },
        }
    }
    Ok(())
}

/// How long a wait polls before it looks whether its thread's
/// cancellation was asked.
const SLICE_MS: c_int = 20;

/// Waits until `fd` is ready for `events` or `deadline` passes, or the
/// thread's cancellation is asked. An error condition counts as ready: the
/// next call reports it.
fn wait(fd: c_int, events: i16, deadline: Instant) -> Result<(), Error> {
    loop {
        if cancel::asked() {
            return Err(Error::Cancelled);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pollfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // Rounded up, so that a wait never ends before the deadline.
        let ms = left.as_micros().div_ceil(1000).min(c_int::MAX as u128) as c_int;
        let slice = ms.min(SLICE_MS);
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pollfd, 1, slice) } {
            0 if slice == ms => return Err(Error::Timeout),
            0 => {}
            n if n > 0 => return Ok(()),
            _ if errno::get() == libc::EINTR => {}
            _ => return Err(Error::Unreachable(errno::get())),
        }
    }
}

fn sockopt_error(fd: c_int) -> c_int {
    fds::sockopt(fd, libc::SO_ERROR).unwrap_or_else(errno::get)
}
