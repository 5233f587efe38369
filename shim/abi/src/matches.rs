//! The match index: a config file's `[[match]]` rules in a form the front
//! reads without parsing TOML, with the stamps of the files they came from.
//!
//! One index per config file, named by [`index_name`] of the file's path,
//! written by core (`bindto_core::matches::write_index`) in
//! [`SYSTEM_INDEX_DIR`] for the system file and in the table cache's
//! directory for the others. The front trusts an index only if every
//! stamped file still has the [`Stamp`] written (else it is stale and the
//! engine decides from the TOML itself).
//!
//! Layout (integers little-endian):
//!
//! ```text
//! MAGIC (8 bytes, the last one the format version)
//! u32 count of stamped files, then each: u16 path length, path, Stamp
//!   Stamp = dev u64, ino u64, size u64, mtime_sec i64, mtime_nsec u32,
//!           ctime_sec i64, ctime_nsec u32
//! u32 count of entries, then each (in file order): u32 line, u32 uid,
//!   u16 program length, program, u16 profile length, profile
//! ```
//!
//! Nothing here allocates, panics or recurses: the front links it.

/// The first bytes of an index; the last is the format version, bumped
/// whenever the layout changes (the golden test in `tests/` checks that).
pub const MAGIC: [u8; 8] = *b"BTMATCH\x01";

/// An entry's uid when the match names no user: any real uid fits.
pub const ANY_USER: u32 = u32::MAX;

/// An entry's uid when the match names a user the user database did not
/// know when the index was written: no process fits.
pub const NO_USER: u32 = u32::MAX - 1;

/// Where the system file's index is kept (directory owned by root, 0755).
pub const SYSTEM_INDEX_DIR: &str = "/var/cache/bindto";

/// What `fstat` said of a file when its index was written: the index is
/// stale when a fresh `stat` says anything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime`.
    pub mtime_sec: i64,
    /// `st_mtime_nsec`.
    pub mtime_nsec: u32,
    /// `st_ctime`.
    pub ctime_sec: i64,
    /// `st_ctime_nsec`.
    pub ctime_nsec: u32,
}

/// One `[[match]]` rule of the indexed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The line of its `[[match]]` header, 1-based.
    pub line: u32,
    /// The real uid it asks for, [`ANY_USER`] or [`NO_USER`].
    pub uid: u32,
    /// The `program` pattern (see [`glob`]).
    pub program: &'a [u8],
    /// The name of the profile it chooses.
    pub profile: &'a [u8],
}

impl Entry<'_> {
    /// Whether a process whose executable's real path is `exe` and whose
    /// real uid is `uid` fits this rule.
    pub fn fits(&self, exe: &[u8], uid: u32) -> bool {
        let user = match self.uid {
            ANY_USER => true,
            NO_USER => false,
            want => want == uid,
        };
        user && glob(self.program, exe)
    }
}

/// What the kernel appends to `/proc/self/exe`'s target once the file is
/// unlinked.
const DELETED: &[u8] = b" (deleted)";

/// The executable's path a match compares, from `/proc/self/exe`'s target
/// `link`: less the [`DELETED`] the kernel appends once the file is gone
/// (a package upgrade replaced it under the running program), so that
/// the program is still the one its path's match names. `unlinked` says
/// whether the executable has no link left (asked only when the target
/// ends so: a file may also be named so).
pub fn exe_path(link: &[u8], unlinked: impl FnOnce() -> bool) -> &[u8] {
    // Compared byte by byte: a slice `==` is a call of libc's `bcmp`, an
    // import the front must not have.
    let Some(path) = link.len().checked_sub(DELETED.len()).and_then(|at| {
        let (path, tail) = link.split_at_checked(at)?;
        tail.iter()
            .zip(DELETED)
            .all(|(a, b)| a == b)
            .then_some(path)
    }) else {
        return link;
    };
    if unlinked() { path } else { link }
}

/// A parsed index: every length checked, so its iterators walk bytes
/// known to be whole.
#[derive(Debug, Clone, Copy)]
pub struct Index<'a> {
    stamped: Reader<'a>,
    stamped_count: u32,
    entries: Reader<'a>,
    entries_count: u32,
}

