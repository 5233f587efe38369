//! DNS messages: building the resolver's queries and reading their
//! answers, by hand and without allocating, as glibc's resolver does;
//! `res_query`'s queries of any type are built with the `domain` crate
//! (NLnet Labs).
//!
//! Reading is careful with what a hostile server can send: every length
//! is checked against the message, a compression pointer must point
//! before the name (or pointer) it continues, so a name is read in
//! bounded steps, and a decompressed name over 255 bytes is refused.
//! Names in answers follow glibc's rules (`res_hnok`, nss_dns's
//! `getanswer_r`, `gaih_getanswer_slice` and `getanswer_ptr` as of glibc
//! 2.37): records are read once, in order, following the CNAME chain from
//! the question name; a CNAME target that is not a host name (letters,
//! digits, `-` and `_`, no label starting with `-`) is still followed but
//! never reported as the canonical name or an alias, and a PTR target that
//! is not a host name fails the reverse lookup.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use domain::base::iana::{Class, Rcode};
use domain::base::{Message, MessageBuilder, Name, Rtype};

use super::LookupError;

/// Header bytes.
const HEADER: usize = 12;
/// The longest name on the wire (RFC 1035), root label included.
const MAX_NAME: usize = 255;
/// The longest query: a header, one question.
const MAX_QUERY: usize = HEADER + MAX_NAME + 4;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

const RCODE_NOERROR: u8 = 0;
const RCODE_NXDOMAIN: u8 = 3;

/// The record types the resolver asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordType {
    A,
    Aaaa,
    Ptr,
}

impl RecordType {
    fn rtype(self) -> u16 {
        match self {
            RecordType::A => TYPE_A,
            RecordType::Aaaa => TYPE_AAAA,
            RecordType::Ptr => TYPE_PTR,
        }
    }
}

/// A query on the wire, kept to match its answer.
#[derive(Clone)]
pub(crate) struct Query {
    pub(crate) kind: RecordType,
    len: usize,
    bytes: [u8; MAX_QUERY],
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("kind", &self.kind)
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl Query {
    /// A recursive query for `name` (text, as `res_mkquery` reads it:
    /// `\.` and `\DDD` escapes, an optional final dot), or `None` if
    /// `name` is not a domain name (an empty label, a label over 63
    /// bytes, over 255 in all).
    pub(crate) fn new(id: u16, name: &str, kind: RecordType) -> Option<Query> {
        let mut query = Query::start(id, kind);
        query.push_text(name)?;
        query.finish()
    }

    /// The query for `name` under the search domain `domain`.
    pub(crate) fn within(id: u16, name: &str, domain: &str, kind: RecordType) -> Option<Query> {
        let mut query = Query::start(id, kind);
        query.push_text(name.strip_suffix('.').unwrap_or(name))?;
        query.len -= 1; // the root label: the domain follows
        query.push_text(domain)?;
        query.finish()
    }

    /// The PTR query for `ip` (`4.3.2.1.in-addr.arpa`, `...ip6.arpa`).
    pub(crate) fn reverse(id: u16, ip: IpAddr) -> Option<Query> {
        let mut query = Query::start(id, RecordType::Ptr);
        let mut label = |text: &[u8]| {
            query.bytes[query.len] = text.len() as u8;
            query.bytes[query.len + 1..][..text.len()].copy_from_slice(text);
            query.len += 1 + text.len();
        };
        match ip {
            IpAddr::V4(v4) => {
                let mut digits = [0u8; 3];
                for octet in v4.octets().into_iter().rev() {
                    let text = decimal(octet, &mut digits);
                    label(text);
                }
                label(b"in-addr");
            }
            IpAddr::V6(v6) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for octet in v6.octets().into_iter().rev() {
                    label(&[HEX[usize::from(octet & 15)]]);
                    label(&[HEX[usize::from(octet >> 4)]]);
                }
                label(b"ip6");
            }
        }
        label(b"arpa");
        query.bytes[query.len] = 0;
        query.len += 1;
        query.finish()
    }

