//! Which socket types and ports a `getaddrinfo` call returns: the hints'
//! `ai_socktype` / `ai_protocol` and the service, as glibc's
//! `gaih_inet_typeproto` table decides them.

use std::ffi::{CStr, CString};
use std::ptr;

use libc::{c_char, c_int, servent, size_t};

/// One socket type a result can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServiceSocket {
    pub(crate) socktype: c_int,
    pub(crate) protocol: c_int,
    pub(crate) port: u16,
}

/// A row of glibc's table.
struct Proto {
    socktype: c_int,
    protocol: c_int,
    name: &'static CStr,
    /// Returned when the hints name no type and no protocol.
    default: bool,
    /// Raw sockets have no ports: a service is an error for them.
    no_service: bool,
    /// Raw sockets take any protocol the hints give.
    any_protocol: bool,
}

const fn proto(socktype: c_int, protocol: c_int, name: &'static CStr, default: bool) -> Proto {
    Proto {
        socktype,
        protocol,
        name,
        default,
        no_service: false,
        any_protocol: false,
    }
}

const PROTOS: [Proto; 7] = [
    proto(libc::SOCK_STREAM, libc::IPPROTO_TCP, c"tcp", true),
    proto(libc::SOCK_DGRAM, libc::IPPROTO_UDP, c"udp", true),
    proto(libc::SOCK_DCCP, libc::IPPROTO_DCCP, c"dccp", false),
    proto(libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE, c"udplite", false),
    proto(libc::SOCK_STREAM, libc::IPPROTO_SCTP, c"sctp", false),
    proto(libc::SOCK_SEQPACKET, libc::IPPROTO_SCTP, c"sctp", false),
    Proto {
        socktype: libc::SOCK_RAW,
        protocol: 0,
        name: c"raw",
        default: true,
        no_service: true,
        any_protocol: true,
    },
];

impl Proto {
    fn matches(&self, socktype: c_int, protocol: c_int) -> bool {
        (socktype == 0 || socktype == self.socktype)
            && (protocol == 0 || self.any_protocol || protocol == self.protocol)
    }

    fn kind(&self, protocol: c_int, port: u16) -> ServiceSocket {
        ServiceSocket {
            socktype: self.socktype,
            protocol: if self.any_protocol {
                protocol
            } else {
                self.protocol
            },
            port,
        }
    }
}

/// A service as given: a port number, or a name to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service<'a> {
    None,
    Port(u16),
    Name(&'a CStr),
}

impl<'a> Service<'a> {
    /// Reads the `service` argument. Digits only (none at all is port 0)
    /// make a number, wrapped to 16 bits as glibc's `htons(strtoul())`
    /// does; anything else is a name, which AI_NUMERICSERV forbids
    /// (EAI_NONAME).
    pub(crate) fn parse(
        service: Option<&'a CStr>,
        numeric_only: bool,
    ) -> Result<Service<'a>, c_int> {
        let Some(service) = service else {
            return Ok(Service::None);
        };
        let bytes = service.to_bytes();
        if bytes.iter().all(u8::is_ascii_digit) {
            let port = bytes.iter().fold(0u16, |n, &d| {
                n.wrapping_mul(10).wrapping_add(u16::from(d - b'0'))
            });
            return Ok(Service::Port(port));
        }
        if numeric_only {
            return Err(libc::EAI_NONAME);
        }
        Ok(Service::Name(service))
    }
}

/// The socket types and ports to return for these hints and service, or
/// the EAI error glibc gives.
pub(crate) fn kinds(
    socktype: c_int,
    protocol: c_int,
    service: Service<'_>,
) -> Result<Vec<ServiceSocket>, c_int> {
    let hinted = if socktype != 0 || protocol != 0 {
        let Some(row) = PROTOS.iter().find(|p| p.matches(socktype, protocol)) else {
            return Err(if socktype != 0 {
                libc::EAI_SOCKTYPE
            } else {
                libc::EAI_SERVICE
            });
        };
        Some(row)
    } else {
        None
    };
    if hinted.is_some_and(|row| row.no_service) && service != Service::None {
        return Err(libc::EAI_SERVICE);
    }
    let port = match service {
        Service::None => 0,
        Service::Port(port) => port,
        Service::Name(name) => {
            // Every row that knows the name, or the hinted one.
            let rows = PROTOS
                .iter()
                .filter(|p| !p.no_service && p.matches(socktype, protocol));
            let found: Vec<ServiceSocket> = match hinted {
                Some(row) => lookup(name, row.name)
                    .map(|port| row.kind(protocol, port))
                    .into_iter()
                    .collect(),
                None => rows
                    .filter_map(|row| lookup(name, row.name).map(|port| row.kind(protocol, port)))
                    .collect(),
            };
            return if found.is_empty() {
                Err(libc::EAI_SERVICE)
            } else {
                Ok(found)
            };
        }
    };
    Ok(match hinted {
        Some(row) => vec![row.kind(protocol, port)],
        None => PROTOS
            .iter()
            .filter(|p| p.default)
            .map(|row| row.kind(protocol, port))
            .collect(),
    })
}

