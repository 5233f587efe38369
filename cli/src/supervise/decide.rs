//! Deciding a trapped call with the profile's compiled table, the same
//! one the preloaded library consults, and putting the decision into
//! effect on the program's socket.
//!
//! - A connect (and a TCP Fast Open send) to a bound destination: the
//!   socket gets SO_BINDTODEVICE and the source address, and the kernel
//!   carries on with the call as made.
//! - A datagram with a destination on a UDP socket: sent by bindto on the
//!   program's behalf, with IP_PKTINFO / IPV6_PKTINFO naming the interface
//!   and source, as the library does. Binding the socket instead would
//!   send its later datagrams to other destinations the same way, which a
//!   profile with routes does not say.
//! - A DNS rewrite: the call is made by bindto, to the profile's server.
//! - A block: EPERM, and one line on stderr.
//!
//! The program's memory is read first, then the call is checked to be
//! still pending (so that a reused pid cannot be acted on), then the
//! socket is changed.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use bindto_core::{IfName, OnFailure, Protocol, Table, Verdict};
use libc::c_int;

use super::memory::{self, MAX_CONTROL};
use super::notify::{Answer, Call};
use super::socket::{self, Socket};

/// The profile's table, and the interface indexes the datagrams' pktinfo
/// names, looked up once (a lookup is three system calls).
#[derive(Debug)]
pub(super) struct Rules<'t> {
    pub(super) table: &'t Table,
    ifindex: RefCell<Vec<(IfName, u32)>>,
}

impl<'t> Rules<'t> {
    pub(super) fn new(table: &'t Table) -> Rules<'t> {
        Rules {
            table,
            ifindex: RefCell::default(),
        }
    }

    fn ifindex(&self, name: &IfName) -> Option<u32> {
        if let Some(&(_, index)) = self.ifindex.borrow().iter().find(|(n, _)| n == name) {
            return Some(index);
        }
        let c = std::ffi::CString::new(name.as_str()).ok()?;
        // SAFETY: `c` is NUL-terminated.
        let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
        (index != 0).then(|| {
            self.ifindex.borrow_mut().push((*name, index));
            index
        })
    }

    /// After ENODEV or ENXIO: the interface may have been made again
    /// under a new index. The new one, if it changed.
    fn refresh(&self, name: &IfName, old: u32) -> Option<u32> {
        self.ifindex.borrow_mut().retain(|(n, _)| n != name);
        self.ifindex(name).filter(|&i| i != old)
    }
}

/// The largest socket address the kernel reads (sockaddr_storage).
const MAX_NAME: u64 = 128;
/// `struct msghdr` on 64-bit Linux: name, namelen, iov, iovlen, control,
/// controllen, flags.
const MSGHDR: usize = 56;
/// `struct mmsghdr`: a msghdr and the count sent, padded.
const MMSGHDR: usize = 64;

/// Decides `call` with the rules.
pub(super) fn answer(rules: &Rules<'_>, call: &Call<'_>) -> Answer {
    let a = call.args;
    let result = match call.nr {
        libc::SYS_connect => connect(rules, call),
        libc::SYS_sendto => {
            let message = Message {
                name: (a[4], a[5]),
                data: Data::Buffer(a[1], a[2]),
                control: (0, 0),
            };
            send(rules, call, &message, a[3] as c_int)
        }
        libc::SYS_sendmsg => {
            read_message(call.pid, a[1]).and_then(|m| send(rules, call, &m, a[2] as c_int))
        }
        libc::SYS_sendmmsg => send_many(rules, call),
        libc::SYS_bind => bind(rules, call),
        libc::SYS_io_uring_setup => {
            static SAID: AtomicBool = AtomicBool::new(false);
            if !SAID.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "bindto: io_uring is not available under supervision (its operations \
                     cannot be filtered one by one); the program gets ENOSYS and falls back \
                     to system calls"
                );
            }
            Err(Answer::Error(libc::ENOSYS))
        }
        _ => Ok(Answer::Continue),
    };
    result.unwrap_or_else(|answer| answer)
}

/// How the destination's verdict is put into effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// On the socket (connect, TCP Fast Open).
    Socket,
    /// On the datagram (unconnected UDP).
    Datagram,
}

/// What the call goes ahead with, when bindto does not just let it.
#[derive(Debug, Default)]
struct Plan {
    /// The destination to use instead of the program's (DNS rewrite).
    target: Option<Vec<u8>>,
    /// The datagram's pktinfo.
    pktinfo: Option<Pktinfo>,
}

