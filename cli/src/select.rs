//! From the command line's profile flags to a checked profile, and to the
//! variables that make libbindto.so select the same one.
//!
//! Whatever `run` starts, the library reads its profile from the
//! environment on its own; this module checks with core's own functions,
//! before anything starts, that what the library will read is valid, so
//! that errors come early and name the file and line.

use std::net::{IpAddr, SocketAddr};

use bindto_core::{Config, Env, Error, Profile, legacy};

use crate::args::ProfileArgs;

/// The older tools' variables that `--interface` & co. are written as,
/// with the flag each comes from (for error messages).
const LEGACY: [(&str, &str); 6] = [
    ("BIND_INTERFACE", "--interface"),
    ("BIND_SOURCE_IP", "--source"),
    ("BIND_EXCLUDE", "--exclude"),
    ("DNS_OVERRIDE_IP", "--dns"),
    ("DNS_OVERRIDE_PORT", "--dns"),
    ("BIND_ADDR", "BIND_ADDR"),
];

/// Variables to set (`Some`) or remove (`None`) in a child's environment.
pub(crate) type Vars = Vec<(&'static str, Option<String>)>;

/// A profile chosen and checked, and how to choose it in a child.
#[derive(Debug)]
pub(crate) struct Selected {
    /// The resolved profile.
    pub(crate) profile: Profile,
    /// Variables to set (`Some`) or remove (`None`) in the child's
    /// environment so that the library selects the same profile.
    pub(crate) vars: Vars,
}

/// Why no profile could be selected.
#[derive(Debug)]
pub(crate) enum Problem {
    /// Nothing names a profile: a usage error.
    NoProfile,
    /// The config or the profile is wrong, or the older tools' variables
    /// in the environment are.
    Invalid(String),
    /// An ad-hoc flag's value is wrong.
    Flag(String),
}

impl Problem {
    pub(crate) fn message(&self) -> String {
        match self {
            Problem::NoProfile => "no profile: name one with -p NAME (see `bindto list`), \
                 or give --interface, --source, --exclude or --dns"
                .to_owned(),
            Problem::Invalid(message) | Problem::Flag(message) => message.clone(),
        }
    }
}

/// Selects the profile, in this order: `-p NAME`; the ad-hoc flags;
/// `$BIND_PROFILE`; the older tools' variables already in the environment.
pub(crate) fn select(args: &ProfileArgs, env: &Env) -> Result<Selected, Problem> {
    if let Some(name) = &args.profile {
        return named(name, env);
    }
    if let Some(vars) = ad_hoc(args)? {
        let pairs = vars
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)));
        let profile = legacy::profile(&Env::from_pairs(pairs))
            .map_err(|e| Problem::Flag(flag_message(&e)))?
            .ok_or(Problem::NoProfile)?;
        return Ok(Selected { profile, vars });
    }
    if let Some(name) = env.profile() {
        return named(name, env);
    }
    match legacy::profile(env) {
        Ok(Some(profile)) => Ok(Selected {
            profile,
            vars: Vec::new(),
        }),
        Ok(None) => Err(Problem::NoProfile),
        Err(e) => Err(Problem::Invalid(e.to_string())),
    }
}

/// Loads the layers the environment names and resolves `name` in them.
fn named(name: &str, env: &Env) -> Result<Selected, Problem> {
    let config = load(env).map_err(|e| Problem::Invalid(e.to_string()))?;
    let profile = config
        .profile(name)
        .cloned()
        .map_err(|e| Problem::Invalid(e.to_string()))?;
    Ok(Selected {
        profile,
        vars: vec![("BIND_PROFILE", Some(name.to_owned()))],
    })
}

/// The config as the library will load it (bindto itself never runs
/// privileged, so not in secure mode).
pub(crate) fn load(env: &Env) -> Result<Config, Error> {
    Config::load(env, false)
}

