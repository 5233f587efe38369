//! Side doors (issue 16) that reached libc past the shim, closed: plugins
//! opened with `RTLD_DEEPBIND` or into a namespace of their own
//! (`dlmopen`), and glibc's asynchronous lookups (`getaddrinfo_a`).
//!
//! Each runs under the profile of the issue, `vpn0` with the vpn-side
//! nameserver, in a lab whose default route is `wan0`: a call that went
//! past the shim answers from the wan side.
//!
//! The plugin programs (`tests/programs/plugins.c`, `plugin.c`,
//! `loader.c`) are built into the lab's directory: the host program
//! exports `bindto_test_scope` (`-rdynamic`), and `libloader.so` has a
//! DT_RUNPATH of `$ORIGIN/sub`, where `libplugin.so` is.

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;

use bindto_tests::dns::{self, DnsServer};
use bindto_tests::programs::{TARGET, compile_as, i686_shim, path_str};
use bindto_tests::{ECHO_PORT, HTTP_PORT, Lab, RunOutput, VPN as VPN_LINK, WAN};

/// The profile of the issue: bound to vpn0, names asked of the vpn-side
/// server.
const PROFILE: &str =
    "[profile.vpn]\ninterface = \"vpn0\"\n\n[profile.vpn.dns]\n53 = \"198.18.2.1\"\n";

/// Bound to vpn0, with no DNS server: resolution stays libc's.
const NO_DNS: &str = "[profile.vpn]\ninterface = \"vpn0\"\n";

/// The answer of the vpn side's echo server to the client's vpn0 address.
const VPN: &str = "vpn 198.18.2.2";

/// The host program, the plugin, and the loader with its RUNPATH.
struct Plugins {
    host: PathBuf,
    plugin: PathBuf,
    loader: PathBuf,
}

fn plugins(lab: &Lab) -> Plugins {
    plugins_as(lab, &[])
}

