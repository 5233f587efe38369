//! DNS messages: building one query and reading its answer, with the
//! `domain` crate (NLnet Labs) doing the encoding and the parsing.

use std::net::IpAddr;

use domain::base::iana::{Class, Rcode};
use domain::base::name::ParsedName;
use domain::base::{Message, MessageBuilder, Name, Rtype};
use domain::rdata::{A, Aaaa, Ptr};

use super::Failure;

/// The record types the resolver asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    A,
    Aaaa,
    Ptr,
}

impl Kind {
    fn rtype(self) -> Rtype {
        match self {
            Kind::A => Rtype::A,
            Kind::Aaaa => Rtype::AAAA,
            Kind::Ptr => Rtype::PTR,
        }
    }
}

/// A query on the wire, kept to match its answer.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(crate) kind: Kind,
    pub(crate) bytes: Vec<u8>,
}

impl Query {
    /// A recursive query for `name`, or `None` if `name` is not a domain
    /// name (an empty label, a label over 63 bytes, over 255 in all).
    pub(crate) fn new(id: u16, name: &str, kind: Kind) -> Option<Query> {
        let name = Name::vec_from_str(name).ok()?;
        Query::for_name(id, &name, kind)
    }

    /// The PTR query for `ip` (`4.3.2.1.in-addr.arpa`, `...ip6.arpa`).
    pub(crate) fn reverse(id: u16, ip: IpAddr) -> Option<Query> {
        let name = Name::<Vec<u8>>::reverse_from_addr(ip).ok()?;
        Query::for_name(id, &name, Kind::Ptr)
    }

    fn for_name(id: u16, name: &Name<Vec<u8>>, kind: Kind) -> Option<Query> {
        Some(Query {
            kind,
            bytes: message(id, name, Class::IN, kind.rtype())?,
        })
    }

    /// Reads `bytes` as the answer to this query: `None` if it is not one
    /// (another ID or question, not a response, not parseable), which a
    /// UDP client ignores and keeps waiting.
    pub(crate) fn answer(&self, bytes: &[u8]) -> Option<Reply> {
        let reply = reply_to(&self.bytes, bytes)?;
        let header = reply.header();
        if header.tc() {
            return Some(Reply::Truncated);
        }
        Some(match header.rcode() {
            Rcode::NOERROR => records(reply, self.kind),
            Rcode::NXDOMAIN => Reply::NxDomain,
            _ => Reply::ServFail,
        })
    }
}

/// A recursive query of any class and type for `name`, as
/// `res_mkquery` makes it, or `None` if `name` is not a domain name.
pub(crate) fn raw_query(id: u16, name: &str, class: u16, rtype: u16) -> Option<Vec<u8>> {
    let name = Name::vec_from_str(name).ok()?;
    message(id, &name, Class::from_int(class), Rtype::from_int(rtype))
}

fn message(id: u16, name: &Name<Vec<u8>>, class: Class, rtype: Rtype) -> Option<Vec<u8>> {
    let mut builder = MessageBuilder::new_vec();
    builder.header_mut().set_id(id);
    builder.header_mut().set_rd(true);
    let mut question = builder.question();
    question.push((name, rtype, class)).ok()?;
    Some(question.finish())
}

/// `bytes` as the reply to the query `query`, or `None` if it is not one
/// (another ID or question, not a response, not parseable).
fn reply_to<'a>(query: &[u8], bytes: &'a [u8]) -> Option<&'a Message<[u8]>> {
    let query = Message::from_slice(query).ok()?;
    let reply = Message::from_slice(bytes).ok()?;
    reply.is_answer(query).then_some(reply)
}

/// Whether `bytes` answers `query`, and if so whether it came truncated
/// (TC set: ask again over TCP).
pub(crate) fn heard(query: &[u8], bytes: &[u8]) -> Option<Heard> {
    let reply = reply_to(query, bytes)?;
    Some(if reply.header().tc() {
        Heard::Truncated
    } else {
        Heard::Complete
    })
}

/// A reply that [`heard`] matched to its query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heard {
    Complete,
    Truncated,
}

/// What a whole reply amounts to for `res_query`, as glibc judges it: a
/// success needs NOERROR and at least one answer record of any type.
pub(crate) fn outcome(bytes: &[u8]) -> Result<(), Failure> {
    let Ok(reply) = Message::from_slice(bytes) else {
        return Err(Failure::Again);
    };
    match reply.header().rcode() {
        Rcode::NOERROR if reply.header_counts().ancount() > 0 => Ok(()),
        Rcode::NOERROR => Err(Failure::NoData),
        Rcode::NXDOMAIN => Err(Failure::NoName),
        Rcode::SERVFAIL => Err(Failure::Again),
        // REFUSED, FORMERR, NOTIMP...: asking again will not help.
        _ => Err(Failure::Fail),
    }
}

/// What the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Records of the type asked for.
    Found(Records),
    /// The name exists, without records of that type.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// SERVFAIL, REFUSED, or any other failure of the server.
    ServFail,
    /// The answer did not fit in a datagram: ask again over TCP.
    Truncated,
}

