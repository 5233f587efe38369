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
use std::path::PathBuf;

use bindto_tests::programs::{TARGET, compile_as, path_str};
use bindto_tests::{ECHO_PORT, Lab, RunOutput};

/// The profile of the issue: bound to vpn0, names asked of the vpn-side
/// server.
const PROFILE: &str =
    "[profile.vpn]\ninterface = \"vpn0\"\n\n[profile.vpn.dns]\n53 = \"198.18.2.1\"\n";

/// The answer of the vpn side's echo server to the client's vpn0 address.
const VPN: &str = "vpn 198.18.2.2";

/// The host program, the plugin, and the loader with its RUNPATH.
struct Plugins {
    host: PathBuf,
    plugin: PathBuf,
    loader: PathBuf,
}

fn plugins(lab: &Lab) -> Plugins {
    let dir = lab.dir();
    let host = compile_as(dir, "plugins", "plugins", &["-rdynamic"]);
    let plugin = compile_as(dir, "plugin", "plugin.so", &["-shared", "-fPIC"]);
    compile_as(dir, "plugin", "sub/libplugin.so", &["-shared", "-fPIC"]);
    let loader = compile_as(
        dir,
        "loader",
        "libloader.so",
        &[
            "-shared",
            "-fPIC",
            "-Wl,--enable-new-dtags",
            "-Wl,-rpath,$ORIGIN/sub",
        ],
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

#[test]
fn a_plugin_opened_with_rtld_deepbind_connects_and_sends_through_vpn0() {
    let Some(lab) = Lab::new() else { return };
    let p = plugins(&lab);
    let port = ECHO_PORT.to_string();
    let out = p.run(&lab, &["deepbind", path_str(&p.plugin), TARGET, &port], &[]);
    assert_eq!(
        out.assert_success(),
        format!("connected {VPN}\nsendto {VPN}\n"),
        "{out}"
    );
    assert_eq!(lab.count("wan"), 0);
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
    let Some(lab) = Lab::new() else { return };
    let p = plugins(&lab);
    let port = ECHO_PORT.to_string();
    let out = p.run(&lab, &["dlmopen", path_str(&p.plugin), TARGET, &port], &[]);
    assert_eq!(
        out.assert_success(),
        format!("connected {VPN}\nsendto {VPN}\n"),
        "{out}"
    );
    assert_eq!(lab.count("wan"), 0);
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
