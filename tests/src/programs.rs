//! What the hardening tests (`tests/tests/hardening_*.rs`) share: building
//! their C programs (`tests/programs/*.c`) into a lab's directory, and the
//! environment that preloads the shim.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{CONFIG_VAR, Lab, PROFILE_VAR, run};

/// The lab's first IPv4 target, as the C programs take it.
pub const TARGET: &str = "198.19.0.1";

/// Compiles `tests/programs/<name>.c` into `dir/<name>` with gcc and
/// returns the binary's path.
///
/// # Panics
/// If gcc is missing or the program does not compile.
#[track_caller]
pub fn compile(dir: &Path, name: &str) -> PathBuf {
    compile_as(dir, name, name, &[])
}

/// [`compile`] into `dir/<out>`, with extra gcc `flags` (e.g. `-static`).
///
/// # Panics
/// As [`compile`].
#[track_caller]
pub fn compile_as(dir: &Path, name: &str, out: &str, flags: &[&str]) -> PathBuf {
    let source = run::workspace_root()
        .join("tests/programs")
        .join(format!("{name}.c"));
    let out = dir.join(out);
    let result = Command::new("gcc")
        .args(["-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&source)
        .output()
        .unwrap_or_else(|error| panic!("cannot run gcc (install it): {error}"));
    assert!(
        result.status.success(),
        "gcc {}: {}",
        source.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

/// The shim's absolute path, as text for `LD_PRELOAD`.
pub fn shim() -> String {
    path_str(&run::shim_path()).to_owned()
}

/// A path as UTF-8, for the lab's `&str` APIs.
#[track_caller]
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Writes `text` to `name` in the lab's directory and returns its path.
#[track_caller]
pub fn write(lab: &Lab, name: &str, text: &str) -> PathBuf {
    let path = lab.dir().join(name);
    fs::write(&path, text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    path
}

/// The variables that run a program under the shim with `profile` from
/// `config`: `LD_PRELOAD`, `BINDTO_CONFIG`, `BIND_PROFILE`.
pub fn bound_vars(config: &Path, profile: &str) -> Vec<(String, String)> {
    vec![
        ("LD_PRELOAD".to_owned(), shim()),
        (CONFIG_VAR.to_owned(), path_str(config).to_owned()),
        (PROFILE_VAR.to_owned(), profile.to_owned()),
    ]
}

/// `vars` as the lab's `run_client` takes them.
pub fn as_refs(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}
