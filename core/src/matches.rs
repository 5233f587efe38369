//! `[[match]]` rules: which profile a process gets when no variable names
//! one, chosen by its executable's real path and its real uid.
//!
//! ```toml
//! [[match]]
//! program = "/usr/bin/transmission-daemon"   # or a glob: "/opt/game/*"
//! user = "debian-transmission"               # optional: a name or a uid
//! profile = "vpn"
//! ```
//!
//! The system file's matches come first, then the user's, each file in its
//! own order; the first that fits chooses ([`first_fit`]). The glob syntax
//! and the match index a file's rules are kept in for the preloaded front
//! are `bindto_abi::matches`'; [`write_index`] writes one.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bindto_abi::matches::{self as abi, ANY_USER, Entry, Index, NO_USER, Stamp};
use serde::Deserialize;
use toml::Spanned;

use crate::cache::Dir;
use crate::layers::{self, Layer, Source};
use crate::{Config, Error};

/// Where user names come from; stamped in an index whose rules name one,
/// so that a change of the user database makes it stale.
const PASSWD: &str = "/etc/passwd";

/// One `[[match]]` rule, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The executable's real path, or a glob of it (see
    /// `bindto_abi::matches::glob`).
    pub program: String,
    /// The real user it is for; any when `None`.
    pub user: Option<User>,
    /// The profile it chooses, one of the config's.
    pub profile: String,
    /// The layer it is written in.
    pub source: Source,
    /// That layer's file.
    pub path: PathBuf,
    /// The line of its `[[match]]` header, 1-based.
    pub line: u32,
}

/// A match's `user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// A numeric uid.
    Id(u32),
    /// A user name, looked up when a process is matched.
    Name(String),
}

impl User {
    /// `text` as a user: a uid when all digits (as no user name is), else
    /// a name. `None` for an empty text or a uid out of range.
    pub fn parse(text: &str) -> Option<User> {
        if text.is_empty() {
            return None;
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().ok().and_then(User::id);
        }
        Some(User::Name(text.to_owned()))
    }

    /// A uid a match may name: not `(uid_t) -1` nor the index's
    /// [`NO_USER`].
    fn id(uid: i64) -> Option<User> {
        u32::try_from(uid)
            .ok()
            .filter(|&uid| uid < NO_USER)
            .map(User::Id)
    }

    /// The uid a process must have, if any does: `lookup` answers a
    /// name's.
    fn uid(&self, lookup: impl Fn(&str) -> Option<u32>) -> Option<u32> {
        match self {
            User::Id(uid) => Some(*uid),
            User::Name(name) => lookup(name).filter(|&uid| uid < NO_USER),
        }
    }
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            User::Id(uid) => write!(f, "{uid}"),
            User::Name(name) => f.write_str(name),
        }
    }
}

impl Match {
    /// Whether a process whose executable's real path is `exe` and whose
    /// real uid is `uid` fits; `lookup` answers a user name's uid (asked
    /// only when the program fits).
    pub fn fits(&self, exe: &[u8], uid: u32, lookup: impl Fn(&str) -> Option<u32>) -> bool {
        abi::glob(self.program.as_bytes(), exe)
            && self
                .user
                .as_ref()
                .is_none_or(|user| user.uid(lookup) == Some(uid))
    }

    /// Whether it is written in `layer`.
    pub fn is_in(&self, layer: &Layer) -> bool {
        self.source == layer.source && self.path == layer.path
    }
}

/// The first of `matches` (in the order [`Config::matches`] gives them)
/// that a process fits (see [`Match::fits`]).
pub fn first_fit<'a>(
    matches: &'a [Match],
    exe: &[u8],
    uid: u32,
    lookup: impl Fn(&str) -> Option<u32>,
) -> Option<&'a Match> {
    matches.iter().find(|m| m.fits(exe, uid, &lookup))
}

/// A `[[match]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    program: Spanned<String>,
    user: Option<Spanned<RawUser>>,
    profile: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a user name or a numeric uid")]
