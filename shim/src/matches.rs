//! The engine's part of `[[match]]` (issue 20): in a process that no
//! variable asks for bindto (or any privileged one), which profile the
//! config files' matches choose, decided from the files themselves.
//!
//! The front (`shim/front/src/matches.rs`) loads the engine whenever it
//! cannot clear the process from the match indexes; here the layers are
//! read and checked as for `BIND_PROFILE`, the first match that fits the
//! executable's real path (`/proc/self/exe`) and the real uid chooses, and
//! the process then goes on exactly as if `BIND_PROFILE` named that
//! profile ([`crate::state`]). Each layer's index found stale is written
//! again on the way (best effort: a debug line when it cannot be), the
//! system file's only by a process whose effective user is root.
//!
//! Called once per process, from the first intercepted call, with the
//! re-entrancy guard held: the user database (`getpwnam_r`, maybe NSS over
//! the network) comes back to libc, not to the hooks.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use bindto_abi::matches::exe_path;

use bindto_core::layers::Source;
use bindto_core::matches::{self, index_dir, index_is_fresh, write_index};
use bindto_core::{Config, Env, cache};

/// What the matches say.
#[derive(Debug)]
pub(crate) enum Choice {
    /// This profile, as if `BIND_PROFILE` named it.
    Profile(String),
    /// No match fits.
    None,
    /// The config could not be read or checked, or the process could not
    /// be matched: what to say. The process fails closed.
    Broken(String),
}

/// The profile the matches of `env`'s layers choose for this process.
pub(crate) fn choose(env: &Env, secure: bool) -> Choice {
    let config = match Config::load(env, secure) {
        Ok(config) => config,
        Err(error) => return Choice::Broken(error.to_string()),
    };
    write_stale_indexes(&config, env, secure);
    if config.matches().is_empty() {
        return Choice::None;
    }
    let exe = match fs::read_link("/proc/self/exe") {
        Ok(exe) => exe,
        Err(error) => {
            return Choice::Broken(format!(
                "cannot read /proc/self/exe to match the [[match]] rules: {error}"
            ));
        }
    };
    let exe = exe_path(exe.as_os_str().as_bytes(), || {
        fs::metadata("/proc/self/exe").is_ok_and(|meta| meta.nlink() == 0)
    });
    // SAFETY: getuid only reads the process's credentials.
    let uid = unsafe { libc::getuid() };
    match matches::first_fit(config.matches(), exe, uid, uid_of) {
        Some(chosen) => {
            tracing::info!(
                profile = chosen.profile,
                file = %chosen.path.display(),
                line = chosen.line,
                "chosen by [[match]]"
            );
            Choice::Profile(chosen.profile.clone())
        }
        None => Choice::None,
    }
}

/// Writes the match index of each of `config`'s layers that is not fresh,
/// where the front looks for it; silently but for a debug line.
fn write_stale_indexes(config: &Config, env: &Env, secure: bool) {
    // SAFETY: geteuid only reads the process's credentials.
    let euid = unsafe { libc::geteuid() };
    let cache = cache::Dir::new(env, secure, euid);
    for layer in config.layers() {
        // Root's directory: anyone else's index would never be trusted.
        if layer.source == Source::System && euid != 0 {
            continue;
        }
        let Some(dir) = index_dir(layer, cache.as_ref()) else {
            continue;
        };
        if index_is_fresh(layer, &dir) {
            continue;
        }
        match write_index(config, layer, &dir, uid_of) {
            Ok(path) => tracing::debug!(index = %path.display(), "match index written"),
            Err(error) => tracing::debug!(
                file = %layer.path.display(),
                dir = %dir.path().display(),
                "match index not written: {error}"
            ),
        }
    }
}

/// The uid of user `name` in the user database; `None` if it has none.
fn uid_of(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: a plain C struct, which getpwnam_r fills.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found = std::ptr::null_mut();
        // SAFETY: a NUL-terminated name; `entry`, `buf` (for its length)
        // and `found` are writable.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut entry,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return (rc == 0 && !found.is_null()).then_some(entry.pw_uid);
    }
}
