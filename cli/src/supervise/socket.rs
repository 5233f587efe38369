//! The program's socket, duplicated into bindto with `pidfd_getfd`: what
//! kind it is, the binding put on it, and the calls bindto makes on it on
//! the program's behalf. The duplicate shares the program's open file
//! description, so whatever is done to it is done to the program's socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use bindto_core::{Binding, IfName, Protocol};
use libc::{c_int, c_void, socklen_t};

use super::memory::last_errno;

/// The shortest IPv6 name the kernel takes (without the scope id).
const IN6_LEN_MIN: usize = 24;
const IN6_LEN: usize = 28;
const IN_LEN: usize = 16;

/// A socket address as the kernel reads it; `None` if it is not IPv4 or
/// IPv6, or too short to be one.
pub(super) fn decode(bytes: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(bytes.get(..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
    match c_int::from(family) {
        libc::AF_INET if bytes.len() >= IN_LEN => {
            let ip: [u8; 4] = bytes[4..8].try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 if bytes.len() >= IN6_LEN_MIN => {
            let flow = u32::from_be_bytes(bytes[4..8].try_into().ok()?);
            let ip: [u8; 16] = bytes[8..24].try_into().ok()?;
            let scope = match bytes.get(24..28) {
                Some(s) => u32::from_ne_bytes(s.try_into().ok()?),
                None => 0,
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

/// `addr` as a name for a socket of the given family (an IPv4 address
/// IPv4-mapped for an IPv6 socket); `None` for an IPv6 address and an
/// IPv4 socket.
pub(super) fn encode(addr: SocketAddr, v6_socket: bool) -> Option<Vec<u8>> {
    let (ip, port) = (addr.ip(), addr.port());
    if !v6_socket {
        let IpAddr::V4(ip) = ip else { return None };
        let mut out = vec![0u8; IN_LEN];
        out[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        out[2..4].copy_from_slice(&port.to_be_bytes());
        out[4..8].copy_from_slice(&ip.octets());
        return Some(out);
    }
    let (ip, flow, scope) = match addr {
        SocketAddr::V4(_) => (
            match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            },
            0,
            0,
        ),
        SocketAddr::V6(v6) => (*v6.ip(), v6.flowinfo(), v6.scope_id()),
    };
    let mut out = vec![0u8; IN6_LEN];
    out[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
    out[2..4].copy_from_slice(&port.to_be_bytes());
    out[4..8].copy_from_slice(&flow.to_be_bytes());
    out[8..24].copy_from_slice(&ip.octets());
    out[24..28].copy_from_slice(&scope.to_ne_bytes());
    Some(out)
}

/// A TCP or UDP socket of the program's.
#[derive(Debug)]
pub(super) struct Socket {
    fd: OwnedFd,
    pub(super) protocol: Protocol,
    pub(super) v6: bool,
}

/// Why a binding could not be made, with the errno the call fails with.
#[derive(Debug, Clone, Copy)]
pub(super) enum BindError {
    Interface(IfName, c_int),
    Source(IpAddr, c_int),
    /// No interface and no source of the destination's family.
    Family(IpAddr),
}

impl BindError {
    pub(super) fn errno(self) -> c_int {
        match self {
            BindError::Interface(_, e) | BindError::Source(_, e) => e,
            BindError::Family(_) => libc::ENETUNREACH,
        }
    }
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Interface(name, e) => write!(
                f,
                "cannot bind socket to interface \"{name}\" ({})",
                std::io::Error::from_raw_os_error(*e)
            ),
            BindError::Source(ip, e) => write!(
                f,
                "cannot bind socket to source address {ip} ({})",
                std::io::Error::from_raw_os_error(*e)
            ),
            BindError::Family(ip) => write!(
                f,
                "no interface and no {} source to bind a socket to {ip}",
                if ip.is_ipv4() { "IPv4" } else { "IPv6" }
            ),
        }
    }
}

impl Socket {
    /// Takes a duplicate of `fd` from the process behind `pidfd`, if it is
    /// an IPv4 or IPv6 TCP or UDP socket. `Err` is the errno the
    /// program's own call would see (EBADF for no such descriptor).
    pub(super) fn take(pidfd: &OwnedFd, fd: u64) -> Result<Option<Socket>, c_int> {
        let fd = c_int::try_from(fd).map_err(|_| libc::EBADF)?;
        // SAFETY: plain system call with integer arguments.
        let dup = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
        if dup < 0 {
            return Err(last_errno());
        }
        // SAFETY: the descriptor was just made for bindto and is owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(dup as c_int) };
        let (Some(domain), Some(ty), Some(proto)) = (
            int_option(&fd, libc::SO_DOMAIN),
            int_option(&fd, libc::SO_TYPE),
            int_option(&fd, libc::SO_PROTOCOL),
        ) else {
            return Ok(None);
        };
        let v6 = match domain {
            libc::AF_INET => false,
            libc::AF_INET6 => true,
            _ => return Ok(None),
        };
        let protocol = match (ty, proto) {
            (libc::SOCK_STREAM, libc::IPPROTO_TCP | libc::IPPROTO_MPTCP) => Protocol::Tcp,
            (libc::SOCK_DGRAM, libc::IPPROTO_UDP | libc::IPPROTO_UDPLITE) => Protocol::Udp,
            _ => return Ok(None),
        };
        Ok(Some(Socket { fd, protocol, v6 }))
    }

    /// Binds the socket for `destination` as `binding` says: the device
    /// first, then the source address of the destination's family unless
    /// the program bound the socket itself.
    pub(super) fn bind(&self, binding: &Binding, destination: IpAddr) -> Result<(), BindError> {
        let source = binding.source.for_family_of(destination);
        if binding.interface.is_none() && source.is_none() {
            return Err(BindError::Family(destination));
        }
        if let Some(name) = &binding.interface {
            self.device(name)
                .map_err(|e| BindError::Interface(*name, e))?;
        }
        if let Some(source) = source {
            self.source(source)
                .map_err(|e| BindError::Source(source, e))?;
        }
        Ok(())
    }

    /// SO_BINDTODEVICE; a refusal (EPERM: unprivileged, and the device was
    /// set before) is no failure if the socket is on that device already.
    fn device(&self, name: &IfName) -> Result<(), c_int> {
        let padded = name.as_padded();
        if self.setsockopt(libc::SOL_SOCKET, libc::SO_BINDTODEVICE, padded) == 0 {
            return Ok(());
        }
        let error = last_errno();
        let mut bound = [0u8; IfName::CAPACITY + 1];
        let mut len = IfName::CAPACITY as socklen_t;
        // SAFETY: `bound` is writable for `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                bound.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if error == libc::EPERM && rc == 0 && bound.starts_with(name.as_str().as_bytes()) {
            let end = name.as_str().len();
            if bound.get(end).is_none_or(|&b| b == 0) {
                return Ok(());
            }
        }
        Err(error)
    }

    /// Binds `source` with port 0, the port chosen at connect time
    /// (IP_BIND_ADDRESS_NO_PORT). EINVAL: the program bound it already.
    fn source(&self, source: IpAddr) -> Result<(), c_int> {
        let name = encode(SocketAddr::new(source, 0), self.v6).ok_or(libc::EAFNOSUPPORT)?;
        // Best effort: without it the bind still holds.
        self.setsockopt(libc::SOL_IP, libc::IP_BIND_ADDRESS_NO_PORT, &1 as &c_int);
        match self.bind_to(&name) {
            Ok(_) | Err(libc::EINVAL) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether an IPv6 socket refuses IPv4-mapped addresses.
    pub(super) fn v6_only(&self) -> bool {
        let mut value: c_int = 0;
        let mut len = size_of::<c_int>() as socklen_t;
        // SAFETY: `value` is writable for `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                (&mut value as *mut c_int).cast(),
                &mut len,
            )
        };
        rc == 0 && value != 0
    }

    /// `bind` on the program's behalf: 0 or the errno.
    pub(super) fn bind_to(&self, name: &[u8]) -> Result<i64, c_int> {
        // SAFETY: `name` is readable for its length.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                name.as_ptr().cast(),
                name.len() as socklen_t,
            )
        };
        if rc == 0 { Ok(0) } else { Err(last_errno()) }
    }

    /// `connect` on the program's behalf: 0 or the errno.
    pub(super) fn connect(&self, name: &[u8]) -> Result<i64, c_int> {
        // SAFETY: `name` is readable for its length.
        let rc = unsafe {
            libc::connect(
                self.fd.as_raw_fd(),
                name.as_ptr().cast(),
                name.len() as socklen_t,
            )
        };
        if rc == 0 { Ok(0) } else { Err(last_errno()) }
    }

    /// One datagram on the program's behalf: `payload` to `name`, with
    /// `control` data; the bytes sent or the errno.
    pub(super) fn send(
        &self,
        name: &[u8],
        payload: &[u8],
        control: &[u8],
        flags: c_int,
    ) -> Result<i64, c_int> {
        let mut iov = libc::iovec {
            iov_base: payload.as_ptr().cast_mut().cast::<c_void>(),
            iov_len: payload.len(),
        };
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = name.as_ptr().cast_mut().cast();
        msg.msg_namelen = name.len() as socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !control.is_empty() {
            msg.msg_control = control.as_ptr().cast_mut().cast();
            msg.msg_controllen = control.len();
        }
        // SAFETY: `msg` points at buffers alive for the call, which the
        // kernel only reads.
        let n = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, flags | libc::MSG_NOSIGNAL) };
        if n < 0 {
            Err(last_errno())
        } else {
            Ok(n as i64)
        }
    }

    fn setsockopt<T: ?Sized>(&self, level: c_int, name: c_int, value: &T) -> c_int {
        // SAFETY: `value` is readable for its size.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast::<c_void>(),
                size_of_val(value) as socklen_t,
            )
        }
    }
}

