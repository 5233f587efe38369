//! Proves the harness itself, with no shim: routes, servers, logs, uplink
//! changes and teardown behave as the shim's tests will rely on.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use bindto_tests::clients::{URL_V4, URL_V6, own_socket_script, python, udp_script};
use bindto_tests::{
    ECHO_PORT, HIGH_PORT, HTTP_PORT, Lab, Proto, TARGET_V4, TARGET_V6, TARGETS_V4, VPN, WAN,
};

/// curl, quiet but with errors, and quick to give up on a dead path.
fn curl<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["curl", "-sS", "--connect-timeout", "3", "--max-time", "5"];
    args.extend_from_slice(extra);
    args
}

#[test]
fn default_route_leaves_through_wan() {
    let Some(lab) = Lab::new() else { return };
    let out = lab.run_client(&curl(&[URL_V4]), &[]);
    assert_eq!(out.assert_success(), "wan 198.18.1.2\n");
    assert_eq!(
        (lab.count("wan"), lab.count("vpn"), lab.count("alt")),
        (1, 0, 0)
    );
    let [line] = lab.received("wan")[..] else {
        panic!("one line expected")
    };
    assert_eq!(line.proto, Proto::Tcp);
    assert_eq!(line.peer.ip(), IpAddr::from(WAN.client_v4()));
    assert_eq!(line.local, SocketAddr::new(TARGET_V4.into(), HTTP_PORT));
}

#[test]
fn interface_option_reaches_the_vpn_server() {
    let Some(lab) = Lab::new() else { return };
    let out = lab.run_client(&curl(&["--interface", "vpn0", URL_V4]), &[]);
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
    assert_eq!((lab.count("wan"), lab.count("vpn")), (0, 1));
}

#[test]
fn ipv6_default_route_leaves_through_wan() {
    let Some(lab) = Lab::new() else { return };
    let out = lab.run_client(&curl(&["-g", URL_V6]), &[]);
    assert_eq!(out.assert_success(), "wan fd00:1::2\n");
    let lines = lab.received("wan");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].local, SocketAddr::new(TARGET_V6.into(), HTTP_PORT));
    assert_eq!(lab.count("vpn"), 0);
}

#[test]
fn udp_is_answered_from_the_address_it_was_sent_to() {
    let Some(lab) = Lab::new() else { return };
    // A connected socket only takes answers from the address it sent to.
    for target in [IpAddr::from(TARGET_V4), TARGET_V6.into()] {
        let script = udp_script(
            &[SocketAddr::new(target, ECHO_PORT)],
            true,
            target.is_ipv6(),
        );
        let out = lab.run_client(&python(&script), &[]);
        let expected = if target.is_ipv4() {
            "wan 198.18.1.2\n"
        } else {
            "wan fd00:1::2\n"
        };
        assert_eq!(out.assert_success(), expected);
    }
    let lines = lab.received("wan");
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|line| line.proto == Proto::Udp));
    assert_eq!(lines[0].local, SocketAddr::new(TARGET_V4.into(), ECHO_PORT));
}

#[test]
fn plain_tcp_gets_a_line() {
    let Some(lab) = Lab::new() else { return };
    let script = format!(
        "exec 3<>/dev/tcp/{}/{HIGH_PORT}; echo hello >&3; cat <&3",
        TARGETS_V4[1]
    );
    let out = lab.run_client(&["bash", "-c", &script], &[]);
    assert_eq!(out.assert_success(), "wan 198.18.1.2\n");
    // A client that sends nothing still gets its line, after a pause.
    let script = format!("exec 3<>/dev/tcp/{}/{HIGH_PORT}; cat <&3", TARGETS_V4[2]);
    let out = lab.run_client(&["bash", "-c", &script], &[]);
    assert_eq!(out.assert_success(), "wan 198.18.1.2\n");
    assert_eq!(lab.count("wan"), 2);
}

#[test]
fn wan_down_falls_back_to_vpn_and_back() {
    let Some(lab) = Lab::new() else { return };
    lab.set_uplink_down("wan");
    let out = lab.run_client(&curl(&[URL_V4]), &[]);
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");
    let out = lab.run_client(&curl(&["-g", URL_V6]), &[]);
    assert_eq!(out.assert_success(), "vpn fd00:2::2\n");

    lab.set_uplink_up("wan");
    let out = lab.run_client(&curl(&[URL_V4]), &[]);
    assert_eq!(out.assert_success(), "wan 198.18.1.2\n");
    let out = lab.run_client(&curl(&["-g", URL_V6]), &[]);
    assert_eq!(out.assert_success(), "wan fd00:1::2\n");
}

#[test]
fn interface_down_or_deleted_fails() {
    let Some(lab) = Lab::new() else { return };
    lab.set_uplink_down("vpn");
    let out = lab.run_client(&curl(&["--interface", "vpn0", URL_V4]), &[]);
    out.assert_failure();
    assert_eq!(lab.count("vpn"), 0);

    lab.set_uplink_up("vpn");
    let out = lab.run_client(&curl(&["--interface", "vpn0", URL_V4]), &[]);
    assert_eq!(out.assert_success(), "vpn 198.18.2.2\n");

    // "if!": without it, curl takes a name that is no interface for a host
    // name, and resolves it.
    lab.delete_uplink("vpn");
    let out = lab.run_client(&curl(&["--interface", "if!vpn0", URL_V4]), &[]);
    out.assert_failure();
    assert_eq!(lab.count("vpn"), 1);
}

