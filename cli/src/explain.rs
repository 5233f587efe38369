//! `bindto explain -p PROFILE DEST`: the decision the library would make
//! for one destination, and the rule (file:line:col) that made it.
//! `bindto explain --program PATH [--user U] [DEST]`: which `[[match]]`
//! chooses the profile of a program run by a user, and then the same.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use bindto_core::{Config, Decision, Env, Protocol, Table, User, Verdict, matches};

use crate::args::ExplainArgs;
use crate::exit::{Fail, Outcome};
use crate::select::{self, Problem};
use crate::style::Style;
use crate::{inspect, users};

pub(crate) fn run(args: ExplainArgs) -> Outcome {
    let env = Env::from_process();
    let style = Style::stdout();
    let profile = match &args.program {
        Some(program) => {
            let (report, chooser) = program_profile(program, args.user.as_deref(), &env, style)?;
            print!("{report}");
            match chooser {
                Chooser::Match(profile) => Some(*profile),
                Chooser::Environment => Some(selected(&args, &env)?),
                Chooser::Nothing => None,
            }
        }
        None => Some(selected(&args, &env)?),
    };
    let Some(destination) = &args.destination else {
        return Ok(ExitCode::SUCCESS);
    };
    let Some(profile) = profile else {
        println!("  {destination}: left alone, bindto is not active in the program");
        return Ok(ExitCode::SUCCESS);
    };
    let protocol = if args.udp {
        Protocol::Udp
    } else {
        Protocol::Tcp
    };
    let default_port = if args.udp { 53 } else { 443 };
    let destinations = destinations(destination, args.port, default_port)?;
    let table = Table::compile(&profile);
    for (i, address) in destinations.iter().enumerate() {
        if i > 0 || args.program.is_some() {
            println!();
        }
        print!(
            "{}",
            describe(&table, *address, protocol, destination, style)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The profile the flags or the environment select.
fn selected(args: &ExplainArgs, env: &Env) -> Result<bindto_core::Profile, Fail> {
    select::select(&args.profile, env)
        .map(|s| s.profile)
        .map_err(|p| match p {
            Problem::NoProfile => Fail::usage(p.message()),
            Problem::Invalid(m) | Problem::Flag(m) => Fail::problem(m),
        })
}

/// What chooses the profile of a program started from here.
enum Chooser {
    /// A match, this profile.
    Match(Box<bindto_core::Profile>),
    /// BIND_PROFILE or the older tools' variables.
    Environment,
    /// Nothing: the program passes through.
    Nothing,
}

/// What the matches say of `program` run by `user` (default: the real
/// user), in a few lines, and what chooses its profile when it is started
/// from here.
fn program_profile(
    program: &Path,
    user: Option<&str>,
    env: &Env,
    style: Style,
) -> Result<(String, Chooser), Fail> {
    let exe = program
        .canonicalize()
        .map_err(|e| Fail::problem(format!("{}: {e}", program.display())))?;
    let user = match user {
        Some(text) => User::parse(text)
            .ok_or_else(|| Fail::usage(format!("--user: \"{text}\" is not a user name or uid")))?,
        None => User::Id(users::real_uid()),
    };
    let (who, uid) = users::describe(&user);
    let uid = uid.ok_or_else(|| Fail::problem(format!("--user: no user \"{user}\"")))?;
    // A set-id program runs in secure mode: the system file alone.
    let secure = inspect::privileged_for(&exe, uid);
    let config = if secure {
        Config::load(&env.clone().privileged(), true)
    } else {
        select::load(env)
    }
    .map_err(|e| Fail::problem(e.to_string()))?;
    let mut out = format!("{} {}", style.bold("program"), exe.display());
    if exe != program {
        out += &format!(" (for {})", program.display());
    }
    out += &format!(", user {who}\n");
    if secure {
        out += "  privileged (set-id or capabilities): only the system file's matches \
                count, and one that fits wins over BIND_PROFILE\n";
    }
    let fit = matches::first_fit(
        config.matches(),
        exe.as_os_str().as_bytes(),
        uid,
        users::uid,
    );
    let Some(fit) = fit else {
        let total = config.matches().len();
        out += &format!(
            "  {} of {total} match{} fits: BIND_PROFILE or the older tools' variables \
             decide, and without them the program passes through, unbound\n",
            style.warn("none"),
            if total == 1 { "" } else { "es" }
        );
        let chooser = if env.asks_anything() {
            Chooser::Environment
        } else {
            Chooser::Nothing
        };
        return Ok((out, chooser));
    };
    out += &format!(
        "  {} {}:{} ({}) chooses profile \"{}\"\n",
        style.good("match"),
        fit.path.display(),
        fit.line,
        fit.source,
        fit.profile
    );
    if !secure && env.asks_anything() {
        out += "  but BIND_PROFILE or the older tools' variables, set here, win over it \
                in a program started from here\n";
        return Ok((out, Chooser::Environment));
    }
    let profile = config
        .profile(&fit.profile)
        .cloned()
        .map_err(|e| Fail::problem(e.to_string()))?;
    Ok((out, Chooser::Match(Box::new(profile))))
}

/// DEST as addresses: `IP`, `IP:PORT`, `[IPv6]:PORT` or a host name,
/// resolved as the program would (every address it may try).
fn destinations(text: &str, port: Option<u16>, default: u16) -> Result<Vec<SocketAddr>, Fail> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port.unwrap_or(default))]);
    }
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Ok(vec![match port {
            Some(p) => SocketAddr::new(sa.ip(), p),
            None => sa,
        }]);
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, p)) if !host.contains(':') && p.parse::<u16>().is_ok() => {
            (host, port.unwrap_or_else(|| p.parse().unwrap_or(default)))
        }
        _ => (text, port.unwrap_or(default)),
    };
    let mut found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Fail::problem(format!("cannot resolve {host}: {e}")))?
        .collect();
    // getaddrinfo lists an address once per socket type: keep each once.
    let mut seen = Vec::new();
    found.retain(|a| {
        let new = !seen.contains(a);
        seen.push(*a);
        new
    });
    if found.is_empty() {
        return Err(Fail::problem(format!("{host} has no address")));
    }
    Ok(found)
}