    fn start(id: u16, kind: RecordType) -> Query {
        let mut bytes = [0u8; MAX_QUERY];
        bytes[..2].copy_from_slice(&id.to_be_bytes());
        bytes[2] = 0x01; // RD
        bytes[5] = 1; // QDCOUNT
        Query {
            kind,
            len: HEADER,
            bytes,
        }
    }

    /// Appends `text`'s labels and the root label.
    fn push_text(&mut self, text: &str) -> Option<()> {
        let text = text.as_bytes();
        let text = text.strip_suffix(b".").unwrap_or(text);
        if text.is_empty() {
            return None;
        }
        let mut at = 0;
        loop {
            let length_at = self.len;
            self.len += 1;
            let mut length = 0usize;
            while at < text.len() && text[at] != b'.' {
                let byte = match text[at] {
                    b'\\' => {
                        let (byte, used) = escape(&text[at + 1..])?;
                        at += used;
                        byte
                    }
                    byte => byte,
                };
                at += 1;
                length += 1;
                if length > 63 || self.len >= HEADER + MAX_NAME - 1 {
                    return None;
                }
                self.bytes[self.len] = byte;
                self.len += 1;
            }
            if length == 0 {
                return None;
            }
            self.bytes[length_at] = length as u8;
            if at == text.len() {
                break;
            }
            at += 1; // the dot
            if at == text.len() {
                return None; // "a.." ends in an empty label
            }
        }
        self.bytes[self.len] = 0;
        self.len += 1;
        Some(())
    }

