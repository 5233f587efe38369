//! Compiled tables kept between processes, so that a program started under
//! an unchanged config loads its table instead of parsing 10 000 rules.
//!
//! A table is found by a [`Key`] of everything it was compiled from: this
//! format and crate version, the environment bindto reads (which names the
//! profile and the files) and each file's path and full contents. Contents,
//! not timestamps: two writes within one clock tick, of the same size,
//! must not bring back the old rules. A file that is not exactly what
//! [`seal`] writes for that key is ignored and the table compiled from the
//! files, as if there were no cache.
//!
//! The files live in `$XDG_CACHE_HOME/bindto/` or `~/.cache/bindto/`,
//! under one of [`KEEP`] names picked by the environment (the key's
//! `slot`): a table replaces the one of another environment that shares
//! its name, so the directory never needs listing or pruning. They are trusted like the user's own config file: only
//! when owned by the process's effective user and not writable by group or
//! others, in a directory that is the same. A privileged (AT_SECURE)
//! process never uses them. The same directory holds the match index of
//! each config file but the system's ([`crate::matches`]).

use std::fmt;
use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bindto_abi::matches::SYSTEM_INDEX_DIR;
use xxhash_rust::xxh3::{Xxh3Default, xxh3_64};

use crate::{Config, Env, Error, Layer, Table, layers};

/// The first bytes of a cache file.
const MAGIC: [u8; 8] = *b"bindtoT\n";

/// Bumped whenever the layout written by `Table::encode` or the meaning of
/// a table changes; the crate version is in the key as well.
pub(crate) const FORMAT: u64 = 4;

/// Magic, format, key, payload length, payload checksum.
const HEADER: usize = 40;

/// Cache files the directory holds at most.
pub(crate) const KEEP: u64 = 16;

/// No table comes near this; a bigger file is not read.
const MAX_SIZE: u64 = 256 << 20;

/// What a cached table must have been compiled from.
///
/// Hashed with XXH3 (64 bits), whose output is fixed by its specification;
/// were it to change between builds, lookups would only miss (the key
/// includes the crate version besides). Not std's SipHash, which a key
/// does not need (the cache directory is the user's own) and which cost a
/// big config's first connect nearly half its instructions
/// (benches/analysis.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// Of the format, version and environment: which file holds the table.
    slot: u64,
    /// Of those and every layer's path and contents: which table it is.
    full: u64,
}

impl Key {
    /// The key of the table compiled for `env` from `layers`, as
    /// [`layers::read`] read them for that environment.
    pub fn new(env: &Env, layers: &[Layer]) -> Key {
        let mut hasher = Xxh3Default::new();
        (FORMAT, env!("CARGO_PKG_VERSION"), env.vars()).hash(&mut hasher);
        let slot = hasher.finish();
        for layer in layers {
            (layer.source as u8, &layer.path, &layer.text).hash(&mut hasher);
        }
        Key {
            slot,
            full: hasher.finish(),
        }
    }

    fn file_name(&self) -> String {
        format!("{:x}.table", self.slot % KEEP)
    }
}

/// Why the cache gave no table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No cache file for this environment.
    Absent,
    /// The file or its directory is not the user's own, or is writable by
    /// group or others, or cannot be read.
    Untrusted,
    /// The file holds a table of other contents of the files.
    Stale,
    /// The file is not one [`seal`] writes: truncated, corrupt, another
    /// format.
    Invalid,
}

/// What the cache did in one load of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The table came from the cache.
    Hit,
    /// The table was compiled from the files, and then written to the
    /// cache or not.
    Compiled {
        /// Why the cache gave none.
        miss: Miss,
        /// Whether the new table was written.
        written: bool,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Hit => f.write_str("hit"),
            Outcome::Compiled { miss, written } => {
                let miss = match miss {
                    Miss::Absent => "absent",
                    Miss::Untrusted => "untrusted",
                    Miss::Stale => "stale",
                    Miss::Invalid => "invalid",
                };
                let written = if *written { "written" } else { "not written" };
                write!(f, "miss ({miss}), {written}")
            }
        }
    }
}

/// The table as a cache file's bytes; `None` for a table that is never
/// cached (see `Table::encode`).
pub fn seal(key: &Key, table: &Table) -> Option<Vec<u8>> {
    let payload = table.encode()?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    for word in [FORMAT, key.full, payload.len() as u64, checksum(&payload)] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&payload);
    Some(out)
}

