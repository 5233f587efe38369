//! What the shim's end-to-end tests share: client commands (curl, small
//! python3 programs) and assertions on where traffic went.

use std::net::{IpAddr, SocketAddr};

use crate::{HIGH_PORT, Lab, RunOutput, TARGET_V4, UPLINKS};

pub const URL_V4: &str = "http://198.19.0.1/";
pub const URL_V6: &str = "http://[2001:db8:ff::1]/";
pub const URL_V4_2: &str = "http://198.19.0.2/";
pub const URL_V6_2: &str = "http://[2001:db8:ff::2]/";

/// The plainest profile: everything through vpn0.
pub const VPN_PROFILE: &str = "[profile.vpn]\ninterface = \"vpn0\"\n";

/// curl, quiet but with errors, and quick to give up on a dead path.
pub fn curl(url: &str) -> Vec<&str> {
    vec![
        "curl",
        "-sS",
        "-g",
        "--connect-timeout",
        "3",
        "--max-time",
        "5",
        url,
    ]
}

/// `python3 -c <script>`.
pub fn python(script: &str) -> Vec<&str> {
    vec!["python3", "-c", script]
}

/// A python3 program that sends one UDP datagram to each of `targets`
/// (`connect`ed first when `connected`) and prints each answer on a line,
/// or `ERR <errno>` when the send or the answer fails.
pub fn udp_script(targets: &[SocketAddr], connected: bool, ipv6_socket: bool) -> String {
    let family = if ipv6_socket { "AF_INET6" } else { "AF_INET" };
    let targets: Vec<String> = targets
        .iter()
        .map(|t| format!("('{}', {})", t.ip(), t.port()))
        .collect();
    format!(
        "import socket\n\
         s = socket.socket(socket.{family}, socket.SOCK_DGRAM)\n\
         s.settimeout(2)\n\
         for t in [{}]:\n\
         \x20   try:\n\
         \x20       if {connected}:\n\
         \x20           s.connect(t)\n\
         \x20           s.send(b'ping')\n\
         \x20       else:\n\
         \x20           s.sendto(b'ping', t)\n\
         \x20       print(s.recv(512).decode().strip(), flush=True)\n\
         \x20   except OSError as e:\n\
         \x20       print('ERR', e.errno, flush=True)\n",
        targets.join(", "),
        connected = if connected { "True" } else { "False" },
    )
}

/// A python3 program that connects over TCP to `target` and prints the
/// server's line, or `ERR <errno>`.
pub fn tcp_script(target: SocketAddr) -> String {
    own_socket_script(None, None, target)
}

/// As [`tcp_script`], with the program binding its own socket first: to
/// `device` (SO_BINDTODEVICE) and `source`, when given.
pub fn own_socket_script(
    device: Option<&str>,
    source: Option<IpAddr>,
    target: SocketAddr,
) -> String {
    let family = if target.is_ipv4() {
        "AF_INET"
    } else {
        "AF_INET6"
    };
    let mut script = format!(
        "import socket\ns = socket.socket(socket.{family}, socket.SOCK_STREAM)\ns.settimeout(3)\n"
    );
    if let Some(device) = device {
        script +=
            &format!("s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'{device}')\n");
    }
    if let Some(source) = source {
        script += &format!("s.bind(('{source}', 0))\n");
    }
    script += &format!(
        "try:\n\
         \x20   s.connect(('{}', {}))\n\
         \x20   s.shutdown(socket.SHUT_WR)\n\
         \x20   print(s.recv(512).decode().strip())\n\
         except OSError as e:\n\
         \x20   print('ERR', e.errno)\n",
        target.ip(),
        target.port()
    );
    script
}

/// How many connections and datagrams each server got: (wan, vpn, alt).
pub fn counts(lab: &Lab) -> (usize, usize, usize) {
    (lab.count("wan"), lab.count("vpn"), lab.count("alt"))
}

/// Asserts that no server received anything.
#[track_caller]
pub fn assert_nothing_received(lab: &Lab) {
    for uplink in UPLINKS {
        assert_eq!(
            lab.received(uplink.name),
            [],
            "{} received traffic that should not have left",
            uplink.name
        );
    }
}

/// The source addresses `uplink`'s server saw, in order.
pub fn peers(lab: &Lab, uplink: &str) -> Vec<IpAddr> {
    lab.received(uplink).iter().map(|l| l.peer.ip()).collect()
}

