//! `[[match]]` rules: their order across layers, what fits, and the index
//! written for the front.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bindto_abi::matches::{ANY_USER, Index, NO_USER};
use bindto_core::cache::Dir;
use bindto_core::layers::{self, Source};
use bindto_core::matches::{self, first_fit, index_is_fresh, write_index};
use bindto_core::{Config, Env, Layer, User};

const SYSTEM: &str = r#"
[profile.vpn]
interface = "tun0"

[[match]]
program = "/usr/bin/transmission-daemon"
user = "debian-transmission"
profile = "vpn"

[[match]]
program = "/usr/bin/python3*"
profile = "alt"
"#;

const USER: &str = r#"
[profile.alt]
interface = "eth1"

[[match]]
program = "/usr/bin/*"
user = 1000
profile = "vpn"
"#;

fn both() -> Config {
    Config::from_layers(vec![
        Layer::new(Source::System, "/etc/bindto/profiles.toml", SYSTEM),
        Layer::new(Source::User, "/home/u/.config/bindto/profiles.toml", USER),
    ])
    .unwrap_or_else(|e| panic!("{e}"))
}

fn lookup(name: &str) -> Option<u32> {
    (name == "debian-transmission").then_some(120)
}

#[test]
fn matches_come_system_first_in_file_order_with_their_lines() {
    let config = both();
    let seen: Vec<_> = config
        .matches()
        .iter()
        .map(|m| (m.source, m.line, m.program.as_str(), m.profile.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Source::System, 5, "/usr/bin/transmission-daemon", "vpn"),
            // A match may name a profile of another layer.
            (Source::System, 10, "/usr/bin/python3*", "alt"),
            (Source::User, 5, "/usr/bin/*", "vpn"),
        ]
    );
    let users: Vec<_> = config.matches().iter().map(|m| m.user.clone()).collect();
    assert_eq!(
        users,
        [
            Some(User::Name("debian-transmission".into())),
            None,
            Some(User::Id(1000))
        ]
    );
    assert_eq!(
        config.matches()[2].path,
        Path::new("/home/u/.config/bindto/profiles.toml")
    );
}

#[test]
fn the_first_fitting_match_chooses() {
    let config = both();
    let choose = |exe: &str, uid| {
        first_fit(config.matches(), exe.as_bytes(), uid, lookup).map(|m| (m.source, m.line))
    };
    assert_eq!(
        choose("/usr/bin/transmission-daemon", 120),
        Some((Source::System, 5))
    );
    // Another user: the user file's catch-all for uid 1000.
    assert_eq!(
        choose("/usr/bin/transmission-daemon", 1000),
        Some((Source::User, 5))
    );
    assert_eq!(choose("/usr/bin/python3.12", 0), Some((Source::System, 10)));
    assert_eq!(choose("/usr/bin/curl", 1000), Some((Source::User, 5)));
    assert_eq!(choose("/usr/bin/curl", 1001), None);
    assert_eq!(choose("/usr/local/bin/curl", 1000), None);
    // A name the user database does not know fits no one.
    let nobody = |_: &str| None;
    assert!(
        first_fit(
            &config.matches()[..1],
            b"/usr/bin/transmission-daemon",
            120,
            nobody
        )
        .is_none()
    );
}

#[test]
fn user_texts_are_uids_when_all_digits() {
    assert_eq!(User::parse("1000"), Some(User::Id(1000)));
    assert_eq!(User::parse("nobody"), Some(User::Name("nobody".into())));
    assert_eq!(User::parse("4294967295"), None);
    assert_eq!(User::parse("4294967294"), None);
    assert_eq!(User::parse(""), None);
}

/// A scratch directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bindto-matches-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until the file `layer` was read from has been left alone long
/// enough for an index to trust its stamp.
fn settle(layer: &Layer) {
    if let Some(wait) = matches::unsettled(&layer.stamp.unwrap()) {
        std::thread::sleep(wait);
    }
}

fn cache_dir(base: &Path) -> Dir {
    let uid = fs::metadata(base).unwrap().uid();
    let env = Env::from_pairs([("XDG_CACHE_HOME", base.to_str().unwrap())]);
    Dir::new(&env, false, uid).unwrap()
}