/// The table in a cache file's bytes, if they are what [`seal`] wrote for
/// `key`.
pub fn open(key: &Key, bytes: &[u8]) -> Result<Table, Miss> {
    let (header, payload) = bytes.split_at_checked(HEADER).ok_or(Miss::Invalid)?;
    let word = |at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(word)
    };
    if header[..8] != MAGIC || word(8) != FORMAT {
        return Err(Miss::Invalid);
    }
    if word(16) != key.full {
        return Err(Miss::Stale);
    }
    if word(24) != payload.len() as u64 || word(32) != checksum(payload) {
        return Err(Miss::Invalid);
    }
    Table::decode(payload).ok_or(Miss::Invalid)
}

/// The table codec without the cache file's header, whose checksum random
/// bytes never pass: for the `cache` fuzz target only (`--cfg fuzzing`).
#[cfg(fuzzing)]
pub mod fuzzing {
    use crate::Table;

    /// A table's payload bytes.
    pub fn encode(table: &Table) -> Option<Vec<u8>> {
        table.encode()
    }

    /// The table in payload bytes, if they are valid.
    pub fn decode(payload: &[u8]) -> Option<Table> {
        Table::decode(payload)
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// The cache directory of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    path: PathBuf,
    uid: u32,
    /// Of the directory when it is created; its files get the same less
    /// the execute bits.
    mode: u32,
}

impl Dir {
    /// `$XDG_CACHE_HOME/bindto` or `$HOME/.cache/bindto` (absolute paths
    /// only), for a process whose effective user is `uid`; `None` in a
    /// privileged process, with `BINDTO_CACHE=0`, or with neither
    /// variable.
    pub fn new(env: &Env, secure: bool, uid: u32) -> Option<Dir> {
        if secure || env.get("BINDTO_CACHE") == Some("0") {
            return None;
        }
        let base = env
            .path("XDG_CACHE_HOME")
            .filter(|p| p.is_absolute())
            .or_else(|| {
                env.path("HOME")
                    .filter(|p| p.is_absolute())
                    .map(|home| home.join(".cache"))
            })?;
        Some(Dir {
            path: base.join("bindto"),
            uid,
            mode: 0o700,
        })
    }

    /// [`SYSTEM_INDEX_DIR`]: where the system file's match index is kept,
    /// readable by every process and trusted only when root's alone.
    pub fn system_index() -> Dir {
        Dir {
            path: PathBuf::from(SYSTEM_INDEX_DIR),
            uid: 0,
            mode: 0o755,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table cached under `key`.
    pub fn load(&self, key: &Key) -> Result<Table, Miss> {
        open(key, &self.read(&key.file_name())?)
    }

    /// The bytes of this directory's file `name`, if both are trusted.
    pub(crate) fn read(&self, name: &str) -> Result<Vec<u8>, Miss> {
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.is_dir() && self.trusts(&meta) => {}
            Ok(_) => return Err(Miss::Untrusted),
            Err(_) => return Err(Miss::Absent),
        }
        let mut file = match File::open(self.path.join(name)) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(Miss::Absent),
            Err(_) => return Err(Miss::Untrusted),
        };
        // Judged on the open file, so the file judged is the file read.
        let meta = file.metadata().map_err(|_| Miss::Untrusted)?;
        if !meta.is_file() || !self.trusts(&meta) {
            return Err(Miss::Untrusted);
        }
        let mut bytes = Vec::with_capacity(meta.len().min(MAX_SIZE) as usize);
        (&mut file)
            .take(MAX_SIZE)
            .read_to_end(&mut bytes)
            .map_err(|_| Miss::Untrusted)?;
        Ok(bytes)
    }

    /// Writes `table` under `key`, whole or not at all; whether it was
    /// written. Failing is harmless: the next process compiles again.
    pub fn store(&self, key: &Key, table: &Table) -> bool {
        seal(key, table).is_some_and(|bytes| self.write(&key.file_name(), &bytes).is_ok())
    }

