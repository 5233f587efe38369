//! A real, tiny DNS server for the lab (the uplink servers answer port 53
//! with a plain line, not DNS), run by the `lab-dns` binary in a server
//! namespace, and its log.
//!
//! Its zone ([`answer`]), per server name (`vpn`, `wan`, ...):
//!
//! | name | answer |
//! | --- | --- |
//! | `host.bindto.test` | A 198.19.0.1 and AAAA 2001:db8:ff::1 from `vpn`; 198.19.0.2 and 2001:db8:ff::2 from any other server, so that a test sees who answered |
//! | `host.bindto.test` TXT | the server's name (`vpn`, `wan`, ...), for the `res_query` tests |
//! | `alias.bindto.test` | CNAME `host.bindto.test`, and its addresses |
//! | `v4only.bindto.test` | the A record of `host`, no AAAA (NODATA) |
//! | `big.bindto.test` | [`BIG`] A records; over UDP only an empty answer with the TC bit set, so a client must ask again over TCP |
//! | `evil-cname.bindto.test`, `nul-cname.bindto.test` | CNAME to a name that is not a host name ([`EVIL_LABEL`] or [`NUL_LABEL`] under `example`), whose A record is [`CARE_V4`] |
//! | `chainN.bindto.test` | a chain of N CNAMEs, `cN-1.chain.bindto.test` down to [`CHAIN_END`], whose A record is [`CARE_V4`] |
//! | `loop.bindto.test` | CNAME `loop2.bindto.test`, which is a CNAME back to it: no addresses |
//! | PTR of [`EVIL_PTR`], [`NUL_PTR`] | [`EVIL_LABEL`] or [`NUL_LABEL`] under `example` |
//! | `silent.bindto.test` | nothing, ever: the query is logged and left unanswered, so a lookup is still waiting when a test interrupts or cancels it |
//! | anything else | NXDOMAIN |
//!
//! Every query is logged before it is answered, one line each:
//! `udp|tcp PEER NAME TYPE` (e.g. `udp 198.18.2.2:40000 host.bindto.test A`).
//!
//! ```no_run
//! use bindto_tests::{Lab, dns::DnsServer};
//!
//! let Some(lab) = Lab::builder().ports([80]).build() else { return };
//! let vpn = DnsServer::start(&lab, "vpn");
//! lab.set_client_file("resolv.conf", "nameserver 198.18.1.1\n");
//! // ... run clients ...
//! assert_eq!(vpn.queries().len(), 0);
//! ```

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use domain::base::iana::{Class, Rcode};
use domain::base::name::NameBuilder;
use domain::base::{Message, MessageBuilder, Name, Rtype, Ttl};
use domain::rdata::{A, Aaaa, Cname, Ptr, Txt};

use crate::lab::Lab;
use crate::net::{HTTP_PORT, TARGETS_V4, TARGETS_V6, Uplink, VPN, WAN};
use crate::run::RunOutput;
use crate::server::{self, Server};

/// The binary's name, as cargo builds it.
pub const BIN_NAME: &str = "lab-dns";

/// The zone's names.
pub const HOST: &str = "host.bindto.test";
/// A CNAME to [`HOST`].
pub const ALIAS: &str = "alias.bindto.test";
/// IPv4 only.
pub const V4ONLY: &str = "v4only.bindto.test";
/// Truncated over UDP.
pub const BIG: &str = "big.bindto.test";
/// Never answered.
pub const SILENT: &str = "silent.bindto.test";
/// How many A records [`BIG`] has: more than a 512-byte datagram holds.
pub const BIG_COUNT: u8 = 40;

/// A label that must never reach a program as a name: shell
/// metacharacters, spaces.
pub const EVIL_LABEL: &[u8] = b"evil;rm -rf $HOME`id`";
/// A label with a NUL byte.
pub const NUL_LABEL: &[u8] = b"evil\0name";
/// A CNAME to [`EVIL_LABEL`]`.example`.
pub const EVIL_CNAME: &str = "evil-cname.bindto.test";
/// A CNAME to [`NUL_LABEL`]`.example`.
pub const NUL_CNAME: &str = "nul-cname.bindto.test";
/// Whose PTR record is [`EVIL_LABEL`]`.example`.
pub const EVIL_PTR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 66);
/// Whose PTR record is [`NUL_LABEL`]`.example`.
pub const NUL_PTR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 67);
/// The address at the end of the care names' CNAMEs.
pub const CARE_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 7);
/// Where every `chainN.bindto.test` ends.
pub const CHAIN_END: &str = "c0.chain.bindto.test";
/// Two CNAMEs pointing at each other.
pub const LOOP: &str = "loop.bindto.test";