/// The answer records of one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Records {
    /// The end of the question name's CNAME chain (no trailing dot).
    pub(crate) canonical: String,
    /// A or AAAA records of the canonical name, in the server's order.
    pub(crate) addrs: Vec<IpAddr>,
    /// PTR targets (no trailing dot).
    pub(crate) names: Vec<String>,
}

fn records(reply: &Message<[u8]>, kind: Kind) -> Reply {
    let (Some(canonical), Ok(answer)) = (reply.canonical_name(), reply.answer()) else {
        return Reply::ServFail;
    };
    let of = |owner: &ParsedName<&[u8]>| *owner == canonical;
    let mut records = Records {
        canonical: text(&canonical),
        addrs: Vec::new(),
        names: Vec::new(),
    };
    match kind {
        Kind::A => records.addrs.extend(
            answer
                .limit_to::<A>()
                .flatten()
                .filter(|r| of(r.owner()))
                .map(|r| IpAddr::V4(r.data().addr())),
        ),
        Kind::Aaaa => records.addrs.extend(
            answer
                .limit_to::<Aaaa>()
                .flatten()
                .filter(|r| of(r.owner()))
                .map(|r| IpAddr::V6(r.data().addr())),
        ),
        Kind::Ptr => records.names.extend(
            answer
                .limit_to::<Ptr<ParsedName<&[u8]>>>()
                .flatten()
                .filter(|r| of(r.owner()))
                .map(|r| text(r.data().ptrdname())),
        ),
    }
    if records.addrs.is_empty() && records.names.is_empty() {
        Reply::NoData
    } else {
        Reply::Found(records)
    }
}

/// A name as text without the root's trailing dot.
fn text(name: &ParsedName<&[u8]>) -> String {
    let text = name.to_string();
    match text.strip_suffix('.') {
        Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
        _ => text,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use domain::base::Ttl;
    use domain::rdata::Cname;

    /// An answer to `query` with `rcode`, a CNAME from the question name to
    /// `cname` (if any) and A/AAAA records of the canonical name.
    pub(crate) fn answer(
        query: &Query,
        rcode: Rcode,
        cname: Option<&str>,
        addrs: &[IpAddr],
    ) -> Vec<u8> {
        let query = Message::from_slice(&query.bytes).unwrap();
        let mut builder = MessageBuilder::new_vec()
            .start_answer(query, rcode)
            .unwrap();
        let qname = query.first_question().unwrap().into_qname();
        let owner: Name<Vec<u8>> = Name::vec_from_str(&qname.to_string()).unwrap();
        let canonical = match cname {
            Some(target) => {
                let target: Name<Vec<u8>> = Name::vec_from_str(target).unwrap();
                let record = (
                    owner.clone(),
                    Class::IN,
                    Ttl::from_secs(60),
                    Cname::new(target.clone()),
                );
                builder.push(record).unwrap();
                target
            }
            None => owner,
        };
        for addr in addrs {
            let ttl = Ttl::from_secs(60);
            match addr {
                IpAddr::V4(a) => builder
                    .push((&canonical, Class::IN, ttl, A::new(*a)))
                    .unwrap(),
                IpAddr::V6(a) => builder
                    .push((&canonical, Class::IN, ttl, Aaaa::new(*a)))
                    .unwrap(),
            }
        }
        builder.finish()
    }

    #[test]
    fn addresses_of_the_canonical_name() {
        let query = Query::new(7, "www.bindto.test", Kind::A).unwrap();
        let v4: IpAddr = "198.19.0.1".parse().unwrap();
        let bytes = answer(&query, Rcode::NOERROR, Some("host.bindto.test"), &[v4]);
        let Some(Reply::Found(records)) = query.answer(&bytes) else {
            panic!("no records")
        };
        assert_eq!(records.canonical, "host.bindto.test");
        assert_eq!(records.addrs, [v4]);
    }

    #[test]
    fn failures_and_strangers() {
        let query = Query::new(7, "nx.bindto.test", Kind::Aaaa).unwrap();
        assert_eq!(
            query.answer(&answer(&query, Rcode::NXDOMAIN, None, &[])),
            Some(Reply::NxDomain)
        );
        assert_eq!(
            query.answer(&answer(&query, Rcode::NOERROR, None, &[])),
            Some(Reply::NoData)
        );
        assert_eq!(
            query.answer(&answer(&query, Rcode::SERVFAIL, None, &[])),
            Some(Reply::ServFail)
        );
        let other = Query::new(8, "nx.bindto.test", Kind::Aaaa).unwrap();
        assert_eq!(
            query.answer(&answer(&other, Rcode::NXDOMAIN, None, &[])),
            None
        );
        assert_eq!(query.answer(&query.bytes), None, "a query is not an answer");
        assert_eq!(query.answer(b"junk"), None);
        let mut truncated = answer(&query, Rcode::NOERROR, None, &[]);
        truncated[2] |= 0x02;
        assert_eq!(query.answer(&truncated), Some(Reply::Truncated));
    }

    #[test]
    fn names_that_are_not_domain_names() {
        assert!(Query::new(1, "a..b", Kind::A).is_none());
        assert!(Query::new(1, &"x".repeat(64), Kind::A).is_none());
        let ptr = Query::reverse(1, "198.19.0.1".parse().unwrap()).unwrap();
        assert_eq!(ptr.kind, Kind::Ptr);
    }
}
