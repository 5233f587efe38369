//! Links the front without the C start files (`-nostartfiles`).
//!
//! A shared library gets `crti.o`, `crtbeginS.o`, `crtendS.o` and `crtn.o`
//! by default, for C++ static destructors (`__cxa_finalize`) and
//! transactional memory (`_ITM_*`) and profiling (`__gmon_start__`) hooks.
//! The front uses none of them, and their four imports cost every exec it
//! is preloaded into symbol lookups (weak ones
//! that no library defines are the dearest: every object is searched).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-nostartfiles");
    }
}