/// The addresses [`HOST`] has on the server called `server`.
pub fn host_addrs(server: &str) -> (Ipv4Addr, Ipv6Addr) {
    if server == "vpn" {
        (TARGETS_V4[0], TARGETS_V6[0])
    } else {
        (TARGETS_V4[1], TARGETS_V6[1])
    }
}

/// The transport a query came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// One logged query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub transport: Transport,
    pub peer: SocketAddr,
    /// Lower case, without the trailing dot.
    pub name: String,
    /// `A`, `AAAA`, ...
    pub qtype: String,
}

impl Query {
    /// The log line for this query.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {}",
            self.transport.as_str(),
            self.peer,
            self.name,
            self.qtype
        )
    }

    fn parse(line: &str) -> Option<Query> {
        let mut words = line.split_whitespace();
        let transport = match words.next()? {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            _ => return None,
        };
        Some(Query {
            transport,
            peer: words.next()?.parse().ok()?,
            name: words.next()?.to_owned(),
            qtype: words.next()?.to_owned(),
        })
    }
}

/// The answer of server `server` to the DNS message `request` received
/// over `transport` (empty: none is sent), and the query to log; `None`
/// for something that is not a query.
pub fn answer(
    server: &str,
    request: &[u8],
    transport: Transport,
    peer: SocketAddr,
) -> Option<(Vec<u8>, Query)> {
    let request = Message::from_slice(request).ok()?;
    if request.header().qr() {
        return None;
    }
    let question = request.sole_question().ok()?;
    let qname = question.qname().to_string().to_ascii_lowercase();
    let name = qname.trim_end_matches('.').to_owned();
    let qtype = question.qtype();
    let query = Query {
        transport,
        peer,
        name: name.clone(),
        qtype: qtype.to_string(),
    };
    if name == SILENT {
        return Some((Vec::new(), query));
    }
    let owner: Name<Vec<u8>> = Name::vec_from_str(&name).ok()?;
    if let Some(reply) = care(request, &owner, &name, qtype) {
        return Some((reply, query));
    }
    let (v4, v6) = host_addrs(server);
    let host = Name::vec_from_str(HOST).ok()?;
    // (the CNAME target if any, A records, AAAA records)
    let (cname, a, aaaa): (Option<Name<Vec<u8>>>, Vec<Ipv4Addr>, Vec<Ipv6Addr>) =
        match name.as_str() {
            HOST => (None, vec![v4], vec![v6]),
            ALIAS => (Some(host), vec![v4], vec![v6]),
            V4ONLY => (None, vec![v4], vec![]),
            BIG => (
                None,
                (1..=BIG_COUNT)
                    .map(|n| Ipv4Addr::new(198, 19, 1, n))
                    .collect(),
                vec![],
            ),
            _ => {
                let builder = MessageBuilder::new_vec()
                    .start_answer(request, Rcode::NXDOMAIN)
                    .ok()?;
                return Some((builder.finish(), query));
            }
        };
    let canonical = cname.clone().unwrap_or_else(|| owner.clone());
    let mut builder = MessageBuilder::new_vec()
        .start_answer(request, Rcode::NOERROR)
        .ok()?;
    builder.header_mut().set_aa(true);
    if name == BIG && transport == Transport::Udp {
        builder.header_mut().set_tc(true);
        return Some((builder.finish(), query));
    }
    let ttl = Ttl::from_secs(60);
    if let Some(target) = cname {
        builder
            .push((&owner, Class::IN, ttl, Cname::new(target)))
            .ok()?;
    }
    if qtype == Rtype::A {
        for ip in a {
            builder
                .push((&canonical, Class::IN, ttl, A::new(ip)))
                .ok()?;
        }
    } else if qtype == Rtype::AAAA {
        for ip in aaaa {
            builder
                .push((&canonical, Class::IN, ttl, Aaaa::new(ip)))
                .ok()?;
        }
    } else if qtype == Rtype::TXT && name == HOST {
        let text = Txt::<Vec<u8>>::build_from_slice(server.as_bytes()).ok()?;
        builder.push((&canonical, Class::IN, ttl, text)).ok()?;
    }
    Some((builder.finish(), query))
}

/// `label` under `example`, for names that are not host names.
fn raw(label: &[u8]) -> Option<Name<Vec<u8>>> {
    let mut builder = NameBuilder::new_vec();
    builder.append_label(label).ok()?;
    builder
        .append_origin(&Name::vec_from_str("example").ok()?)
        .ok()
}

