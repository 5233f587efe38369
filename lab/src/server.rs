//! Starting and stopping the `uplink-server` binary in a server namespace.
//!
//! The server binds one TCP listener and one UDP socket per address and
//! port it is given, rather than the wildcard: a UDP answer must come from
//! the address the client sent to (a connected client socket drops any
//! other), and std has no `IP_PKTINFO` to learn that address on a wildcard
//! socket. It also makes the log's local address exact for TCP and UDP
//! alike.

use std::env;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What the server prints on stdout once every socket is bound: from then
/// on, anything the lab sends is answered.
pub const READY: &str = "ready";

/// The binary's name, as cargo builds it.
pub const BIN_NAME: &str = "uplink-server";

/// Overrides where the binary is looked for.
pub const BIN_VAR: &str = "BINDTO_UPLINK_SERVER";

/// Finds the `uplink-server` binary: `$BINDTO_UPLINK_SERVER`, else next to
/// the running test binary or one level up.
///
/// Cargo puts the workspace's binaries in `target/<profile>/`, while the
/// tests run from `target/<profile>/deps/`. It is this crate's binary, so
/// `cargo test -p bindto-tests` alone does not build it (a workspace build
/// or test does), and `env!("CARGO_BIN_EXE_uplink-server")` exists only in
/// this crate's own tests.
///
/// # Panics
/// If it is not found.
pub fn locate() -> PathBuf {
    if let Some(path) = env::var_os(BIN_VAR) {
        return fs::canonicalize(&path)
            .unwrap_or_else(|error| panic!("{BIN_VAR}={}: {error}", Path::new(&path).display()));
    }
    let exe = env::current_exe().expect("cannot find the running test binary");
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(BIN_NAME))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{BIN_NAME} not found near {}: build the workspace first \
                 (`cargo build --release --workspace`), or set {BIN_VAR}",
                exe.display()
            )
        })
}

/// A running uplink server, killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
}

impl Server {
    /// Starts `bin` in namespace `ns` as the server called `name`, and
    /// waits until it listens on every address and port.
    ///
    /// Its log goes to `log`; its stderr to `stderr`, so that a failure
    /// can be told.
    ///
    /// # Panics
    /// If it cannot start or bind.
    pub fn start(
        bin: &Path,
        ns: &str,
        name: &str,
        log: &Path,
        stderr: &Path,
        addrs: &[IpAddr],
        ports: &[u16],
    ) -> Server {
        let errors = File::create(stderr)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", stderr.display()));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(bin)
            .args(["--name", name, "--log"])
            .arg(log);
        for addr in addrs {
            cmd.args(["--listen", &addr.to_string()]);
        }
        for port in ports {
            cmd.args(["--port", &port.to_string()]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(errors);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {cmd:?}: {error}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        // Held before waiting, so that a panic below still kills it.
        let mut server = Server { child: Some(child) };

        // The server exits if it cannot bind, which closes the pipe: this
        // read ends either way, without polling.
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim_end() != READY {
            server.stop();
            panic!(
                "uplink server {name} did not start in {ns}: {}",
                fs::read_to_string(stderr).unwrap_or_default().trim_end()
            );
        }
        server
    }

    /// Kills the server and waits for it, so its namespace can go.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