    /// Writes `bytes` as the file `name` of this directory, whole or not
    /// at all (a temporary file beside it, then a rename), creating the
    /// directory if need be; the file's path. Refused unless the directory
    /// is trusted, and created only inside a directory of its owner's: a
    /// root process whose `HOME` is still a user's (as under sudo) would
    /// otherwise make that user's cache directory root's, which their own
    /// processes then distrust.
    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        if let Err(e) = fs::symlink_metadata(&self.path) {
            if e.kind() != ErrorKind::NotFound {
                return Err(e);
            }
            let parent = self.path.ancestors().find_map(|d| fs::metadata(d).ok());
            if parent.is_none_or(|meta| meta.uid() != self.uid) {
                return Err(ErrorKind::PermissionDenied.into());
            }
            DirBuilder::new()
                .recursive(true)
                .mode(self.mode)
                .create(&self.path)?;
            // Whatever the umask: a system index others cannot read would
            // make every process load the engine.
            fs::set_permissions(&self.path, fs::Permissions::from_mode(self.mode))?;
        }
        let meta = fs::symlink_metadata(&self.path)?;
        if !meta.is_dir() || !self.trusts(&meta) {
            return Err(ErrorKind::PermissionDenied.into());
        }
        let path = self.path.join(name);
        let temp = self.path.join(format!(".{name}.{}", std::process::id()));
        let file_mode = self.mode & 0o666;
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file_mode)
            .open(&temp)
            .and_then(|mut file| {
                file.set_permissions(fs::Permissions::from_mode(file_mode))?;
                file.write_all(bytes)
            })
            .and_then(|()| fs::rename(&temp, &path));
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written.map(|()| path)
    }

    fn trusts(&self, meta: &Metadata) -> bool {
        meta.uid() == self.uid && meta.mode() & 0o022 == 0
    }
}