    fn finish(mut self) -> Option<Query> {
        if self.len + 4 > MAX_QUERY {
            return None;
        }
        self.bytes[self.len..][..2].copy_from_slice(&self.kind.rtype().to_be_bytes());
        self.bytes[self.len + 2..][..2].copy_from_slice(&CLASS_IN.to_be_bytes());
        self.len += 4;
        Some(self)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Reads `bytes` as the answer to this query: `None` if it is not one
    /// (another ID or question, not a response, not parseable), which a
    /// UDP client ignores and keeps waiting.
    pub(crate) fn answer(&self, bytes: &[u8]) -> Option<Reply> {
        if !heard(self.bytes(), bytes) {
            return None;
        }
        if truncated(bytes) {
            return Some(Reply::Truncated);
        }
        Some(match bytes[3] & 0x0f {
            RCODE_NOERROR => records(bytes, self.kind).unwrap_or(Reply::ServFail),
            RCODE_NXDOMAIN => Reply::NxDomain,
            _ => Reply::ServFail,
        })
    }
}

/// `\X` (X itself) or `\DDD` (a decimal byte) after the backslash: the
/// byte and how many bytes of `after` it used.
fn escape(after: &[u8]) -> Option<(u8, usize)> {
    match after {
        [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            let value = u32::from(a - b'0') * 100 + u32::from(b - b'0') * 10 + u32::from(c - b'0');
            Some((u8::try_from(value).ok()?, 3))
        }
        [byte, ..] => Some((*byte, 1)),
        [] => None,
    }
}

/// `value` in decimal, in `digits`.
fn decimal(value: u8, digits: &mut [u8; 3]) -> &[u8] {
    let mut start = 3;
    let mut rest = value;
    loop {
        start -= 1;
        digits[start] = b'0' + rest % 10;
        rest /= 10;
        if rest == 0 {
            return &digits[start..];
        }
    }
}

/// A recursive query of any class and type for `name`, as
/// `res_mkquery` makes it, or `None` if `name` is not a domain name.
pub(crate) fn raw_query(id: u16, name: &str, class: u16, rtype: u16) -> Option<Vec<u8>> {
    let name = Name::vec_from_str(name).ok()?;
    let mut builder = MessageBuilder::new_vec();
    builder.header_mut().set_id(id);
    builder.header_mut().set_rd(true);
    let mut question = builder.question();
    question
        .push((&name, Rtype::from_int(rtype), Class::from_int(class)))
        .ok()?;
    Some(question.finish())
}

/// A name read from a message: its uncompressed wire form.
struct WireName {
    len: usize,
    bytes: [u8; MAX_NAME],
}

impl WireName {
    const fn empty() -> WireName {
        WireName {
            len: 0,
            bytes: [0; MAX_NAME],
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Reads the name at `at` in `message` into `self`, and returns where
    /// the name ends in the message (after its first pointer, if any).
    fn read(&mut self, message: &[u8], mut at: usize) -> Option<usize> {
        self.len = 0;
        let mut end = None;
        // Every pointer must point below this, which then drops to the
        // pointer's target: the targets fall, so reading ends.
        let mut limit = at;
        loop {
            let byte = *message.get(at)?;
            match byte & 0xc0 {
                0x00 => {
                    let length = usize::from(byte);
                    if self.len + 1 + length > MAX_NAME {
                        return None;
                    }
                    let label = message.get(at..at + 1 + length)?;
                    self.bytes[self.len..][..label.len()].copy_from_slice(label);
                    self.len += label.len();
                    at += label.len();
                    if length == 0 {
                        return Some(end.unwrap_or(at));
                    }
                }
                0xc0 => {
                    let target =
                        usize::from(u16::from_be_bytes([byte, *message.get(at + 1)?]) & 0x3fff);
                    end.get_or_insert(at + 2);
                    if target >= limit {
                        return None;
                    }
                    limit = target;
                    at = target;
                }
                // The extended label types of RFC 2671/6891: obsolete.
                _ => return None,
            }
        }
    }

    /// Skips the name at `at` without reading it out.
    fn skip(message: &[u8], mut at: usize) -> Option<usize> {
        loop {
            let byte = *message.get(at)?;
            match byte & 0xc0 {
                0x00 if byte == 0 => return Some(at + 1),
                0x00 => at += 1 + usize::from(byte),
                0xc0 => return (at + 2 <= message.len()).then_some(at + 2),
                _ => return None,
            }
        }
    }

    /// glibc's `res_binary_hnok`: every label of letters, digits, `-` and
    /// `_`, and the first not starting with `-`.
    fn is_host_name(&self) -> bool {
        let bytes = self.as_bytes();
        if bytes.len() > 1 && bytes[1] == b'-' {
            return false;
        }
        let mut at = 0;
        while at < bytes.len() && bytes[at] != 0 {
            let label = &bytes[at + 1..at + 1 + usize::from(bytes[at])];
            if !label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return false;
            }
            at += 1 + label.len();
        }
        true
    }

    /// The name as text, without the root's dot: only for host names,
    /// which need no escapes.
    fn text(&self) -> String {
        let bytes = self.as_bytes();
        let mut text = String::with_capacity(bytes.len());
        let mut at = 0;
        while at < bytes.len() && bytes[at] != 0 {
            let label = &bytes[at + 1..at + 1 + usize::from(bytes[at])];
            if at > 0 {
                text.push('.');
            }
            // Host-name bytes are ASCII.
            text.extend(label.iter().map(|&b| char::from(b)));
            at += 1 + label.len();
        }
        if text.is_empty() {
            text.push('.');
        }
        text
    }
}

/// Whether the name at `at` in `message` is `name` (its uncompressed
/// wire form), in any case: read as [`WireName::read`] reads, without
/// copying it out. `None` if it cannot be read.
fn name_is(message: &[u8], mut at: usize, name: &[u8]) -> Option<bool> {
    let mut matched = 0;
    let mut limit = at;
    loop {
        let byte = *message.get(at)?;
        match byte & 0xc0 {
            0x00 => {
                let label = message.get(at..at + 1 + usize::from(byte))?;
                // Length bytes are below 64, so no case folding changes one.
                match name.get(matched..matched + label.len()) {
                    Some(ours) if ours.eq_ignore_ascii_case(label) => matched += label.len(),
                    _ => return Some(false),
                }
                if byte == 0 {
                    return Some(matched == name.len());
                }
                at += label.len();
            }
            0xc0 => {
                let target =
                    usize::from(u16::from_be_bytes([byte, *message.get(at + 1)?]) & 0x3fff);
                if target >= limit {
                    return None;
                }
                limit = target;
                at = target;
            }
            _ => return None,
        }
    }
}

fn u16_at(message: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        message.get(at..at + 2)?.try_into().ok()?,
    ))
}