impl<'a> Index<'a> {
    /// The index in `bytes`, if they are exactly what [`encode`] writes
    /// (this format, no truncation, no trailing bytes).
    pub fn parse(bytes: &'a [u8]) -> Option<Index<'a>> {
        let mut reader = Reader(bytes);
        if reader.array()? != MAGIC {
            return None;
        }
        let stamped_count = reader.u32()?;
        let stamped = reader;
        for _ in 0..stamped_count {
            reader.stamped()?;
        }
        let stamped = stamped.before(reader);
        let entries_count = reader.u32()?;
        let entries = reader;
        for _ in 0..entries_count {
            reader.entry()?;
        }
        if !reader.0.is_empty() {
            return None;
        }
        Some(Index {
            stamped,
            stamped_count,
            entries,
            entries_count,
        })
    }

    /// The stamped files, the indexed config file first.
    pub fn stamped(&self) -> impl Iterator<Item = (&'a [u8], Stamp)> + use<'a> {
        let mut reader = self.stamped;
        (0..self.stamped_count).map_while(move |_| reader.stamped())
    }

    /// The entries, in file order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'a>> + use<'a> {
        let mut reader = self.entries;
        (0..self.entries_count).map_while(move |_| reader.entry())
    }

    /// Whether an entry may fit a process, as far as the index can tell:
    /// one [fits](Entry::fits), or fits its program and names a user the
    /// user database did not know when the index was written ([`NO_USER`]),
    /// whom it may know now without `/etc/passwd` changing (nss-systemd's
    /// `DynamicUser=`, LDAP): the engine asks it again.
    pub fn may_fit(&self, exe: &[u8], uid: u32) -> bool {
        self.entries()
            .any(|entry| entry.fits(exe, uid) || (entry.uid == NO_USER && glob(entry.program, exe)))
    }
}

/// Reads an encoded index front to back; every read is bounds-checked.
#[derive(Debug, Clone, Copy)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    fn stamped(&mut self) -> Option<(&'a [u8], Stamp)> {
        let path = self.bytes()?;
        let stamp = Stamp {
            dev: self.u64()?,
            ino: self.u64()?,
            size: self.u64()?,
            mtime_sec: self.i64()?,
            mtime_nsec: self.u32()?,
            ctime_sec: self.i64()?,
            ctime_nsec: self.u32()?,
        };
        Some((path, stamp))
    }

    fn entry(&mut self) -> Option<Entry<'a>> {
        Some(Entry {
            line: self.u32()?,
            uid: self.u32()?,
            program: self.bytes()?,
            profile: self.bytes()?,
        })
    }

    /// What this reader had left before it advanced to `later`.
    fn before(self, later: Reader<'a>) -> Reader<'a> {
        let read = self.0.len().saturating_sub(later.0.len());
        Reader(self.0.get(..read).unwrap_or_default())
    }
}

/// Writes the index of `entries`, stamped with `stamped` (the indexed file
/// first), to `out`.
///
/// A path, program or profile longer than `u16::MAX` bytes cannot be
/// written: then nothing is written at all, an index that does not parse
/// and so is never trusted. (Core refuses such a config before.)
pub fn encode<'a>(
    stamped: &[(&[u8], Stamp)],
    entries: impl IntoIterator<Item = Entry<'a>, IntoIter: Clone>,
    out: &mut impl Extend<u8>,
) {
    let entries = entries.into_iter();
    let fits = |bytes: &[u8]| u16::try_from(bytes.len()).is_ok();
    let (Ok(stamped_count), Ok(entries_count)) = (
        u32::try_from(stamped.len()),
        u32::try_from(entries.clone().count()),
    ) else {
        return;
    };
    if !stamped.iter().all(|(path, _)| fits(path))
        || !entries.clone().all(|e| fits(e.program) && fits(e.profile))
    {
        return;
    }
    out.extend(MAGIC);
    out.extend(stamped_count.to_le_bytes());
    for (path, stamp) in stamped {
        field(out, path);
        out.extend(stamp.dev.to_le_bytes());
        out.extend(stamp.ino.to_le_bytes());
        out.extend(stamp.size.to_le_bytes());
        out.extend(stamp.mtime_sec.to_le_bytes());
        out.extend(stamp.mtime_nsec.to_le_bytes());
        out.extend(stamp.ctime_sec.to_le_bytes());
        out.extend(stamp.ctime_nsec.to_le_bytes());
    }
    out.extend(entries_count.to_le_bytes());
    for entry in entries {
        out.extend(entry.line.to_le_bytes());
        out.extend(entry.uid.to_le_bytes());
        field(out, entry.program);
        field(out, entry.profile);
    }
}

/// A u16 length, then the bytes (checked by `encode` to fit).
fn field(out: &mut impl Extend<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u16).to_le_bytes());
    out.extend(bytes.iter().copied());
}

