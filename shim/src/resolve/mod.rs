//! The shim's own resolver, used instead of libc's when the profile names
//! a DNS server (the port-53 entry of `[profile.X.dns]`).
//!
//! Why: glibc 2.34 and later reach the nameserver from inside libc
//! (`__connect`, `__sendmmsg`), where no preloaded hook can see the
//! socket, so a bound program's queries would leave by the default route.
//! Here a name is looked up in `/etc/hosts` first ([`hosts`]), then asked
//! of the profile's server ([`query`]) over a socket bound exactly as the
//! profile binds a connection to that server, with the search domains and
//! options of [`conf`]. Profiles without a DNS server never get here: their
//! lookups go to libc untouched (see [`crate::hooks::dns`]).

pub(crate) mod addrinfo;
mod conf;
mod files;
pub(crate) mod gai;
pub(crate) mod hostent;
mod hosts;
pub(crate) mod numeric;
mod query;
pub(crate) mod service;
mod wire;

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use bindto_core::{OnFailure, Protocol, Verdict};
use libc::c_int;

use self::conf::{Candidate, Conf};
use self::query::{Exchange, Socket};
use self::wire::{Query, RecordType, Reply};
use crate::apply;
use crate::fds::Family;
use crate::log::{self, Notice};
use crate::state::Loaded;

/// Which address families a lookup wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    V4,
    V6,
    Any,
}

impl Want {
    pub(crate) fn accepts(self, ip: IpAddr) -> bool {
        match self {
            Want::V4 => ip.is_ipv4(),
            Want::V6 => ip.is_ipv6(),
            Want::Any => true,
        }
    }

    fn kinds(self) -> &'static [RecordType] {
        match self {
            Want::V4 => &[RecordType::A],
            Want::V6 => &[RecordType::Aaaa],
            Want::Any => &[RecordType::A, RecordType::Aaaa],
        }
    }
}

/// A name's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The canonical name: the end of the CNAME chain, or the first name
    /// of its `/etc/hosts` line.
    pub(crate) canonical: String,
    /// Other names: the other names of the hosts line, or the name asked
    /// when DNS answered for another (CNAME) name.
    pub(crate) aliases: Vec<String>,
    pub(crate) addrs: Vec<IpAddr>,
}

/// Why a lookup found nothing, in the terms of both APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LookupError {
    /// NXDOMAIN for every candidate name: EAI_NONAME / HOST_NOT_FOUND.
    NoName,
    /// The name exists without addresses of the wanted family:
    /// EAI_NODATA / NO_DATA, as glibc says.
    NoData,
    /// No answer in time, or the server failed: EAI_AGAIN / TRY_AGAIN.
    Again,
    /// Answers, but no address for the name (a CNAME chain that ends
    /// nowhere or loops): as glibc, EAI_NONAME / NO_RECOVERY, and
    /// EAI_NODATA on getaddrinfo's AF_INET path without AI_CANONNAME
    /// (see [`gai`]), where glibc asks gethostbyname2_r.
    Unanswered,
    /// The query could not be sent as the profile requires (blocked,
    /// broken config, binding refused): EAI_FAIL / NO_RECOVERY.
    Fail,
}

/// `h_errno` values (netdb.h).
pub(crate) const HOST_NOT_FOUND: c_int = 1;
pub(crate) const TRY_AGAIN: c_int = 2;
pub(crate) const NO_RECOVERY: c_int = 3;
pub(crate) const NO_DATA: c_int = 4;

impl LookupError {
    pub(crate) fn eai(self) -> c_int {
        match self {
            LookupError::NoName => libc::EAI_NONAME,
            LookupError::NoData => libc::EAI_NODATA,
            LookupError::Again => libc::EAI_AGAIN,
            LookupError::Unanswered => libc::EAI_NONAME,
            LookupError::Fail => libc::EAI_FAIL,
        }
    }

    pub(crate) fn h_errno(self) -> c_int {
        match self {
            LookupError::NoName => HOST_NOT_FOUND,
            LookupError::NoData => NO_DATA,
            LookupError::Again => TRY_AGAIN,
            LookupError::Unanswered | LookupError::Fail => NO_RECOVERY,
        }
    }
}