/// Asserts that the run printed exactly one `bindto:` line on stderr,
/// containing every one of `parts`, and returns it.
#[track_caller]
pub fn assert_one_notice<'o>(out: &'o RunOutput, parts: &[&str]) -> &'o str {
    let notices: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("bindto: "))
        .collect();
    let [notice] = notices[..] else {
        panic!("expected one bindto notice: {out}");
    };
    for part in parts {
        assert!(notice.contains(part), "{part:?} not in {notice:?}: {out}");
    }
    notice
}

/// A profile file body with one profile.
pub fn profile(name: &str, body: &str) -> String {
    format!("[profile.{name}]\n{body}")
}

/// A python3 program that connects over TCP to [`TARGET_V4`]:[`HIGH_PORT`]
/// `count` times, `gap_ms` apart, and prints each answer on a line, or
/// `ERR <error>`: which uplink a running process uses as time goes on.
pub fn connections_script(count: usize, gap_ms: u64) -> String {
    format!(
        "import socket, time\n\
         for _ in range({count}):\n\
         \x20   try:\n\
         \x20       s = socket.create_connection(('{TARGET_V4}', {HIGH_PORT}), timeout=2)\n\
         \x20       s.shutdown(socket.SHUT_WR)\n\
         \x20       print(s.recv(100).decode().strip(), flush=True)\n\
         \x20       s.close()\n\
         \x20   except OSError as e:\n\
         \x20       print('ERR', e, flush=True)\n\
         \x20   time.sleep({gap_ms} / 1000)\n"
    )
}

/// How many of `text`'s lines are `first`, then how many after them are
/// `second`; asserts there is nothing else.
#[track_caller]
pub fn two_runs(text: &str, first: &str, second: &str) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let a = lines.iter().take_while(|l| **l == first).count();
    let b = lines[a..].iter().take_while(|l| **l == second).count();
    assert_eq!(
        a + b,
        lines.len(),
        "{first:?}, then {second:?} only: {text}"
    );
    (a, b)
}

/// The two ways the engine settles a connect or a datagram, which bypass
/// each other: the quick one (`shim/src/hooks/quick.rs`), taken while the
/// log is off, and the long one (`shim/src/hooks/decide.rs`), which every
/// call takes while `BINDTO_LOG` is on. [`both_ways!`](crate::both_ways)
/// runs a test each way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    Quick,
    Long,
}

/// Where [`Way::Long`] has the shim log, in the lab's directory: on
/// stderr, the log would mix with what the tests assert there.
const LONG_WAY_LOG: &str = "long-way.log";

impl Way {
    /// Runs `test` in a lab of its own whose [`Lab::run_bound`] goes this
    /// way, then asserts that it did.
    pub fn run(self, test: impl FnOnce(&Lab)) {
        let Some(lab) = self.lab() else { return };
        test(&lab);
        self.assert_taken(&lab);
    }

    /// A lab whose [`Lab::run_bound`] goes this way (`None`: skipped).
    fn lab(self) -> Option<Lab> {
        let mut lab = Lab::new()?;
        if self == Way::Long {
            let log = lab.dir().join(LONG_WAY_LOG);
            let log = log.to_str().expect("temp dir is UTF-8").to_owned();
            lab.set_bound_vars(&[("BINDTO_LOG", "debug"), ("BINDTO_LOG_FILE", &log)]);
        }
        Some(lab)
    }

    /// Asserts that the lab's bound runs went this way: for the long way,
    /// that the shim logged its decisions.
    fn assert_taken(self, lab: &Lab) {
        if self == Way::Long {
            let log = std::fs::read_to_string(lab.dir().join(LONG_WAY_LOG)).unwrap_or_default();
            assert!(
                log.lines().any(|l| l.contains(" by ")),
                "the shim logged no decision, so the long way was not taken: {log:?}"
            );
        }
    }
}

/// A test of bound runs, run the quick way and the long way ([`Way`]): two
/// tests, `NAME::quick` and `NAME::long_way`, each with a lab of its own
/// whose [`Lab::run_bound`] goes that way.
///
/// ```ignore
/// both_ways! {
///     /// What it shows.
///     fn name(lab) {
///         let out = lab.run_bound(VPN_PROFILE, "vpn", &curl(URL_V4), &[]);
///         assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
///     }
/// }
/// ```
#[macro_export]
macro_rules! both_ways {
    ($(#[$attr:meta])* fn $name:ident($lab:ident) $body:block) => {
        $(#[$attr])*
        mod $name {
            use super::*;

            fn body($lab: &$crate::Lab) $body

            #[test]
            fn quick() {
                $crate::clients::Way::Quick.run(body);
            }

            #[test]
            fn long_way() {
                $crate::clients::Way::Long.run(body);
            }
        }
    };
}