/// The answers of the names that test the resolver's care (see the zone
/// in the module docs), or `None` for any other name.
fn care(
    request: &Message<[u8]>,
    owner: &Name<Vec<u8>>,
    name: &str,
    qtype: Rtype,
) -> Option<Vec<u8>> {
    let chain = |n: u32| Name::vec_from_str(&format!("c{n}.chain.bindto.test")).ok();
    // The CNAMEs, then the name whose records end the answer.
    type Owned = Name<Vec<u8>>;
    let (cnames, end): (Vec<(Owned, Owned)>, Owned) = match name {
        EVIL_CNAME | NUL_CNAME => {
            let target = raw(if name == EVIL_CNAME {
                EVIL_LABEL
            } else {
                NUL_LABEL
            })?;
            (vec![(owner.clone(), target.clone())], target)
        }
        LOOP => {
            let other = Name::vec_from_str("loop2.bindto.test").ok()?;
            (
                vec![(owner.clone(), other.clone()), (other, owner.clone())],
                owner.clone(),
            )
        }
        _ if name.starts_with("chain") && name.ends_with(".bindto.test") => {
            let links: u32 = name["chain".len()..name.len() - ".bindto.test".len()]
                .parse()
                .ok()?;
            let mut cnames = Vec::new();
            let mut from = owner.clone();
            for n in (0..links).rev() {
                let to = chain(n)?;
                cnames.push((from, to.clone()));
                from = to;
            }
            (cnames, from)
        }
        _ => {
            let ptr = [(EVIL_PTR, EVIL_LABEL), (NUL_PTR, NUL_LABEL)]
                .into_iter()
                .find(|(ip, _)| {
                    Name::<Vec<u8>>::reverse_from_addr((*ip).into())
                        .ok()
                        .as_ref()
                        == Some(owner)
                })?;
            let mut builder = MessageBuilder::new_vec()
                .start_answer(request, Rcode::NOERROR)
                .ok()?;
            if qtype == Rtype::PTR {
                builder
                    .push((owner, Class::IN, Ttl::from_secs(60), Ptr::new(raw(ptr.1)?)))
                    .ok()?;
            }
            return Some(builder.finish());
        }
    };
    let mut builder = MessageBuilder::new_vec()
        .start_answer(request, Rcode::NOERROR)
        .ok()?;
    let ttl = Ttl::from_secs(60);
    for (from, to) in cnames {
        builder.push((from, Class::IN, ttl, Cname::new(to))).ok()?;
    }
    if qtype == Rtype::A && name != LOOP {
        builder.push((end, Class::IN, ttl, A::new(CARE_V4))).ok()?;
    }
    Some(builder.finish())
}

/// A `lab-dns` server in one of a lab's server namespaces, answering on
/// port 53 of that server's link addresses ([`Uplink::server_v4`],
/// [`Uplink::server_v6`]); stopped when dropped. The lab must be built
/// without port 53 for its uplink servers (`Lab::builder().ports([80])`),
/// which would hold those ports.
#[derive(Debug)]
pub struct DnsServer {
    log: PathBuf,
    _server: Server,
}

impl DnsServer {
    /// Starts the server called `uplink` (`"vpn"`, `"wan"`, ...) in that
    /// uplink's server namespace, and waits until it listens.
    ///
    /// # Panics
    /// If it cannot start (e.g. port 53 is taken).
    #[track_caller]
    pub fn start(lab: &Lab, uplink: &str) -> DnsServer {
        let link = Uplink::by_name(uplink).unwrap_or_else(|| panic!("no uplink {uplink:?}"));
        let bin = server::locate().with_file_name(BIN_NAME);
        let log = lab.dir().join(format!("dns-{uplink}.log"));
        let stderr = lab.dir().join(format!("dns-{uplink}.stderr"));
        let addrs = [IpAddr::V4(link.server_v4()), IpAddr::V6(link.server_v6())];
        let server = Server::start(
            &bin,
            &lab.server_ns(uplink),
            uplink,
            &log,
            &stderr,
            &addrs,
            &[53],
        );
        DnsServer {
            log,
            _server: server,
        }
    }

    /// Every query received so far, in order (each is logged before it is
    /// answered, so a client that got its answer is already in here).
    pub fn queries(&self) -> Vec<Query> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(Query::parse)
            .collect()
    }

    /// How many queries came over `transport`.
    pub fn count(&self, transport: Transport) -> usize {
        self.queries()
            .iter()
            .filter(|q| q.transport == transport)
            .count()
    }

    /// Empties the log, between the phases of a test.
    pub fn clear(&self) {
        let _ = fs::write(&self.log, "");
    }
}

/// Binds to vpn0 and names the vpn-side server for DNS.
pub const PROFILE: &str =
    "[profile.vpn]\ninterface = \"vpn0\"\n\n[profile.vpn.dns]\n53 = \"198.18.2.1\"\n";

/// The names in the client's hosts file.
pub const HOSTS: &str =
    "127.0.0.1 localhost\n::1 localhost ip6-localhost\n198.19.0.3 files.bindto.test files\n";

