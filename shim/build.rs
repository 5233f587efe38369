//! Links the unwinder statically when the C compiler has it as an archive.
//!
//! The panic boundary needs `panic = "unwind"`, and by default std takes the
//! unwinder from `libgcc_s.so.1`: one more library for the dynamic loader to
//! find, map, relocate and version-check in every process the shim is
//! preloaded into, and a dozen `_Unwind_*` imports to bind. `libgcc_eh.a` is
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
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "linux" || target_env != "gnu" {
        return;
    }
    let Some(archive) = gcc_eh() else {
        println!(
            "cargo:warning=libgcc_eh.a not found: libbindto.so will need libgcc_s.so.1 at run time"
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
    let out = Command::new(target_cc()?)
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
/// link.
fn target_cc() -> Option<OsString> {
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
        return Some(cc);
    }
    (env::var("HOST").ok()? == target).then(|| env::var_os("CC").unwrap_or_else(|| "cc".into()))
}
