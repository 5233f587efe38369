//! Finding libbindto.so, by absolute path, from where the running bindto is.
//!
//! `ld.so` resolves a relative LD_PRELOAD entry against the working
//! directory of every program it starts, so a relative path breaks as soon
//! as the command changes directory (the older tool's README warns about
//! it). The library is looked for beside the executable (cargo's
//! `target/release/`) and in `<prefix>/lib/bindto/` for `<prefix>/bin/bindto`
//! (`make install`), and always handed on as an absolute path.
//!
//! libbindto.so is the front: at the first call of a process that asks for
//! bindto it loads the engine, libbindto_engine.so, from its own directory.
//! A front without its engine would block every connection, so the engine
//! must be beside it too.
//!
//! One build per process class: beside the flat `libbindto.so` (the
//! native build), `<dir>/<platform>/` holds each build under the name
//! `ld.so` gives `$PLATFORM` in a process of its class (`x86_64`, or on
//! some CPUs `haswell` or `xeon_phi`, linked to it; `i686` for an i386
//! process on an x86_64 kernel): shim/build.rs links them in
//! the build tree, `make install` copies them. Where they are, `run`
//! preloads `<dir>/$PLATFORM/libbindto.so`, literally: `ld.so` expands it
//! per process (ld.so(8)), so that a 32-bit program started from a 64-bit
//! shell, and the 64-bit programs it starts, each load their own build.

use std::io;
use std::path::{Path, PathBuf};

/// The library's file name.
pub(crate) const FILE: &str = "libbindto.so";

/// The engine's file name, which the front loads from its own directory.
pub(crate) const ENGINE: &str = "libbindto_engine.so";

/// Where the library is looked for, relative to the executable's directory.
const PLACES: [&str; 2] = [".", "../lib/bindto"];

/// How to add the 32-bit build where there is none.
pub(crate) const ADD_I686: &str = "`rustup target add i686-unknown-linux-gnu`, \
    `apt-get install gcc-multilib`, then `make install`";

/// The platform directories looked for beside the flat library, as
/// `ld.so` names them (`AT_PLATFORM`).
const PLATFORMS: [&str; 2] = ["x86_64", "i686"];

/// What `LD_PRELOAD` gets for `front`, and the builds that value loads:
/// `<dir>/$PLATFORM/libbindto.so` and each platform directory with a front
/// and its engine, else `front` alone.
pub(crate) fn builds(front: &Path) -> (PathBuf, Vec<PathBuf>) {
    let dir = front.parent().unwrap_or(Path::new("/"));
    let found: Vec<PathBuf> = PLATFORMS
        .iter()
        .map(|platform| dir.join(platform).join(FILE))
        .filter(|path| path.is_file() && engine_of(path).is_file())
        .collect();
    if found.is_empty() {
        (front.to_owned(), vec![front.to_owned()])
    } else {
        (dir.join("$PLATFORM").join(FILE), found)
    }
}

/// The library beside the running executable, or why it is not there.
pub(crate) fn locate() -> Result<PathBuf, String> {
    // /proc/self/exe: symlinks to bindto (e.g. ~/bin/bindto) are resolved,
    // so the lookup starts from where bindto really is.
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot tell where the bindto executable is: {e}"))?;
    find_near(&exe)
}

/// The library for the executable at `exe`.
pub(crate) fn find_near(exe: &Path) -> Result<PathBuf, String> {
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let candidates: Vec<PathBuf> = PLACES.iter().map(|p| dir.join(p).join(FILE)).collect();
    for candidate in &candidates {
        if let Ok(path) = candidate.canonicalize()
            && path.is_file()
        {
            return check_path(path).and_then(check_engine);
        }
    }
    let looked: Vec<String> = candidates
        .iter()
        .map(|c| normalize(c).display().to_string())
        .collect();
    Err(format!(
        "{FILE} not found (looked in {}); build it with `cargo build --release` \
         or install both with `make install`",
        looked.join(" and ")
    ))
}

