//! `bindto check`, `explain` and `list`: the config as users see it, with
//! every message naming its file and line.

mod common;

use common::{Scratch, expect, run};

const PROFILES: &str = r#"[profile.base]
exclude = ["127.0.0.0/8", "::1"]

[profile.vpn]
extends = "base"
interface = "tun0"
source = ["10.8.0.12", "fd00:8::12"]

[profile.vpn.dns]
53 = "10.8.0.1"

[[profile.vpn.route]]
to = "10.0.0.0/8"
interface = "eth1"

[[profile.vpn.route]]
to = "203.0.113.0/24"
action = "block"
"#;

#[test]
fn check_summarises_each_profile() {
    let s = Scratch::new("check-ok");
    let file = s.write("p.toml", PROFILES);
    let o = run(&mut s.bindto(&["check", file.to_str().unwrap()]));
    let (out, _) = expect(&o, 0);
    assert!(
        out.contains(&format!("ok {} (given)", file.display())),
        "{out}"
    );
    assert!(out.contains("base  direct by default, 2 excludes"), "{out}");
    assert!(
        out.contains("vpn   binds to tun0 from 10.8.0.12 fd00:8::12, 2 excludes, 2 routes, port 53 -> 10.8.0.1:53"),
        "{out}"
    );
}

#[test]
fn check_names_file_line_and_column() {
    let s = Scratch::new("check-bad");
    let file = s.write(
        "bad.toml",
        "[profile.x]\ninterface = \"tun0\"\nexclude = [\"10.0.0.0/33\"]\n",
    );
    let o = run(&mut s.bindto(&["check", file.to_str().unwrap()]));
    let (out, err) = expect(&o, 1);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains(&format!("{}:3:", file.display())), "{err}");
    assert!(err.contains("exclude"), "{err}");

    let o = run(&mut s.bindto(&["check", s.path("missing.toml").to_str().unwrap()]));
    let (_, err) = expect(&o, 1);
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn check_reads_the_layers() {
    let s = Scratch::new("check-layers");
    // No file at all: nothing to check is a problem worth a status.
    let (_, err) = expect(&run(&mut s.bindto(&["check"])), 1);
    assert!(err.contains("no config file found"), "{err}");
    assert!(
        err.contains(&s.path("xdg/bindto/profiles.toml").display().to_string()),
        "{err}"
    );

    let user = s.write("xdg/bindto/profiles.toml", PROFILES);
    let (out, _) = expect(&run(&mut s.bindto(&["check"])), 0);
    assert!(
        out.contains(&format!("ok {} (user)", user.display())),
        "{out}"
    );

    let env = s.write("env.toml", "[profile.only]\nsource = \"10.0.0.1\"\n");
    let (out, _) = expect(&run(s.bindto(&["check"]).env("BINDTO_CONFIG", &env)), 0);
    assert!(
        out.contains("(environment)") && out.contains("only"),
        "{out}"
    );
    assert!(
        !out.contains("vpn"),
        "BINDTO_CONFIG replaces the layers: {out}"
    );

    // BIND_PROFILE names a profile the config lacks: that is the one
    // verdict, with no "ok" before it.
    let o = run(s.bindto(&["check"]).env("BIND_PROFILE", "absent"));
    let (out, err) = expect(&o, 1);
    assert!(
        err.contains("BIND_PROFILE") && err.contains("\"absent\""),
        "{err}"
    );
    assert_eq!(out, "", "{err}");
}

