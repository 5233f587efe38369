//! Layers: which files count, how they merge, and what the errors say.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use bindto_core::layers::{self, SYSTEM_PATH, Source};
use bindto_core::{Config, Env, Layer, Protocol, RuleKind, Table, Verdict};

fn layer(source: Source, path: &str, text: &str) -> Layer {
    Layer {
        source,
        path: PathBuf::from(path),
        text: text.to_owned(),
        stamp: None,
    }
}

const SYSTEM: &str = r#"
[profile.vpn]
interface = "tun0"
source = "10.8.0.12"
exclude = ["127.0.0.0/8", "192.168.1.0/24"]

[profile.base]
exclude = "10.0.0.0/8"
on_failure = "allow"
"#;

const USER: &str = r#"
[profile.vpn]
exclude = ["127.0.0.0/8"]

[profile.mine]
extends = "base"
interface = "wg0"
"#;

fn both() -> Config {
    Config::from_layers(vec![
        layer(Source::System, "/etc/bindto/profiles.toml", SYSTEM),
        layer(Source::User, "/home/u/.config/bindto/profiles.toml", USER),
    ])
    .unwrap()
}

#[test]
fn a_user_key_replaces_the_system_value_whole() {
    let config = both();
    let vpn = config.profile("vpn").unwrap();
    // The user's exclude list replaced the system's: 192.168.1.0/24 is gone.
    assert_eq!(vpn.exclude.len(), 1);
    assert_eq!(vpn.exclude[0].0.to_string(), "127.0.0.0/8");
    // Keys the user did not write come from the system file.
    assert_eq!(vpn.binding.interface.unwrap().as_str(), "tun0");
    assert_eq!(vpn.binding.source.v4, Some(Ipv4Addr::new(10, 8, 0, 12)));
    let (path, line, _) = vpn.exclude[0].1.location.clone().unwrap();
    assert_eq!(
        path.as_ref(),
        Path::new("/home/u/.config/bindto/profiles.toml")
    );
    assert_eq!(line, 3);
}

#[test]
fn extends_inherits_unset_keys() {
    let config = both();
    let mine = config.profile("mine").unwrap();
    assert_eq!(mine.binding.interface.unwrap().as_str(), "wg0");
    assert_eq!(mine.on_failure, bindto_core::OnFailure::Allow);
    let table = Table::compile(mine);
    let d = table.decide(SocketAddr::from(([10, 1, 2, 3], 80)), Protocol::Tcp);
    assert_eq!(d.verdict, Verdict::Direct);
    assert_eq!(d.origin.kind, RuleKind::Exclude(0));
    assert_eq!(
        d.origin.to_string(),
        "exclude #1 of profile \"mine\" (/etc/bindto/profiles.toml:8:11)"
    );
}

#[test]
fn list_info_shows_who_wrote_each_key() {
    let info = both().info();
    let vpn = info.iter().find(|p| p.name == "vpn").unwrap();
    assert_eq!(vpn.layers.len(), 2);
    let exclude = vpn.keys.iter().find(|k| k.key == "exclude").unwrap();
    let sources: Vec<Source> = exclude.written_by.iter().map(|(s, _)| *s).collect();
    assert_eq!(sources, [Source::System, Source::User]);
    let interface = vpn.keys.iter().find(|k| k.key == "interface").unwrap();
    assert_eq!(interface.written_by.len(), 1);
}

#[test]
fn an_unknown_profile_names_the_files_read() {
    let err = both().profile("nope").unwrap_err();
    assert_eq!(
        err.to_string(),
        "profile \"nope\" not found in /etc/bindto/profiles.toml, /home/u/.config/bindto/profiles.toml"
    );
}

#[test]
fn a_mistyped_profile_suggests_the_near_name() {
    for typo in ["vnp", "vp", "vpm", "VPN", "vpnn"] {
        let err = both().profile(typo).unwrap_err().to_string();
        assert!(err.ends_with(" (did you mean \"vpn\"?)"), "{typo}: {err}");
    }
    let err = both().profile("mine2").unwrap_err().to_string();
    assert!(err.ends_with(" (did you mean \"mine\"?)"), "{err}");
    // Nothing near: no guess.
    let err = both().profile("office").unwrap_err().to_string();
    assert!(!err.contains("did you mean"), "{err}");
}

#[test]
fn an_unknown_profile_without_any_file_says_so() {
    let err = Config::from_layers(Vec::new())
        .unwrap()
        .profile("vpn")
        .unwrap_err();
    assert_eq!(err.to_string(), "profile \"vpn\" not found: no config file");
}

