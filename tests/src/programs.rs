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

/// Compiles `tests/programs/<name>.c` into `dir/<out>` (which may name a
/// subdirectory, created if need be) with gcc and `flags` too, e.g.
/// `-shared -fPIC` for a library, and returns the output's path.
///
/// # Panics
/// If gcc is missing or the program does not compile.
#[track_caller]
pub fn compile_as(dir: &Path, name: &str, out: &str, flags: &[&str]) -> PathBuf {
    let source = run::workspace_root()
        .join("tests/programs")
        .join(format!("{name}.c"));
    let out = dir.join(out);
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|error| panic!("{}: {error}", parent.display()));
    }
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

/// The 32-bit build of the shim, `<shim's directory>/i686/libbindto.so`
/// (shim/build.rs links it there when `cargo build --release --target
/// i686-unknown-linux-gnu -p bindto-shim` builds it), if it is there and
/// gcc builds 32-bit programs in `dir` (gcc-multilib); else `None` after
/// the lab's skip, a failure under `BINDTO_E2E=require`.
pub fn i686_shim(dir: &Path) -> Option<PathBuf> {
    let shim = run::shim_path().with_file_name("i686").join(run::SHIM_FILE);
    if !shim.is_file() {
        crate::privilege::skip(&format!(
            "{} is not built: `rustup target add i686-unknown-linux-gnu`, then \
             `cargo build --release --target i686-unknown-linux-gnu -p bindto-shim`",
            shim.display()
        ));
        return None;
    }
    let probe = dir.join("probe32.c");
    fs::write(&probe, "int main(void) { return 0; }\n")
        .unwrap_or_else(|error| panic!("{}: {error}", probe.display()));
    let built = Command::new("gcc")
        .args(["-m32", "-o"])
        .arg(dir.join("probe32"))
        .arg(&probe)
        .output()
        .is_ok_and(|out| out.status.success());
    if !built {
        crate::privilege::skip("gcc -m32 cannot build a program: `apt-get install gcc-multilib`");
        return None;
    }
    Some(shim)
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