#[test]
fn explain_names_the_rule_file_and_line() {
    let s = Scratch::new("explain");
    let file = s.write("p.toml", PROFILES);
    let explain = |args: &[&str]| {
        let mut all = vec!["explain", "-p", "vpn"];
        all.extend_from_slice(args);
        let o = run(s.bindto(&all).env("BINDTO_CONFIG", &file));
        expect(&o, 0).0
    };
    let f = file.display();

    let out = explain(&["10.1.2.3", "--port", "22"]);
    assert!(out.contains("tcp 10.1.2.3:22"), "{out}");
    assert!(out.contains("bind: interface eth1"), "{out}");
    assert!(
        out.contains(&format!("route #1 of profile \"vpn\" ({f}:12:1)")),
        "{out}"
    );

    let out = explain(&["203.0.113.9"]);
    assert!(out.contains("block"), "{out}");
    assert!(
        out.contains(&format!("route #2 of profile \"vpn\" ({f}:16:1)")),
        "{out}"
    );

    // Inherited from base: the rule's own file and line.
    let out = explain(&["127.0.0.1"]);
    assert!(out.contains("direct"), "{out}");
    assert!(
        out.contains(&format!("exclude #1 of profile \"vpn\" ({f}:2:12)")),
        "{out}"
    );

    let out = explain(&["[2001:db8::1]:80"]);
    assert!(out.contains("tcp [2001:db8::1]:80"), "{out}");
    assert!(
        out.contains("bind: interface tun0, source fd00:8::12"),
        "{out}"
    );
    // The profile's own binding: the line of the key that sets it.
    assert!(
        out.contains(&format!("profile \"vpn\" ({f}:6:13)")),
        "{out}"
    );

    // DNS: rewritten first, then decided.
    let out = explain(&["127.0.0.53", "--udp"]);
    assert!(out.contains("udp 127.0.0.53:53"), "{out}");
    assert!(
        out.contains(&format!(
            "rewritten to 10.8.0.1:53 by dns rewrite of port 53 in profile \"vpn\" ({f}:10:1)"
        )),
        "{out}"
    );
    assert!(out.contains("bind: interface eth1"), "{out}");

    // A name is resolved.
    let out = explain(&["localhost", "--port", "80"]);
    assert!(out.contains("localhost (") && out.contains(":80)"), "{out}");
}

#[test]
fn explain_errors() {
    let s = Scratch::new("explain-err");
    let file = s.write("p.toml", PROFILES);
    let o = run(s
        .bindto(&["explain", "-p", "nosuch", "10.0.0.1"])
        .env("BINDTO_CONFIG", &file));
    let (_, err) = expect(&o, 1);
    assert!(err.contains("profile \"nosuch\" not found"), "{err}");
    let o = run(s
        .bindto(&["explain", "-p", "vpn", "no-such-host.invalid"])
        .env("BINDTO_CONFIG", &file));
    let (_, err) = expect(&o, 1);
    assert!(err.contains("cannot resolve no-such-host.invalid"), "{err}");
    expect(&run(&mut s.bindto(&["explain", "10.0.0.1"])), 2);
    expect(&run(&mut s.bindto(&["explain", "-p", "vpn"])), 2);
    expect(
        &run(&mut s.bindto(&["explain", "-p", "vpn", "10.0.0.1", "--port", "0"])),
        2,
    );
}

#[test]
fn explain_ad_hoc() {
    let s = Scratch::new("explain-adhoc");
    let o = run(&mut s.bindto(&[
        "explain",
        "--interface",
        "wg0",
        "--exclude",
        "192.168.",
        "192.168.4.4",
    ]));
    let (out, _) = expect(&o, 0);
    assert!(
        out.contains("direct") && out.contains("BIND_EXCLUDE"),
        "{out}"
    );
}

#[test]
fn list_shows_where_profiles_come_from() {
    // Only the user layer here: the system file is a fixed path tests must
    // not write; `list`'s rendering of overrides is unit-tested with a
    // system layer (cli/src/list.rs).
    let s = Scratch::new("list");
    let user = s.write("xdg/bindto/profiles.toml", PROFILES);
    let o = run(s.bindto(&["list"]).env("BIND_PROFILE", "vpn"));
    let (out, _) = expect(&o, 0);
    assert!(
        out.contains(&format!("user        {}", user.display())),
        "{out}"
    );
    assert!(
        out.contains("system      /etc/bindto/profiles.toml"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "vpn   from user {}, extends base (selected by BIND_PROFILE)",
            user.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("base  from user {}", user.display())),
        "{out}"
    );

    // HOME without XDG_CONFIG_HOME.
    let home = s.write(
        "home/.config/bindto/profiles.toml",
        "[profile.h]\nsource = \"10.0.0.1\"\n",
    );
    let o = run(s.bindto(&["list"]).env_remove("XDG_CONFIG_HOME"));
    let (out, _) = expect(&o, 0);
    assert!(
        out.contains(&format!("h  from user {}", home.display())),
        "{out}"
    );

    // A broken layer is an error naming it.
    let broken = s.write("broken.toml", "[profile.x\n");
    let o = run(s.bindto(&["list"]).env("BINDTO_CONFIG", &broken));
    let (out, err) = expect(&o, 1);
    assert!(
        out.contains(&format!("environment {}", broken.display())),
        "{out}"
    );
    assert!(err.contains(&format!("{}:1:", broken.display())), "{err}");
}