/// Whether `bytes` answers `query`: its ID, a response, and the same
/// questions (names in any case).
pub(crate) fn heard(query: &[u8], bytes: &[u8]) -> bool {
    same_questions(query, bytes).is_some()
}

/// Whether a reply came truncated (TC set: ask again over TCP).
pub(crate) fn truncated(bytes: &[u8]) -> bool {
    bytes.len() > 2 && bytes[2] & 0x02 != 0
}

fn same_questions(query: &[u8], bytes: &[u8]) -> Option<()> {
    if bytes.len() < HEADER
        || query.len() < HEADER
        || bytes[..2] != query[..2]
        || bytes[2] & 0x80 == 0
        || bytes[4..6] != query[4..6]
    {
        return None;
    }
    let (mut ours, mut theirs) = (HEADER, HEADER);
    let mut name = WireName::empty();
    for _ in 0..u16_at(query, 4)? {
        ours = name.read(query, ours)?;
        if !name_is(bytes, theirs, name.as_bytes())? {
            return None;
        }
        theirs = WireName::skip(bytes, theirs)?;
        if query.get(ours..ours + 4)? != bytes.get(theirs..theirs + 4)? {
            return None;
        }
        ours += 4;
        theirs += 4;
    }
    Some(())
}

/// What a whole reply amounts to for `res_query`, as glibc judges it: a
/// success needs NOERROR and at least one answer record of any type.
pub(crate) fn outcome(bytes: &[u8]) -> Result<(), LookupError> {
    let Ok(reply) = Message::from_slice(bytes) else {
        return Err(LookupError::Again);
    };
    match reply.header().rcode() {
        Rcode::NOERROR if reply.header_counts().ancount() > 0 => Ok(()),
        Rcode::NOERROR => Err(LookupError::NoData),
        Rcode::NXDOMAIN => Err(LookupError::NoName),
        Rcode::SERVFAIL => Err(LookupError::Again),
        // REFUSED, FORMERR, NOTIMP...: asking again will not help.
        _ => Err(LookupError::Fail),
    }
}

/// What the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Records of the type asked for.
    Found(Records),
    /// The name exists, without records of that type.
    NoData,
    /// Answers, but none of the type for the name (a CNAME chain that
    /// ends nowhere or loops): glibc's HOST_NOT_FOUND.
    Unanswered,
    /// The name does not exist.
    NxDomain,
    /// SERVFAIL, REFUSED, or any other failure of the server, or a
    /// message that cannot be read.
    ServFail,
    /// A PTR target that is not a host name: glibc fails the lookup
    /// (NO_RECOVERY).
    Invalid,
    /// The answer did not fit in a datagram: ask again over TCP.
    Truncated,
}

/// The answer records of one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Records {
    /// The last CNAME target on the chain that is a host name, else the
    /// question name (no trailing dot).
    pub(crate) canonical: String,
    /// The other CNAME targets on the chain that are host names.
    pub(crate) aliases: Vec<String>,
    /// A or AAAA records of the chain's end, in the server's order.
    pub(crate) addrs: Vec<IpAddr>,
    /// The PTR target (no trailing dot).
    pub(crate) names: Vec<String>,
}