/// A reply for the `res_query` family: the server's message as it came,
/// which glibc leaves in the caller's buffer even when it fails the call,
/// and what it amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawReply {
    /// `None` when no reply came (or no query could be sent).
    pub(crate) reply: Option<Vec<u8>>,
    /// `Ok` when the reply is NOERROR with answers.
    pub(crate) outcome: Result<(), LookupError>,
}

impl RawReply {
    fn none(failure: LookupError) -> RawReply {
        RawReply {
            reply: None,
            outcome: Err(failure),
        }
    }
}

/// Resolves names for a process whose profile has a DNS server.
#[derive(Debug)]
pub(crate) struct Resolver<'s> {
    /// `None` when the config is broken: files only, every query fails.
    dns: Option<Dns<'s>>,
}

#[derive(Debug)]
struct Dns<'s> {
    loaded: &'s Loaded,
    /// The profile's servers: one, or one per family (IPv4 first).
    servers: [Option<SocketAddr>; 2],
    conf: Rc<Conf>,
}

impl<'s> Resolver<'s> {
    /// The resolver for `loaded`, or `None` if its profile names no DNS
    /// server: name resolution is then left to the system.
    pub(crate) fn new(loaded: &'s Loaded) -> Option<Resolver<'s>> {
        let mut servers = loaded.table.dns_servers();
        let servers = [Some(servers.next()?), servers.next()];
        let conf = files::conf(loaded.table.dns_options());
        Some(Resolver {
            dns: Some(Dns {
                loaded,
                servers,
                conf,
            }),
        })
    }

    /// The resolver of a process whose config cannot be read: it cannot
    /// know whether the profile has a DNS server, and libc's resolver
    /// would leak, so only `/etc/hosts` and numeric addresses work.
    pub(crate) fn broken() -> Resolver<'static> {
        Resolver { dns: None }
    }

    /// `name`'s addresses: `/etc/hosts` first, then the profile's server.
    pub(crate) fn lookup(&self, name: &str, want: Want) -> Result<Resolved, LookupError> {
        if name.is_empty() {
            return Err(LookupError::NoName);
        }
        if let Some(found) = files::hosts().lookup(name, want) {
            return Ok(found);
        }
        self.search(name, |dns, candidate| dns.addresses(candidate, want))
    }

    /// The server's reply to a query of `class` and `rtype` for `name`
    /// exactly as it is (`res_query`): no hosts file, no search domains.
    pub(crate) fn query(&self, name: &str, class: u16, rtype: u16) -> RawReply {
        match &self.dns {
            Some(dns) => dns.raw(name, class, rtype),
            None => RawReply::none(LookupError::Fail),
        }
    }

    /// As [`Resolver::query`], for each of `name`'s search candidates in
    /// turn until one has answers (`res_search`); the reply kept is the
    /// last one heard.
    pub(crate) fn query_search(&self, name: &str, class: u16, rtype: u16) -> RawReply {
        let mut last = None;
        let outcome = self.search(name, |dns, candidate| {
            let raw = dns.raw(&candidate.text(), class, rtype);
            if raw.reply.is_some() {
                last = raw.reply;
            }
            raw.outcome
        });
        RawReply {
            reply: last,
            outcome,
        }
    }

    /// The server's reply to `message`, a query the caller built
    /// (`res_send`), as it came.
    pub(crate) fn send(&self, message: &[u8]) -> Result<Vec<u8>, LookupError> {
        let dns = self.dns.as_ref().ok_or(LookupError::Fail)?;
        dns.exchange(&[message])?.pop().ok_or(LookupError::Fail)
    }