#[test]
fn second_client_address_is_used_as_source() {
    let Some(lab) = Lab::new() else { return };
    lab.add_client_addr("vpn", VPN.host_v4(3).into());
    lab.add_client_addr("vpn", VPN.host_v6(3).into());
    // A source address alone does not choose the uplink (no policy
    // routing): it leaves through wan, whose server still answers.
    let out = lab.run_client(&curl(&["--interface", "198.18.2.3", URL_V4]), &[]);
    assert_eq!(out.assert_success(), "wan 198.18.2.3\n");

    // Bound to the device as well, it goes through vpn; and the IPv6
    // address survived the uplink going down and up, as it would not by
    // itself.
    lab.set_uplink_down("vpn");
    lab.set_uplink_up("vpn");
    let target = SocketAddr::new(TARGET_V6.into(), HIGH_PORT);
    let script = own_socket_script(Some("vpn0"), Some(VPN.host_v6(3).into()), target);
    let out = lab.run_client(&["python3", "-c", &script], &[]);
    assert_eq!(out.assert_success(), "vpn fd00:2::3\n");
    let lines = lab.received("vpn");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].peer.ip(), IpAddr::from(VPN.host_v6(3)));
}

#[test]
fn http_line_for_the_gateway_itself() {
    let Some(lab) = Lab::new() else { return };
    let out = lab.run_client(&curl(&["http://198.18.3.1/"]), &[]);
    assert_eq!(out.assert_success(), "alt 198.18.3.2\n");
    let lines = lab.received("alt");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].local, "198.18.3.1:80".parse().unwrap());
}

#[test]
fn servers_reach_the_client() {
    let Some(lab) = Lab::new() else { return };
    // A one-shot listener in the client, and a connection to it from the
    // vpn side, as `listen` tests will do.
    let listener = "import socket\n\
                    s = socket.create_server(('198.18.2.2', 9100))\n\
                    c, peer = s.accept()\n\
                    c.sendall(b'client\\n')\n\
                    print(peer[0])\n";
    std::thread::scope(|scope| {
        let served = scope.spawn(|| lab.run_client(&["python3", "-c", listener], &[]));
        let deadline = Instant::now() + Duration::from_secs(5);
        let answer = loop {
            let out = lab.run_server("vpn", &["curl", "-s", "telnet://198.18.2.2:9100"], &[]);
            if out.stdout == "client\n" || Instant::now() > deadline {
                break out;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(answer.stdout, "client\n", "{answer}");
        assert_eq!(served.join().unwrap().assert_success(), "198.18.2.1\n");
    });
}

#[test]
fn clean_environment_and_extra_variables() {
    let Some(lab) = Lab::new() else { return };
    let out = lab.run_client(&["env"], &[("BIND_PROFILE", "vpn"), ("X", "1")]);
    let mut names: Vec<&str> = out
        .assert_success()
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["BIND_PROFILE", "PATH", "X"]);
}

#[test]
fn runs_are_killed_at_the_timeout() {
    let Some(lab) = Lab::builder().timeout(Duration::from_millis(300)).build() else {
        return;
    };
    let started = Instant::now();
    // The background sleep holds stdout: it must be killed with the group.
    let out = lab.run_client(&["sh", "-c", "sleep 30 & sleep 30"], &[]);
    assert!(out.timed_out, "{out}");
    assert!(!out.success());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn custom_ports() {
    let Some(lab) = Lab::builder().ports([8080]).build() else {
        return;
    };
    let out = lab.run_client(&curl(&["http://198.19.0.1:8080/"]), &[]);
    assert_eq!(out.assert_success(), "wan 198.18.1.2\n");
    lab.run_client(&curl(&[URL_V4]), &[]).assert_failure();
}

#[test]
fn teardown_removes_namespaces_and_servers() {
    let Some(lab) = Lab::new() else { return };
    let mut names = vec![lab.client().to_owned()];
    names.extend(["wan", "vpn", "alt"].map(|uplink| lab.server_ns(uplink)));
    let dir = lab.dir().to_owned();
    let pids = Command::new("ip")
        .args(["netns", "pids", &lab.server_ns("vpn")])
        .output()
        .unwrap();
    let pids = String::from_utf8(pids.stdout).unwrap();
    assert!(!pids.trim().is_empty(), "the vpn server runs");
    let listed = |names: &[String]| {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let list = String::from_utf8(out.stdout).unwrap();
        names
            .iter()
            .filter(|name| {
                list.lines()
                    .any(|line| line.split(' ').next() == Some(name))
            })
            .count()
    };
    assert_eq!(listed(&names), 4);

    drop(lab);
    assert_eq!(listed(&names), 0);
    assert!(!dir.exists());
    for pid in pids.split_whitespace() {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "server {pid} still runs"
        );
    }
}

#[test]
fn teardown_happens_on_panic() {
    let Some(lab) = Lab::new() else { return };
    let client = lab.client().to_owned();
    let outcome = std::panic::catch_unwind(move || {
        let _lab = lab;
        panic!("test failure");
    });
    assert!(outcome.is_err());
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&client));
}