/// [`plugins`] built with `flags` too (`-m32`).
fn plugins_as(lab: &Lab, flags: &[&str]) -> Plugins {
    let dir = lab.dir();
    let with = |more: &[&'static str]| [flags, more].concat();
    let host = compile_as(dir, "plugins", "plugins", &with(&["-rdynamic"]));
    let plugin = compile_as(dir, "plugin", "plugin.so", &with(&["-shared", "-fPIC"]));
    compile_as(
        dir,
        "plugin",
        "sub/libplugin.so",
        &with(&["-shared", "-fPIC"]),
    );
    let loader = compile_as(
        dir,
        "loader",
        "libloader.so",
        &with(&[
            "-shared",
            "-fPIC",
            "-Wl,--enable-new-dtags",
            "-Wl,-rpath,$ORIGIN/sub",
        ]),
    );
    Plugins {
        host,
        plugin,
        loader,
    }
}

impl Plugins {
    /// The host program with `args` under the profile, `vars` added.
    fn run(&self, lab: &Lab, args: &[&str], vars: &[(&str, &str)]) -> RunOutput {
        let mut all = vec![path_str(&self.host)];
        all.extend_from_slice(args);
        lab.run_bound(PROFILE, "vpn", &all, vars)
    }
}

/// `plugins MODE plugin.so` to the echo port of the lab's first target,
/// under the profile: both datagrams, sent connected and not, answered
/// from the vpn side, nothing on the wan side.
fn assert_the_plugin_sends_through_vpn0(mode: &str) {
    let Some(lab) = Lab::new() else { return };
    let p = plugins(&lab);
    let port = ECHO_PORT.to_string();
    let out = p.run(&lab, &[mode, path_str(&p.plugin), TARGET, &port], &[]);
    assert_eq!(
        out.assert_success(),
        format!("connected {VPN}\nsendto {VPN}\n"),
        "{out}"
    );
    assert_eq!(lab.count("wan"), 0);
}

#[test]
fn a_plugin_opened_with_rtld_deepbind_connects_and_sends_through_vpn0() {
    assert_the_plugin_sends_through_vpn0("deepbind");
}

#[test]
fn a_plugin_opened_by_bare_name_is_found_through_its_callers_runpath() {
    // loader_open is dlopen's caller: glibc looks "libplugin.so" up along
    // libloader.so's RUNPATH ($ORIGIN/sub), as without the shim, and the
    // plugin, opened with RTLD_DEEPBIND, still sends through vpn0.
    let Some(lab) = Lab::new() else { return };
    let p = plugins(&lab);
    let loader = path_str(&p.loader);
    let port = ECHO_PORT.to_string();
    let out = p.run(
        &lab,
        &["runpath", loader, "libplugin.so", TARGET, &port],
        &[],
    );
    assert_eq!(out.assert_success(), format!("sendto {VPN}\n"), "{out}");
    assert_eq!(lab.count("wan"), 0);
}

/// The i686 front's `dlopen` and `dlmopen` (their arguments on the stack):
/// a 32-bit host's plugin opened with RTLD_DEEPBIND, into a new namespace,
/// and by bare name along its caller's RUNPATH, all through vpn0.
#[test]
fn a_32_bit_programs_plugins_send_through_vpn0() {
    let Some(lab) = Lab::new() else { return };
    let Some(shim) = i686_shim(lab.dir()) else {
        return;
    };
    let p = plugins_as(&lab, &["-m32"]);
    let port = ECHO_PORT.to_string();
    let preload = [("LD_PRELOAD", path_str(&shim))];
    for mode in ["deepbind", "dlmopen"] {
        let out = p.run(&lab, &[mode, path_str(&p.plugin), TARGET, &port], &preload);
        let both = format!("connected {VPN}\nsendto {VPN}\n");
        assert_eq!(out.assert_success(), both, "{mode}: {out}");
    }
    let runpath = [
        "runpath",
        path_str(&p.loader),
        "libplugin.so",
        TARGET,
        &port,
    ];
    let out = p.run(&lab, &runpath, &preload);
    assert_eq!(out.assert_success(), format!("sendto {VPN}\n"), "{out}");
    assert_eq!(lab.count("wan"), 0);
}

#[test]
fn a_process_that_asks_nothing_keeps_rtld_deepbind() {
    // The plugin finds its own bindto_test_scope before the host's only
    // with RTLD_DEEPBIND: kept under the front when nothing asks for
    // bindto, dropped when the profile is asked for.
    let Some(lab) = Lab::new() else { return };
    let p = plugins(&lab);
    let args = [path_str(&p.host), "scope", path_str(&p.plugin)];
    let shim = bindto_tests::shim_path();
    let out = lab.run_client(&args, &[("LD_PRELOAD", path_str(&shim))]);
    assert_eq!(out.assert_success(), "scope plugin\n", "{out}");
    let out = lab.run_client(&args, &[]);
    assert_eq!(out.assert_success(), "scope plugin\n", "{out}");
    let out = p.run(&lab, &args[1..], &[]);
    assert_eq!(out.assert_success(), "scope host\n", "{out}");
}

#[test]
fn a_plugin_opened_into_a_new_namespace_sends_through_vpn0() {
    // dlmopen(LM_ID_NEWLM) gives the plugin its own libc, without the
    // preload: the front opens itself into the namespace first.
    assert_the_plugin_sends_through_vpn0("dlmopen");
}

#[test]
fn a_new_namespace_the_front_cannot_enter_is_refused() {
    // The preloaded front's file is gone by the time of the dlmopen: the
    // plugin would be opened with a libc of its own and nothing before
    // it, so the call fails, with dlerror's reason and one line.
    let Some(lab) = Lab::new() else { return };
    let p = plugins(&lab);
    let alone = lab.dir().join("alone");
    fs::create_dir_all(&alone).unwrap();
    let front = alone.join("libbindto.so");
    fs::copy(bindto_tests::shim_path(), &front).unwrap();
    fs::copy(
        bindto_tests::engine_path(),
        alone.join("libbindto_engine.so"),
    )
    .unwrap();
    let front = path_str(&front);
    let args = ["dlmopen-unlinked", front, path_str(&p.plugin)];
    let out = p.run(&lab, &args, &[("LD_PRELOAD", front)]);
    out.assert_failure();
    assert!(
        out.stdout.starts_with(&format!("dlmopen {front}: ")),
        "{out}"
    );
    assert_eq!(
        out.stderr,
        "bindto: dlmopen(LM_ID_NEWLM) refused: libbindto.so cannot be opened into the \
         new namespace (dlerror says why), and a library there would escape the profile\n",
    );
}

/// A lab with DNS servers on the vpn side (the profile's) and the wan side
/// (the client's resolv.conf), and `gai_async` built; dropped servers
/// first, then the lab.
struct Lookups {
    vpn: DnsServer,
    wan: DnsServer,
    program: PathBuf,
    lab: Lab,
}

fn lookups() -> Option<Lookups> {
    // No uplink server on port 53: the DNS servers take it.
    let lab = Lab::builder().ports([ECHO_PORT, HTTP_PORT]).build()?;
    let resolv = format!(
        "nameserver {}\noptions timeout:1 attempts:2\n",
        WAN.server_v4()
    );
    lab.set_client_file("resolv.conf", &resolv);
    lab.set_client_file("hosts", "127.0.0.1 localhost\n");
    Some(Lookups {
        vpn: DnsServer::start(&lab, "vpn"),
        wan: DnsServer::start(&lab, "wan"),
        program: compile_as(lab.dir(), "gai_async", "gai_async", &[]),
        lab,
    })
}

impl Lookups {
    /// `gai_async ARGS` under `profile`.
    fn run(&self, profile: &str, args: &[&str]) -> RunOutput {
        let mut all = vec![path_str(&self.program)];
        all.extend_from_slice(args);
        self.lab.run_bound(profile, "vpn", &all, &[])
    }

    /// Asserts that the vpn-side server got queries, all from the client's
    /// vpn0 address, and the wan-side one none.
    #[track_caller]
    fn assert_through_vpn0(&self) {
        assert_eq!(self.wan.queries(), [], "queries leaked to the wan side");
        let queries = self.vpn.queries();
        assert!(!queries.is_empty(), "no query reached the profile's server");
        for query in queries {
            assert_eq!(
                query.peer.ip(),
                IpAddr::from(VPN_LINK.client_v4()),
                "{query:?}"
            );
        }
    }
}

#[test]
fn getaddrinfo_a_gai_wait_resolves_through_vpn0() {
    let Some(l) = lookups() else { return };
    let out = l.run(PROFILE, &["wait", dns::HOST, "nope.bindto.test"]);
    // EAI_NONAME (-2) for the name the zone does not have.
    assert_eq!(
        out.assert_success(),
        "wait 0\nhost.bindto.test 0 198.19.0.1\nnope.bindto.test -2\n",
        "{out}"
    );
    l.assert_through_vpn0();
}

#[test]
fn getaddrinfo_a_gai_nowait_and_gai_suspend_resolve_through_vpn0() {
    let Some(l) = lookups() else { return };
    let out = l.run(PROFILE, &["nowait", dns::HOST]);
    // Once finished, the request is done for gai_cancel and gai_suspend
    // too: EAI_ALLDONE (-103).
    assert_eq!(
        out.assert_success(),
        "suspend 0\nhost.bindto.test 0 198.19.0.1\ncancel -103\nsuspend -103\n",
        "{out}"
    );
    l.assert_through_vpn0();
}

#[test]
fn getaddrinfo_a_notifies_by_signal_and_by_thread() {
    let Some(l) = lookups() else { return };
    let out = l.run(PROFILE, &["signal", dns::HOST]);
    // SI_ASYNCNL (-60), the value, sent by the process itself.
    assert_eq!(
        out.assert_success(),
        "signal -60 42 self\nhost.bindto.test 0 198.19.0.1\n",
        "{out}"
    );
    let out = l.run(PROFILE, &["thread", dns::HOST]);
    assert_eq!(
        out.assert_success(),
        "thread 42\nhost.bindto.test 0 198.19.0.1\n",
        "{out}"
    );
    l.assert_through_vpn0();
}

#[test]
fn getaddrinfo_a_without_a_dns_server_stays_libcs() {
    // As getaddrinfo under such a profile: libc resolves, by its route.
    let Some(l) = lookups() else { return };
    let out = l.run(NO_DNS, &["wait", dns::HOST]);
    assert_eq!(
        out.assert_success(),
        "wait 0\nhost.bindto.test 0 198.19.0.2\n",
        "{out}"
    );
    assert!(!l.wan.queries().is_empty());
    assert_eq!(l.vpn.queries(), []);
}

#[test]
fn getaddrinfo_a_requests_are_waited_for_and_cancelled_as_glibcs() {
    // The profile's server does not answer (no host at 198.18.2.9): the
    // request runs for the resolver's timeout, and gai_suspend, gai_error
    // and gai_cancel say so meanwhile, as glibc's for its own.
    let Some(l) = lookups() else { return };
    let silent = "[profile.vpn]\ninterface = \"vpn0\"\n\n[profile.vpn.dns]\n\
                  53 = \"198.18.2.9\"\ntimeout_ms = 1000\nattempts = 1\n";
    let out = l.run(silent, &["slow", dns::HOST]);
    // EAI_AGAIN (-3) for the timeout, EAI_INPROGRESS (-100),
    // EAI_NOTCANCELED (-102); EAI_CANCELED (-101) for the 21st, waiting
    // for one of 20 threads; then the lookup's own EAI_AGAIN.
    assert_eq!(
        out.assert_success(),
        "suspend -3\nerror -100\ncancel -102\ncancel -101\nsuspend 0\nhost.bindto.test -3\n",
        "{out}"
    );
    assert_eq!(l.wan.queries(), [], "queries leaked to the wan side");
}

#[test]
fn php_sockets_and_curl_go_through_vpn0() {
    // The issue's own case: PHP's sockets and curl extensions, opened with
    // RTLD_DEEPBIND, curl resolving through the profile's server.
    let Some(l) = lookups() else { return };
    let script = bindto_tests::run::workspace_root().join("tests/programs/side_doors.php");
    let out = l
        .lab
        .run_bound(PROFILE, "vpn", &["php", path_str(&script)], &[]);
    assert_eq!(
        out.assert_success(),
        format!("connected {VPN}\nsendto {VPN}\ncurl {VPN}\n"),
        "{out}"
    );
    assert_eq!(l.lab.count("wan"), 0);
    l.assert_through_vpn0();
}
