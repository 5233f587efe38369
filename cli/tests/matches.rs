//! `[[match]]` rules as the command shows them: `check` counts them, warns
//! and writes their index, `list` lists them, `explain --program` says
//! which one chooses.

mod common;

use std::fs;
use std::os::unix::fs::symlink;

use common::{Scratch, expect, run};

/// A config whose matches name programs in the scratch directory `dir`.
fn profiles(dir: &str) -> String {
    format!(
        r#"[profile.vpn]
interface = "tun0"

[profile.alt]
interface = "eth1"

[[match]]
program = "{dir}/bin/daemon"
user = 0
profile = "vpn"

[[match]]
program = "{dir}/bin/*"
profile = "alt"

[[match]]
program = "{dir}/link"
user = "no-such-user-here"
profile = "vpn"
"#
    )
}

/// A scratch directory with the programs `profiles` names: `bin/daemon`,
/// `bin/other`, and `link` to `bin/daemon`; the user's config file.
fn setup(name: &str) -> (Scratch, String) {
    let s = Scratch::new(name);
    let dir = s.dir.to_str().unwrap().to_owned();
    s.write("bin/daemon", "");
    s.write("bin/other", "");
    symlink(s.path("bin/daemon"), s.path("link")).unwrap();
    s.write("xdg/bindto/profiles.toml", &profiles(&dir));
    (s, dir)
}

#[test]
fn check_counts_warns_and_writes_the_users_index() {
    let (s, dir) = setup("match-check");
    let (out, err) = expect(&run(&mut s.bindto(&["check"])), 0);
    assert!(out.contains("\n3 matches\n"), "{out}");
    let config = format!("{dir}/xdg/bindto/profiles.toml");
    assert!(
        err.contains(&format!(
            "{config}:16: program {dir}/link is reached through a symbolic link, and a match \
             compares the real path: write {dir}/bin/daemon or a glob"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{config}:16: user \"no-such-user-here\" is not in the user database"
        )),
        "{err}"
    );
    // The user's file's index, in the table cache's directory.
    let cache = s.path("home/.cache/bindto");
    let written: Vec<_> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(written[0].starts_with("match-"), "{written:?}");
    assert!(
        out.contains(&format!(
            "wrote {}/{} (index of {config})",
            cache.display(),
            written[0]
        )),
        "{out}"
    );
}

#[test]
fn check_of_a_file_reports_a_bad_match_where_it_is_and_writes_no_index() {
    let s = Scratch::new("match-check-bad");
    let file = s.write(
        "p.toml",
        "[profile.vpn]\ninterface = \"tun0\"\n\n[[match]]\nprogram = \"/opt/[x\"\nprofile = \"vpn\"\n",
    );
    let (out, err) = expect(&run(&mut s.bindto(&["check", file.to_str().unwrap()])), 1);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!(
            "{}:5:17: match[0].program: not a valid glob",
            file.display()
        )),
        "{err}"
    );
    let good = s.write(
        "good.toml",
        "[profile.vpn]\ninterface = \"tun0\"\n\n[[match]]\nprogram = \"/opt/*\"\nprofile = \"vpn\"\n",
    );
    let (out, _) = expect(&run(&mut s.bindto(&["check", good.to_str().unwrap()])), 0);
    assert!(out.contains("\n1 match\n"), "{out}");
    assert!(!out.contains("wrote"), "{out}");
    assert!(!s.path("home/.cache").exists());
}

#[test]
fn list_shows_the_matches() {
    let (s, dir) = setup("match-list");
    let (out, _) = expect(&run(&mut s.bindto(&["list"])), 0);
    let config = format!("{dir}/xdg/bindto/profiles.toml");
    let at = out.find("Matches").expect("a Matches section");
    let lines: Vec<&str> = out[at..].lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with(&format!("  {config}:7   {dir}/bin/daemon")),
        "{out}"
    );
    // Padded to the longest user, so that the profiles line up.
    assert!(
        lines[0].ends_with(&format!("  {:22}  vpn", "user 0")),
        "{out}"
    );
    assert!(lines[1].contains("  any user  "), "{out}");
    assert!(lines[2].contains("  user no-such-user-here  "), "{out}");
}

#[test]
fn explain_program_names_the_match_that_chooses() {
    let (s, dir) = setup("match-explain");
    let config = format!("{dir}/xdg/bindto/profiles.toml");
    let explain = |args: &[&str]| {
        let mut all = vec!["explain"];
        all.extend_from_slice(args);
        expect(&run(&mut s.bindto(&all)), 0).0
    };
    let daemon = format!("{dir}/bin/daemon");
    let out = explain(&["--program", &daemon, "--user", "0", "198.18.0.1"]);
    assert!(
        out.contains(&format!("match {config}:7 (user) chooses profile \"vpn\"")),
        "{out}"
    );
    assert!(
        out.contains("with profile \"vpn\"\n  bind: interface tun0"),
        "{out}"
    );

    // Through the link, the real path is compared; another uid falls to
    // the glob.
    let link = format!("{dir}/link");
    let out = explain(&["--program", &link, "--user", "4242"]);
    assert!(
        out.starts_with(&format!("program {daemon} (for {link}), user uid 4242")),
        "{out}"
    );
    assert!(
        out.contains(&format!("match {config}:12 (user) chooses profile \"alt\"")),
        "{out}"
    );

    // No match fits: the program passes through.
    let out = explain(&["--program", "/", "198.18.0.1"]);
    assert!(out.contains("none of 3 matches fits"), "{out}");
    assert!(
        out.contains("198.18.0.1: left alone, bindto is not active in the program"),
        "{out}"
    );

    // An explicit variable wins in an ordinary process.
    let o = run(s
        .bindto(&["explain", "--program", &daemon, "--user", "0", "198.18.0.1"])
        .env("BIND_PROFILE", "alt"));
    let (out, _) = expect(&o, 0);
    assert!(out.contains("but BIND_PROFILE"), "{out}");
    assert!(out.contains("with profile \"alt\""), "{out}");
}

#[test]
fn explain_program_errors() {
    let (s, _) = setup("match-explain-err");
    // --user needs --program; --program excludes a profile.
    expect(
        &run(&mut s.bindto(&["explain", "--user", "0", "10.0.0.1"])),
        2,
    );
    expect(
        &run(&mut s.bindto(&["explain", "--program", "/", "-p", "vpn"])),
        2,
    );
    let o = run(&mut s.bindto(&["explain", "--program", "/no/such/program"]));
    let (_, err) = expect(&o, 1);
    assert!(err.contains("/no/such/program"), "{err}");
    let o = run(&mut s.bindto(&["explain", "--program", "/", "--user", "no-such-user-here"]));
    let (_, err) = expect(&o, 1);
    assert!(err.contains("no user \"no-such-user-here\""), "{err}");
}

/// `sudo bindto check` may keep the user's HOME: root must not create the
/// user's cache directory (theirs would then be root's, which their
/// processes distrust, table cache included).
#[test]
fn check_as_root_leaves_another_users_home_alone() {
    if !common::is_root() {
        common::skip("needs root to run check in another user's home");
        return;
    }
    let (s, _) = setup("match-check-sudo");
    let home = s.path("home");
    fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let (out, _) = expect(&run(&mut s.bindto(&["check"])), 0);
    assert!(out.contains("\n3 matches\n"), "{out}");
    assert!(!out.contains("wrote"), "{out}");
    assert!(!home.join(".cache").exists());
}