/// Whether `text` fits the glob `pattern`, byte for byte: `*` any run of
/// bytes, `/` included; `?` one byte; `[abc]`, `[a-z]`, `[!a]` one byte of
/// (or not of) a set, a `]` first in the set being a member; `\x` the byte
/// x, in a set too. A pattern [`glob_error`] refuses fits nothing.
///
/// Iterative, returning only to the last `*`: at most pattern length times
/// text length steps, whatever the pattern.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    if glob_error(pattern).is_some() {
        return false;
    }
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: its pattern position and the
    // first text byte it has not yet swallowed.
    let mut star: Option<(usize, usize)> = None;
    loop {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            Some(_) => {
                if let Some(next) = text.get(t).and_then(|&c| one(pattern, p, c)) {
                    p = next;
                    t += 1;
                    continue;
                }
            }
            None if t == text.len() => return true,
            None => {}
        }
        match star {
            Some((after, from)) if from < text.len() => {
                star = Some((after, from + 1));
                p = after;
                t = from + 1;
            }
            _ => return false,
        }
    }
}

/// Where and why `pattern` is not a valid glob (see [`glob`]): the byte
/// offset of the `[` left open, of a range out of order, or of a `\` that
/// ends the pattern.
pub fn glob_error(pattern: &[u8]) -> Option<(usize, &'static str)> {
    let mut p = 0;
    while let Some(&b) = pattern.get(p) {
        p = match b {
            b'[' => match class(pattern, p, 0) {
                Ok((next, _)) => next,
                Err(error) => return Some(error),
            },
            b'\\' => match pattern.get(p + 1) {
                Some(_) => p + 2,
                None => return Some((p, TRAILING_ESCAPE)),
            },
            _ => p + 1,
        };
    }
    None
}

const TRAILING_ESCAPE: &str = "a `\\` at the end escapes nothing";

/// If the element of a valid pattern at `p` (not `*`) matches byte `c`,
/// the position after it.
fn one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    let (next, fits) = match pattern.get(p)? {
        b'?' => (p + 1, true),
        b'[' => class(pattern, p, c).ok()?,
        b'\\' => (p + 2, pattern.get(p + 1) == Some(&c)),
        &b => (p + 1, b == c),
    };
    fits.then_some(next)
}

/// The set opening at `open` (a `[`): the position after its `]` and
/// whether `c` is in it, or where and why it is invalid.
fn class(pattern: &[u8], open: usize, c: u8) -> Result<(usize, bool), (usize, &'static str)> {
    const UNCLOSED: &str = "a `[` without its `]`";
    let mut p = open + 1;
    let negated = pattern.get(p) == Some(&b'!');
    if negated {
        p += 1;
    }
    let first = p;
    let mut hit = false;
    // One member: its byte and the position after it.
    let member = |p: usize| match pattern.get(p) {
        Some(b'\\') => match pattern.get(p + 1) {
            Some(&b) => Ok((b, p + 2)),
            None => Err((p, TRAILING_ESCAPE)),
        },
        Some(&b) => Ok((b, p + 1)),
        None => Err((open, UNCLOSED)),
    };
    loop {
        match pattern.get(p) {
            None => return Err((open, UNCLOSED)),
            Some(b']') if p != first => return Ok((p + 1, hit != negated)),
            Some(_) => {}
        }
        let start = p;
        let (low, next) = member(p)?;
        p = next;
        let range = pattern.get(p) == Some(&b'-') && pattern.get(p + 1).is_some_and(|&b| b != b']');
        if range {
            let (high, next) = member(p + 1)?;
            if high < low {
                return Err((start, "a range whose end is below its start"));
            }
            p = next;
            hit |= low <= c && c <= high;
        } else {
            hit |= low == c;
        }
    }
}

