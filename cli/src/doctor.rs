//! `bindto doctor -p PROFILE`: whether this machine can do what the profile
//! asks, checked for real: each interface exists and is up and has a route
//! for the traffic bound to it, each source address is assigned, the DNS
//! server answers through the interface, this user may bind sockets to
//! a device, and this kernel allows supervision (for static and Go
//! programs). Every failure says what to do about it.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use bindto_core::{Binding, Env, Profile, Protocol, Table, Verdict};

use crate::args::DoctorArgs;
use crate::exit::{Fail, Outcome};
use crate::host::{self, Route};
use crate::select::{self, Problem};
use crate::style::Style;

/// How long the DNS server has to answer.
const DNS_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn run(args: DoctorArgs) -> Outcome {
    let env = Env::from_process();
    let selected = select::select(&args.profile, &env).map_err(|p| match p {
        Problem::NoProfile => Fail::usage(p.message()),
        Problem::Invalid(m) | Problem::Flag(m) => Fail::problem(m),
    })?;
    let profile = &selected.profile;
    let mut report = Report::new(Style::stdout());
    let title = match &profile.origin.location {
        Some(_) => format!("Checking {}", profile.origin),
        None => "Checking the ad-hoc profile (flags or BIND_* variables)".to_owned(),
    };
    println!("{}", report.style.bold(&title));

    let addresses = host::addresses().unwrap_or_else(|e| {
        report.warn(format!("cannot list this machine's addresses: {e}"), &[]);
        Vec::new()
    });
    for usage in interfaces(profile) {
        check_interface(&mut report, &usage, &addresses);
    }
    check_sources(&mut report, profile, &addresses);
    check_dns(&mut report, profile);
    check_permission(&mut report, profile);
    check_supervision(&mut report, profile);
    check_libraries(&mut report);

    let summary = match (report.problems, report.warnings) {
        (0, 0) => report.style.good("no problems found"),
        (0, w) => report.style.warn(&format!("no problems, {w} warning(s)")),
        (p, _) => report.style.bad(&format!("{p} problem(s) found")),
    };
    println!("{summary}");
    Ok(if report.problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::Code::Problem as u8)
    })
}

/// Check results, printed as they come.
struct Report {
    style: Style,
    problems: usize,
    warnings: usize,
    /// Interfaces and addresses already reported missing or down, so that
    /// a later check that depends on them names that cause once rather
    /// than failing again with other advice.
    broken: Vec<String>,
}

impl Report {
    fn new(style: Style) -> Report {
        Report {
            style,
            problems: 0,
            warnings: 0,
            broken: Vec::new(),
        }
    }

    fn line(&self, tag: String, message: &str, hints: &[String]) {
        println!("  {tag} {message}");
        for hint in hints {
            println!("         {hint}");
        }
    }

    fn ok(&mut self, message: String) {
        self.line(self.style.good("ok   "), &message, &[]);
    }

    fn note(&mut self, message: String) {
        self.line(self.style.dim("note "), &message, &[]);
    }

    fn warn(&mut self, message: String, hints: &[String]) {
        self.warnings += 1;
        self.line(self.style.warn("warn "), &message, hints);
    }

    fn fail(&mut self, message: String, hints: &[String]) {
        self.problems += 1;
        self.line(self.style.bad("FAIL "), &message, hints);
    }
}

/// Which builds of the library are installed: a program of a class without
/// one is refused by `bindto run`.
fn check_libraries(report: &mut Report) {
    let front = match crate::library::locate() {
        Ok(front) => front,
        Err(why) => return report.fail(why, &[]),
    };
    let (_, builds) = crate::library::builds(&front);
    let mut targets = Vec::new();
    for build in &builds {
        match crate::library::elf(build) {
            Ok(elf) => targets.push(elf.target()),
            Err(why) => return report.fail(why, &[]),
        }
    }
    let installed = format!("libbindto.so for {} programs", targets.join(" and "));
    if targets.iter().any(|t| t == crate::inspect::I386) {
        report.ok(installed);
    } else {
        report.note(format!(
            "{installed} only; for 32-bit ones: {}",
            crate::library::ADD_I686
        ));
    }
}

