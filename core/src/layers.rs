//! Where profiles come from: the config files, in the order they apply.
//!
//! The system file comes first, then the user's; a later layer overrides an
//! earlier one key by key (see [`crate::Config`]). `BINDTO_CONFIG` replaces
//! both. In secure mode only a root-owned system file that nobody else can
//! write, reached through directories nobody else can write, counts.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use bindto_abi::matches::Stamp;

use crate::{Env, Error};

/// The system-wide profile file.
pub const SYSTEM_PATH: &str = "/etc/bindto/profiles.toml";

/// Which kind of layer a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `/etc/bindto/profiles.toml`.
    System,
    /// `$XDG_CONFIG_HOME/bindto/profiles.toml` or `~/.config/...`.
    User,
    /// The file named by `BINDTO_CONFIG`.
    Environment,
    /// A file named on a command line.
    Given,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::System => "system",
            Source::User => "user",
            Source::Environment => "environment",
            Source::Given => "given",
        })
    }
}

/// One config file: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Which kind of layer.
    pub source: Source,
    /// The file's path.
    pub path: PathBuf,
    /// The file's contents.
    pub text: String,
    /// What `fstat` said of the file its text was read from, before the
    /// read (so an edit during it leaves the stamp stale, never the text);
    /// `None` for text that came from elsewhere. The file's match index
    /// carries it.
    pub stamp: Option<Stamp>,
}

impl Layer {
    /// A layer of `text` that was not read from a file (no stamp).
    pub fn new(source: Source, path: impl Into<PathBuf>, text: impl Into<String>) -> Layer {
        Layer {
            source,
            path: path.into(),
            text: text.into(),
            stamp: None,
        }
    }
}

/// The files that may hold profiles, in the order they apply, whether or
/// not they exist.
pub fn paths(env: &Env, secure: bool) -> Vec<(Source, PathBuf)> {
    if secure {
        return vec![(Source::System, PathBuf::from(SYSTEM_PATH))];
    }
    if let Some(path) = env.path("BINDTO_CONFIG") {
        return vec![(Source::Environment, path)];
    }
    let mut out = vec![(Source::System, PathBuf::from(SYSTEM_PATH))];
    let config_home = env
        .path("XDG_CONFIG_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| env.path("HOME").map(|home| home.join(".config")));
    if let Some(dir) = config_home {
        out.push((Source::User, dir.join("bindto/profiles.toml")));
    }
    out
}

/// Reads the files of [`paths`] that exist. A file named by `BINDTO_CONFIG`
/// must exist; in secure mode the system file, and every directory on its
/// way, must be owned by root and not writable by group or others.
pub fn read(env: &Env, secure: bool) -> Result<Vec<Layer>, Error> {
    let mut layers = Vec::new();
    for (source, path) in paths(env, secure) {
        if let Some(layer) = read_one(source, &path, secure)? {
            layers.push(layer);
        }
    }
    Ok(layers)
}

/// Reads one file, `None` if an optional one does not exist.
pub fn read_one(source: Source, path: &Path, secure: bool) -> Result<Option<Layer>, Error> {
    let fail = |e: io::Error| Error::in_file(path, format!("cannot read: {e}"));
    let refuse = |what: String| {
        Error::in_file(
            path,
            format!(
                "refused in a privileged process: {what} must be owned by root and not writable by group or others"
            ),
        )
    };
    let opened = if secure {
        trusted(path)
    } else {
        Ok(path.to_owned())
    }
    .and_then(|real| File::open(real).map_err(Walk::Io));
    let mut file = match opened {
        Ok(file) => file,
        Err(Walk::Io(e))
            if e.kind() == ErrorKind::NotFound
                && matches!(source, Source::System | Source::User) =>
        {
            return Ok(None);
        }
        Err(Walk::Io(e)) => return Err(fail(e)),
        Err(Walk::Untrusted(dir)) => {
            return Err(refuse(format!(
                "the directory {} on its way",
                dir.display()
            )));
        }
    };
    // Checked on the open file, so the file judged is the file read.
    let meta = file.metadata().map_err(fail)?;
    if secure && !root_only(&meta) {
        return Err(refuse("the file".to_owned()));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(fail)?;
    Ok(Some(Layer {
        source,
        path: path.to_owned(),
        text,
        stamp: Some(stamp(&meta)),
    }))
}

/// What a match index records of a file (see [`Layer::stamp`]).
pub fn stamp(meta: &Metadata) -> Stamp {
    Stamp {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_sec: meta.mtime(),
        mtime_nsec: meta.mtime_nsec() as u32,
        ctime_sec: meta.ctime(),
        ctime_nsec: meta.ctime_nsec() as u32,
    }
}

/// Why [`trusted`] gave no path.
enum Walk {
    Io(io::Error),
    /// A directory on the way that someone other than root could write.
    Untrusted(PathBuf),
}

/// Most symbolic links followed on one path, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// `path` resolved as the kernel resolves it, for a privileged process:
/// every directory on the way, those a symbolic link leads through
/// included, must be owned by root and not writable by group or others.
/// Whoever can write one of them can put another file, or a link to one,
/// in the place of what lies below it, whatever the file itself looks
/// like. Strict: a sticky directory such as `/tmp` is refused too. The
/// file itself is judged once open.
fn trusted(path: &Path) -> Result<PathBuf, Walk> {
    let root = Path::new("/");
    if !path.is_absolute() {
        return Err(Walk::Io(io::Error::new(
            ErrorKind::InvalidInput,
            "not an absolute path",
        )));
    }
    let check = |dir: &Path, meta: &Metadata| {
        if root_only(meta) {
            Ok(())
        } else {
            Err(Walk::Untrusted(dir.to_owned()))
        }
    };
    check(root, &fs::metadata(root).map_err(Walk::Io)?)?;
    let mut dir = root.to_path_buf();
    // The components still to walk, the next last.
    let mut todo: Vec<OsString> = Vec::new();
    let push = |todo: &mut Vec<OsString>, path: &Path| {
        let names = path.components().filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        });
        let at = todo.len();
        todo.extend(names);
        todo[at..].reverse();
    };
    push(&mut todo, path);
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            // Back to a directory already judged on the way here.
            dir.pop();
            continue;
        }
        let next = dir.join(&name);
        let meta = fs::symlink_metadata(&next).map_err(Walk::Io)?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(Walk::Io(io::Error::other(
                    "too many levels of symbolic links",
                )));
            }
            // The link itself lies in `dir`, judged already.
            let target = fs::read_link(&next).map_err(Walk::Io)?;
            if target.is_absolute() {
                dir = root.to_path_buf();
            }
            push(&mut todo, &target);
            continue;
        }
        if todo.is_empty() {
            return Ok(next);
        }
        // Not a directory: the next step fails with ENOTDIR.
        if meta.is_dir() {
            check(&next, &meta)?;
        }
        dir = next;
    }
    Ok(dir)
}

/// Owned by root and not writable by group or others.
fn root_only(meta: &Metadata) -> bool {
    meta.uid() == 0 && meta.mode() & 0o022 == 0
}
