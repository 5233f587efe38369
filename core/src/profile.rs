//! A profile resolved from its layers: what the table is compiled from.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;

use crate::addr::{IfName, PerFamily, PortRange};

/// The transport of a socket, as route filters name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// SOCK_STREAM.
    Tcp,
    /// SOCK_DGRAM.
    Udp,
}

/// What happens when the shim cannot do what the profile says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// The call fails and nothing leaves (the default).
    #[default]
    Block,
    /// The call goes out unbound, with a warning.
    Allow,
}

/// What a route says to do with the traffic it matches, as written: the
/// [`Verdict`](crate::Verdict) it asks for, before a binding is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Bind to the route's (or else the profile's) interface and source.
    #[default]
    Bind,
    /// Leave the socket alone, as an exclude does.
    Direct,
    /// Fail the call.
    Block,
}

/// Where matched sockets are bound: a device, a source address per family,
/// or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Binding {
    /// SO_BINDTODEVICE target.
    pub interface: Option<IfName>,
    /// Source address per family.
    pub source: PerFamily,
}

impl Binding {
    /// Whether the binding names neither an interface nor a source.
    pub fn is_empty(&self) -> bool {
        self.interface.is_none() && self.source.is_empty()
    }
}

/// A per-destination rule of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination networks.
    pub to: Vec<IpNet>,
    /// Destination ports; empty means every port.
    pub ports: Vec<PortRange>,
    /// Transport filter; `None` means both.
    pub protocol: Option<Protocol>,
    /// What to do with matched traffic.
    pub action: Action,
    /// For [`Action::Bind`]: the route's own binding, or the profile's when
    /// the route names neither interface nor source.
    pub binding: Binding,
    /// Where the route was written.
    pub origin: Origin,
}

/// A per-port DNS rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRewrite {
    /// Destination port that is rewritten.
    pub port: u16,
    /// Where that traffic goes instead.
    pub server: SocketAddr,
    /// Where the rewrite was written.
    pub origin: Origin,
}

/// Resolver settings of `[profile.X.dns]`, for the shim's own resolver.
/// `None` means "as /etc/resolv.conf says, or the resolver's default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsOptions {
    /// Search domains.
    pub search: Option<Vec<String>>,
    /// Dots a name needs before it is tried as absolute first.
    pub ndots: Option<u8>,
    /// Time to wait for one answer, in milliseconds.
    pub timeout_ms: Option<u32>,
    /// Tries per server.
    pub attempts: Option<u8>,
}

/// A profile with `extends` and layers resolved and every value checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// Binding for traffic no rule matches.
    pub binding: Binding,
    /// Replacement for wildcard binds, per family.
    pub listen: PerFamily,
    /// What happens when the binding cannot be done.
    pub on_failure: OnFailure,
    /// Networks left alone.
    pub exclude: Vec<(IpNet, Origin)>,
    /// Per-destination rules, in the order written.
    pub routes: Vec<Route>,
    /// Per-port rewrites, sorted by port, then IPv4 before IPv6: at most
    /// one server per port and family.
    pub dns: Vec<DnsRewrite>,
    /// Resolver settings.
    pub dns_options: DnsOptions,
    /// Where the profile itself is defined: the origin of its default rule.
    pub origin: Origin,
}

impl Profile {
    /// The server that port-53 traffic is rewritten to, if any: the
    /// profile's DNS server (the IPv4 one, if it names one per family).
    pub fn dns_server(&self) -> Option<SocketAddr> {
        self.dns.iter().find(|r| r.port == 53).map(|r| r.server)
    }
}

/// Which part of a profile made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// The profile's own interface and source: no rule matched.
    Default,
    /// The n-th (0-based) entry of `exclude`.
    Exclude(usize),
    /// The n-th (0-based) `[[route]]`.
    Route(usize),
    /// The DNS rewrite of this port.
    Dns(u16),
    /// An older tool's environment variable.
    Variable(&'static str),
    /// bindto's own rule for loopback destinations ([`LOOPBACK`]): left
    /// alone unless a rule names them.
    Loopback,
}

/// Loopback destinations, which no device but `lo` reaches: a profile
/// leaves them alone (direct) unless one of its own rules names them, that
/// is, has a network of at least this prefix length inside them. Ranked
/// below every exclude and route of the same prefix length.
pub const LOOPBACK: [IpNet; 2] = [
    IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
    IpNet::new_assert(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
];

/// Where a rule came from: its file and position, profile and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The profile it belongs to.
    pub profile: Arc<str>,
    /// Which rule of the profile.
    pub kind: RuleKind,
    /// The file and 1-based line and column, when it came from a file.
    pub location: Option<(Arc<Path>, u32, u32)>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RuleKind::Default => write!(f, "profile \"{}\"", self.profile)?,
            RuleKind::Exclude(i) => {
                write!(f, "exclude #{} of profile \"{}\"", i + 1, self.profile)?
            }
            RuleKind::Route(i) => write!(f, "route #{} of profile \"{}\"", i + 1, self.profile)?,
            RuleKind::Dns(port) => write!(
                f,
                "dns rewrite of port {port} in profile \"{}\"",
                self.profile
            )?,
            RuleKind::Variable(name) => write!(f, "{name}")?,
            RuleKind::Loopback => write!(
                f,
                "the loopback rule of profile \"{}\" (loopback destinations, {} and {}, are never bound unless a rule names them)",
                self.profile, LOOPBACK[0], LOOPBACK[1]
            )?,
        }
        if let Some((path, line, column)) = &self.location {
            write!(f, " ({}:{line}:{column})", path.display())?;
        }
        Ok(())
    }
}