/// A datagram's interface (and its name, to look it up again), source
/// and whether the destination is IPv6.
#[derive(Debug, Clone, Copy)]
struct Pktinfo {
    ifindex: u32,
    interface: Option<IfName>,
    source: Option<IpAddr>,
    v6: bool,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.target.is_none() && self.pktinfo.is_none()
    }
}

fn connect(rules: &Rules<'_>, call: &Call<'_>) -> Result<Answer, Answer> {
    let [fd, addr, len, ..] = call.args;
    let Some(destination) = read_name(call.pid, addr, len)? else {
        return Ok(Answer::Continue);
    };
    let Some(socket) = take(call, fd)? else {
        return Ok(Answer::Continue);
    };
    let plan = outbound(rules, &socket, destination, Scope::Socket)?;
    match plan.target {
        None => Ok(Answer::Continue),
        Some(target) => done(socket.connect(&target)),
    }
}

/// A wildcard bind (0.0.0.0, ::) takes the profile's `listen` address,
/// port kept, as with the library. The filter stops `bind` only for a
/// profile with `listen` addresses.
fn bind(rules: &Rules<'_>, call: &Call<'_>) -> Result<Answer, Answer> {
    let [fd, addr, len, ..] = call.args;
    let listen = rules.table.listen();
    let Some(requested) = read_name(call.pid, addr, len)? else {
        return Ok(Answer::Continue);
    };
    if listen.is_empty() || !bindto_core::addr::is_wildcard(&requested) {
        return Ok(Answer::Continue);
    }
    let Some(socket) = take(call, fd)? else {
        return Ok(Answer::Continue);
    };
    let chosen = listen.for_wildcard(requested, || socket.v6 && !socket.v6_only());
    let name =
        chosen.and_then(|ip| socket::encode(SocketAddr::new(ip, requested.port()), socket.v6));
    if let Some(name) = name {
        return done(socket.bind_to(&name));
    }
    let allow = rules.table.on_failure() == OnFailure::Allow;
    eprintln!(
        "bindto: cannot bind {requested}: profile \"{}\" has no {} listen address this socket \
         can take; {}",
        rules.table.profile(),
        match requested {
            SocketAddr::V6(a) if a.ip().to_ipv4_mapped().is_none() => "IPv6",
            _ => "IPv4",
        },
        if allow {
            "listening on the wildcard (on_failure = \"allow\")"
        } else {
            "bind blocked"
        }
    );
    if allow {
        Ok(Answer::Continue)
    } else {
        Err(Answer::Error(libc::EADDRNOTAVAIL))
    }
}

/// What the program asked to send.
#[derive(Debug)]
struct Message {
    /// msg_name, msg_namelen.
    name: (u64, u64),
    data: Data,
    /// msg_control, msg_controllen.
    control: (u64, u64),
}

#[derive(Debug, Clone, Copy)]
enum Data {
    /// buf, len.
    Buffer(u64, u64),
    /// iov, iovlen.
    Vector(u64, u64),
}

fn read_message(pid: u32, at: u64) -> Result<Message, Answer> {
    let mut raw = [0u8; MSGHDR];
    memory::read(pid, at, &mut raw).map_err(Answer::Error)?;
    Ok(message_of(&raw))
}

fn message_of(raw: &[u8]) -> Message {
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&raw[at..at + 8]);
        u64::from_ne_bytes(b)
    };
    let namelen = u32::from_ne_bytes([raw[8], raw[9], raw[10], raw[11]]);
    Message {
        name: (word(0), u64::from(namelen)),
        data: Data::Vector(word(16), word(24)),
        control: (word(32), word(40)),
    }
}

/// A datagram (or a TCP Fast Open) with a destination.
fn send(
    rules: &Rules<'_>,
    call: &Call<'_>,
    message: &Message,
    flags: c_int,
) -> Result<Answer, Answer> {
    let fd = call.args[0];
    let Some(destination) = read_name(call.pid, message.name.0, message.name.1)? else {
        return Ok(Answer::Continue);
    };
    let Some(socket) = take(call, fd)? else {
        return Ok(Answer::Continue);
    };
    let scope = match socket.protocol {
        Protocol::Tcp if flags & libc::MSG_FASTOPEN != 0 => Scope::Socket,
        // A connected TCP socket ignores the address.
        Protocol::Tcp => return Ok(Answer::Continue),
        Protocol::Udp => Scope::Datagram,
    };
    let plan = outbound(rules, &socket, destination, scope)?;
    if plan.is_empty() {
        return Ok(Answer::Continue);
    }
    let name = name_for(&plan, destination, &socket).map_err(Answer::Error)?;
    done(perform(
        rules,
        call,
        &socket,
        &name,
        message,
        flags,
        plan.pktinfo,
    ))
}