/// The index's file name for the config file at `config_path` (the path
/// as the layers name it): `match-` and the FNV-1a 64 hash of the path's
/// bytes in 16 lowercase hex digits.
pub fn index_name(config_path: &[u8]) -> [u8; 22] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in config_path {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut name = *b"match-0000000000000000";
    for (i, digit) in name.iter_mut().skip(6).enumerate() {
        let nibble = (hash >> (60 - 4 * i)) & 0xf;
        *digit = b"0123456789abcdef"
            .get(nibble as usize)
            .copied()
            .unwrap_or(b'0');
    }
    name
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::time::{Duration, Instant};
    use std::vec::Vec;

    #[test]
    fn globs() {
        let cases: &[(&str, &str, bool)] = &[
            ("/usr/bin/curl", "/usr/bin/curl", true),
            ("/usr/bin/curl", "/usr/bin/curl2", false),
            ("/usr/bin/curl", "/usr/bin/cur", false),
            ("/usr/bin/*", "/usr/bin/curl", true),
            ("/usr/bin/*", "/usr/bin/", true),
            ("/usr/bin/*", "/usr/bin", false),
            // `*` crosses `/`.
            ("/opt/*", "/opt/game/bin/run", true),
            ("/opt/*/run", "/opt/game/bin/run", true),
            ("/usr/bin/python3*", "/usr/bin/python3.12", true),
            ("/usr/bin/python3*", "/usr/bin/python2", false),
            ("*", "", true),
            ("", "", true),
            ("", "/", false),
            ("/a?c", "/abc", true),
            ("/a?c", "/ac", false),
            ("/a?c", "/a/c", true),
            ("/[abc]", "/b", true),
            ("/[abc]", "/d", false),
            ("/[a-z]x", "/qx", true),
            ("/[a-z]x", "/Qx", false),
            ("/[!a]", "/b", true),
            ("/[!a]", "/a", false),
            ("/[!a-c]", "/d", true),
            ("/[!a-c]", "/b", false),
            ("/[]a]", "/]", true),
            ("/[!]]", "/]", false),
            ("/[!]]", "/x", true),
            ("/[a-]", "/-", true),
            ("/[\\]]", "/]", true),
            ("/\\*", "/*", true),
            ("/\\*", "/x", false),
            ("/\\?", "/?", true),
            ("/\\[x]", "/[x]", true),
            ("/a*b*c", "/aXXbYYc", true),
            ("/a*b*c", "/aXXbYY", false),
            ("/*.so", "/lib/x.so.so", true),
            ("/*a", "/bab", false),
            // Invalid patterns fit nothing, not even themselves.
            ("/[a", "/[a", false),
            ("/a\\", "/a\\", false),
        ];
        for &(pattern, text, want) in cases {
            assert_eq!(
                glob(pattern.as_bytes(), text.as_bytes()),
                want,
                "{pattern:?} against {text:?}"
            );
        }
    }

    #[test]
    fn a_deleted_executable_keeps_its_path() {
        assert_eq!(exe_path(b"/usr/bin/x (deleted)", || true), b"/usr/bin/x");
        // A file really named so, still linked.
        let named = b"/usr/bin/x (deleted)";
        assert_eq!(exe_path(named, || false), named);
        let asked = core::cell::Cell::new(false);
        let plain = exe_path(b"/usr/bin/x", || {
            asked.set(true);
            true
        });
        assert_eq!((plain, asked.get()), (&b"/usr/bin/x"[..], false));
    }

    #[test]
    fn glob_compares_bytes_not_characters() {
        assert!(!glob(b"/caf?", "/café".as_bytes()));
        assert!(glob(b"/caf??", "/café".as_bytes()));
        assert!(glob(b"/\xff*", b"/\xff\xfe"));
    }

    #[test]
    fn pathological_globs_stay_fast() {
        let text = [b'a'; 100_000];
        let started = Instant::now();
        assert!(!glob(b"*a*a*a*a*a*a*a*a*b", &text));
        assert!(!glob(b"*?*?*?*?*?*?*?*b", &text));
        assert!(glob(b"*a*a*a*a*a*a*a*a*a", &text));
        let mut star = [b'*'; 4096];
        star[4095] = b'b';
        assert!(!glob(&star, &text));
        // Quadratic-in-the-pattern patterns would take minutes here.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn glob_errors_point_at_the_culprit() {
        let cases: &[(&str, Option<usize>)] = &[
            ("/usr/bin/*", None),
            ("/[a-z]", None),
            ("/[]]", None),
            ("/\\[", None),
            ("/x[a", Some(2)),
            ("/x[", Some(2)),
            ("/x[!", Some(2)),
            ("/x[]", Some(2)),
            ("/x[\\]", Some(2)),
            ("/x[\\", Some(3)),
            ("/x\\", Some(2)),
            ("/[ab][z-a]", Some(6)),
        ];
        for &(pattern, want) in cases {
            assert_eq!(
                glob_error(pattern.as_bytes()).map(|(at, _)| at),
                want,
                "{pattern:?}"
            );
        }
    }

    fn stamp(n: u64) -> Stamp {
        Stamp {
            dev: n,
            ino: n + 1,
            size: n + 2,
            mtime_sec: -(n as i64),
            mtime_nsec: 999_999_999,
            ctime_sec: i64::MAX,
            ctime_nsec: 7,
        }
    }

    const ENTRIES: [Entry<'static>; 3] = [
        Entry {
            line: 3,
            uid: ANY_USER,
            program: b"/usr/bin/transmission-daemon",
            profile: b"vpn",
        },
        Entry {
            line: 8,
            uid: 1000,
            program: b"/usr/bin/python3*",
            profile: b"alt",
        },
        Entry {
            line: 13,
            uid: NO_USER,
            program: b"/opt/*",
            profile: b"p",
        },
    ];

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        let stamped: [(&[u8], Stamp); 2] = [
            (b"/etc/bindto/profiles.toml", stamp(1)),
            (b"/etc/passwd", stamp(2)),
        ];
        encode(&stamped, ENTRIES, &mut out);
        out
    }

    #[test]
    fn encode_then_parse_gives_back_what_was_written() {
        let bytes = sample();
        let index = Index::parse(&bytes).unwrap();
        let stamped: Vec<_> = index.stamped().collect();
        assert_eq!(
            stamped,
            [
                (&b"/etc/bindto/profiles.toml"[..], stamp(1)),
                (&b"/etc/passwd"[..], stamp(2)),
            ]
        );
        assert_eq!(index.entries().collect::<Vec<_>>(), ENTRIES);
        assert_eq!(index.stamped().count(), 2);
        let empty = {
            let mut out = Vec::new();
            encode(&[], [], &mut out);
            out
        };
        let index = Index::parse(&empty).unwrap();
        assert_eq!(index.stamped().count() + index.entries().count(), 0);
    }

    #[test]
    fn an_entry_may_fit_by_program_and_user() {
        let bytes = sample();
        let index = Index::parse(&bytes).unwrap();
        let may = |exe: &[u8], uid| index.may_fit(exe, uid);
        assert!(may(b"/usr/bin/transmission-daemon", 0));
        assert!(may(b"/usr/bin/python3.12", 1000));
        assert!(!may(b"/usr/bin/python3.12", 1001));
        assert!(!may(b"/usr/bin/curl", 1000));
        // A name that did not resolve fits no one, not even uid NO_USER...
        assert!(!ENTRIES[2].fits(b"/opt/x", NO_USER));
        // ... but the user database may know it now: the engine asks.
        assert!(may(b"/opt/x", 1234));
        assert!(!may(b"/usr/x", 1234));
    }

    #[test]
    fn truncated_or_longer_bytes_do_not_parse() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(Index::parse(&bytes[..len]).is_none(), "{len} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Index::parse(&longer).is_none());
        let mut other_version = bytes.clone();
        other_version[7] = 2;
        assert!(Index::parse(&other_version).is_none());
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        let bytes = sample();
        for at in 0..bytes.len() {
            for value in [0, 1, 0x7f, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[at] = value;
                if let Some(index) = Index::parse(&corrupt) {
                    let _ = index.stamped().count();
                    let _ = index.may_fit(b"/usr/bin/x", 0);
                }
            }
        }
        // Counts that promise more than the bytes hold.
        let mut huge = Vec::from(MAGIC);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Index::parse(&huge).is_none());
    }

    #[test]
    fn overlong_fields_write_an_index_that_does_not_parse() {
        let long = [b'a'; 70_000];
        let mut out = Vec::new();
        encode(
            &[],
            [Entry {
                line: 1,
                uid: ANY_USER,
                program: &long,
                profile: b"p",
            }],
            &mut out,
        );
        assert!(Index::parse(&out).is_none());
    }

    #[test]
    fn index_names_hash_the_path() {
        // FNV-1a 64 of the empty string and of "a" (the reference values).
        assert_eq!(&index_name(b""), b"match-cbf29ce484222325");
        assert_eq!(&index_name(b"a"), b"match-af63dc4c8601ec8c");
        assert_ne!(
            index_name(b"/etc/bindto/profiles.toml"),
            index_name(b"/etc/bindto/profiles.tom")
        );
    }

    /// The bytes [`sample`] encodes when the format took its current
    /// version ([`MAGIC`]'s last byte). A change of layout that keeps the
    /// version would let the front read another build's index as
    /// something else: this fails until the version is bumped and the new
    /// bytes are written with `BINDTO_BLESS=1 cargo test -p bindto-abi
    /// golden`.
    #[test]
    fn golden_bytes_change_only_with_the_version() {
        let version = MAGIC[7];
        let path = std::format!(
            "{}/tests/fixtures/match-index-{version}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = sample();
        if std::env::var_os("BINDTO_BLESS").is_some() {
            std::fs::create_dir_all(std::path::Path::new(&path).parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let golden = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{path}: {e}; a new index version needs its golden bytes: \
                 BINDTO_BLESS=1 cargo test -p bindto-abi golden"
            )
        });
        assert!(
            golden == bytes,
            "encode no longer writes {path} for version {version}: bump MAGIC's last byte \
             if the layout changed, then BINDTO_BLESS=1 cargo test -p bindto-abi golden"
        );
    }
}
