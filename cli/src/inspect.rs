//! What `run` is about to start, and whether libbindto.so will be loaded
//! into it: the command resolved through PATH, its `#!` interpreter (that is
//! what the loader actually starts), how it is linked, and whether the
//! kernel will start it in secure mode, where `ld.so` ignores LD_PRELOAD.

use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::elf::{self, Elf};
use crate::users;

/// [`Elf::target`] of a 32-bit x86 program, for which bindto has a build.
pub(crate) const I386: &str = "32-bit i386";

/// PATH when the environment has none, as glibc's execvp uses.
const DEFAULT_PATH: &str = "/bin:/usr/bin";
/// How many `#!` interpreters deep to follow (the kernel allows 4).
const MAX_DEPTH: usize = 5;

/// Why the library would not be loaded into a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unbound {
    /// No PT_INTERP: nothing reads LD_PRELOAD.
    Static { path: PathBuf },
    /// Built for another architecture than the library.
    OtherTarget {
        path: PathBuf,
        target: String,
        library: String,
    },
    /// Setuid or setgid to someone else: secure mode, LD_PRELOAD dropped.
    SetId { path: PathBuf, bit: &'static str },
    /// File capabilities: secure mode too.
    Capabilities { path: PathBuf },
    /// Cannot be read, so cannot be checked.
    Unreadable { path: PathBuf, error: String },
}

impl Unbound {
    /// Why, and what to do instead.
    pub(crate) fn explain(&self, command: &Path) -> String {
        let via = |path: &Path| {
            if path == command {
                format!("{}", path.display())
            } else {
                format!("{} (which runs {})", command.display(), path.display())
            }
        };
        match self {
            Unbound::Static { path } => format!(
                "{} is statically linked (no ELF interpreter), so libbindto.so cannot be \
                 loaded into it",
                via(path)
            ),
            Unbound::OtherTarget {
                path,
                target,
                library,
            } => format!(
                "{} is a {target} program but libbindto.so is {library}, so the loader would \
                 skip the library and its traffic would leave unbound. {}; --allow-unbound \
                 runs it anyway, unbound.",
                via(path),
                if target == I386 {
                    format!(
                        "No 32-bit library is installed: add it with {}",
                        crate::library::ADD_I686
                    )
                } else {
                    "Build bindto for that target".to_owned()
                }
            ),
            Unbound::SetId { path, bit } => format!(
                "{} is {bit}, so the loader ignores LD_PRELOAD and its traffic would leave \
                 unbound. Run the command from a shell that is already privileged (sudo \
                 bindto run ... -- cmd, never bindto run ... -- sudo cmd); --allow-unbound \
                 runs it anyway, unbound.",
                via(path)
            ),
            Unbound::Capabilities { path } => format!(
                "{} has file capabilities (security.capability), so the loader ignores \
                 LD_PRELOAD and its traffic would leave unbound. Run it as root, or from a \
                 copy without capabilities; --allow-unbound runs it anyway, unbound.",
                via(path)
            ),
            Unbound::Unreadable { path, error } => format!(
                "cannot read {} to check that libbindto.so can be loaded into it ({error}); \
                 --allow-unbound runs it anyway, unchecked.",
                via(path)
            ),
        }
    }
}

/// Finds `command` as execvp would: as given when it has a '/', otherwise
/// the first executable regular file of that name in `path_var`.
pub(crate) fn resolve(command: &OsStr, path_var: Option<&OsStr>) -> io::Result<PathBuf> {
    if command.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "empty command"));
    }
    if command.as_bytes().contains(&b'/') {
        let path = PathBuf::from(command);
        std::fs::metadata(&path)?;
        return Ok(path);
    }
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut denied = None;
    for dir in std::env::split_paths(path_var) {
        // An empty PATH entry means the current directory.
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(command);
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
                return Ok(candidate);
            }
            Ok(meta) if meta.is_file() => denied = Some(candidate),
            _ => {}
        }
    }
    match denied {
        Some(path) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not executable", path.display()),
        )),
        None => Err(io::Error::new(io::ErrorKind::NotFound, "command not found")),
    }
}

/// Checks that the loader will load one of the libraries built as
/// `libraries` into `path`, following `#!` lines to the binary that really runs; returns
/// that binary's ELF (`None` where nothing would run).
pub(crate) fn check(
    path: &Path,
    libraries: &[Elf],
    path_var: Option<&OsStr>,
) -> Result<Option<Elf>, Unbound> {
    let mut current = path.to_owned();
    for depth in 0..MAX_DEPTH {
        let unreadable = |error: io::Error| Unbound::Unreadable {
            path: current.clone(),
            error: error.to_string(),
        };
        let file = match File::open(&current) {
            Ok(file) => file,
            // A missing interpreter: exec fails ("bad interpreter") and
            // nothing runs, so there is nothing to leak.
            Err(e) if depth > 0 && e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unreadable(e)),
        };
        let meta = file.metadata().map_err(unreadable)?;
        let mut head = [0u8; 256];
        let got = read_head(&file, &mut head).map_err(unreadable)?;
        let head = &head[..got];
        let next = if head.starts_with(b"#!") {
            // The kernel ignores the set-id bits and capabilities of a
            // script: only its interpreter's count.
            interpreter(head, path_var)
        } else {
            match elf::read(&file).map_err(unreadable)? {
                Some(elf) => {
                    return check_elf(&current, &meta, &elf, libraries).map(|()| Some(elf));
                }
                // Neither ELF nor #!: execvp hands it to /bin/sh.
                None => Some(PathBuf::from("/bin/sh")),
            }
        };
        match next {
            Some(next) => current = next,
            // A `#!` line naming nothing: exec fails, nothing runs.
            None => return Ok(None),
        }
    }
    Ok(None)
}

