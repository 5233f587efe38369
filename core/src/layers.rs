//! Where profiles come from: the config files, in the order they apply.
//!
//! The system file comes first, then the user's; a later layer overrides an
//! earlier one key by key (see [`crate::Config`]). `BINDTO_CONFIG` replaces
//! both. In secure mode only a root-owned system file that nobody else can
//! write counts.

use std::fmt;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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
/// must exist; in secure mode the system file must be owned by root and not
/// writable by group or others.
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
    let fail = |e: std::io::Error| Error::in_file(path, format!("cannot read: {e}"));
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e)
            if e.kind() == ErrorKind::NotFound
                && matches!(source, Source::System | Source::User) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(fail(e)),
    };
    // Checked on the open file, so the file judged is the file read.
    if secure {
        let meta = file.metadata().map_err(fail)?;
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Err(Error::in_file(
                path,
                "refused in a privileged process: the file must be owned by root and not writable by group or others",
            ));
        }
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(fail)?;
    Ok(Some(Layer {
        source,
        path: path.to_owned(),
        text,
    }))
}