/// What traffic a profile sends through one interface.
#[derive(Debug)]
struct Usage {
    interface: String,
    /// The profile's own binding: everything no rule takes elsewhere.
    default: Option<Binding>,
    /// Networks of the routes that bind to it.
    networks: Vec<(IpAddr, u8)>,
}

fn interfaces(profile: &Profile) -> Vec<Usage> {
    let mut out: Vec<Usage> = Vec::new();
    let mut entry = |name: String| -> usize {
        match out.iter().position(|u| u.interface == name) {
            Some(i) => i,
            None => {
                out.push(Usage {
                    interface: name,
                    default: None,
                    networks: Vec::new(),
                });
                out.len() - 1
            }
        }
    };
    let mut defaults = Vec::new();
    if let Some(interface) = profile.binding.interface {
        defaults.push(entry(interface.to_string()));
    }
    let mut nets = Vec::new();
    for route in &profile.routes {
        if let Some(interface) = route.binding.interface {
            let i = entry(interface.to_string());
            nets.extend(route.to.iter().map(|n| (i, (n.network(), n.prefix_len()))));
        }
    }
    for i in defaults {
        out[i].default = Some(profile.binding);
    }
    for (i, net) in nets {
        out[i].networks.push(net);
    }
    out
}

fn check_interface(report: &mut Report, usage: &Usage, addresses: &[(String, IpAddr)]) {
    let name = &usage.interface;
    let Some(link) = host::link(name) else {
        report.broken.push(name.clone());
        report.fail(
            format!("interface {name} does not exist"),
            &[format!(
                "this machine has: {} (is the VPN connected?)",
                host::link_names().join(", ")
            )],
        );
        return;
    };
    if link.is_up() {
        report.ok(format!("interface {name} exists and is up"));
    } else {
        report.broken.push(name.clone());
        report.fail(
            format!(
                "interface {name} is down ({}, operstate {})",
                if link.admin_up {
                    "admin up"
                } else {
                    "admin down"
                },
                link.operstate
            ),
            &[format!("bring it up: sudo ip link set {name} up")],
        );
    }
    let routes = match host::routes(name) {
        Ok(routes) => routes,
        Err(e) => {
            report.warn(format!("cannot check routes via {name}: {e}"), &[]);
            return;
        }
    };
    let has_v6 = addresses
        .iter()
        .any(|(n, a)| n == name && matches!(a, IpAddr::V6(v6) if !is_link_local(v6)));
    let gateway = |v6: bool| gateway_hint(&routes, v6);
    if let Some(binding) = usage.default {
        for v6 in [false, true] {
            let any: IpAddr = if v6 {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            };
            let family = if v6 { "IPv6" } else { "IPv4" };
            // A family matters when the profile gives it a source, or, for a
            // profile without sources, IPv4 (and IPv6 when the link has it).
            let matters = if binding.source.is_empty() {
                !v6 || has_v6
            } else {
                binding.source.for_family_of(any).is_some()
            };
            if routes.iter().any(|r| r.covers(any, 0)) {
                report.ok(format!("{name} has a default {family} route"));
            } else if !v6 && link.on_link {
                report.ok(format!(
                    "{name} is point-to-point: IPv4 bound to it needs no route"
                ));
            } else if matters {
                report.fail(
                    format!(
                        "{name} has no default {family} route: connections bound to it fail \
                         with \"No route to host\""
                    ),
                    &route_hint(name, "default", &gateway(v6), v6),
                );
            } else {
                report.note(format!(
                    "{name} has no {family} route: {family} destinations bound to it fail \
                     (and do not leak)"
                ));
            }
        }
    }
    for &(net, len) in &usage.networks {
        let text = format!("{net}/{len}");
        if routes.iter().any(|r| r.covers(net, len)) {
            report.ok(format!("{name} has a route for {text}"));
        } else if net.is_ipv4() && link.on_link {
            report.ok(format!("{name} is point-to-point: {text} needs no route"));
        } else {
            report.fail(
                format!("{name} has no route for {text}: connections to it fail with \"No route to host\""),
                &route_hint(name, &text, &gateway(net.is_ipv6()), net.is_ipv6()),
            );
        }
    }
}