    /// `ask` for each of `name`'s search candidates (see
    /// [`Conf::candidates`]) until one succeeds.
    fn search<T>(
        &self,
        name: &str,
        mut ask: impl FnMut(&Dns<'_>, Candidate<'_>) -> Result<T, LookupError>,
    ) -> Result<T, LookupError> {
        let dns = self.dns.as_ref().ok_or(LookupError::Fail)?;
        let mut worst = LookupError::NoName;
        for candidate in dns.conf.candidates(name) {
            match ask(dns, candidate) {
                Ok(found) => return Ok(found),
                // As res_search: a name that is missing or empty under one
                // domain may exist under the next; a server that does not
                // answer will not answer the next one either.
                Err(LookupError::NoData) => worst = LookupError::NoData,
                Err(LookupError::NoName) => {}
                Err(failure) => return Err(failure),
            }
        }
        Err(worst)
    }

    /// The name of `ip`: `/etc/hosts` first, then a PTR query.
    pub(crate) fn reverse(&self, ip: IpAddr) -> Result<String, LookupError> {
        if let Some(name) = files::hosts().reverse(ip) {
            return Ok(name);
        }
        let dns = self.dns.as_ref().ok_or(LookupError::Fail)?;
        let query = Query::reverse(id(), ip).ok_or(LookupError::NoName)?;
        match dns.ask(&[query])?.pop() {
            Some(Reply::Found(records)) => {
                records.names.into_iter().next().ok_or(LookupError::NoData)
            }
            Some(reply) => Err(failed(&[reply])),
            None => Err(LookupError::Fail),
        }
    }
}

impl Dns<'_> {
    /// Asks for `name`'s addresses (A and AAAA at once for [`Want::Any`]).
    /// The aliases are as glibc's: the name asked and the CNAME targets
    /// before the canonical name, when it is not the name asked.
    fn addresses(&self, name: Candidate<'_>, want: Want) -> Result<Resolved, LookupError> {
        let queries: Vec<Query> = want
            .kinds()
            .iter()
            .map(|&kind| name.query(id(), kind))
            .collect::<Option<_>>()
            .ok_or(LookupError::NoName)?;
        let replies = self.ask(&queries)?;
        let mut found: Option<Resolved> = None;
        for reply in replies.iter() {
            if let Reply::Found(records) = reply {
                match &mut found {
                    None => {
                        let mut aliases = Vec::new();
                        if !name.is(&records.canonical) {
                            aliases.push(name.text());
                            aliases.extend(records.aliases.iter().cloned());
                        }
                        found = Some(Resolved {
                            canonical: records.canonical.clone(),
                            aliases,
                            addrs: records.addrs.clone(),
                        });
                    }
                    Some(found) => found.addrs.extend(&records.addrs),
                }
            }
        }
        found.ok_or_else(|| failed(&replies))
    }

    /// The replies to `queries`, read (a match is always an answer).
    fn ask(&self, queries: &[Query]) -> Result<Vec<Reply>, LookupError> {
        let messages: Vec<&[u8]> = queries.iter().map(Query::bytes).collect();
        let replies = self.exchange(&messages)?;
        Ok(queries
            .iter()
            .zip(&replies)
            .map(|(query, reply)| query.answer(reply).unwrap_or(Reply::ServFail))
            .collect())
    }

    /// The reply to one query of any class and type, as it came.
    fn raw(&self, name: &str, class: u16, rtype: u16) -> RawReply {
        // A name res_mkquery cannot encode is NO_RECOVERY in glibc.
        let Some(query) = wire::raw_query(id(), name, class, rtype) else {
            return RawReply::none(LookupError::Fail);
        };
        match self.exchange(&[&query]) {
            Ok(mut replies) => {
                let reply = replies.pop().unwrap_or_default();
                RawReply {
                    outcome: wire::outcome(&reply),
                    reply: Some(reply),
                }
            }
            Err(failure) => RawReply::none(failure),
        }
    }

    /// The whole replies to `queries`, whole messages each: from the
    /// first server, or from the next when one does not answer (as glibc
    /// moves down its nameservers).
    fn exchange(&self, queries: &[&[u8]]) -> Result<Vec<Vec<u8>>, LookupError> {
        let mut result = Err(LookupError::Fail);
        for &server in self.servers.iter().flatten() {
            result = self.exchange_with(server, queries);
            if result != Err(LookupError::Again) {
                break;
            }
        }
        result
    }

    fn exchange_with(
        &self,
        server: SocketAddr,
        queries: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, LookupError> {
        let open = |protocol| self.open(server, protocol);
        let exchange = Exchange {
            server,
            timeout: self.conf.timeout,
            attempts: self.conf.attempts,
            open: &open,
        };
        exchange.ask(queries).map_err(|error| {
            tracing::debug!("DNS query to {server} failed: {error:?}");
            match error {
                query::Error::Timeout | query::Error::Unreachable(_) | query::Error::Cancelled => {
                    LookupError::Again
                }
                query::Error::Refused(_) => LookupError::Fail,
            }
        })
    }

    /// A socket to the server, bound as the profile decides for it: the
    /// same decision a program's own `connect` to the server would get.
    /// A block, or a binding that cannot be made (unless `on_failure =
    /// "allow"`), refuses with an errno and sends nothing.
    fn open(&self, server: SocketAddr, protocol: Protocol) -> Result<Socket, c_int> {
        let family = if server.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        let socket = Socket::new(family, protocol)?;
        let table = &self.loaded.table;
        let decision = table.decide(server, protocol);
        match decision.verdict {
            Verdict::Direct => Ok(socket),
            Verdict::Block => {
                log::notice(
                    Notice::Blocked,
                    format_args!("DNS queries to {} blocked by {}", server, decision.origin),
                );
                Err(libc::EPERM)
            }
            Verdict::Bind(binding) => {
                match apply::connected(socket.fd(), family, binding, server.ip()) {
                    Ok(()) => Ok(socket),
                    Err(failure) => {
                        let allow = table.on_failure() == OnFailure::Allow;
                        log::notice(
                            Notice::Interface,
                            format_args!(
                                "cannot bind the DNS socket to {} as {} says ({}); {}",
                                server,
                                decision.origin,
                                log::strerror(failure.errno()),
                                if allow {
                                    "querying unbound (on_failure = \"allow\")"
                                } else {
                                    "name resolution is blocked"
                                }
                            ),
                        );
                        if allow {
                            Ok(socket)
                        } else {
                            Err(failure.errno())
                        }
                    }
                }
            }
        }
    }
}