/// The name a datagram is sent to: the rewritten destination, or the
/// program's in the socket's family.
fn name_for(plan: &Plan, destination: SocketAddr, socket: &Socket) -> Result<Vec<u8>, c_int> {
    match &plan.target {
        Some(target) => Ok(target.clone()),
        None => socket::encode(destination, socket.v6).ok_or(libc::EAFNOSUPPORT),
    }
}

/// Sends `message` to `name` (empty: none) on the program's behalf, with
/// `pktinfo` if any. The program's memory is read first, then the call is
/// checked to be still pending, then the datagram goes.
fn perform(
    rules: &Rules<'_>,
    call: &Call<'_>,
    socket: &Socket,
    name: &[u8],
    message: &Message,
    flags: c_int,
    pktinfo: Option<Pktinfo>,
) -> Result<i64, c_int> {
    let pid = call.pid;
    let payload = match message.data {
        Data::Buffer(buf, len) => memory::read_vec(pid, buf, len, memory::MAX_PAYLOAD)?,
        Data::Vector(iov, count) => memory::gather(pid, iov, count)?,
    };
    let control = match message.control {
        (0, _) | (_, 0) => Vec::new(),
        (at, len) => memory::read_vec(pid, at, len, MAX_CONTROL).map_err(|_| libc::ENOBUFS)?,
    };
    if !call.valid() {
        return Err(libc::ESRCH);
    }
    let Some(info) = pktinfo else {
        return socket.send(name, &payload, &control, flags);
    };
    let with = |ifindex| socket::with_pktinfo(&control, ifindex, info.source, info.v6);
    match socket.send(name, &payload, &with(info.ifindex), flags) {
        Err(libc::ENODEV | libc::ENXIO) if info.interface.is_some() => {
            let interface = info.interface.as_ref().ok_or(libc::ENODEV)?;
            let ifindex = rules.refresh(interface, info.ifindex).ok_or(libc::ENODEV)?;
            socket.send(name, &payload, &with(ifindex), flags)
        }
        sent => sent,
    }
}

/// sendmmsg: each message with a destination decided on its own; done on
/// the program's behalf unless no message names one.
fn send_many(rules: &Rules<'_>, call: &Call<'_>) -> Result<Answer, Answer> {
    let [fd, vec, vlen, flags, ..] = call.args;
    // The kernel sends at most UIO_MAXIOV messages a call.
    let count = vlen.min(memory::MAX_IOV as u64) as usize;
    let raw = memory::read_vec(
        call.pid,
        vec,
        (count * MMSGHDR) as u64,
        memory::MAX_IOV * MMSGHDR,
    )
    .map_err(Answer::Error)?;
    let messages: Vec<Message> = raw.chunks_exact(MMSGHDR).map(message_of).collect();
    if messages.iter().all(|m| m.name.0 == 0) {
        return Ok(Answer::Continue);
    }
    let Some(socket) = take(call, fd)? else {
        return Ok(Answer::Continue);
    };
    let flags = flags as c_int;
    let mut sent = 0usize;
    for (i, message) in messages.iter().enumerate() {
        let result = send_one(rules, call, &socket, message, flags);
        let n = match result {
            Ok(n) => n,
            Err(e) if sent == 0 => return Err(Answer::Error(e)),
            Err(_) => break,
        };
        let at = vec + (i * MMSGHDR + MSGHDR) as u64;
        if memory::write(call.pid, at, &(n as u32).to_ne_bytes()).is_err() {
            break;
        }
        sent += 1;
    }
    Ok(Answer::Value(sent as i64))
}

/// One message of a sendmmsg, sent by bindto.
fn send_one(
    rules: &Rules<'_>,
    call: &Call<'_>,
    socket: &Socket,
    message: &Message,
    flags: c_int,
) -> Result<i64, c_int> {
    let read = read_name(call.pid, message.name.0, message.name.1).map_err(errno_of)?;
    match read {
        Some(destination) if socket.protocol == Protocol::Udp => {
            let plan = outbound(rules, socket, destination, Scope::Datagram).map_err(errno_of)?;
            let name = name_for(&plan, destination, socket)?;
            perform(rules, call, socket, &name, message, flags, plan.pktinfo)
        }
        // No destination (or TCP): sent as the program asked.
        _ => {
            let name = match message.name {
                (0, _) => Vec::new(),
                (at, len) => memory::read_vec(call.pid, at, len, MAX_NAME as usize)?,
            };
            perform(rules, call, socket, &name, message, flags, None)
        }
    }
}

