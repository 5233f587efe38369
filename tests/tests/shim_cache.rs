//! The compiled-table cache: a second process takes the table the first
//! one compiled; a changed config, even of the same size with the same
//! timestamp, is compiled afresh and never served stale; a cache file that
//! others could write, or that another user owns, is ignored.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

use bindto_core::{Config, Env, Layer, Source, Table, cache};
use bindto_tests::clients::*;
use bindto_tests::programs::{as_refs, bound_vars, path_str};
use bindto_tests::{CONFIG_VAR, HIGH_PORT, Lab, PROFILE_VAR, RunOutput, TARGET_V4};

/// One TCP connect, with the shim's debug log (which says what the cache
/// did) on stderr and the cache under `cache`.
fn connect(lab: &Lab, config: &Path, cache: &Path) -> RunOutput {
    let mut vars = bound_vars(config, "vpn");
    vars.push(("XDG_CACHE_HOME".into(), path_str(cache).into()));
    vars.push(("BINDTO_LOG".into(), "debug".into()));
    let script = tcp_script(SocketAddr::new(TARGET_V4.into(), HIGH_PORT));
    lab.run_client(&python(&script), &as_refs(&vars))
}

/// Asserts the run's answer and what the cache did.
#[track_caller]
fn assert_run(out: &RunOutput, answer: &str, cached: &str) {
    assert_eq!(out.assert_success(), answer, "{out}");
    let line = format!("compiled-table cache: {cached} ");
    assert!(out.stderr.contains(&line), "{line:?} not logged: {out}");
}

/// The one cache file.
fn cache_file(cache: &Path) -> PathBuf {
    let files: Vec<_> = fs::read_dir(cache.join("bindto"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let [file] = &files[..] else {
        panic!("expected one cache file: {files:?}");
    };
    file.clone()
}

/// The vpn profile written to the lab, and a first process that finds no
/// cache, compiles and writes one: the config file and the cache directory.
fn first_run(lab: &Lab) -> (PathBuf, PathBuf) {
    let config = lab.dir().join("vpn.toml");
    let cache = lab.dir().join("cache");
    fs::write(&config, VPN_PROFILE).unwrap();
    assert_run(
        &connect(lab, &config, &cache),
        VPN,
        "miss (absent), written",
    );
    (config, cache)
}

const VPN: &str = "vpn 198.18.2.2\n";
const ALT: &str = "alt 198.18.3.2\n";

#[test]
fn a_second_process_takes_the_cached_table_until_the_config_changes() {
    let Some(lab) = Lab::new() else { return };
    let (config, cache) = first_run(&lab);
    let mode = fs::metadata(cache.join("bindto"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert_run(&connect(&lab, &config, &cache), VPN, "hit");

    // Same size, same modification time: only the contents differ.
    let stamp = fs::metadata(&config).unwrap().modified().unwrap();
    let edited = VPN_PROFILE.replace("vpn0", "alt0");
    assert_eq!(edited.len(), VPN_PROFILE.len());
    fs::write(&config, &edited).unwrap();
    fs::File::options()
        .write(true)
        .open(&config)
        .unwrap()
        .set_modified(stamp)
        .unwrap();
    assert_run(
        &connect(&lab, &config, &cache),
        ALT,
        "miss (stale), written",
    );
    assert_run(&connect(&lab, &config, &cache), ALT, "hit");
    assert_eq!(counts(&lab), (0, 2, 2));
}

/// A table compiled from `text`, sealed under the key of `config` as it
/// is now: what the shim would take as the table of the file it reads.
fn forged(config: &Path, cache: &Path, text: &str) -> Vec<u8> {
    let env = Env::from_pairs([
        (CONFIG_VAR, path_str(config)),
        (PROFILE_VAR, "vpn"),
        ("XDG_CACHE_HOME", path_str(cache)),
    ]);
    let layer = |text: &str| Layer {
        source: Source::Environment,
        path: config.to_owned(),
        text: text.to_owned(),
        stamp: None,
    };
    let key = cache::Key::new(&env, &[layer(&fs::read_to_string(config).unwrap())]);
    let other = Config::from_layers(vec![layer(text)]).unwrap();
    cache::seal(&key, &Table::compile(other.profile("vpn").unwrap())).unwrap()
}

#[test]
fn a_cache_file_others_could_write_or_another_user_owns_is_ignored() {
    let Some(lab) = Lab::new() else { return };
    let (config, cache) = first_run(&lab);
    let file = cache_file(&cache);
    let genuine = fs::read(&file).unwrap();
    let forged = forged(&config, &cache, &VPN_PROFILE.replace("vpn0", "alt0"));

    // Each time the shim compiles and replaces the file with its own.
    fs::write(&file, &forged).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
    assert_run(
        &connect(&lab, &config, &cache),
        VPN,
        "miss (untrusted), written",
    );
    assert_eq!(fs::read(&file).unwrap(), genuine);

    fs::write(&file, &forged).unwrap();
    chown(&file, Some(65534), Some(65534)).unwrap();
    assert_run(
        &connect(&lab, &config, &cache),
        VPN,
        "miss (untrusted), written",
    );
    assert_eq!(fs::read(&file).unwrap(), genuine);

    // A cut-short file is no table either.
    fs::write(&file, &forged[..forged.len() - 1]).unwrap();
    assert_run(
        &connect(&lab, &config, &cache),
        VPN,
        "miss (invalid), written",
    );

    // The control: the same forged file, the user's own, is believed, as
    // the user's own config file would be. So it was the trust check that
    // kept the runs above on vpn0.
    fs::write(&file, &forged).unwrap();
    assert_run(&connect(&lab, &config, &cache), ALT, "hit");
    assert_eq!(counts(&lab), (0, 4, 1));
}