/// LD_PRELOAD separates entries with spaces and colons, so a path holding
/// one cannot be preloaded at all.
fn check_path(path: PathBuf) -> Result<PathBuf, String> {
    if path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .any(|&b| b == b':' || b.is_ascii_whitespace())
    {
        return Err(format!(
            "{} contains a space or ':', which LD_PRELOAD cannot carry; \
             install bindto under a path without them",
            path.display()
        ));
    }
    Ok(path)
}

/// The engine the front at `front` will load.
pub(crate) fn engine_of(front: &Path) -> PathBuf {
    front.with_file_name(ENGINE)
}

/// The front loads the engine from its own directory: without it, every
/// network call of the program would be refused.
fn check_engine(front: PathBuf) -> Result<PathBuf, String> {
    let engine = engine_of(&front);
    if engine.is_file() {
        return Ok(front);
    }
    Err(format!(
        "{ENGINE} is not beside {} ({} is missing): {FILE} loads it from its own \
         directory and would block every network call without it; build both with \
         `cargo build --release` or install both with `make install`",
        front.display(),
        engine.display()
    ))
}

/// `a/b/../c` as `a/c`, for messages about files that do not exist.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `existing` with `library` first and any other copy of it removed (a
/// nested `bindto run` must not load it twice).
pub(crate) fn preload_list(library: &Path, existing: Option<&str>) -> String {
    let library = library.to_string_lossy();
    let mut entries = vec![library.as_ref()];
    entries.extend(
        existing
            .unwrap_or_default()
            .split([':', ' '])
            .filter(|e| !e.is_empty() && *e != library),
    );
    entries.join(":")
}

/// The library's ELF header, to compare targets with the command.
pub(crate) fn elf(path: &Path) -> Result<crate::elf::Elf, String> {
    let fail = |e: io::Error| format!("cannot read {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(fail)?;
    crate::elf::read(&file)
        .map_err(fail)?
        .ok_or_else(|| format!("{} is not an ELF library", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_comes_first_once() {
        let lib = Path::new("/opt/bindto/lib/bindto/libbindto.so");
        assert_eq!(preload_list(lib, None), lib.display().to_string());
        assert_eq!(
            preload_list(lib, Some("/a.so /opt/bindto/lib/bindto/libbindto.so:/b.so")),
            "/opt/bindto/lib/bindto/libbindto.so:/a.so:/b.so"
        );
    }

    #[test]
    fn platform_directories_give_one_value_for_all() {
        let root = std::env::temp_dir().join(format!("bindto-plat-{}", std::process::id()));
        let front = root.join(FILE);
        std::fs::create_dir_all(root.join("i686")).unwrap();
        assert_eq!(builds(&front), (front.clone(), vec![front.clone()]));
        // A front without its engine is no build.
        std::fs::write(root.join("i686").join(FILE), b"").unwrap();
        assert_eq!(builds(&front).0, front);
        std::fs::write(root.join("i686").join(ENGINE), b"").unwrap();
        assert_eq!(
            builds(&front),
            (
                root.join("$PLATFORM").join(FILE),
                vec![root.join("i686").join(FILE)]
            )
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn found_beside_or_in_the_prefix() {
        let root = std::env::temp_dir().join(format!("bindto-lib-{}", std::process::id()));
        let bin = root.join("bin");
        let lib = root.join("lib/bindto");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&lib).unwrap();
        let exe = bin.join("bindto");
        let err = find_near(&exe).unwrap_err();
        assert!(err.contains(&lib.join(FILE).display().to_string()), "{err}");
        std::fs::write(lib.join(FILE), b"").unwrap();
        let err = find_near(&exe).unwrap_err();
        assert!(
            err.contains(&format!("{ENGINE} is not beside")) && err.contains(FILE),
            "{err}"
        );
        std::fs::write(lib.join(ENGINE), b"").unwrap();
        assert_eq!(
            find_near(&exe).unwrap(),
            lib.join(FILE).canonicalize().unwrap()
        );
        std::fs::write(bin.join(FILE), b"").unwrap();
        std::fs::write(bin.join(ENGINE), b"").unwrap();
        assert_eq!(
            find_near(&exe).unwrap(),
            bin.join(FILE).canonicalize().unwrap()
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