fn errno_of(answer: Answer) -> c_int {
    match answer {
        Answer::Error(e) => e,
        _ => libc::EPERM,
    }
}

/// Reads a socket address the program passed; `None` if it is not IPv4 or
/// IPv6 (the kernel deals with it as it is).
fn read_name(pid: u32, addr: u64, len: u64) -> Result<Option<SocketAddr>, Answer> {
    // Null, or longer than the kernel accepts: the kernel fails the call
    // itself without reading a destination.
    if addr == 0 || !(2..=MAX_NAME).contains(&len) {
        return Ok(None);
    }
    let name = memory::read_vec(pid, addr, len, MAX_NAME as usize).map_err(Answer::Error)?;
    Ok(socket::decode(&name))
}

/// The program's socket `fd`, if it is TCP or UDP, once the call is known
/// to be still pending.
fn take(call: &Call<'_>, fd: u64) -> Result<Option<Socket>, Answer> {
    let pidfd = call.pidfd().map_err(Answer::Error)?;
    let socket = match Socket::take(&pidfd, fd) {
        Ok(socket) => socket,
        // The program's own call fails the same way: let the kernel say so.
        Err(libc::EBADF) => return Ok(None),
        Err(e) => return Err(Answer::Error(e)),
    };
    if !call.valid() {
        return Err(Answer::Error(libc::ESRCH));
    }
    Ok(socket)
}

/// Decides the call to `destination` and prepares the socket.
fn outbound(
    rules: &Rules<'_>,
    socket: &Socket,
    destination: SocketAddr,
    scope: Scope,
) -> Result<Plan, Answer> {
    let decision = rules.table.decide(destination, socket.protocol);
    let mut plan = Plan::default();
    if let Some(origin) = decision.rewrite {
        plan.target = Some(
            socket::encode(decision.destination, socket.v6).ok_or_else(|| {
                eprintln!(
                    "bindto: cannot send to {} (from {origin}) on an IPv4 socket; blocked",
                    decision.destination
                );
                Answer::Error(libc::EAFNOSUPPORT)
            })?,
        );
    }
    let binding = match decision.verdict {
        Verdict::Bind(binding) => binding,
        Verdict::Direct => return Ok(plan),
        Verdict::Block => {
            eprintln!(
                "bindto: {} to {} blocked by {}",
                match socket.protocol {
                    Protocol::Tcp => "connection",
                    Protocol::Udp => "traffic",
                },
                decision.destination,
                decision.origin
            );
            return Err(Answer::Error(libc::EPERM));
        }
    };
    let ip = decision.destination.ip();
    let bound = match scope {
        Scope::Socket => socket.bind(binding, ip),
        Scope::Datagram => {
            let source = binding.source.for_family_of(ip);
            match binding.interface {
                None if source.is_none() => Err(socket::BindError::Family(ip)),
                None => Ok(0),
                Some(name) => rules
                    .ifindex(&name)
                    .ok_or(socket::BindError::Interface(name, libc::ENODEV)),
            }
            .map(|ifindex| {
                plan.pktinfo = Some(Pktinfo {
                    ifindex,
                    interface: binding.interface,
                    source,
                    v6: ip.is_ipv6(),
                });
            })
        }
    };
    if let Err(failure) = bound {
        let allow = rules.table.on_failure() == OnFailure::Allow;
        let outcome = match (allow, scope) {
            (true, _) => "continuing unbound (on_failure = \"allow\")",
            (false, Scope::Socket) => "connection blocked",
            (false, Scope::Datagram) => "datagram blocked",
        };
        eprintln!("bindto: {failure} for {}; {outcome}", decision.origin);
        if !allow {
            return Err(Answer::Error(failure.errno()));
        }
    }
    Ok(plan)
}

/// The answer for a call bindto made itself.
fn done(result: Result<i64, c_int>) -> Result<Answer, Answer> {
    Ok(match result {
        Ok(v) => Answer::Value(v),
        Err(e) => Answer::Error(e),
    })
}