enum RawUser {
    Id(i64),
    Name(String),
}

impl Config {
    /// Checks the `index`th `[[match]]` of layer `layer`, whose header is
    /// at byte `at`; the profiles must be known by then.
    pub(crate) fn check_match(
        &self,
        (layer, index, at): (usize, usize, usize),
        raw: Raw,
    ) -> Result<Match, Error> {
        let fail = |at: usize, key: &str, message: String| {
            self.error_at(layer, at, format!("match[{index}].{key}: {message}"))
        };
        let text = &self.layers()[layer].text;
        let program = raw.program.get_ref();
        let start = raw.program.span().start;
        if !program.starts_with('/') {
            let why = if program.is_empty() {
                "is empty".to_owned()
            } else {
                format!("\"{program}\" is not an absolute path")
            };
            let message =
                format!("{why}: name the executable's real path, or a glob starting with `/`");
            return Err(fail(start, "program", message));
        }
        if let Some((offset, why)) = abi::glob_error(program.as_bytes()) {
            let written = text.get(raw.program.span()).unwrap_or_default();
            let at = start + offset_in_string(written, offset);
            return Err(fail(at, "program", format!("not a valid glob: {why}")));
        }
        let user = match &raw.user {
            None => None,
            Some(user) => {
                let parsed = match user.get_ref() {
                    RawUser::Id(uid) => User::id(*uid),
                    RawUser::Name(name) => User::parse(name),
                };
                let message = format!("must be a user name or a uid from 0 to {}", NO_USER - 1);
                Some(parsed.ok_or_else(|| fail(user.span().start, "user", message))?)
            }
        };
        let profile_at = raw.profile.span().start;
        let profile = raw.profile.into_inner();
        if self.profile(&profile).is_err() {
            let mut message = format!("profile \"{profile}\" is not defined");
            if let Some(near) = crate::config::nearest(&profile, self.names()) {
                message += &format!(" (did you mean \"{near}\"?)");
            }
            return Err(fail(profile_at, "profile", message));
        }
        let layer = &self.layers()[layer];
        Ok(Match {
            program: raw.program.into_inner(),
            user,
            profile,
            source: layer.source,
            path: layer.path.clone(),
            line: crate::error::line_column(text, at).0,
        })
    }
}

/// Byte offset, in `written` (a TOML string as written, quotes included),
/// of byte `at` of the string it stands for: past an escape such as `\\`
/// the two differ. A multi-line string, which a path never needs, maps to
/// its start.
fn offset_in_string(written: &str, at: usize) -> usize {
    if written.starts_with("\"\"\"") || written.starts_with("'''") {
        return 0;
    }
    let literal = written.starts_with('\'');
    let mut chars = written.char_indices().skip(1);
    let mut decoded = 0;
    while let Some((i, c)) = chars.next() {
        if decoded >= at {
            return i;
        }
        if c != '\\' || literal {
            decoded += c.len_utf8();
            continue;
        }
        // An escape: `\uXXXX`, `\UXXXXXXXX` and `\xXX` stand for one
        // character, the others for one byte.
        let digits = match chars.next() {
            Some((_, 'u')) => 4,
            Some((_, 'U')) => 8,
            Some((_, 'x')) => 2,
            _ => {
                decoded += 1;
                continue;
            }
        };
        let hex: String = chars.by_ref().take(digits).map(|(_, c)| c).collect();
        decoded += u32::from_str_radix(&hex, 16)
            .ok()
            .and_then(char::from_u32)
            .map_or(1, char::len_utf8);
    }
    0
}

/// Where the match index of `layer` is kept: [`Dir::system_index`] for
/// the system file, else the table cache's directory `cache` (none in a
/// privileged process or without a home).
pub fn index_dir(layer: &Layer, cache: Option<&Dir>) -> Option<Dir> {
    match layer.source {
        Source::System => Some(Dir::system_index()),
        _ => cache.cloned(),
    }
}

