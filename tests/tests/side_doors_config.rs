//! Side doors of the config (issue 16): loopback under a profile, a config
//! rewritten in place while a process runs, and the older tools'
//! variables and the system file's directories in a privileged process.

use bindto_tests::Lab;
use bindto_tests::clients::*;

/// A python3 program that serves itself on loopback and connects (TCP)
/// and sends (UDP, `sendto` on an unconnected socket) to each address,
/// printing `tcp ADDR ok` / `udp ADDR ok` or the errno.
const LOOPBACK_SCRIPT: &str = r#"
import socket
cases = [
    (socket.AF_INET, '127.0.0.1', socket.AF_INET, '127.0.0.1'),
    (socket.AF_INET, '127.0.0.1', socket.AF_INET, '127.1.2.3'),
    (socket.AF_INET6, '::1', socket.AF_INET6, '::1'),
    (socket.AF_INET, '127.0.0.1', socket.AF_INET6, '::ffff:127.0.0.1'),
]
for (sfam, listen, cfam, dest) in cases:
    try:
        srv = socket.socket(sfam, socket.SOCK_STREAM)
        srv.bind(('0.0.0.0' if dest == '127.1.2.3' else listen, 0))
        srv.listen(1)
        c = socket.socket(cfam, socket.SOCK_STREAM)
        c.settimeout(2)
        c.connect((dest, srv.getsockname()[1]))
        a, _ = srv.accept()
        a.sendall(b'ok')
        print('tcp', dest, c.recv(10).decode(), flush=True)
    except OSError as e:
        print('tcp', dest, 'ERR', e.errno, flush=True)
    try:
        srv = socket.socket(sfam, socket.SOCK_DGRAM)
        srv.bind(('0.0.0.0' if dest == '127.1.2.3' else listen, 0))
        srv.settimeout(2)
        c = socket.socket(cfam, socket.SOCK_DGRAM)
        c.sendto(b'ok', (dest, srv.getsockname()[1]))
        print('udp', dest, srv.recv(10).decode(), flush=True)
    except OSError as e:
        print('udp', dest, 'ERR', e.errno, flush=True)
"#;

/// Under a profile that binds everything to vpn0 and excludes nothing,
/// loopback is left alone: bound to vpn0, a connect to 127.0.0.1 hung
/// until its timeout and a datagram was lost.
#[test]
fn loopback_works_under_a_profile_without_an_exclude_for_it() {
    let Some(lab) = Lab::new() else { return };
    let out = lab.run_bound(VPN_PROFILE, "vpn", &python(LOOPBACK_SCRIPT), &[]);
    assert_eq!(
        out.assert_success(),
        "tcp 127.0.0.1 ok\nudp 127.0.0.1 ok\n\
         tcp 127.1.2.3 ok\nudp 127.1.2.3 ok\n\
         tcp ::1 ok\nudp ::1 ok\n\
         tcp ::ffff:127.0.0.1 ok\nudp ::ffff:127.0.0.1 ok\n",
        "{out}"
    );
    // And the rest still goes through vpn0.
    let out = lab.run_bound(VPN_PROFILE, "vpn", &curl(URL_V4), &[]);
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\n", "{out}");
    assert_eq!(counts(&lab), (0, 1, 0));
}