/// The decision for `destination`, in a few lines.
fn describe(
    table: &Table,
    destination: SocketAddr,
    protocol: Protocol,
    typed: &str,
    style: Style,
) -> String {
    let decision: Decision<'_> = table.decide(destination, protocol);
    let proto = match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    };
    let shown = if typed.parse::<IpAddr>().is_ok() || typed.parse::<SocketAddr>().is_ok() {
        format!("{destination}")
    } else {
        format!("{typed} ({destination})")
    };
    let mut out = format!(
        "{} {shown} with profile \"{}\"\n",
        style.bold(proto),
        table.profile()
    );
    if let Some(rewrite) = decision.rewrite {
        out += &format!(
            "  rewritten to {} by {rewrite}\n",
            style.bold(&decision.destination.to_string())
        );
    }
    let verdict = match decision.verdict {
        Verdict::Direct => style.bold("direct: left alone, the routing table decides"),
        Verdict::Block => style.bad("block: the call fails, nothing leaves"),
        Verdict::Bind(binding) => {
            let mut parts = Vec::new();
            if let Some(interface) = binding.interface {
                parts.push(format!("interface {interface}"));
            }
            let ip = decision.destination.ip();
            match binding.source.for_family_of(ip) {
                Some(source) => parts.push(format!("source {source}")),
                None if !binding.source.is_empty() => {
                    parts.push(format!("no source of this family ({})", family(ip)));
                }
                None => {}
            }
            style.good(&format!("bind: {}", parts.join(", ")))
        }
    };
    out += &format!("  {verdict}\n  by {}\n", decision.origin);
    out
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_forms() {
        let one = |t: &str, p| destinations(t, p, 443).unwrap();
        assert_eq!(one("10.0.0.1", None), vec!["10.0.0.1:443".parse().unwrap()]);
        assert_eq!(
            one("10.0.0.1:80", None),
            vec!["10.0.0.1:80".parse().unwrap()]
        );
        assert_eq!(
            one("10.0.0.1:80", Some(22)),
            vec!["10.0.0.1:22".parse().unwrap()]
        );
        assert_eq!(one("::1", None), vec!["[::1]:443".parse().unwrap()]);
        assert_eq!(one("[::1]:53", None), vec!["[::1]:53".parse().unwrap()]);
        assert!(one("localhost:8080", None).iter().all(|a| a.port() == 8080));
        assert!(destinations("no-such-host.invalid", None, 443).is_err());
    }

    #[test]
    fn loopback_is_explained_as_never_bound() {
        let layer = bindto_core::Layer {
            source: bindto_core::Source::Given,
            path: "p.toml".into(),
            text: "[profile.vpn]\ninterface = \"vpn0\"\n".into(),
            stamp: None,
        };
        let config = Config::from_layers(vec![layer]).unwrap();
        let table = Table::compile(config.profile("vpn").unwrap());
        for dest in ["127.0.0.1:443", "[::1]:443", "[::ffff:127.0.0.1]:443"] {
            let out = describe(
                &table,
                dest.parse().unwrap(),
                Protocol::Tcp,
                dest,
                Style::plain(),
            );
            assert!(
                out.ends_with(
                    "  direct: left alone, the routing table decides\n  \
                     by the loopback rule of profile \"vpn\" (loopback destinations, \
                     127.0.0.0/8 and ::1/128, are never bound unless a rule names them)\n"
                ),
                "{out}"
            );
        }
    }
}