fn int_option(fd: &OwnedFd, name: c_int) -> Option<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `value` is writable for `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value)
}

/// The caller's control data followed by an IP_PKTINFO (IPv4 destination)
/// or IPV6_PKTINFO message that sends a datagram out of interface
/// `ifindex` (0: any) from `source` (if any).
pub(super) fn with_pktinfo(
    control: &[u8],
    ifindex: u32,
    source: Option<IpAddr>,
    v6: bool,
) -> Vec<u8> {
    const HEADER: usize = size_of::<usize>() + 2 * size_of::<c_int>();
    let align = |n: usize| (n + size_of::<usize>() - 1) & !(size_of::<usize>() - 1);
    let (level, kind, payload) = if v6 {
        let mut p = [0u8; 20];
        if let Some(IpAddr::V6(s)) = source {
            p[..16].copy_from_slice(&s.octets());
        }
        p[16..].copy_from_slice(&ifindex.to_ne_bytes());
        (libc::SOL_IPV6, libc::IPV6_PKTINFO, p.to_vec())
    } else {
        let mut p = [0u8; 12];
        p[..4].copy_from_slice(&ifindex.to_ne_bytes());
        if let Some(IpAddr::V4(s)) = source {
            p[4..8].copy_from_slice(&s.octets());
        }
        (libc::SOL_IP, libc::IP_PKTINFO, p.to_vec())
    };
    let start = align(control.len());
    let mut out = vec![0u8; start + align(HEADER + payload.len())];
    out[..control.len()].copy_from_slice(control);
    let msg = &mut out[start..];
    msg[..size_of::<usize>()].copy_from_slice(&(HEADER + payload.len()).to_ne_bytes());
    msg[size_of::<usize>()..size_of::<usize>() + 4].copy_from_slice(&level.to_ne_bytes());
    msg[size_of::<usize>() + 4..HEADER].copy_from_slice(&kind.to_ne_bytes());
    msg[HEADER..HEADER + payload.len()].copy_from_slice(&payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (text, v6) in [
            ("198.18.0.1:53", false),
            ("198.18.0.1:53", true),
            ("[2001:db8::1]:8080", true),
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            let name = encode(addr, v6).unwrap();
            let back = decode(&name).unwrap();
            assert_eq!(bindto_core::addr::unmap(back.ip()), addr.ip());
            assert_eq!(back.port(), addr.port());
        }
        assert_eq!(encode("[2001:db8::1]:1".parse().unwrap(), false), None);
        assert_eq!(decode(&[2, 0, 0, 53]), None);
    }

    #[test]
    fn pktinfo_follows_the_callers_control_data() {
        let out = with_pktinfo(&[7; 20], 3, Some("198.18.2.2".parse().unwrap()), false);
        assert_eq!(out.len(), 24 + 32);
        assert_eq!(out[24..32], 28usize.to_ne_bytes());
        assert_eq!(out[40..44], 3u32.to_ne_bytes());
        assert_eq!(out[44..48], [198, 18, 2, 2]);
    }
}
