//! The older tools' variables, so that libbindto.so is a drop-in for
//! `bind.so` (`BIND_ADDR`) and `bindToInterface.so` (`BIND_INTERFACE`,
//! `BIND_SOURCE_IP`, `BIND_EXCLUDE`, `DNS_OVERRIDE_IP`, `DNS_OVERRIDE_PORT`).
//! They are read only when `BIND_PROFILE` is not set.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::addr::{IfName, PerFamily, parse_addr, parse_legacy_prefix, port_number};
use crate::profile::{Binding, DnsRewrite, OnFailure, Origin, Profile, RuleKind};
use crate::{Env, Error};

/// The name legacy settings go by in messages and explanations.
pub const PROFILE_NAME: &str = "environment";

/// The variables that ask for a binding (`DNS_OVERRIDE_PORT` alone does
/// not), from the list that the front (libbindto.so) reads too.
pub(crate) use bindto_abi::hooks::SELECTORS;

/// The one variable of the older tools that only qualifies another.
const PORT: &str = "DNS_OVERRIDE_PORT";

/// Whether `name` is one of the older tools' variables.
pub(crate) fn is_variable(name: &str) -> bool {
    SELECTORS.contains(&name) || name == PORT
}

/// The profile the older tools' variables describe, or `None` when none of
/// them is set.
pub fn profile(env: &Env) -> Result<Option<Profile>, Error> {
    if SELECTORS.iter().all(|v| env.get(v).is_none()) {
        return Ok(None);
    }
    let name: Arc<str> = Arc::from(PROFILE_NAME);
    let origin = |kind| Origin {
        profile: name.clone(),
        kind,
        location: None,
    };
    let var = |var: &'static str| env.get(var).map(|value| (var, value));
    let fail = |var: &str, message: String| Error::new(format!("{var}: {message}"));

    let interface = var("BIND_INTERFACE")
        .map(|(v, value)| IfName::new(value.trim()).map_err(|m| fail(v, m)))
        .transpose()?;
    let addresses = |var_name| {
        var(var_name)
            .map(|(v, value)| PerFamily::from_texts(list(value)).map_err(|m| fail(v, m)))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let bind_addr = addresses("BIND_ADDR")?;
    let source_ip = addresses("BIND_SOURCE_IP")?;
    let source = PerFamily {
        v4: source_ip.v4.or(bind_addr.v4),
        v6: source_ip.v6.or(bind_addr.v6),
    };
    let default_kind = if interface.is_some() {
        RuleKind::Variable("BIND_INTERFACE")
    } else if !source_ip.is_empty() {
        RuleKind::Variable("BIND_SOURCE_IP")
    } else {
        RuleKind::Variable("BIND_ADDR")
    };

    let mut exclude = Vec::new();
    if let Some((v, value)) = var("BIND_EXCLUDE") {
        for item in list(value) {
            let net = parse_legacy_prefix(item).map_err(|m| fail(v, m))?;
            exclude.push((net, origin(RuleKind::Variable("BIND_EXCLUDE"))));
        }
    }

    let mut dns = Vec::new();
    if let Some((v, value)) = var("DNS_OVERRIDE_IP") {
        let ip = parse_addr(value.trim()).map_err(|m| fail(v, m))?;
        let port = match var(PORT) {
            Some((pv, p)) => port_number(p.trim()).map_err(|m| fail(pv, m))?,
            None => 53,
        };
        dns.push(DnsRewrite {
            port: 53,
            server: SocketAddr::new(ip, port),
            origin: origin(RuleKind::Variable("DNS_OVERRIDE_IP")),
        });
    }

    Ok(Some(Profile {
        name: PROFILE_NAME.to_owned(),
        binding: Binding { interface, source },
        listen: bind_addr,
        on_failure: OnFailure::Block,
        exclude,
        routes: Vec::new(),
        dns,
        dns_options: Default::default(),
        origin: origin(default_kind),
    }))
}

/// The items of a comma-separated variable.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}
