//! 32-bit programs (issue 19): the i686 build of the shim binds a 32-bit
//! C client as the x86_64 build binds a 64-bit one, and one `LD_PRELOAD`
//! value, `<dir>/$PLATFORM/libbindto.so`, serves both classes, so that a
//! chain of 64-bit and 32-bit processes stays bound throughout.

use bindto_tests::dns::{self, DnsLab};
use bindto_tests::programs::{
    as_refs, bound_vars, compile, compile_as, i686_shim, path_str, write,
};
use bindto_tests::{CONFIG_VAR, Lab, PROFILE_VAR, shim_path};

const PROFILE: &str = "[profile.vpn]\ninterface = \"vpn0\"\n";
const TARGET: &str = "198.19.0.1";
const VPN: &str = "vpn 198.18.2.2\n";

/// `LD_PRELOAD` with `ld.so`'s `$PLATFORM`, as `bindto run` passes it.
fn platform_preload() -> String {
    let dir = shim_path().parent().expect("a directory").join("$PLATFORM");
    path_str(&dir.join("libbindto.so")).to_owned()
}

#[test]
fn a_32_bit_client_connects_and_sends_on_the_profiles_uplink() {
    let Some(lab) = Lab::new() else { return };
    let Some(shim) = i686_shim(lab.dir()) else {
        return;
    };
    let client = compile_as(lab.dir(), "netclient", "netclient32", &["-m32"]);
    let client = path_str(&client);

    // Unbound, the default route: wan.
    let out = lab.run_client(&[client, "tcp", TARGET, "80"], &[]);
    assert_eq!(out.assert_success(), "wan 198.18.1.2\n");

    let config = write(&lab, "vpn.toml", PROFILE);
    let mut vars = bound_vars(&config, "vpn");
    vars[0].1 = path_str(&shim).to_owned();
    for proto in ["tcp", "udp"] {
        let out = lab.run_client(&[client, proto, TARGET, "80"], &as_refs(&vars));
        assert_eq!(out.assert_success(), VPN, "{proto}: {out}");
        assert_eq!(out.stderr, "", "{proto}: {out}");
    }
}

/// 64 → 32 → 64: a 64-bit shell starts the 32-bit client, which starts a
/// 64-bit one; with `$PLATFORM` in `LD_PRELOAD` each loads its own build,
/// and no `ld.so` complains of a wrong ELF class.
#[test]
fn one_preload_value_binds_a_chain_of_64_and_32_bit_processes() {
    let Some(lab) = Lab::new() else { return };
    if i686_shim(lab.dir()).is_none() {
        return;
    }
    let client32 = compile_as(lab.dir(), "netclient", "netclient32", &["-m32"]);
    let client64 = compile(lab.dir(), "netclient");
    let script = format!(
        "{c32} tcp {TARGET} 80 && {c32} spawn {c64} udp {TARGET} 80 && {c32} udp {TARGET} 80",
        c32 = path_str(&client32),
        c64 = path_str(&client64),
    );
    let config = write(&lab, "vpn.toml", PROFILE);
    let preload = platform_preload();
    let vars = [
        ("LD_PRELOAD", preload.as_str()),
        (CONFIG_VAR, path_str(&config)),
        (PROFILE_VAR, "vpn"),
    ];
    let out = lab.run_client(&["bash", "-c", &script], &vars);
    assert_eq!(out.assert_success(), VPN.repeat(3), "{out}");
    assert_eq!(out.stderr, "", "{out}");
    assert_eq!((lab.count("vpn"), lab.count("wan")), (3, 0));
}

/// `bindto run` starts a 32-bit program bound (it refused it before), and
/// a 64-bit shell's 32-bit child too.
#[test]
fn bindto_run_binds_a_32_bit_program_started_directly_or_by_a_shell() {
    let Some(lab) = Lab::new() else { return };
    if i686_shim(lab.dir()).is_none() {
        return;
    }
    let client = compile_as(lab.dir(), "netclient", "netclient32", &["-m32"]);
    let client = path_str(&client);
    let config = write(&lab, "vpn.toml", PROFILE);
    let bindto = shim_path().with_file_name("bindto");
    let bindto = path_str(&bindto);
    let vars = [(CONFIG_VAR, path_str(&config))];
    let direct = [
        bindto, "run", "-p", "vpn", "--", client, "tcp", TARGET, "80",
    ];
    let out = lab.run_client(&direct, &vars);
    assert_eq!(out.assert_success(), VPN, "{out}");
    let shell = format!("{client} udp {TARGET} 80");
    let out = lab.run_client(
        &[bindto, "run", "-p", "vpn", "--", "bash", "-c", &shell],
        &vars,
    );
    assert_eq!(out.assert_success(), VPN, "{out}");
    assert_eq!(out.stderr, "", "{out}");
    assert_eq!((lab.count("vpn"), lab.count("wan")), (2, 0));
}

/// getaddrinfo in a 32-bit program asks the profile's DNS server, through
/// the profile's interface, and nothing reaches resolv.conf's.
#[test]
fn a_32_bit_getaddrinfo_asks_the_profiles_dns_server() {
    let Some(dns) = DnsLab::start() else { return };
    let Some(shim) = i686_shim(dns.lab.dir()) else {
        return;
    };
    let client = compile_as(dns.lab.dir(), "netclient", "netclient32", &["-m32"]);
    let shim = path_str(&shim);
    let out = dns.lab.run_bound(
        dns::PROFILE,
        "vpn",
        &[path_str(&client), "resolve", dns::HOST],
        &[("LD_PRELOAD", shim)],
    );
    let mut addrs: Vec<&str> = out.assert_success().lines().collect();
    addrs.sort_unstable();
    assert_eq!(addrs, ["198.19.0.1", "2001:db8:ff::1"], "{out}");
    assert!(!dns.vpn.queries().is_empty());
    dns.assert_no_leak();
}