fn check_elf(path: &Path, meta: &Metadata, elf: &Elf, libraries: &[Elf]) -> Result<(), Unbound> {
    let path = path.to_owned();
    if elf.interpreter.is_none() {
        return Err(Unbound::Static { path });
    }
    if !libraries.iter().any(|library| elf.same_target(library)) {
        let built: Vec<String> = libraries.iter().map(Elf::target).collect();
        return Err(Unbound::OtherTarget {
            path,
            target: elf.target(),
            library: built.join(" and "),
        });
    }
    if let Some(bit) = set_id(meta, users::real_uid()) {
        return Err(Unbound::SetId { path, bit });
    }
    if has_capabilities(&path) && users::real_uid() != 0 {
        return Err(Unbound::Capabilities { path });
    }
    Ok(())
}

/// Whether the program at `path`, run by user `uid`, runs in secure mode
/// (AT_SECURE): set-id to another user, or with file capabilities.
pub(crate) fn privileged_for(path: &Path, uid: u32) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| set_id(&meta, uid).is_some())
        || (has_capabilities(path) && uid != 0)
}

/// The set-id bit that puts an exec by user `uid` in secure mode: only
/// one that changes the effective id (setuid root run by root changes
/// nothing).
fn set_id(meta: &Metadata, uid: u32) -> Option<&'static str> {
    let mode = meta.mode();
    if mode & libc::S_ISUID != 0 && meta.uid() != uid {
        return Some("setuid");
    }
    // Setgid without group execute is the mandatory-locking mark, not setgid.
    if mode & libc::S_ISGID != 0 && mode & 0o010 != 0 && meta.gid() != real_gid() {
        return Some("setgid");
    }
    None
}

fn real_gid() -> u32 {
    // SAFETY: getgid has no preconditions and cannot fail.
    unsafe { libc::getgid() }
}

/// Whether the file carries a `security.capability` attribute.
fn has_capabilities(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated and live across the call; a
    // null buffer of size 0 asks only for the value's size.
    let size = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    size > 0
}

/// The program a `#!` line starts, resolved: `/usr/bin/env NAME` is
/// followed to NAME through PATH, since that is what runs.
fn interpreter(head: &[u8], path_var: Option<&OsStr>) -> Option<PathBuf> {
    let line = head[2..].split(|&b| b == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let program = PathBuf::from(OsStr::from_bytes(words.next()?));
    if program.file_name() != Some(OsStr::new("env")) {
        return Some(program);
    }
    // `env [-S] [-i] [VAR=value]... NAME`: the first word that is neither
    // an option nor an assignment.
    let name = words.find(|w| !w.starts_with(b"-") && !w.contains(&b'='));
    match name {
        Some(name) => resolve(OsStr::from_bytes(name), path_var)
            .ok()
            .or(Some(program)),
        None => Some(program),
    }
}

fn read_head(mut file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// PATH as the child will see it.
pub(crate) fn path_var() -> Option<OsString> {
    std::env::var_os("PATH")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_through_path() {
        let sh = resolve(
            OsStr::new("sh"),
            Some(OsStr::new("/nonexistent:/bin:/usr/bin")),
        )
        .unwrap();
        assert!(sh.ends_with("sh"));
        let missing = resolve(OsStr::new("no-such-command-here"), None).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(resolve(OsStr::new("./no/such"), None).is_err());
    }

    #[test]
    fn shebang_lines() {
        let path = Some(OsStr::new("/bin:/usr/bin"));
        assert_eq!(
            interpreter(b"#!/bin/sh -e\necho", path),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            interpreter(b"#! /usr/bin/python3\r\n", path),
            Some(PathBuf::from("/usr/bin/python3"))
        );
        // env is followed to what it starts.
        let via_env = interpreter(b"#!/usr/bin/env -S A=1 sh -e\n", path).unwrap();
        assert!(via_env.ends_with("sh") && via_env != Path::new("/usr/bin/env"));
        assert_eq!(interpreter(b"#!\n", path), None);
    }

    #[test]
    fn a_script_is_judged_by_its_interpreter() {
        let lib = elf::read(&File::open("/bin/sh").unwrap()).unwrap().unwrap();
        let dir = std::env::temp_dir().join(format!("bindto-inspect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("script");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        assert!(check(&script, std::slice::from_ref(&lib), None).is_ok());
        std::fs::write(&script, "#!/no/such/interpreter\n").unwrap();
        assert!(check(&script, std::slice::from_ref(&lib), None).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
