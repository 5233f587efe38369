//! Every file under `fixtures/valid` must load and compile; every file under
//! `fixtures/invalid` must fail with exactly the message in the `.err` file
//! beside it (the path shown as the file's name alone).

use std::fs;
use std::path::{Path, PathBuf};

use bindto_core::{Config, Layer, Source, Table};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn load(path: &Path) -> Result<Config, bindto_core::Error> {
    let name = path.file_name().unwrap();
    Config::from_layers(vec![Layer {
        source: Source::Given,
        path: PathBuf::from(name),
        text: fs::read_to_string(path).unwrap(),
        stamp: None,
    }])
}

#[test]
fn valid_fixtures_load_and_compile() {
    for path in fixtures("valid") {
        let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
        for name in config.names() {
            let profile = config.profile(name).unwrap();
            Table::compile(profile);
        }
    }
}

#[test]
fn invalid_fixtures_fail_with_their_message() {
    let mut failures = Vec::new();
    for path in fixtures("invalid") {
        let expected_path = path.with_extension("err");
        let got = match load(&path) {
            Ok(_) => "(loaded without error)".to_owned(),
            Err(e) => e.to_string(),
        };
        if std::env::var_os("BLESS").is_some() {
            fs::write(&expected_path, format!("{got}\n")).unwrap();
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        if got.trim_end() != expected.trim_end() {
            failures.push(format!(
                "{}\n  expected: {}\n  got:      {got}",
                path.display(),
                expected.trim_end()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn example_profiles_parse() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles.example.toml");
    let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.names().count() >= 3);
}