/// A lab with a DNS server on each side: `vpn`, the profile's server
/// ([`PROFILE`]), and `wan`, named by the client's resolv.conf (reachable
/// only through wan0), with [`HOSTS`] as the client's hosts file. Dropped
/// servers first, then the lab.
#[derive(Debug)]
pub struct DnsLab {
    pub vpn: DnsServer,
    pub wan: DnsServer,
    pub lab: Lab,
}

impl DnsLab {
    /// The lab, or `None` where labs cannot be made (the lab's skip).
    pub fn start() -> Option<DnsLab> {
        // No uplink server on port 53: the DNS servers take it.
        let lab = Lab::builder().ports([HTTP_PORT]).build()?;
        let resolv = format!(
            "nameserver {}\noptions timeout:1 attempts:2\n",
            WAN.server_v4()
        );
        lab.set_client_file("resolv.conf", &resolv);
        lab.set_client_file("hosts", HOSTS);
        Some(DnsLab {
            vpn: DnsServer::start(&lab, "vpn"),
            wan: DnsServer::start(&lab, "wan"),
            lab,
        })
    }

    /// Runs `args` under the shim with [`PROFILE`].
    pub fn bound(&self, args: &[&str]) -> RunOutput {
        self.lab.run_bound(PROFILE, "vpn", args, &[])
    }

    /// Asserts that the wan-side server got nothing, and that everything
    /// the vpn-side one got came from the client's vpn0 address.
    #[track_caller]
    pub fn assert_no_leak(&self) {
        assert_eq!(
            self.wan.queries(),
            [],
            "queries leaked to the wan nameserver"
        );
        for query in self.vpn.queries() {
            assert_eq!(query.peer.ip(), IpAddr::from(VPN.client_v4()), "{query:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(name: &str, qtype: Rtype, transport: Transport) -> Message<Vec<u8>> {
        let mut builder = MessageBuilder::new_vec();
        builder.header_mut().set_id(9);
        let mut question = builder.question();
        let name: Name<Vec<u8>> = Name::vec_from_str(name).unwrap();
        question.push((&name, qtype)).unwrap();
        let peer = "198.18.2.2:4000".parse().unwrap();
        let (bytes, query) = answer("vpn", &question.finish(), transport, peer).unwrap();
        assert_eq!(Query::parse(&query.line()), Some(query));
        Message::from_octets(bytes).unwrap()
    }

    #[test]
    fn the_zone() {
        let host = ask("Host.Bindto.Test", Rtype::A, Transport::Udp);
        assert_eq!(
            (host.header().id(), host.header().rcode()),
            (9, Rcode::NOERROR)
        );
        let a: Vec<_> = host
            .answer()
            .unwrap()
            .limit_to::<A>()
            .map(|r| r.unwrap().data().addr())
            .collect();
        assert_eq!(a, [TARGETS_V4[0]]);
        assert_eq!(
            ask("nope.bindto.test", Rtype::A, Transport::Udp)
                .header()
                .rcode(),
            Rcode::NXDOMAIN
        );
        let nodata = ask(V4ONLY, Rtype::AAAA, Transport::Udp);
        assert_eq!(
            (nodata.header().rcode(), nodata.header_counts().ancount()),
            (Rcode::NOERROR, 0)
        );
        let alias = ask(ALIAS, Rtype::AAAA, Transport::Udp);
        assert_eq!(alias.header_counts().ancount(), 2);
        let txt = ask(HOST, Rtype::TXT, Transport::Udp);
        let text = txt.answer().unwrap().limit_to::<Txt<_>>().next();
        assert_eq!(
            text.unwrap().unwrap().data().as_flat_slice(),
            Some(&b"vpn"[..])
        );
    }

    #[test]
    fn care_names() {
        let chain = ask("chain1000.bindto.test", Rtype::A, Transport::Udp);
        assert_eq!(chain.header_counts().ancount(), 1001);
        assert!(chain.as_slice().len() < 65_507, "fits a datagram");
        let looped = ask(LOOP, Rtype::A, Transport::Udp);
        assert_eq!(looped.header_counts().ancount(), 2);
        let ptr = Name::<Vec<u8>>::reverse_from_addr(EVIL_PTR.into()).unwrap();
        let ptr = ask(&ptr.to_string(), Rtype::PTR, Transport::Udp);
        assert_eq!(ptr.header_counts().ancount(), 1);
        let evil = ask(NUL_CNAME, Rtype::A, Transport::Udp);
        assert_eq!(evil.header_counts().ancount(), 2);
    }

    #[test]
    fn big_is_truncated_over_udp_only() {
        let udp = ask(BIG, Rtype::A, Transport::Udp);
        assert!(udp.header().tc());
        let tcp = ask(BIG, Rtype::A, Transport::Tcp);
        assert!(!tcp.header().tc());
        assert_eq!(tcp.header_counts().ancount(), u16::from(BIG_COUNT));
        assert!(tcp.as_slice().len() > 512);
    }
}
