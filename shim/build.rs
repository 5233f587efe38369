//! Builds the front (`front/`, libbindto.so) beside the engine, and links
//! the engine's unwinder statically when the C compiler has it as an
//! archive.
//!
//! # The front
//!
//! Users preload libbindto.so, a `no_std` library that loads this crate's
//! libbindto_engine.so only in processes that ask for bindto (see
//! `front/src/lib.rs` for why). A `no_std` cdylib only builds with
//! `panic = "abort"` ("unwinding panics are not supported without std"),
//! while the engine needs `panic = "unwind"` for its panic boundary, and
//! cargo cannot give one artifact another panic strategy: `panic` is set
//! per profile for a whole workspace, and profile overrides per package
//! exclude it. So the front is a workspace of its own (excluded from this
//! one) and this script builds it with a nested cargo, into a target
//! directory under `OUT_DIR` so that the two builds never wait on each
//! other's lock (the pattern of substrate's wasm-builder), then copies
//! libbindto.so into the profile directory beside libbindto_engine.so
//! (`target/release/`), where users, the CLI, tests and benches find it.
//!
//! # Its own functions
//!
//! The engine is linked with `-Bsymbolic-functions`: its references to the
//! functions it exports bind to its own definitions at link time instead
//! of going through the global scope, where the front's come first. So
//! the addresses it hands the front (`src/front.rs`) are its own, not the
//! front's (whose slots would then jump to themselves), and its own calls
//! of `close`, `socket` and the like (std's) reach its hooks without a hop
//! through the front, as when it was preloaded itself. It also spares
//! `ld.so` the lookups of those symbols.
//!
//! # The unwinder
//!
//! The panic boundary needs `panic = "unwind"`, and by default std takes the
//! unwinder from `libgcc_s.so.1`: one more library for the dynamic loader to
//! find, map, relocate and version-check in every process the engine is
//! loaded into, and a dozen `_Unwind_*` imports to bind. `libgcc_eh.a` is
//! the same unwinder as a PIC archive (what `gcc -static-libgcc` links into
//! shared libraries). Named before std's `-lgcc_s` on the link line, it
//! defines every `_Unwind_*` symbol, and the linker's `--as-needed` then
//! drops `libgcc_s.so.1` from the library's dependencies.
//!
//! Where the compiler has no such archive (another C library, a toolchain
//! without it), nothing is emitted and the library needs `libgcc_s.so.1` as
//! before.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    build_front();
    link_gcc_eh();
    bind_own_functions();
}

/// Links the engine with `-Bsymbolic-functions` (see the module's doc).
fn bind_own_functions() {
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic-functions");
    }
}