/// The older tool's advice for "No route to host": a route with a high
/// metric, so that only traffic bound to the interface uses it.
fn route_hint(name: &str, to: &str, gateway: &str, v6: bool) -> Vec<String> {
    let ip = if v6 { "ip -6" } else { "ip" };
    vec![
        "add one with a high metric, so that only bound traffic uses it:".to_owned(),
        format!("  sudo {ip} route add {to} via {gateway} dev {name} metric 500"),
    ]
}

/// A gateway already used through the interface, or a placeholder.
fn gateway_hint(routes: &[Route], v6: bool) -> String {
    routes
        .iter()
        .filter_map(|r| r.via)
        .find(|via| via.is_ipv6() == v6)
        .map_or_else(|| "<gateway>".to_owned(), |via| via.to_string())
}

fn is_link_local(v6: &std::net::Ipv6Addr) -> bool {
    v6.segments()[0] & 0xffc0 == 0xfe80
}

fn check_sources(report: &mut Report, profile: &Profile, addresses: &[(String, IpAddr)]) {
    let mut wanted: Vec<(IpAddr, Option<String>, &str)> = Vec::new();
    let mut add = |binding: &Binding, what: &'static str| {
        for source in binding.source.iter() {
            let interface = binding.interface.map(|i| i.to_string());
            if !wanted
                .iter()
                .any(|(s, i, _)| *s == source && *i == interface)
            {
                wanted.push((source, interface, what));
            }
        }
    };
    add(&profile.binding, "source");
    for route in &profile.routes {
        add(&route.binding, "route source");
    }
    for listen in profile.listen.iter() {
        if !wanted.iter().any(|(s, _, _)| *s == listen) {
            wanted.push((listen, None, "listen address"));
        }
    }
    for (address, interface, what) in wanted {
        let holders: Vec<&str> = addresses
            .iter()
            .filter(|(_, a)| *a == address)
            .map(|(n, _)| n.as_str())
            .collect();
        if holders.is_empty() {
            report.broken.push(address.to_string());
        }
        match (&interface, holders.as_slice()) {
            (_, []) => report.fail(
                format!("{what} {address} is not assigned to any interface: binding it fails"),
                &[format!(
                    "assign it, e.g. sudo ip addr add {address}/{} dev {}",
                    if address.is_ipv4() { 32 } else { 128 },
                    interface.as_deref().unwrap_or("<interface>")
                )],
            ),
            (Some(i), holders) if !holders.contains(&i.as_str()) => report.warn(
                format!(
                    "{what} {address} is assigned to {}, not to {i}",
                    holders.join(", ")
                ),
                &[format!(
                    "replies to it may not come back through {i} (reverse path filter)"
                )],
            ),
            (_, holders) => report.ok(format!(
                "{what} {address} is assigned (to {})",
                holders.join(", ")
            )),
        }
    }
}

fn check_dns(report: &mut Report, profile: &Profile) {
    let table = Table::compile(profile);
    let servers: Vec<SocketAddr> = match profile.dns_server() {
        Some(server) => vec![server],
        None => host::nameservers()
            .into_iter()
            .take(3)
            .map(|ip| SocketAddr::new(ip, 53))
            .collect(),
    };
    if servers.is_empty() {
        report.warn(
            "no DNS server: the profile rewrites none and /etc/resolv.conf lists none".to_owned(),
            &[],
        );
        return;
    }
    for server in servers {
        let decision = table.decide(server, Protocol::Udp);
        let target = decision.destination;
        let (interface, source) = match decision.verdict {
            Verdict::Block => {
                report.fail(
                    format!("DNS to {target} is blocked by {}", decision.origin),
                    &["name resolution fails for programs run with this profile".to_owned()],
                );
                continue;
            }
            Verdict::Direct => (None, None),
            Verdict::Bind(binding) => (
                binding.interface.map(|i| i.to_string()),
                binding.source.for_family_of(target.ip()),
            ),
        };
        let through = match (&interface, source) {
            (Some(i), _) => format!("through {i}"),
            (None, Some(s)) => format!("from {s}"),
            (None, None) => "directly (not bound)".to_owned(),
        };
        let cause = [interface.clone(), source.map(|s| s.to_string())]
            .into_iter()
            .flatten()
            .find(|what| report.broken.contains(what));
        if let Some(cause) = cause {
            report.note(format!(
                "DNS server {target} not tried {through}: {cause} is not usable (above)"
            ));
            continue;
        }
        match host::dns_query(target, interface.as_deref(), source, DNS_TIMEOUT) {
            Ok(took) => report.ok(format!(
                "DNS server {target} answers {through} ({} ms)",
                took.as_millis()
            )),
            Err(e) => report.fail(
                format!("DNS server {target} does not answer {through}: {e}"),
                &dns_hint(profile, interface.as_deref()),
            ),
        }
        if interface.is_none() && target.ip().is_loopback() && profile.binding.interface.is_some() {
            report.warn(
                format!(
                    "DNS goes to the local resolver {target}, which sends the query out on \
                     its own route, not through the profile's interface"
                ),
                &dns_hint(
                    profile,
                    profile.binding.interface.map(|i| i.to_string()).as_deref(),
                ),
            );
        }
    }
}