#[test]
fn an_error_names_the_layer_it_is_in() {
    let err = Config::from_layers(vec![
        layer(Source::System, "/etc/bindto/profiles.toml", SYSTEM),
        layer(
            Source::User,
            "/u.toml",
            "[profile.vpn]\nsource = \"nope\"\n",
        ),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/u.toml:2:10: profile.vpn.source: \"nope\" is not an IP address"
    );
}

#[test]
fn paths_follow_the_environment() {
    let env = Env::from_pairs([("HOME", "/home/u")]);
    let paths: Vec<_> = layers::paths(&env, false)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(
        paths,
        [
            PathBuf::from(SYSTEM_PATH),
            PathBuf::from("/home/u/.config/bindto/profiles.toml")
        ]
    );

    let env = Env::from_pairs([("HOME", "/home/u"), ("XDG_CONFIG_HOME", "/x")]);
    assert_eq!(
        layers::paths(&env, false)[1].1,
        PathBuf::from("/x/bindto/profiles.toml")
    );

    let env = Env::from_pairs([("HOME", "/home/u"), ("BINDTO_CONFIG", "/tmp/p.toml")]);
    assert_eq!(
        layers::paths(&env, false),
        [(Source::Environment, PathBuf::from("/tmp/p.toml"))]
    );

    // Secure mode: the system file alone, whatever the environment says.
    assert_eq!(
        layers::paths(&env, true),
        [(Source::System, PathBuf::from(SYSTEM_PATH))]
    );
}

#[test]
fn bindto_config_must_exist_but_default_files_may_not() {
    let dir = std::env::temp_dir().join(format!("bindto-layers-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.toml");
    let env = Env::from_pairs([("BINDTO_CONFIG", missing.to_str().unwrap())]);
    let err = layers::read(&env, false).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");

    let env = Env::from_pairs([("HOME", dir.to_str().unwrap())]);
    let read = layers::read(&env, false).unwrap();
    assert!(read.iter().all(|l| l.source == Source::System), "{read:?}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn secure_mode_refuses_a_file_others_can_write() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("bindto-secure-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("profiles.toml");
    fs::write(&path, SYSTEM).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    let err = layers::read_one(Source::System, &path, true).unwrap_err();
    assert!(
        err.to_string()
            .contains("must be owned by root and not writable"),
        "{err}"
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let root_only = |p: &Path| {
        let m = fs::metadata(p).unwrap();
        std::os::unix::fs::MetadataExt::uid(&m) == 0 && m.permissions().mode() & 0o022 == 0
    };
    let result = layers::read_one(Source::System, &path, true);
    // The temporary directory is usually /tmp, which anyone can write:
    // refused whatever the file.
    match dir.ancestors().skip(1).find(|d| !root_only(d)) {
        Some(open) => {
            let err = result.unwrap_err().to_string();
            let named = format!(
                "the directory {} on its way must be owned by root",
                open.display()
            );
            assert!(err.contains(&named), "{err}");
        }
        None => assert_eq!(result.is_ok(), root_only(&path)),
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_default_verdict_credits_the_key_that_wins() {
    let user = "[profile.vpn]\ninterface = \"wg0\"\n";
    let config = Config::from_layers(vec![
        layer(Source::System, "/etc/bindto/profiles.toml", SYSTEM),
        layer(Source::User, "/u.toml", user),
    ])
    .unwrap();
    let table = Table::compile(config.profile("vpn").unwrap());
    let d = table.decide(SocketAddr::from(([198, 18, 0, 1], 80)), Protocol::Tcp);
    assert_eq!(d.origin.kind, RuleKind::Default);
    assert_eq!(d.origin.to_string(), "profile \"vpn\" (/u.toml:2:13)");
    // Without an override, the system file's `interface` line.
    let table = Table::compile(both().profile("vpn").unwrap());
    let d = table.decide(SocketAddr::from(([198, 18, 0, 1], 80)), Protocol::Tcp);
    assert_eq!(
        d.origin.to_string(),
        "profile \"vpn\" (/etc/bindto/profiles.toml:3:13)"
    );
}

/// A chain of 4 000 `extends` links: every profile inherits the interface
/// from the last and the source from the one in the middle. Each profile's
/// merge starts from its base's, once: resolving them all used to walk the
/// rest of the chain again for every profile (21 s, the library's first
/// call as long), and the walk's cycle check looked through the whole chain
/// at each link. Given 10 s here, which only the cubic walk comes near.
#[test]
fn a_chain_of_4000_extends_resolves_in_linear_time() {
    const LINKS: usize = 4000;
    let mut text = String::new();
    for i in 0..LINKS {
        text += &format!("[profile.p{i}]\nextends = \"p{}\"\n", i + 1);
        if i == LINKS / 2 {
            text += "source = \"10.8.0.12\"\n";
        }
    }
    text += &format!("[profile.p{LINKS}]\ninterface = \"tun0\"\n");
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let config = Config::from_layers(vec![layer(Source::Given, "chain.toml", &text)]);
        let _ = done.send(config.map(|c| (c.profile("p0").cloned(), c.profile("p3999").cloned())));
    });
    let (first, last) = finished
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("4 000 links resolved within 10 s")
        .unwrap_or_else(|e| panic!("{e}"));
    let (first, last) = (first.unwrap(), last.unwrap());
    assert_eq!(first.binding.interface.unwrap().to_string(), "tun0");
    assert_eq!(first.binding.source.v4, Some(Ipv4Addr::new(10, 8, 0, 12)));
    assert_eq!(last.binding.interface, first.binding.interface);
    assert_eq!(last.binding.source.v4, None);
}