/// The failure that replies without records amount to.
fn failed(replies: &[Reply]) -> LookupError {
    if replies
        .iter()
        .any(|r| matches!(r, Reply::ServFail | Reply::Truncated))
    {
        LookupError::Again
    } else if replies.contains(&Reply::Invalid) {
        LookupError::Fail
    } else if replies.iter().all(|r| *r == Reply::NxDomain) {
        LookupError::NoName
    } else if replies
        .iter()
        .all(|r| matches!(r, Reply::NxDomain | Reply::Unanswered))
    {
        LookupError::Unanswered
    } else {
        LookupError::NoData
    }
}

/// A query ID nobody off the path can guess (the socket is connected, so
/// only the server's datagrams come back, but IDs still should not repeat).
fn id() -> u16 {
    let mut id = [0u8; 2];
    // SAFETY: `id` is writable for its 2 bytes. GRND_NONBLOCK: never wait
    // for entropy at boot; on failure the ID is 0, which only makes
    // matching by question do the work.
    unsafe { libc::getrandom(id.as_mut_ptr().cast(), id.len(), libc::GRND_NONBLOCK) };
    u16::from_ne_bytes(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_combine_like_glibc() {
        assert_eq!(
            failed(&[Reply::NxDomain, Reply::NxDomain]),
            LookupError::NoName
        );
        assert_eq!(
            failed(&[Reply::NxDomain, Reply::NoData]),
            LookupError::NoData
        );
        assert_eq!(
            failed(&[Reply::NoData, Reply::ServFail]),
            LookupError::Again
        );
        assert_eq!(
            failed(&[Reply::Unanswered, Reply::NxDomain]),
            LookupError::Unanswered
        );
        assert_eq!(failed(&[Reply::Invalid]), LookupError::Fail);
        assert_eq!(LookupError::NoName.eai(), libc::EAI_NONAME);
        assert_eq!(LookupError::Again.h_errno(), TRY_AGAIN);
    }
}