unsafe extern "C" {
    // Not in the libc crate. glibc's reentrant form: getservbyname keeps
    // its answer in a static buffer another thread could overwrite.
    fn getservbyname_r(
        name: *const c_char,
        proto: *const c_char,
        result_buf: *mut servent,
        buf: *mut c_char,
        buflen: size_t,
        result: *mut *mut servent,
    ) -> c_int;

    fn getservbyport_r(
        port: c_int,
        proto: *const c_char,
        result_buf: *mut servent,
        buf: *mut c_char,
        buflen: size_t,
        result: *mut *mut servent,
    ) -> c_int;
}

/// The port of service `name` for protocol `proto` (/etc/services or
/// whatever nsswitch.conf says), in host order.
fn lookup(name: &CStr, proto: &CStr) -> Option<u16> {
    with_servent(
        |entry, buf, result| {
            // SAFETY: the strings are NUL-terminated; `entry`, `buf` and
            // `result` are valid for writes, `buf` for its length.
            unsafe {
                getservbyname_r(
                    name.as_ptr(),
                    proto.as_ptr(),
                    entry,
                    buf.as_mut_ptr(),
                    buf.len(),
                    result,
                )
            }
        },
        |entry| u16::from_be(entry.s_port as u16),
    )
}

/// The name of the service on `port` for `proto` (`"tcp"` or `"udp"`),
/// for getnameinfo.
pub(crate) fn name_of(port: u16, proto: &CStr) -> Option<CString> {
    with_servent(
        |entry, buf, result| {
            // SAFETY: as in `lookup`.
            unsafe {
                getservbyport_r(
                    c_int::from(port.to_be()),
                    proto.as_ptr(),
                    entry,
                    buf.as_mut_ptr(),
                    buf.len(),
                    result,
                )
            }
        },
        // SAFETY: on success s_name points to a NUL-terminated name in the
        // buffer, which is still alive while `read` runs.
        |entry| unsafe { CStr::from_ptr(entry.s_name) }.to_owned(),
    )
}

/// Calls a `getserv*_r` function with a buffer that grows on ERANGE, and
/// reads the entry it found (if any) while the buffer lives.
fn with_servent<T>(
    call: impl Fn(*mut servent, &mut [c_char], *mut *mut servent) -> c_int,
    read: impl FnOnce(&servent) -> T,
) -> Option<T> {
    let mut size = 1024;
    loop {
        let mut buf: Vec<c_char> = vec![0; size];
        let mut entry = servent {
            s_name: ptr::null_mut(),
            s_aliases: ptr::null_mut(),
            s_port: 0,
            s_proto: ptr::null_mut(),
        };
        let mut result: *mut servent = ptr::null_mut();
        // NSS may reach the shim's hooks: the shim's own call.
        match crate::guard::own(|| call(&mut entry, &mut buf, &mut result)) {
            libc::ERANGE if size < 1 << 20 => size *= 4,
            0 if !result.is_null() => return Some(read(&entry)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(socktype: c_int, protocol: c_int, port: u16) -> ServiceSocket {
        ServiceSocket {
            socktype,
            protocol,
            port,
        }
    }

    #[test]
    fn no_hints_give_tcp_udp_and_raw() {
        let all = kinds(0, 0, Service::Port(80)).unwrap();
        assert_eq!(
            all,
            [
                kind(libc::SOCK_STREAM, libc::IPPROTO_TCP, 80),
                kind(libc::SOCK_DGRAM, libc::IPPROTO_UDP, 80),
                kind(libc::SOCK_RAW, 0, 80)
            ]
        );
        let dgram = kinds(libc::SOCK_DGRAM, 0, Service::None).unwrap();
        assert_eq!(dgram, [kind(libc::SOCK_DGRAM, libc::IPPROTO_UDP, 0)]);
        let raw = kinds(libc::SOCK_RAW, libc::IPPROTO_ICMP, Service::None).unwrap();
        assert_eq!(raw, [kind(libc::SOCK_RAW, libc::IPPROTO_ICMP, 0)]);
    }

    #[test]
    fn errors_as_glibc() {
        assert_eq!(
            kinds(libc::SOCK_RAW, 0, Service::Port(80)),
            Err(libc::EAI_SERVICE)
        );
        assert_eq!(
            kinds(libc::SOCK_DGRAM, libc::IPPROTO_TCP, Service::None),
            Err(libc::EAI_SOCKTYPE)
        );
        assert_eq!(
            kinds(0, libc::IPPROTO_UDP, Service::Port(53))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(Service::parse(Some(c"http"), true), Err(libc::EAI_NONAME));
        assert_eq!(
            Service::parse(Some(c"99999"), false),
            Ok(Service::Port(34463))
        );
        assert_eq!(Service::parse(Some(c""), false), Ok(Service::Port(0)));
    }

    #[test]
    fn service_names_come_from_the_system() {
        // /etc/services on any Debian has these.
        let Ok(http) = kinds(libc::SOCK_STREAM, 0, Service::Name(c"http")) else {
            return;
        };
        assert_eq!(http, [kind(libc::SOCK_STREAM, libc::IPPROTO_TCP, 80)]);
        assert_eq!(
            kinds(0, 0, Service::Name(c"no-such-service")),
            Err(libc::EAI_SERVICE)
        );
        assert_eq!(name_of(80, c"tcp").as_deref(), Some(c"http"));
    }
}
