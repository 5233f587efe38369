//! The network lab bindto's end-to-end tests (`bindto-tests`) and
//! `bindto demo` run programs in.
//!
//! A [`Lab`] is a set of network namespaces of its own: a client with
//! three uplinks (`wan0`, `vpn0`, `alt0`, default routes preferring them
//! in that order) to three server namespaces that each hold the same target
//! addresses ([`TARGET_V4`], [`TARGET_V6`], ...) and run an
//! `uplink-server` (this crate's binary). Whatever reaches a server is
//! answered with the server's name and the client address it saw
//! (`vpn 198.18.2.2`) and logged, so a caller can tell which uplink and
//! source address a program used:
//!
//! ```no_run
//! use bindto_lab::Lab;
//!
//! let Some(lab) = Lab::new() else { return }; // skipped, see below
//! let out = lab.run_client(&["curl", "-s", "http://198.19.0.1/"], &[]);
//! assert_eq!(out.assert_success(), "wan 198.18.1.2\n");
//! assert_eq!((lab.count("wan"), lab.count("vpn")), (1, 0));
//!
//! let config = "[profile.vpn]\ninterface = \"vpn0\"\n";
//! let out = lab.run_bound(config, "vpn", &["curl", "-s", "http://198.19.0.1/"], &[]);
//! assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
//! ```
//!
//! Modules: [`net`] holds the addressing plan, [`lab`] builds and tears down
//! the namespaces, [`mod@server`] starts the servers, [`log`] is their log
//! format, [`run`] runs programs in the client (and finds the shim).
//!
//! Needs root, or unprivileged user namespaces (the test then re-runs
//! itself in one), and `ip` (iproute2); otherwise [`Lab::new`] prints
//! `SKIP: <reason>` and returns `None`, or panics if `BINDTO_E2E=require`:
//! see [`privilege`].
//!
//! Traffic only ever goes to test ranges: 198.18.0.0/15, 2001:db8::/32 and
//! fd00::/8.
//!
//! A crate of its own so that the shipped `bindto` (whose demo builds a
//! lab) does not link the test suite.

mod cmd;
pub mod lab;
pub mod log;
pub mod net;
pub mod privilege;
pub mod run;
pub mod server;

pub use lab::{CONFIG_VAR, Lab, LabBuilder, PROFILE_VAR};
pub use log::{LogLine, Proto};
pub use net::{
    ALT, DEFAULT_PORTS, DNS_PORT, ECHO_PORT, HIGH_PORT, HTTP_PORT, TARGET_V4, TARGET_V6,
    TARGETS_V4, TARGETS_V6, UPLINKS, Uplink, VPN, WAN,
};
pub use privilege::REQUIRE_VAR;
pub use run::{RunOutput, engine_path, shim_path};
