//! `bindto run`: what it refuses, what it passes on, and that the command
//! it starts is the command, exit status and pid included.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::{Scratch, expect, run};

const PROFILES: &str = "[profile.vpn]\ninterface = \"tun0\"\nexclude = [\"127.0.0.0/8\"]\n";

/// A scratch directory with an installed bindto, a profile file and the
/// environment pointing at it; `None` when no C compiler is available.
fn setup(name: &str) -> Option<(Scratch, std::path::PathBuf)> {
    let s = Scratch::new(name);
    let exe = s.install()?;
    s.write("profiles.toml", PROFILES);
    Some((s, exe))
}

fn bindto(s: &Scratch, exe: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut cmd = s.command(exe, args);
    cmd.env("BINDTO_CONFIG", s.path("profiles.toml"));
    cmd
}

#[test]
fn exit_status_passes_through() {
    let Some((s, exe)) = setup("status") else {
        return;
    };
    let o = run(&mut bindto(
        &s,
        &exe,
        &["run", "-p", "vpn", "--", "sh", "-c", "exit 7"],
    ));
    let (_, err) = expect(&o, 7);
    assert!(err.contains("libbindto loaded"), "{err}");
}

#[test]
fn preloads_by_absolute_path_and_selects_the_profile() {
    let Some((s, exe)) = setup("env") else { return };
    let o = run(bindto(
        &s,
        &exe,
        &[
            "run",
            "-p",
            "vpn",
            "--",
            "sh",
            "-c",
            "echo $LD_PRELOAD; echo $BIND_PROFILE",
        ],
    )
    .env("LD_PRELOAD", "/other.so"));
    let (out, _) = expect(&o, 0);
    let lib = s
        .path("prefix/lib/bindto/libbindto.so")
        .canonicalize()
        .unwrap();
    assert_eq!(out, format!("{}:/other.so\nvpn\n", lib.display()));
}

#[test]
fn works_from_another_working_directory() {
    let Some((s, exe)) = setup("cwd") else { return };
    // bindto started elsewhere, by a relative path, and a command that
    // changes directory before it starts another program: the library
    // is still found and loaded in both.
    let elsewhere = s.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let o = run(bindto(
        &s,
        std::path::Path::new("../prefix/bin/bindto"),
        &[
            "run",
            "-p",
            "vpn",
            "--",
            "sh",
            "-c",
            "cd / && sh -c 'echo ok'",
        ],
    )
    .current_dir(&elsewhere));
    let (out, err) = expect(&o, 0);
    assert_eq!(out, "ok\n");
    assert_eq!(err.matches("libbindto loaded").count(), 2, "{err}");
    // The unused handle keeps the installed copy referenced.
    assert!(exe.is_file());
}