/// How long a file must have been left alone before its stamp can stand
/// for its contents: timestamps move in clock ticks (4 ms on many
/// kernels, more on some file systems), so an edit of the same size in
/// the tick of the one before changes no part of the stamp.
pub const SETTLE: Duration = Duration::from_secs(1);

/// How long until a file that last changed (`st_ctime`, which every write
/// and every `utime` moves) at `stamp` has been left alone for [`SETTLE`];
/// `None` once it has.
pub fn unsettled(stamp: &Stamp) -> Option<Duration> {
    let changed = Duration::new(u64::try_from(stamp.ctime_sec).ok()?, stamp.ctime_nsec);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    (changed + SETTLE).checked_sub(now).filter(|d| !d.is_zero())
}

/// `stamp` as an index may record it: one of a file not yet settled gets
/// a nanosecond count no file has, so that the index stays stale until it
/// is written again once the file has settled.
fn recordable(mut stamp: Stamp) -> Stamp {
    if unsettled(&stamp).is_some() {
        stamp.ctime_nsec = u32::MAX;
    }
    stamp
}

/// The file name of `layer`'s match index.
pub fn index_name(layer: &Layer) -> String {
    let name = abi::index_name(layer.path.as_os_str().as_bytes());
    String::from_utf8_lossy(&name).into_owned()
}

/// Writes the match index of `layer`, one of `config`'s layers, in `dir`
/// (see [`index_dir`]); its path. Stamped with the layer's
/// [`Layer::stamp`], and with `/etc/passwd`'s when a rule names a user, whose
/// uid `lookup` answers (a name it does not know fits no one). A stamp of
/// a file that changed within [`SETTLE`] is written as one no file has:
/// the index is stale, and written again by a later process.
pub fn write_index(
    config: &Config,
    layer: &Layer,
    dir: &Dir,
    lookup: impl Fn(&str) -> Option<u32>,
) -> io::Result<PathBuf> {
    let Some(stamp) = layer.stamp else {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "a layer not read from a file has no index",
        ));
    };
    let own: Vec<&Match> = config.matches().iter().filter(|m| m.is_in(layer)).collect();
    let mut stamped = vec![(layer.path.as_os_str().as_bytes(), recordable(stamp))];
    if own.iter().any(|m| matches!(m.user, Some(User::Name(_)))) {
        // Stamped before the names are looked up: a change after this
        // leaves the index stale, not wrong.
        let passwd = layers::stamp(&fs::metadata(PASSWD)?);
        stamped.push((PASSWD.as_bytes(), recordable(passwd)));
    }
    let entries: Vec<Entry> = own
        .iter()
        .map(|m| Entry {
            line: m.line,
            uid: match &m.user {
                None => ANY_USER,
                Some(user) => user.uid(&lookup).unwrap_or(NO_USER),
            },
            program: m.program.as_bytes(),
            profile: m.profile.as_bytes(),
        })
        .collect();
    let mut bytes = Vec::new();
    abi::encode(&stamped, entries.iter().copied(), &mut bytes);
    if bytes.is_empty() {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            "a rule too long for the match index",
        ));
    }
    dir.write(&index_name(layer), &bytes)
}

/// Whether `layer`'s match index in `dir` is what [`write_index`] would
/// write now, as far as the stamps tell: trusted, whole, written from the
/// text `layer` holds, and every other stamped file unchanged. The engine
/// rewrites one that is not.
pub fn index_is_fresh(layer: &Layer, dir: &Dir) -> bool {
    let Ok(bytes) = dir.read(&index_name(layer)) else {
        return false;
    };
    let Some(index) = Index::parse(&bytes) else {
        return false;
    };
    let mut stamped = index.stamped();
    let own = layer.path.as_os_str().as_bytes();
    stamped
        .next()
        .is_some_and(|(path, stamp)| path == own && Some(stamp) == layer.stamp)
        && stamped.all(|(path, stamp)| {
            fs::metadata(OsStr::from_bytes(path)).is_ok_and(|meta| layers::stamp(&meta) == stamp)
        })
}