fn dns_hint(profile: &Profile, interface: Option<&str>) -> Vec<String> {
    vec![
        format!(
            "send DNS to a server reachable{}: in the profile, [profile.{}.dns] 53 = \"<server>\"",
            interface
                .map(|i| format!(" through {i}"))
                .unwrap_or_default(),
            profile.name
        ),
        "(ad hoc: --dns <server>)".to_owned(),
    ]
}

fn check_permission(report: &mut Report, profile: &Profile) {
    let interface = profile
        .binding
        .interface
        .or_else(|| profile.routes.iter().find_map(|r| r.binding.interface));
    let Some(interface) = interface else {
        report.note("the profile binds no interface: SO_BINDTODEVICE is not needed".to_owned());
        return;
    };
    // Probe on an interface that exists, so the answer is about permission.
    let probe = if host::link(interface.as_str()).is_some() {
        interface.to_string()
    } else {
        "lo".to_owned()
    };
    match host::may_bind_to_device(&probe) {
        Ok(()) => report.ok("this user may bind sockets to a device (SO_BINDTODEVICE)".to_owned()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => report.fail(
            "this user may not bind sockets to a device (SO_BINDTODEVICE: permission denied)"
                .to_owned(),
            &[
                "Linux before 5.7 allows it only with CAP_NET_RAW: upgrade the kernel, or run as root"
                    .to_owned(),
            ],
        ),
        Err(e) => report.warn(format!("cannot test SO_BINDTODEVICE on {probe}: {e}"), &[]),
    }
}

/// Whether `bindto run` can supervise a program (static and Go programs,
/// `--supervise`): a real one, `true`, is started under supervision.
fn check_supervision(report: &mut Report, profile: &Profile) {
    match crate::supervise::probe(&Table::compile(profile)) {
        Ok(()) => report.ok(
            "this kernel allows supervision (seccomp user notification, pidfd_getfd) \
             for static and Go programs"
                .to_owned(),
        ),
        Err(why) => report.fail(
            format!("this kernel does not allow supervision: {why}"),
            &[
                "static and Go programs are refused. Supervision needs Linux 5.9 or later, \
                 outside any other seccomp supervisor (a process under one, such as another \
                 `bindto run`, cannot have a second)"
                    .to_owned(),
            ],
        ),
    }
    // Supervision reads the program's memory (process_vm_readv), which Yama
    // allows a parent at levels 0 and 1, root at 2, nobody at 3.
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    match scope {
        Some(3) => report.fail(
            "kernel.yama.ptrace_scope = 3: supervised programs' network calls all fail \
             (bindto cannot read their arguments)"
                .to_owned(),
            &["set it to 1 or lower (it can only be lowered by a reboot)".to_owned()],
        ),
        Some(2) if !root => report.fail(
            "kernel.yama.ptrace_scope = 2: only root can supervise programs".to_owned(),
            &["set it to 1: sudo sysctl kernel.yama.ptrace_scope=1".to_owned()],
        ),
        _ => {}
    }
}