#[test]
fn the_command_keeps_bindtos_pid() {
    let Some((s, exe)) = setup("pid") else { return };
    let child = common::spawn(
        bindto(&s, &exe, &["run", "-p", "vpn", "--", "sh", "-c", "echo $$"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    assert_eq!(common::stdout(&o).trim(), pid.to_string());
}

#[test]
fn death_by_signal_is_the_commands() {
    let Some((s, exe)) = setup("signal") else {
        return;
    };
    let o = run(&mut bindto(
        &s,
        &exe,
        &["run", "-p", "vpn", "--", "sh", "-c", "kill -TERM $$"],
    ));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(15), "{:?}", o.status);
}

#[test]
fn a_static_binary_runs_supervised() {
    let Some((s, exe)) = setup("static") else {
        return;
    };
    let Some(program) = s.static_program(5) else {
        return;
    };
    let path = program.to_str().unwrap();
    // No library can be loaded into it: bindto supervises its system
    // calls instead, and exits with its status.
    let o = run(&mut bindto(&s, &exe, &["run", "-p", "vpn", "--", path]));
    let (_, err) = expect(&o, 5);
    assert!(!err.contains("libbindto loaded"), "{err}");
    assert!(!err.contains("warning"), "{err}");
}

/// Where supervision is not available (here: inside another supervised
/// `bindto run`, which cannot have a second seccomp listener), a static
/// binary is refused as before, saying why.
#[test]
fn a_static_binary_is_refused_where_supervision_is_not_available() {
    let Some((s, exe)) = setup("nested") else {
        return;
    };
    let Some(program) = s.static_program(5) else {
        return;
    };
    let (exe_path, path) = (exe.to_str().unwrap(), program.to_str().unwrap());
    let inner = ["run", "-p", "vpn", "--", path];
    let mut args = vec!["run", "-p", "vpn", "--supervise", "--", exe_path];
    args.extend_from_slice(&inner);
    let o = run(&mut bindto(&s, &exe, &args));
    let (_, err) = expect(&o, 3);
    assert!(
        err.contains("statically linked") && err.contains("not available here"),
        "{err}"
    );
    assert!(err.contains("--allow-unbound"), "{err}");

    // Knowingly: runs, with a warning.
    args.insert(args.len() - 2, "--allow-unbound");
    let o = run(&mut bindto(&s, &exe, &args));
    let (_, err) = expect(&o, 5);
    assert!(err.contains("warning") && err.contains("unbound"), "{err}");
}

#[test]
fn a_script_is_judged_by_its_interpreter() {
    let Some((s, exe)) = setup("script") else {
        return;
    };
    let Some(program) = s.static_program(0) else {
        return;
    };
    let script = s.write("script", &format!("#!{}\n", program.display()));
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = run(&mut bindto(
        &s,
        &exe,
        &["run", "-p", "vpn", "--", "./script"],
    ));
    // Its static interpreter runs supervised.
    let (_, err) = expect(&o, 0);
    assert!(!err.contains("libbindto loaded"), "{err}");

    // Found through PATH, with a dynamic interpreter: runs.
    let bin = s.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("hello");
    std::fs::write(&script, "#!/bin/sh\necho hello\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let o = run(bindto(&s, &exe, &["run", "-p", "vpn", "--", "hello"]).env("PATH", path));
    assert_eq!(expect(&o, 0).0, "hello\n");
}

#[test]
fn setuid_and_capability_binaries_are_refused() {
    if !common::is_root() {
        common::skip("needs root to make a setuid binary of another user");
        return;
    }
    let Some((s, exe)) = setup("setid") else {
        return;
    };
    // Setuid to another user: the loader would drop LD_PRELOAD.
    let program = s.path("setuid-true");
    std::fs::copy("/bin/true", &program).unwrap();
    std::os::unix::fs::chown(&program, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let path = program.to_str().unwrap();
    let o = run(&mut bindto(&s, &exe, &["run", "-p", "vpn", "--", path]));
    let (_, err) = expect(&o, 3);
    assert!(err.contains(path) && err.contains("setuid"), "{err}");

    // File capabilities, run by an unprivileged user.
    let program = s.path("cap-true");
    std::fs::copy("/bin/true", &program).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let setcap = std::process::Command::new("setcap")
        .args(["cap_net_raw+ep"])
        .arg(&program)
        .output();
    if !setcap.is_ok_and(|o| o.status.success()) {
        common::skip("setcap (libcap2-bin) is missing or refused here");
        return;
    }
    let o = run(s
        .command(
            std::path::Path::new("setpriv"),
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                exe.to_str().unwrap(),
                "run",
                "-p",
                "vpn",
                "--",
                program.to_str().unwrap(),
            ],
        )
        .env("BINDTO_CONFIG", s.path("profiles.toml")));
    let (_, err) = expect(&o, 3);
    assert!(err.contains("file capabilities"), "{err}");
}

#[test]
fn an_unknown_profile_is_refused_by_name() {
    let Some((s, exe)) = setup("unknown") else {
        return;
    };
    let o = run(&mut bindto(
        &s,
        &exe,
        &["run", "-p", "nosuch", "--", "true"],
    ));
    let (_, err) = expect(&o, 3);
    assert!(err.contains("profile \"nosuch\" not found"), "{err}");
    assert!(!err.contains("libbindto loaded"), "{err}");
}

#[test]
fn a_config_that_does_not_parse_is_refused_with_its_position() {
    let Some((s, exe)) = setup("broken") else {
        return;
    };
    let config = s.write(
        "profiles.toml",
        "[profile.vpn]\ninterface = \"tun0\"\nbogus = 1\n",
    );
    let o = run(&mut bindto(&s, &exe, &["run", "-p", "vpn", "--", "true"]));
    let (_, err) = expect(&o, 3);
    assert!(err.contains(&format!("{}:3:1", config.display())), "{err}");
}

#[test]
fn ad_hoc_flags_become_the_older_variables() {
    let Some((s, exe)) = setup("adhoc") else {
        return;
    };
    let script = "echo \"$BIND_INTERFACE|$BIND_SOURCE_IP|$BIND_EXCLUDE|$DNS_OVERRIDE_IP|$DNS_OVERRIDE_PORT|$BIND_PROFILE|$BIND_ADDR\"";
    let o = run(bindto(
        &s,
        &exe,
        &[
            "run",
            "--interface",
            "eth9",
            "--source",
            "10.0.0.2",
            "--exclude",
            "127.0.0.1,192.168.",
            "--dns",
            "10.0.0.1:5353",
            "--",
            "sh",
            "-c",
            script,
        ],
    )
    // Inherited selections must not override the flags.
    .env("BIND_PROFILE", "vpn")
    .env("BIND_ADDR", "10.9.9.9"));
    let (out, _) = expect(&o, 0);
    assert_eq!(out, "eth9|10.0.0.2|127.0.0.1,192.168.|10.0.0.1|5353||\n");

    let o = run(&mut bindto(
        &s,
        &exe,
        &["run", "--interface", "bad/name", "--", "true"],
    ));
    let (_, err) = expect(&o, 3);
    assert!(err.contains("--interface: "), "{err}");
    let o = run(&mut bindto(
        &s,
        &exe,
        &["run", "--exclude", "10.0.0.0/33", "--", "true"],
    ));
    let (_, err) = expect(&o, 3);
    assert!(err.contains("--exclude: "), "{err}");
}

#[test]
fn usage_errors_and_missing_commands() {
    let Some((s, exe)) = setup("usage") else {
        return;
    };
    // No profile anywhere.
    let mut cmd = bindto(&s, &exe, &["run", "--", "true"]);
    cmd.env_remove("BINDTO_CONFIG");
    let (_, err) = expect(&run(&mut cmd), 2);
    assert!(err.contains("-p NAME"), "{err}");
    // -p and ad-hoc flags together.
    expect(
        &run(&mut bindto(
            &s,
            &exe,
            &["run", "-p", "vpn", "--interface", "x", "--", "true"],
        )),
        2,
    );
    // No command.
    expect(&run(&mut bindto(&s, &exe, &["run", "-p", "vpn"])), 2);
    // A command that does not exist, or cannot be executed.
    let (_, err) = expect(
        &run(&mut bindto(
            &s,
            &exe,
            &["run", "-p", "vpn", "--", "no-such-command-x"],
        )),
        127,
    );
    assert!(err.contains("no-such-command-x"), "{err}");
    let data = s.write("data.txt", "not a program\n");
    expect(
        &run(&mut bindto(
            &s,
            &exe,
            &["run", "-p", "vpn", "--", data.to_str().unwrap()],
        )),
        126,
    );
}

#[test]
fn bind_profile_from_the_environment_is_used() {
    let Some((s, exe)) = setup("envprofile") else {
        return;
    };
    let o = run(
        bindto(&s, &exe, &["run", "--", "sh", "-c", "echo $BIND_PROFILE"])
            .env("BIND_PROFILE", "vpn"),
    );
    assert_eq!(expect(&o, 0).0, "vpn\n");
    let o = run(bindto(&s, &exe, &["run", "--", "true"]).env("BIND_PROFILE", "gone"));
    let (_, err) = expect(&o, 3);
    assert!(err.contains("profile \"gone\""), "{err}");
}

#[test]
fn without_the_library_nothing_runs() {
    let s = Scratch::new("nolib");
    s.write("profiles.toml", PROFILES);
    let bin = s.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("bindto");
    std::fs::copy(common::BINDTO, &exe).unwrap();
    let o = run(s
        .command(&exe, &["run", "-p", "vpn", "--", "true"])
        .env("BINDTO_CONFIG", s.path("profiles.toml")));
    let (_, err) = expect(&o, 3);
    assert!(
        err.contains("libbindto.so not found") && err.contains("lib/bindto/libbindto.so"),
        "{err}"
    );
}

#[test]
fn without_the_engine_beside_the_library_nothing_runs() {
    let s = Scratch::new("noengine");
    s.write("profiles.toml", PROFILES);
    let Some(exe) = s.install() else { return };
    std::fs::remove_file(s.path("prefix/lib/bindto/libbindto_engine.so")).unwrap();
    let o = run(s
        .command(&exe, &["run", "-p", "vpn", "--", "true"])
        .env("BINDTO_CONFIG", s.path("profiles.toml")));
    let (_, err) = expect(&o, 3);
    assert!(
        err.contains("libbindto_engine.so is not beside")
            && err.contains("lib/bindto/libbindto.so"),
        "{err}"
    );
    assert!(!err.contains("libbindto loaded"), "{err}");
}
