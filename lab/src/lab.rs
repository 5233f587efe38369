//! The lab: a client namespace with three uplinks, each to a server
//! namespace running an uplink server, built per test and torn down on drop.
//!
//! Namespaces are named `bt<pid>-<n>-<role>` (`client`, `wan`, `vpn`,
//! `alt`), unique per lab so tests can run in parallel. Device names are
//! fixed (`wan0` ... in the client, `eth0` in each server) because each
//! lives in its own namespace; veths are created from inside the client
//! namespace with the peer put straight into the server's, so the fixed
//! names never meet in the root namespace. A lab left behind by a killed
//! test process is removed by the next lab of any later process.

use std::env;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{self, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::thread;
use std::time::Duration;

use crate::cmd::{check, ip, ip_in, try_run};
use crate::log::{self, LogLine};
use crate::net::{DEFAULT_PORTS, PREFIX_V4, PREFIX_V6, TARGETS_V4, TARGETS_V6, UPLINKS, Uplink};
use crate::privilege::{self, Access};
use crate::run::{self, DEFAULT_TIMEOUT, RunOutput};
use crate::server::{self, Server};

/// Environment variable naming the profile config file for the shim.
pub const CONFIG_VAR: &str = "BINDTO_CONFIG";
/// Environment variable naming the profile to apply.
pub const PROFILE_VAR: &str = "BIND_PROFILE";

/// Prefix of everything a lab names: namespaces `bt<pid>-...`, and its
/// temporary directory `bindto-e2e-bt<pid>-...`.
const PREFIX: &str = "bt";
const DIR_PREFIX: &str = "bindto-e2e-";

/// Each server namespace's end of its veth.
const SERVER_DEV: &str = "eth0";

/// Settings for a [`Lab`]; [`Lab::new`] takes the defaults.
#[derive(Clone, Debug)]
pub struct LabBuilder {
    ports: Vec<u16>,
    server_bin: Option<PathBuf>,
    timeout: Duration,
}

impl Default for LabBuilder {
    fn default() -> Self {
        LabBuilder {
            ports: DEFAULT_PORTS.to_vec(),
            server_bin: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl LabBuilder {
    /// Ports the servers answer on, TCP and UDP each, instead of
    /// [`DEFAULT_PORTS`].
    pub fn ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.ports = ports.into_iter().collect();
        self
    }

    /// The `uplink-server` binary to run, instead of the one found next to
    /// the test binary (see [`server::locate`]).
    pub fn server_bin(mut self, path: impl Into<PathBuf>) -> Self {
        self.server_bin = Some(path.into());
        self
    }

    /// How long a client run may take before it is killed, instead of
    /// [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the lab, or returns `None` when the test must stop here
    /// (skipped, or already run in a user namespace; see the crate docs).
    ///
    /// # Panics
    /// If any setup step fails (with that step's stderr), or the lab is
    /// required (`BINDTO_E2E=require`) but cannot run.
    #[track_caller]
    pub fn build(self) -> Option<Lab> {
        match privilege::access() {
            Ok(Access::Here) => {}
            Ok(Access::RanInChild) => return None,
            Err(reason) => {
                privilege::skip(&reason);
                return None;
            }
        }
        remove_stale_labs();
        let bin = self.server_bin.unwrap_or_else(server::locate);

        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "{PREFIX}{}-{}",
            process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = env::temp_dir().join(format!("{DIR_PREFIX}{prefix}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));

        // Built into a Lab from the start so that, if a step panics, the
        // unwinding drops it and removes what was made so far.
        let mut lab = Lab {
            client: format!("{prefix}-client"),
            prefix,
            dir,
            timeout: self.timeout,
            namespaces: Vec::new(),
            servers: Vec::new(),
            extra_addrs: Mutex::new(Vec::new()),
            runs: AtomicUsize::new(0),
            bound_vars: Vec::new(),
        };
        lab.build_client();
        for uplink in UPLINKS {
            lab.build_uplink(uplink);
        }
        for uplink in UPLINKS {
            let server = Server::start(
                &bin,
                &lab.namespace(uplink),
                uplink.name,
                &lab.log_path(uplink.name),
                &lab.dir.join(format!("{}.stderr", uplink.name)),
                &uplink.server_addrs(),
                &self.ports,
            );
            lab.servers.push(server);
        }
        Some(lab)
    }
}

/// A client namespace with uplinks `wan0`, `vpn0`, `alt0` to three server
/// namespaces, each answering on every target address; see [`crate::net`]
/// for the addresses. Everything is removed when it is dropped, even when
/// the test panics.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    client: String,
    dir: PathBuf,
    timeout: Duration,
    /// Namespaces created so far, in order.
    namespaces: Vec<String>,
    servers: Vec<Server>,
    /// Addresses added with [`Lab::add_client_addr`], to restore when an
    /// uplink comes back up (a link going down drops its IPv6 addresses).
    extra_addrs: Mutex<Vec<(Uplink, IpAddr)>>,
    /// Numbers the profile files of [`Lab::run_bound`].
    runs: AtomicUsize,
    /// Set by [`Lab::set_bound_vars`].
    bound_vars: Vec<(String, String)>,
}

impl Lab {
    /// A lab with the default settings, or `None` when the test must stop
    /// here: `let Some(lab) = Lab::new() else { return };`
    ///
    /// # Panics
    /// As [`LabBuilder::build`].
    #[track_caller]
    pub fn new() -> Option<Lab> {
        LabBuilder::default().build()
    }

    /// Settings for a lab other than the defaults.
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// The client namespace's name, for `ip netns exec`.
    pub fn client(&self) -> &str {
        &self.client
    }

    /// The name of the server namespace behind `uplink` (`"wan"`, ...).
    ///
    /// # Panics
    /// For an unknown uplink name.
    #[track_caller]
    pub fn server_ns(&self, uplink: &str) -> String {
        self.namespace(Uplink::named(uplink))
    }

    fn namespace(&self, uplink: Uplink) -> String {
        format!("{}-{}", self.prefix, uplink.name)
    }

    /// The lab's temporary directory (logs, profile files), removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log file of `uplink`'s server (format: [`crate::log`]).
    pub fn log_path(&self, uplink: &str) -> PathBuf {
        self.dir.join(format!("{}.log", Uplink::named(uplink).name))
    }

    /// Every connection and datagram `uplink`'s server has received, in
    /// order. Each is logged before it is answered, so a client that got
    /// its answer is already in here.
    #[track_caller]
    pub fn received(&self, uplink: &str) -> Vec<LogLine> {
        let path = self.log_path(uplink);
        let text = fs::read_to_string(&path).unwrap_or_default();
        log::parse(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    }

    /// How many connections and datagrams `uplink`'s server has received.
    #[track_caller]
    pub fn count(&self, uplink: &str) -> usize {
        self.received(uplink).len()
    }

    /// Empties every server's log, e.g. between the phases of a test.
    pub fn clear_logs(&self) {
        for uplink in UPLINKS {
            let path = self.log_path(uplink.name);
            // The servers append (O_APPEND), so they write at the new end.
            fs::write(&path, "")
                .unwrap_or_else(|error| panic!("cannot clear {}: {error}", path.display()));
        }
    }

    /// Sets the client's end of `uplink` down: its routes go, and sockets
    /// bound to it can no longer send.
    #[track_caller]
    pub fn set_uplink_down(&self, uplink: &str) {
        let uplink = Uplink::named(uplink);
        ip_in(&self.client, &["link", "set", uplink.dev, "down"]);
    }

    /// Sets the client's end of `uplink` up again and restores what going
    /// down removed: its IPv6 addresses and its default routes.
    #[track_caller]
    pub fn set_uplink_up(&self, uplink: &str) {
        self.bring_up(Uplink::named(uplink));
    }

    /// Deletes `uplink`'s veth (both ends): the interface no longer exists
    /// in the client. Its server keeps running, unreachable.
    #[track_caller]
    pub fn delete_uplink(&self, uplink: &str) {
        let uplink = Uplink::named(uplink);
        ip_in(&self.client, &["link", "del", uplink.dev]);
    }

    /// Adds a second client address on `uplink`, e.g.
    /// `VPN.host_v4(3)`, for `source` tests.
    ///
    /// # Panics
    /// If `addr` is not in the uplink's subnets (the server would have no
    /// route back to it), or `ip` fails.
    #[track_caller]
    pub fn add_client_addr(&self, uplink: &str, addr: IpAddr) {
        let uplink = Uplink::named(uplink);
        assert!(
            uplink.contains(addr),
            "{addr} is not in {}'s subnets",
            uplink.name
        );
        self.add_addr(uplink, addr);
        self.extra_addrs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((uplink, addr));
    }

    /// Writes `/etc/netns/<client>/<name>`, which `ip netns exec` (and so
    /// every client run) bind-mounts over `/etc/<name>`: e.g.
    /// `"resolv.conf"` to name the client's nameserver, `"hosts"` for its
    /// hosts file. Removed when the lab is dropped.
    ///
    /// # Panics
    /// If the file cannot be written (e.g. `/etc` is read-only).
    #[track_caller]
    pub fn set_client_file(&self, name: &str, contents: &str) {
        let dir = netns_etc(&self.client);
        fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        let path = dir.join(name);
        fs::write(&path, contents)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    }

    /// Runs `ip -n <client> ARGS...` and returns its stdout, for anything
    /// the helpers above do not cover (e.g. `["route", "show"]`).
    ///
    /// # Panics
    /// If it fails, with its stderr.
    #[track_caller]
    pub fn ip_client(&self, args: &[&str]) -> String {
        ip_in(&self.client, args)
    }

    /// Runs `args` in the client namespace, with only `PATH` and `vars` in
    /// its environment, killed after the lab's timeout.
    #[track_caller]
    pub fn run_client(&self, args: &[&str], vars: &[(&str, &str)]) -> RunOutput {
        run::run_in(&self.client, args, vars, self.timeout)
    }

    /// Runs `args` in the client namespace under the shim:
    /// `LD_PRELOAD=<shim_path()>`, `BINDTO_CONFIG=<profile_toml, written to
    /// a file in the lab's directory>`, `BIND_PROFILE=<profile>`, then
    /// those of [`set_bound_vars`](Self::set_bound_vars), then `vars`
    /// (later ones override earlier ones).
    ///
    /// # Panics
    /// If the shim is not built (see [`run::shim_path`]).
    #[track_caller]
    pub fn run_bound(
        &self,
        profile_toml: &str,
        profile: &str,
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> RunOutput {
        let shim = run::shim_path();
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let config = self.dir.join(format!("profile-{n}.toml"));
        fs::write(&config, profile_toml)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", config.display()));
        let shim = shim.to_str().expect("shim path is UTF-8");
        let config = config.to_str().expect("temp dir is UTF-8");
        let mut all = vec![
            ("LD_PRELOAD", shim),
            (CONFIG_VAR, config),
            (PROFILE_VAR, profile),
        ];
        all.extend(
            self.bound_vars
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        all.extend_from_slice(vars);
        self.run_client(args, &all)
    }

    /// Variables every later [`run_bound`](Self::run_bound) sets, for a
    /// test run more than one way (with the shim's log on, say) without
    /// each call saying so.
    pub fn set_bound_vars(&mut self, vars: &[(&str, &str)]) {
        self.bound_vars = vars
            .iter()
            .map(|&(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
    }

    /// Runs `args` in `uplink`'s server namespace, like
    /// [`run_client`](Self::run_client): e.g. to connect to a program in
    /// the client, for `listen` tests (the client's addresses on an uplink
    /// are reachable from its server).
    #[track_caller]
    pub fn run_server(&self, uplink: &str, args: &[&str], vars: &[(&str, &str)]) -> RunOutput {
        run::run_in(&self.server_ns(uplink), args, vars, self.timeout)
    }

    fn add_namespace(&mut self, name: &str) {
        ip(&["netns", "add", name]);
        self.namespaces.push(name.to_owned());
        ip_in(name, &["link", "set", "lo", "up"]);
    }

    fn build_client(&mut self) {
        let client = self.client.clone();
        self.add_namespace(&client);
        // Strict reverse-path filtering would drop answers arriving on an
        // uplink other than the one routed back to the target, as for
        // `curl --interface vpn0`. New namespaces default to off, unless
        // the host makes them inherit its own setting: say it.
        // (sh rather than sysctl: procps may not be installed.)
        let script = "for c in all default; do echo 0 > /proc/sys/net/ipv4/conf/$c/rp_filter; done";
        check(Command::new("ip").args(["netns", "exec", &client, "sh", "-ec", script]));
    }

    fn build_uplink(&mut self, uplink: Uplink) {
        let server = self.namespace(uplink);
        self.add_namespace(&server);
        ip_in(
            &self.client,
            &[
                "link", "add", uplink.dev, "type", "veth", "peer", "name", SERVER_DEV, "netns",
                &server,
            ],
        );
        let link_v4 = format!("{}/{PREFIX_V4}", uplink.server_v4());
        let link_v6 = format!("{}/{PREFIX_V6}", uplink.server_v6());
        // nodad: usable at once, instead of tentative for a second or two
        // (binding a tentative address fails).
        ip_in(&server, &["addr", "add", &link_v4, "dev", SERVER_DEV]);
        ip_in(
            &server,
            &["addr", "add", &link_v6, "dev", SERVER_DEV, "nodad"],
        );
        ip_in(&server, &["link", "set", SERVER_DEV, "up"]);
        // Routes back to any client address, not only the link's: a packet
        // that left through this uplink with another uplink's source (a
        // socket bound to an address but not to its device) is answered
        // and logged, so the test sees what happened instead of a timeout.
        for (family, range, client) in [
            ("-4", "198.18.0.0/15", IpAddr::from(uplink.client_v4())),
            ("-6", "fd00::/8", uplink.client_v6().into()),
        ] {
            let client = client.to_string();
            ip_in(&server, &[family, "route", "add", range, "via", &client]);
        }
        for target in TARGETS_V4 {
            ip_in(
                &server,
                &["addr", "add", &format!("{target}/32"), "dev", "lo"],
            );
        }
        for target in TARGETS_V6 {
            let target = format!("{target}/128");
            ip_in(&server, &["addr", "add", &target, "dev", "lo", "nodad"]);
        }
        self.bring_up(uplink);
    }

    /// Brings the client's end of `uplink` up with its addresses and
    /// default routes; idempotent (`replace`), so it also restores them.
    fn bring_up(&self, uplink: Uplink) {
        let dev = uplink.dev;
        ip_in(&self.client, &["link", "set", dev, "up"]);
        let extras = self
            .extra_addrs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let own = [uplink.client_v4().into(), uplink.client_v6().into()];
        let extras = extras
            .into_iter()
            .filter(|(of, _)| *of == uplink)
            .map(|(_, addr)| addr);
        for addr in own.into_iter().chain(extras) {
            self.add_addr(uplink, addr);
        }
        let metric = uplink.metric.to_string();
        for (family, gateway) in [
            ("-4", IpAddr::from(uplink.server_v4())),
            ("-6", uplink.server_v6().into()),
        ] {
            let gateway = gateway.to_string();
            let route = [
                family, "route", "replace", "default", "via", &gateway, "dev", dev, "metric",
                &metric,
            ];
            ip_in(&self.client, &route);
        }
    }

    /// Adds (or re-adds) `addr` on the client's end of `uplink`, with the
    /// uplink's prefix length.
    fn add_addr(&self, uplink: Uplink, addr: IpAddr) {
        let (cidr, extra): (String, &[&str]) = match addr {
            IpAddr::V4(_) => (format!("{addr}/{PREFIX_V4}"), &[]),
            IpAddr::V6(_) => (format!("{addr}/{PREFIX_V6}"), &["nodad"]),
        };
        let mut args = vec!["addr", "replace", &cidr, "dev", uplink.dev];
        args.extend_from_slice(extra);
        ip_in(&self.client, &args);
    }

    /// Prints the servers' logs, to explain a failing test.
    fn dump_logs(&self) {
        eprintln!("lab {} (in {}):", self.prefix, self.dir.display());
        for uplink in UPLINKS {
            for kind in ["log", "stderr"] {
                let path = self.dir.join(format!("{}.{kind}", uplink.name));
                let text = fs::read_to_string(&path).unwrap_or_default();
                eprintln!("--- {} {kind}\n{}", uplink.name, text.trim_end());
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if thread::panicking() {
            self.dump_logs();
        }
        // Servers first: a namespace lives on while a process is in it.
        for server in &mut self.servers {
            server.stop();
        }
        // Deleting a namespace deletes the veth ends in it. No panics
        // here: this may run while unwinding, where a panic aborts.
        for ns in self.namespaces.iter().rev() {
            if let Err(error) = try_run(Command::new("ip").args(["netns", "del", ns])) {
                eprintln!("lab teardown: {error}");
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_dir_all(netns_etc(&self.client));
    }
}

/// Where `ip netns exec` finds a namespace's own `/etc` files.
fn netns_etc(ns: &str) -> PathBuf {
    Path::new("/etc/netns").join(ns)
}

/// The pid in a name made by a lab (`bt<pid>-...`).
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, _) = name.strip_prefix(PREFIX)?.split_once('-')?;
    pid.parse().ok()
}

fn is_dead(pid: u32) -> bool {
    pid != process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the namespaces, processes and directories of labs whose test
/// process is gone (killed before its labs were dropped), once per process.
fn remove_stale_labs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let list = try_run(Command::new("ip").args(["netns", "list"])).unwrap_or_default();
        // Lines are `name` or `name (id: N)`.
        let stale = list
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| owner_pid(name).is_some_and(is_dead));
        for ns in stale {
            let pids = try_run(Command::new("ip").args(["netns", "pids", ns])).unwrap_or_default();
            for pid in pids.split_whitespace().filter_map(|pid| pid.parse().ok()) {
                // SAFETY: kill has no memory-safety preconditions; these
                // are leftover servers in a namespace of ours.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if let Err(error) = try_run(Command::new("ip").args(["netns", "del", ns])) {
                eprintln!("removing a stale lab: {error}");
            }
            let _ = fs::remove_dir_all(netns_etc(ns));
        }
        let Ok(entries) = fs::read_dir(env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let stale = name
                .to_str()
                .and_then(|name| name.strip_prefix(DIR_PREFIX))
                .and_then(owner_pid)
                .is_some_and(is_dead);
            if stale {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_lab_names_only() {
        assert_eq!(owner_pid("bt1234-0-client"), Some(1234));
        assert_eq!(owner_pid("bt99-probe"), Some(99));
        assert_eq!(owner_pid("bt-0-client"), None);
        assert_eq!(owner_pid("btrfs"), None);
        assert_eq!(owner_pid("vpn"), None);
    }

    #[test]
    fn a_lab_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Lab>();
    }

    #[test]
    fn this_process_is_never_stale() {
        assert!(!is_dead(process::id()));
        assert!(!is_dead(1));
    }
}