/// The table of profile `name` for `env`: from the cache when the files
/// are the ones it was compiled from, else compiled and written there.
pub(crate) fn table(
    dir: &Dir,
    env: &Env,
    secure: bool,
    name: &str,
) -> Result<(Table, Outcome), Error> {
    let layers = layers::read(env, secure)?;
    let key = Key::new(env, &layers);
    let miss = match dir.load(&key) {
        Ok(table) if table.profile() == name => return Ok((table, Outcome::Hit)),
        Ok(_) => Miss::Invalid,
        Err(miss) => miss,
    };
    let config = Config::from_read(layers, env, secure)?;
    let table = Table::compile(config.profile(name)?);
    let written = dir.store(&key, &table);
    Ok((table, Outcome::Compiled { miss, written }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source;

    fn layer(text: &str) -> Layer {
        Layer {
            source: Source::Environment,
            path: "/etc/bindto/profiles.toml".into(),
            text: text.to_owned(),
            stamp: None,
        }
    }

    fn env() -> Env {
        Env::from_pairs([("BIND_PROFILE", "p"), ("BINDTO_CONFIG", "/x.toml")])
    }

    const TEXT: &str = "[profile.p]\ninterface = \"vpn0\"\nexclude = \"10.0.0.0/8\"\n";

    fn table() -> Table {
        let config = Config::from_layers(vec![layer(TEXT)]).unwrap();
        Table::compile(config.profile("p").unwrap())
    }

    #[test]
    fn the_key_follows_every_input() {
        let base = Key::new(&env(), &[layer(TEXT)]);
        assert_eq!(base, Key::new(&env(), &[layer(TEXT)]));
        // One byte of the same length.
        let edited = TEXT.replace("vpn0", "vpn1");
        let other = Key::new(&env(), &[layer(&edited)]);
        assert_eq!(other.slot, base.slot);
        assert_ne!(other.full, base.full);
        let mut moved = layer(TEXT);
        moved.path = "/etc/bindto/other.toml".into();
        assert_ne!(Key::new(&env(), &[moved]).full, base.full);
        let user = Env::from_pairs([("BIND_PROFILE", "q"), ("BINDTO_CONFIG", "/x.toml")]);
        let key = Key::new(&user, &[layer(TEXT)]);
        assert_ne!((key.slot, key.full), (base.slot, base.full));
        assert_ne!(Key::new(&env(), &[]).full, base.full);
    }

    #[test]
    fn a_sealed_table_opens_under_its_key_only() {
        let key = Key::new(&env(), &[layer(TEXT)]);
        let table = table();
        let bytes = seal(&key, &table).unwrap();
        let opened = open(&key, &bytes).unwrap();
        assert_eq!(format!("{opened:?}"), format!("{table:?}"));
        let other = Key::new(&env(), &[layer(&TEXT.replace("vpn0", "vpn1"))]);
        assert_eq!(open(&other, &bytes).unwrap_err(), Miss::Stale);
    }

    #[test]
    fn truncated_or_changed_files_are_invalid() {
        let key = Key::new(&env(), &[layer(TEXT)]);
        let bytes = seal(&key, &table()).unwrap();
        for len in 0..bytes.len() {
            assert!(open(&key, &bytes[..len]).is_err(), "{len} bytes");
        }
        for at in (0..bytes.len()).filter(|at| !(16..24).contains(at)) {
            let mut changed = bytes.clone();
            changed[at] ^= 0x01;
            assert_eq!(
                open(&key, &changed).unwrap_err(),
                Miss::Invalid,
                "byte {at}"
            );
        }
    }

    #[test]
    fn no_cache_in_a_privileged_process_when_disabled_or_without_a_home() {
        let home = Env::from_pairs([("HOME", "/home/u")]);
        let dir = Dir::new(&home, false, 1000).unwrap();
        assert_eq!(dir.path(), Path::new("/home/u/.cache/bindto"));
        assert_eq!(Dir::new(&home, true, 1000), None);
        let xdg = Env::from_pairs([("HOME", "/home/u"), ("XDG_CACHE_HOME", "/c")]);
        assert_eq!(
            Dir::new(&xdg, false, 0).unwrap().path(),
            Path::new("/c/bindto")
        );
        let off = Env::from_pairs([("HOME", "/home/u"), ("BINDTO_CACHE", "0")]);
        assert_eq!(Dir::new(&off, false, 1000), None);
        assert_eq!(
            Dir::new(&Env::from_pairs([("HOME", "rel")]), false, 0),
            None
        );
        assert_eq!(Dir::new(&Env::default(), false, 0), None);
    }

    /// A scratch directory under the system's temporary one.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bindto-cache-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// A cache directory under `base`, for the user this process creates
    /// files as.
    fn dir_at(base: &Path) -> Dir {
        fs::create_dir_all(base).unwrap();
        let uid = fs::metadata(base).unwrap().uid();
        let env = Env::from_pairs([("XDG_CACHE_HOME", base.to_str().unwrap())]);
        Dir::new(&env, false, uid).unwrap()
    }

    #[test]
    fn stores_loads_and_refuses_files_others_could_write() {
        let base = scratch("store");
        let dir = dir_at(&base);
        let key = Key::new(&env(), &[layer(TEXT)]);
        assert_eq!(dir.load(&key).unwrap_err(), Miss::Absent);
        assert!(dir.store(&key, &table()));
        let mode = fs::metadata(dir.path()).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(dir.load(&key).is_ok());

        let file = dir.path().join(key.file_name());
        fs::set_permissions(&file, fs::Permissions::from_mode(0o620)).unwrap();
        assert_eq!(dir.load(&key).unwrap_err(), Miss::Untrusted);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let stranger = Dir {
            uid: dir.uid.wrapping_add(1),
            ..dir.clone()
        };
        assert_eq!(stranger.load(&key).unwrap_err(), Miss::Untrusted);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(dir.load(&key).unwrap_err(), Miss::Untrusted);
        assert!(!dir.store(&key, &table()));
        fs::remove_dir_all(&base).unwrap();
    }

    /// The system file's match index is read by every user's processes:
    /// its directory and file are readable by all, whatever the umask.
    #[test]
    fn a_public_directory_and_its_files_are_readable_by_all() {
        let base = scratch("public");
        fs::create_dir_all(&base).unwrap();
        let dir = Dir {
            path: base.join("index"),
            uid: fs::metadata(&base).unwrap().uid(),
            ..Dir::system_index()
        };
        let file = dir.write("match-x", b"bytes").unwrap();
        assert_eq!(fs::metadata(dir.path()).unwrap().mode() & 0o777, 0o755);
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o644);
        assert_eq!(dir.read("match-x").unwrap(), b"bytes");
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn holds_at_most_keep_files() {
        let base = scratch("keep");
        let dir = dir_at(&base);
        let keys: Vec<Key> = (0..4 * KEEP)
            .map(|i| {
                let env = Env::from_pairs([("BIND_PROFILE", "p"), ("HOME", &format!("/h{i}"))]);
                Key::new(&env, &[layer(TEXT)])
            })
            .collect();
        for key in &keys {
            assert!(dir.store(key, &table()));
        }
        let files = fs::read_dir(dir.path()).unwrap().count() as u64;
        assert!(files <= KEEP, "{files} files");
        // The last table written is there; one it displaced is stale.
        let last = keys.last().unwrap();
        assert!(dir.load(last).is_ok());
        let displaced = keys
            .iter()
            .find(|k| k.slot != last.slot && k.slot % KEEP == last.slot % KEEP);
        if let Some(key) = displaced {
            assert_eq!(dir.load(key).unwrap_err(), Miss::Stale);
        }
        fs::remove_dir_all(&base).unwrap();
    }
}