/// The records of a NOERROR reply to a `kind` query, read once in order;
/// `None` if the message cannot be read (glibc: NO_RECOVERY).
fn records(message: &[u8], kind: RecordType) -> Option<Reply> {
    let ancount = u16_at(message, 6)?;
    let mut expected = WireName::empty();
    let mut at = expected.read(message, HEADER)? + 4;
    // The question name must be a host name, as glibc requires.
    if !expected.is_host_name() {
        return Some(Reply::NxDomain);
    }
    if ancount == 0 {
        return Some(Reply::NoData);
    }
    // The canonical name so far: where the last usable name starts.
    let mut canonical = HEADER;
    let mut aliases = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..ancount {
        let after_owner = WireName::skip(message, at)?;
        let rtype = u16_at(message, after_owner)?;
        let class = u16_at(message, after_owner + 2)?;
        let length = usize::from(u16_at(message, after_owner + 8)?);
        let data = after_owner + 10;
        let rdata = message.get(data..data + length)?;
        let record = at;
        at = data + length;
        if class != CLASS_IN {
            continue;
        }
        match rtype {
            // As glibc, the owner of a CNAME is not checked: its target
            // is the next name expected.
            TYPE_CNAME => {
                expected.read(message, data)?;
                if expected.is_host_name() {
                    if canonical != HEADER {
                        let mut previous = WireName::empty();
                        previous.read(message, canonical)?;
                        aliases.push(previous.text());
                    }
                    canonical = data;
                }
            }
            _ if rtype == kind.rtype() => {
                if !name_is(message, record, expected.as_bytes())? {
                    continue;
                }
                match (kind, rdata.len()) {
                    (RecordType::A, 4) => {
                        addrs.push(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(rdata).ok()?)))
                    }
                    (RecordType::Aaaa, 16) => addrs.push(IpAddr::V6(Ipv6Addr::from(
                        <[u8; 16]>::try_from(rdata).ok()?,
                    ))),
                    (RecordType::Ptr, _) => {
                        let mut target = WireName::empty();
                        target.read(message, data)?;
                        if !target.is_host_name() {
                            return Some(Reply::Invalid);
                        }
                        // glibc returns the first PTR record alone.
                        return Some(Reply::Found(Records {
                            canonical: String::new(),
                            aliases,
                            addrs,
                            names: vec![target.text()],
                        }));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if addrs.is_empty() {
        return Some(Reply::Unanswered);
    }
    let mut name = WireName::empty();
    name.read(message, canonical)?;
    Some(Reply::Found(Records {
        canonical: name.text(),
        aliases,
        addrs,
        names: Vec::new(),
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use domain::base::Ttl;
    use domain::rdata::{A, Aaaa, Cname};

    /// An answer to `query` with `rcode`, a CNAME from the question name to
    /// `cname` (if any) and A/AAAA records of the canonical name.
    pub(crate) fn answer(
        query: &Query,
        rcode: Rcode,
        cname: Option<&str>,
        addrs: &[IpAddr],
    ) -> Vec<u8> {
        let query = Message::from_slice(query.bytes()).unwrap();
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
        let query = Query::new(7, "www.bindto.test", RecordType::A).unwrap();
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
        let query = Query::new(7, "nx.bindto.test", RecordType::Aaaa).unwrap();
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
        let other = Query::new(8, "nx.bindto.test", RecordType::Aaaa).unwrap();
        assert_eq!(
            query.answer(&answer(&other, Rcode::NXDOMAIN, None, &[])),
            None
        );
        assert_eq!(
            query.answer(query.bytes()),
            None,
            "a query is not an answer"
        );
        assert_eq!(query.answer(b"junk"), None);
        let mut truncated = answer(&query, Rcode::NOERROR, None, &[]);
        truncated[2] |= 0x02;
        assert_eq!(query.answer(&truncated), Some(Reply::Truncated));
    }

    #[test]
    fn names_that_are_not_domain_names() {
        assert!(Query::new(1, "a..b", RecordType::A).is_none());
        assert!(Query::new(1, &"x".repeat(64), RecordType::A).is_none());
        let ptr = Query::reverse(1, "198.19.0.1".parse().unwrap()).unwrap();
        assert_eq!(ptr.kind, RecordType::Ptr);
    }

    /// `query`'s header and question with the QR bit and `ancount`, then
    /// `records` as they are.
    fn reply(query: &Query, ancount: u16, records: &[u8]) -> Vec<u8> {
        let mut bytes = query.bytes().to_vec();
        bytes[2] |= 0x80;
        bytes[6..8].copy_from_slice(&ancount.to_be_bytes());
        bytes.extend_from_slice(records);
        bytes
    }

    /// An A record of 198.19.0.1 whose owner is the name at `owner`.
    fn a_at(owner: u16) -> Vec<u8> {
        let mut record = (0xc000 | owner).to_be_bytes().to_vec();
        record.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 19, 0, 1]);
        record
    }

    #[test]
    fn hostile_messages_are_refused_in_bounded_steps() {
        let query = Query::new(7, "host.bindto.test", RecordType::A).unwrap();
        let good = reply(&query, 1, &a_at(12));
        assert!(matches!(query.answer(&good), Some(Reply::Found(_))));
        // A pointer to itself, and one pointing forward.
        let record = query.bytes().len() as u16;
        let looped = reply(&query, 1, &a_at(record));
        assert_eq!(query.answer(&looped), Some(Reply::ServFail));
        let forward = reply(&query, 1, &a_at(record + 4));
        assert_eq!(query.answer(&forward), Some(Reply::ServFail));
        // More answers counted than there are.
        assert_eq!(
            query.answer(&reply(&query, 2, &a_at(12))),
            Some(Reply::ServFail)
        );
        // Record data running past the end.
        let mut cut = a_at(12);
        cut.truncate(cut.len() - 1);
        assert_eq!(query.answer(&reply(&query, 1, &cut)), Some(Reply::ServFail));
        // Another ID, or not a response.
        let mut other = good.clone();
        other[1] ^= 1;
        assert_eq!(query.answer(&other), None);
        assert_eq!(query.answer(query.bytes()), None);
    }

    #[test]
    fn names_are_encoded_as_res_mkquery_does() {
        let query = Query::new(1, "a.b\\.c\\046d.", RecordType::A).unwrap();
        assert_eq!(&query.bytes()[12..][..9], b"\x01a\x05b.c.d\x00");
        let within = Query::within(1, "host", "bindto.test.", RecordType::Aaaa).unwrap();
        assert_eq!(
            within.bytes(),
            Query::new(1, "host.bindto.test", RecordType::Aaaa)
                .unwrap()
                .bytes()
        );
        let ptr = Query::reverse(1, "198.19.0.1".parse().unwrap()).unwrap();
        assert_eq!(&ptr.bytes()[12..][..11], b"\x011\x010\x0219\x03198");
        assert!(Query::new(1, &vec!["x".repeat(63); 4].join("."), RecordType::A).is_none());
        assert!(Query::new(1, &vec!["x".repeat(62); 4].join("."), RecordType::A).is_some());
    }

    /// The answer to `query` (for `host.bindto.test`): a chain of `links`
    /// CNAMEs, then the A record of its end.
    fn chain(query: &Query, links: u32) -> Vec<u8> {
        let request = Message::from_slice(query.bytes()).unwrap();
        let mut builder = MessageBuilder::new_vec()
            .start_answer(request, Rcode::NOERROR)
            .unwrap();
        let ttl = Ttl::from_secs(60);
        let mut from: Name<Vec<u8>> = Name::vec_from_str("host.bindto.test").unwrap();
        for n in (0..links).rev() {
            let to: Name<Vec<u8>> = Name::vec_from_str(&format!("c{n}.bindto.test")).unwrap();
            builder
                .push((&from, Class::IN, ttl, Cname::new(to.clone())))
                .unwrap();
            from = to;
        }
        let v4 = A::new("198.19.0.7".parse().unwrap());
        builder.push((&from, Class::IN, ttl, v4)).unwrap();
        builder.finish()
    }

    #[test]
    fn a_cname_chain_is_read_in_linear_time() {
        let query = Query::new(7, "host.bindto.test", RecordType::A).unwrap();
        let best = |links| {
            let reply = chain(&query, links);
            let Some(Reply::Found(records)) = query.answer(&reply) else {
                panic!("no records")
            };
            assert_eq!(records.canonical, "c0.bindto.test");
            assert_eq!(records.aliases.len(), links as usize - 1);
            (0..5)
                .map(|_| {
                    let started = std::time::Instant::now();
                    query.answer(&reply);
                    started.elapsed()
                })
                .min()
                .unwrap()
        };
        // Four times the links: four times the time, not sixteen.
        let (short, long) = (best(250), best(1000));
        assert!(long < short * 8, "250 links: {short:?}, 1000: {long:?}");
    }
}