/// Builds `front/` with the same cargo, rustc, profile and target, and
/// copies its libbindto.so into the profile directory.
fn build_front() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let front = manifest.join("front");
    for path in ["Cargo.toml", "Cargo.lock", "build.rs", "src", "../abi"] {
        println!("cargo:rerun-if-changed={}", front.join(path).display());
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target_dir = out.join("front");
    let release = env::var("PROFILE").as_deref() == Ok("release");
    let target = env::var("TARGET").expect("set by cargo");
    let cross = env::var("HOST").ok().as_deref() != Some(target.as_str());

    let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .arg("build")
        .arg("--manifest-path")
        .arg(front.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    if release {
        cargo.arg("--release");
    }
    if cross {
        cargo.arg("--target").arg(&target);
    }
    if let Some(rustc) = env::var_os("RUSTC") {
        cargo.env("RUSTC", rustc);
    }
    // `cargo clippy` runs this script with clippy's driver as the wrapper
    // of the outer workspace's members; the front is linted on its own
    // (`.ci/run`).
    cargo.env_remove("RUSTC_WORKSPACE_WRAPPER");
    // Anything on this script's stdout would be read as cargo directives.
    cargo.stdout(Stdio::null());
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the front: {e}"));
    assert!(
        status.success(),
        "building the front ({}) failed",
        front.display()
    );

    let mut built = target_dir;
    if cross {
        built.push(&target);
    }
    built.push(if release { "release" } else { "debug" });
    built.push("libbindto.so");
    // OUT_DIR is <target>/[<triple>/]<profile>/build/<package>-<hash>/out.
    let profile_dir = out
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is under the profile directory");
    install(&built, &profile_dir.join("libbindto.so"));
    link_platform(profile_dir, &target, cross);
}

/// What glibc 2.26 to 2.36 make of `$PLATFORM` in an x86_64 process on a
/// CPU with AVX2 (`haswell`) or AVX512ER (`xeon_phi`) instead of its
/// `AT_PLATFORM`, `x86_64` (sysdeps/x86/cpu-features.c): links to the
/// `x86_64` directory. The Makefile installs the same.
const X86_64_ALIASES: [&str; 2] = ["haswell", "xeon_phi"];

/// Links `<host profile dir>/<platform>/` to this build's libbindto.so and
/// libbindto_engine.so, `<platform>` being what `ld.so` makes of
/// `$PLATFORM` for a process of the target (`AT_PLATFORM`: `x86_64`, and
/// `i686` for an i386 process on an x86_64 kernel; for x86_64 also
/// [`X86_64_ALIASES`]). `bindto run` preloads
/// `<dir>/$PLATFORM/libbindto.so` where such directories are, so that each
/// process of a chain gets the build of its own class (see
/// `cli/src/library.rs`).
fn link_platform(profile_dir: &Path, target: &str, cross: bool) {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("set by cargo");
    let platform = if arch == "x86" { "i686" } else { arch.as_str() };
    let profile = profile_dir.file_name().expect("a profile directory");
    // From <host profile dir>/<platform>/ to this build's profile directory.
    let (host_dir, up) = if cross {
        let root = profile_dir
            .ancestors()
            .nth(2)
            .expect("<target>/<triple>/<profile>");
        let up = Path::new("../..").join(target).join(profile);
        (root.join(profile), up)
    } else {
        (profile_dir.to_owned(), PathBuf::from(".."))
    };
    let dir = host_dir.join(platform);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    for name in ["libbindto.so", "libbindto_engine.so"] {
        // Through a temporary name, as in `install`.
        let link = dir.join(name);
        let temporary = link.with_extension("so.part");
        let _ = fs::remove_file(&temporary);
        std::os::unix::fs::symlink(up.join(name), &temporary)
            .and_then(|()| fs::rename(&temporary, &link))
            .unwrap_or_else(|e| panic!("cannot link {}: {e}", link.display()));
    }
    if platform == "x86_64" {
        for alias in X86_64_ALIASES {
            let link = host_dir.join(alias);
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(platform, &link)
                .unwrap_or_else(|e| panic!("cannot link {}: {e}", link.display()));
        }
    }
}

/// Copies `from` to `to` through a temporary name, so that a test running
/// meanwhile never preloads half a file.
fn install(from: &Path, to: &Path) {
    let temporary = to.with_extension("so.part");
    fs::copy(from, &temporary)
        .and_then(|_| fs::rename(&temporary, to))
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
}

/// Links libgcc_eh.a (see the module's doc).
fn link_gcc_eh() {
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "linux" || target_env != "gnu" {
        return;
    }
    let Some(archive) = gcc_eh() else {
        println!(
            "cargo:warning=libgcc_eh.a not found: libbindto_engine.so will need libgcc_s.so.1 at run time"
        );
        return;
    };
    println!("cargo:rerun-if-changed={}", archive.display());
    let dir = archive.parent().expect("an absolute path has a parent");
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
}

/// The target's C compiler's `libgcc_eh.a`, if it names one that exists. A
/// compiler that does not know the file prints the bare name back, which is
/// not absolute.
fn gcc_eh() -> Option<PathBuf> {
    let (cc, flags) = target_cc()?;
    let out = Command::new(cc)
        .args(flags)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (path.is_absolute() && path.is_file()).then_some(path)
}

/// The C compiler for the target, found as the cc crate finds it: `CC_<target>`
/// or `TARGET_CC`, else `CC` or `cc` when building for the host. A cross build
/// without a named target compiler gets none: the host's archive would not
/// link; but i686 on an x86_64 host gets the host's with `-m32`, as the cc
/// crate does (gcc-multilib's 32-bit libgcc).
fn target_cc() -> Option<(OsString, &'static [&'static str])> {
    let target = env::var("TARGET").ok()?;
    let names = [
        format!("CC_{target}"),
        format!("CC_{}", target.replace('-', "_")),
        "TARGET_CC".to_owned(),
        "CC".to_owned(),
    ];
    for name in &names {
        println!("cargo:rerun-if-env-changed={name}");
    }
    if let Some(cc) = names[..3].iter().find_map(env::var_os) {
        return Some((cc, &[]));
    }
    let host = env::var("HOST").ok()?;
    let flags: &'static [&'static str] = if host == target {
        &[]
    } else if host == "x86_64-unknown-linux-gnu" && target == "i686-unknown-linux-gnu" {
        &["-m32"]
    } else {
        return None;
    };
    Some((env::var_os("CC").unwrap_or_else(|| "cc".into()), flags))
}