/// The variables the ad-hoc flags stand for, or `None` without any.
///
/// They describe the whole profile: the older tools' variables the
/// environment already holds are removed, and so is `BIND_PROFILE`, which
/// the library would otherwise prefer.
fn ad_hoc(args: &ProfileArgs) -> Result<Option<Vars>, Problem> {
    if args.interface.is_none()
        && args.source.is_empty()
        && args.exclude.is_empty()
        && args.dns.is_none()
    {
        return Ok(None);
    }
    let mut vars: Vars = std::iter::once("BIND_PROFILE")
        .chain(LEGACY.iter().map(|(var, _)| *var))
        .map(|var| (var, None))
        .collect();
    let mut set = |name: &'static str, value: String| {
        if let Some(slot) = vars.iter_mut().find(|(k, _)| *k == name) {
            slot.1 = Some(value);
        }
    };
    if let Some(interface) = &args.interface {
        set("BIND_INTERFACE", interface.clone());
    }
    if !args.source.is_empty() {
        set("BIND_SOURCE_IP", args.source.join(","));
    }
    if !args.exclude.is_empty() {
        set("BIND_EXCLUDE", args.exclude.join(","));
    }
    if let Some(dns) = &args.dns {
        let (ip, port) = parse_dns(dns)?;
        set("DNS_OVERRIDE_IP", ip.to_string());
        if let Some(port) = port {
            set("DNS_OVERRIDE_PORT", port.to_string());
        }
    }
    Ok(Some(vars))
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT`.
fn parse_dns(text: &str) -> Result<(IpAddr, Option<u16>), Problem> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    match text.parse::<SocketAddr>() {
        Ok(sa) if sa.port() != 0 => Ok((sa.ip(), Some(sa.port()))),
        _ => Err(Problem::Flag(format!(
            "--dns: \"{text}\" is not an address, address:port or [IPv6]:port"
        ))),
    }
}

/// Core names the variable an ad-hoc value went into; the user typed a
/// flag, so name the flag.
fn flag_message(error: &Error) -> String {
    let message = error.to_string();
    for (var, flag) in LEGACY {
        if let Some(rest) = message.strip_prefix(var) {
            return format!("{flag}{rest}");
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut ProfileArgs)) -> ProfileArgs {
        let mut a = ProfileArgs::default();
        f(&mut a);
        a
    }

    fn value<'a>(s: &'a Selected, var: &str) -> Option<&'a str> {
        s.vars
            .iter()
            .find(|(k, _)| *k == var)
            .and_then(|(_, v)| v.as_deref())
    }

    #[test]
    fn ad_hoc_flags_become_the_old_variables() {
        let env = Env::from_pairs([("BIND_PROFILE", "x"), ("BIND_ADDR", "1.2.3.4")]);
        let a = args(|a| {
            a.interface = Some("tun0".into());
            a.source = vec!["10.8.0.12".into(), "fd00::1".into()];
            a.exclude = vec!["127.0.0.1".into(), "192.168.".into()];
            a.dns = Some("10.8.0.1:5353".into());
        });
        let s = select(&a, &env).unwrap();
        assert_eq!(value(&s, "BIND_INTERFACE"), Some("tun0"));
        assert_eq!(value(&s, "BIND_SOURCE_IP"), Some("10.8.0.12,fd00::1"));
        assert_eq!(value(&s, "BIND_EXCLUDE"), Some("127.0.0.1,192.168."));
        assert_eq!(value(&s, "DNS_OVERRIDE_IP"), Some("10.8.0.1"));
        assert_eq!(value(&s, "DNS_OVERRIDE_PORT"), Some("5353"));
        // Inherited selections are removed, so the flags alone decide.
        assert!(s.vars.contains(&("BIND_PROFILE", None)));
        assert!(s.vars.contains(&("BIND_ADDR", None)));
        assert_eq!(s.profile.exclude.len(), 2);
        assert_eq!(
            s.profile.dns_server(),
            Some("10.8.0.1:5353".parse().unwrap())
        );
    }

    #[test]
    fn ad_hoc_errors_name_the_flag() {
        let env = Env::default();
        let bad = |f: fn(&mut ProfileArgs)| select(&args(f), &env).unwrap_err().message();
        assert!(bad(|a| a.interface = Some("a/b".into())).starts_with("--interface: "));
        assert!(bad(|a| a.exclude = vec!["300.1".into()]).starts_with("--exclude: "));
        assert!(bad(|a| a.source = vec!["nope".into()]).starts_with("--source: "));
        assert!(bad(|a| a.dns = Some("x".into())).starts_with("--dns: "));
    }

    #[test]
    fn inherited_old_variables_are_used() {
        let env = Env::from_pairs([("BIND_INTERFACE", "eth1")]);
        let s = select(&ProfileArgs::default(), &env).unwrap();
        assert!(s.vars.is_empty());
        assert_eq!(s.profile.binding.interface.unwrap().as_str(), "eth1");
        assert!(matches!(
            select(&ProfileArgs::default(), &Env::default()),
            Err(Problem::NoProfile)
        ));
    }
}