#[test]
fn the_index_holds_a_files_matches_and_goes_stale_with_it() {
    let base = scratch("index");
    let file = base.join("profiles.toml");
    fs::write(&file, USER.to_owned() + SYSTEM).unwrap();
    let read = || {
        layers::read_one(Source::Environment, &file, false)
            .unwrap()
            .unwrap()
    };
    let layer = read();
    assert!(layer.stamp.is_some());
    let config = Config::from_layers(vec![layer.clone()]).unwrap();
    let dir = cache_dir(&base);
    assert_eq!(
        matches::index_dir(&layer, Some(&dir)),
        Some(dir.clone()),
        "not the system file: the table cache's directory"
    );
    assert!(!index_is_fresh(&layer, &dir));
    settle(&layer);
    let path = write_index(&config, &layer, &dir, lookup).unwrap();
    assert_eq!(path, dir.path().join(matches::index_name(&layer)));
    assert!(
        path.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("match-"),
        "{path:?}"
    );
    assert_eq!(fs::metadata(dir.path()).unwrap().mode() & 0o777, 0o700);
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    assert!(index_is_fresh(&layer, &dir));

    let bytes = fs::read(&path).unwrap();
    let index = Index::parse(&bytes).unwrap();
    let stamped: Vec<_> = index.stamped().map(|(p, _)| p.to_vec()).collect();
    // A rule names a user: the user database is stamped too.
    assert_eq!(
        stamped,
        [
            file.as_os_str().as_encoded_bytes().to_vec(),
            b"/etc/passwd".to_vec()
        ]
    );
    let entries: Vec<_> = index
        .entries()
        .map(|e| (e.line, e.uid, e.program.to_vec(), e.profile.to_vec()))
        .collect();
    assert_eq!(
        entries,
        [
            (5, 1000, b"/usr/bin/*".to_vec(), b"vpn".to_vec()),
            (
                13,
                120,
                b"/usr/bin/transmission-daemon".to_vec(),
                b"vpn".to_vec()
            ),
            (18, ANY_USER, b"/usr/bin/python3*".to_vec(), b"alt".to_vec()),
        ]
    );
    // A name the lookup does not know is written as one no uid fits.
    write_index(&config, &layer, &dir, |_| None).unwrap();
    let bytes = fs::read(&path).unwrap();
    let index = Index::parse(&bytes).unwrap();
    assert_eq!(index.entries().nth(1).unwrap().uid, NO_USER);

    // An edit of the same size makes it stale; a new one is fresh.
    fs::write(&file, (USER.to_owned() + SYSTEM).replace("1000", "1001")).unwrap();
    let edited = read();
    assert!(!index_is_fresh(&edited, &dir));
    let config = Config::from_layers(vec![edited.clone()]).unwrap();
    settle(&edited);
    write_index(&config, &edited, &dir, lookup).unwrap();
    assert!(index_is_fresh(&edited, &dir));

    // One others could write is not trusted.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o622)).unwrap();
    assert!(!index_is_fresh(&edited, &dir));
    fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_file_without_names_is_stamped_alone_and_the_system_file_indexed_apart() {
    let base = scratch("alone");
    let file = base.join("profiles.toml");
    fs::write(&file, "[profile.p]\ninterface = \"lo\"\n").unwrap();
    let system = layers::read_one(Source::System, &file, false)
        .unwrap()
        .unwrap();
    let config = Config::from_layers(vec![system.clone()]).unwrap();
    let dir = cache_dir(&base);
    assert_eq!(
        matches::index_dir(&system, Some(&dir)).unwrap().path(),
        Path::new(bindto_abi::matches::SYSTEM_INDEX_DIR)
    );
    let path = write_index(&config, &system, &dir, lookup).unwrap();
    let bytes = fs::read(path).unwrap();
    let index = Index::parse(&bytes).unwrap();
    assert_eq!(index.stamped().count(), 1);
    assert_eq!(index.entries().count(), 0);
    // Text given, not read: no stamp, no index.
    let given = Layer::new(Source::Given, "/x.toml", "");
    let config = Config::from_layers(vec![given.clone()]).unwrap();
    assert!(write_index(&config, &given, &dir, lookup).is_err());
    fs::remove_dir_all(&base).unwrap();
}

/// Timestamps move in clock ticks: an index written in the tick of an edit
/// would look fresh after a second edit of the same size in that tick, and
/// the front would follow rules the file no longer holds. Written that
/// early, it is stale until written again.
#[test]
fn an_index_written_just_after_an_edit_is_stale() {
    let base = scratch("racy");
    let file = base.join("profiles.toml");
    let text = "[profile.p]\ninterface = \"lo\"\n[[match]]\nprogram = \"/a\"\nprofile = \"p\"\n";
    fs::write(&file, text).unwrap();
    let layer = layers::read_one(Source::User, &file, false)
        .unwrap()
        .unwrap();
    let config = Config::from_layers(vec![layer.clone()]).unwrap();
    let dir = cache_dir(&base);
    write_index(&config, &layer, &dir, lookup).unwrap();
    assert!(!index_is_fresh(&layer, &dir));
    // The same edit in the same tick: the stamps could not tell.
    fs::write(&file, text.replace("/a", "/b")).unwrap();
    let again = layers::read_one(Source::User, &file, false)
        .unwrap()
        .unwrap();
    settle(&again);
    write_index(&config, &again, &dir, lookup).unwrap();
    assert!(index_is_fresh(&again, &dir));
    fs::remove_dir_all(&base).unwrap();
}

/// `BINDTO_CONFIG` replaces both files for matches as for profiles: the
/// user's file's matches are not read with it.
#[test]
fn bindto_config_replaces_the_users_matches() {
    let base = scratch("replace");
    let user = base.join("xdg/bindto/profiles.toml");
    fs::create_dir_all(user.parent().unwrap()).unwrap();
    fs::write(
        &user,
        USER.to_owned() + "[profile.vpn]\ninterface = \"x\"\n",
    )
    .unwrap();
    let other = base.join("other.toml");
    fs::write(&other, SYSTEM.replace("\"alt\"", "\"vpn\"")).unwrap();
    let xdg = base.join("xdg");
    let env = Env::from_pairs([("XDG_CONFIG_HOME", xdg.to_str().unwrap())]);
    let config = Config::load(&env, false).unwrap();
    let sources: Vec<_> = config.matches().iter().map(|m| m.source).collect();
    assert!(sources.contains(&Source::User), "{sources:?}");
    let env = Env::from_pairs([
        ("XDG_CONFIG_HOME", xdg.to_str().unwrap()),
        ("BINDTO_CONFIG", other.to_str().unwrap()),
    ]);
    let config = Config::load(&env, false).unwrap();
    let seen: Vec<_> = config
        .matches()
        .iter()
        .map(|m| (m.source, m.line))
        .collect();
    assert_eq!(seen, [(Source::Environment, 5), (Source::Environment, 10)]);
    fs::remove_dir_all(&base).unwrap();
}
