//! The front's part of `[[match]]` (issue 20): in a process that no
//! variable asks for bindto, whether the engine must be loaded to decide.
//!
//! The front never parses TOML. For each config file the layers would read
//! (`bindto_core::layers::paths`: in a privileged process the system file
//! alone; `BINDTO_CONFIG`'s file instead of the others; else the system
//! file and the user's), it reads the file's match index
//! (`bindto_abi::matches`), written beside the table cache by whoever last
//! read the file: `/var/cache/bindto` for the system file, the user's
//! cache directory for the others. It passes through only when it can
//! clear the process: every file that exists has an index it trusts
//! (owner and mode of the index and its directory) whose stamps all equal
//! a fresh `statx`, and no entry fits the executable's real path and the
//! real uid. Anything else, a doubt included (an index missing, stale,
//! untrusted, too large or malformed; a variable that is not UTF-8, which
//! the engine would not read as the front does; an unreadable
//! `/proc/self/exe`), loads the engine, which decides from the files
//! themselves and rewrites the stale indexes.
//!
//! Only the loading thread calls in ([`crate::load`]): the buffers are
//! statics, not the stack (a thread's stack may be small) and not the heap
//! (the front has none).

use core::cell::UnsafeCell;
use core::ffi::c_char;
use core::ptr;

use bindto_abi::matches::{Index, SYSTEM_INDEX_DIR, Stamp, exe_path, index_name};

use crate::sys::{self, AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, Statx};
use crate::{ASKING, AT_SECURE, RTLD_DEFAULT, dlsym, getauxval};

/// The system file, as `bindto_core::layers::SYSTEM_PATH`, NUL-terminated.
const SYSTEM_PATH: &[u8] = b"/etc/bindto/profiles.toml\0";
/// Under the user's config directory.
const USER_FILE: &[u8] = b"/bindto/profiles.toml";
/// Room for a path and its NUL (`PATH_MAX`).
const PATH_ROOM: usize = 4096;
/// The largest index the front reads; a larger one is taken as stale.
const INDEX_ROOM: usize = 64 * 1024;

const S_IFMT: u16 = 0o170_000;
const S_IFDIR: u16 = 0o040_000;
const S_IFREG: u16 = 0o100_000;
/// Writable by group or others.
const SHARED_WRITE: u16 = 0o022;
const ENOENT: isize = 2;

/// What the loader reads into.
struct Buffers {
    /// The config file's path.
    config: [u8; PATH_ROOM],
    /// The index's path, then each stamped file's.
    other: [u8; PATH_ROOM],
    /// The index.
    index: [u8; INDEX_ROOM],
    /// `/proc/self/exe`'s target.
    exe: [u8; PATH_ROOM],
}

struct Shared(UnsafeCell<Buffers>);

// SAFETY: only the thread that `crate::STATE` names as loader touches it
// (`wanted` and what it calls), one at a time.
unsafe impl Sync for Shared {}

static BUFFERS: Shared = Shared(UnsafeCell::new(Buffers {
    config: [0; PATH_ROOM],
    other: [0; PATH_ROOM],
    index: [0; INDEX_ROOM],
    exe: [0; PATH_ROOM],
}));

/// Not sure: the engine decides.
struct Doubt;

/// Whether the engine must be loaded in a process that no variable asks:
/// a match may fit, or the front cannot tell.
///
/// # Safety
/// Only the loader.
pub(crate) unsafe fn wanted(vars: &Vars) -> bool {
    // SAFETY: the loader alone touches BUFFERS.
    let buffers = unsafe { &mut *BUFFERS.0.get() };
    let mut process = Process {
        exe: None,
        buf: &mut buffers.exe,
    };
    // `path` NUL-terminated after its end.
    let mut check = |source: Source, path: &[u8]| -> Result<bool, Doubt> {
        layer_fits(
            vars,
            source,
            path,
            &mut buffers.other,
            &mut buffers.index,
            &mut process,
        )
    };
    // The layers of an ordinary process (`BINDTO_CONFIG`'s file, or the
    // system file and the user's) and of a privileged one (the system file
    // alone): the system file first, which counts in both.
    let others = || -> Result<Option<(Source, Path<'static>)>, Doubt> {
        if let Some(config) = vars.get(Own::BindtoConfig).transpose()? {
            return Ok(Some((Source::Named, Path::of(&[config]))));
        }
        let config_home = match vars.get(Own::XdgConfigHome).transpose()? {
            Some(dir) if dir.first() == Some(&b'/') => Some([dir, b"" as &[u8]]),
            _ => vars
                .get(Own::Home)
                .transpose()?
                .map(|home| [home, b"/.config"]),
        };
        Ok(config_home.map(|[dir, tail]| (Source::User, Path::of(&[dir, tail, USER_FILE]))))
    };
    let system = SYSTEM_PATH.strip_suffix(b"\0").unwrap_or_default();
    let decided = check(Source::System, system).and_then(|fits| {
        if fits {
            return Ok(true);
        }
        let other = match others()? {
            Some((source, path)) => match path.join(&mut buffers.config)? {
                Some(path) => check(source, path),
                None => Ok(false),
            },
            None => Ok(false),
        };
        // Those layers do not count in a privileged process (which trusts
        // no index of the user's either): asked only now, as looking
        // `getauxval` up is a `dlsym` most processes need not pay.
        match other {
            Ok(false) => Ok(false),
            // SAFETY: getauxval only reads the auxiliary vector.
            _ if unsafe { getauxval(AT_SECURE) } != 0 => Ok(false),
            other => other,
        }
    });
    decided.unwrap_or(true)
}

/// Where a config file comes from, which says where its index is and whom
/// it must belong to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The system file: optional, its index in [`SYSTEM_INDEX_DIR`],
    /// root's.
    System,
    /// The user's file: optional, its index in the user's cache
    /// directory, the effective user's.
    User,
    /// `BINDTO_CONFIG`'s file: must exist (the engine fails closed
    /// without it), its index as the user's.
    Named,
}

/// A path in pieces, to be joined in a buffer.
struct Path<'a>([&'a [u8]; 3], usize);

impl<'a> Path<'a> {
    fn of(parts: &[&'a [u8]]) -> Path<'a> {
        let mut all: [&[u8]; 3] = [b""; 3];
        for (slot, part) in all.iter_mut().zip(parts) {
            *slot = part;
        }
        Path(all, parts.len())
    }

    /// The pieces joined and NUL-terminated in `buf`, without the NUL;
    /// `None` for an empty path, a doubt if it does not fit.
    fn join(self, buf: &mut [u8]) -> Result<Option<&[u8]>, Doubt> {
        let parts = self.0.iter().take(self.1);
        // At most: a slash may be left out.
        let len: usize = parts.clone().map(|part| part.len()).sum();
        if len >= buf.len() {
            return Err(Doubt);
        }
        let mut to = buf.as_mut_ptr();
        let mut last = None;
        for part in parts {
            // One slash between two parts, as `PathBuf::join` (by which
            // the engine names the file) puts: none more after a part that
            // ends with one.
            let part = match (last, part.split_first()) {
                (Some(b'/'), Some((b'/', rest))) => rest,
                _ => part,
            };
            last = part.last().copied().or(last);
            for &b in part.iter() {
                // SAFETY: `len` bytes and a NUL fit in `buf`. Volatile: a
                // `copy_from_slice`, or a loop the compiler takes for one,
                // is a call of libc's `memcpy`, an import.
                unsafe { to.write_volatile(b) };
                to = to.wrapping_add(1);
            }
        }
        // SAFETY: as above, the NUL.
        unsafe { to.write_volatile(0) };
        let written = (to as usize).wrapping_sub(buf.as_ptr() as usize);
        Ok(buf.get(..written).filter(|path| !path.is_empty()))
    }
}

/// The variables the front reads besides [`ASKING`], NUL-terminated, by
/// [`Own`].
const OWN: [&[u8]; 5] = [
    b"BINDTO_CONFIG\0",
    b"XDG_CONFIG_HOME\0",
    b"HOME\0",
    b"XDG_CACHE_HOME\0",
    b"BINDTO_CACHE\0",
];

/// The place of each in [`OWN`].
#[derive(Clone, Copy)]
enum Own {
    BindtoConfig,
    XdgConfigHome,
    Home,
    XdgCacheHome,
    BindtoCache,
}

/// How many variables [`Vars`] reads.
const VARS: usize = ASKING.len() + OWN.len();

/// The names of [`ASKING`] and [`OWN`], NUL-terminated, back to back: one
/// string, where an array of slices would cost every exec a relocation
/// per name. Name `i` is `NAMES[STARTS[i]..STARTS[i + 1]]`.
const NAMES: [u8; STARTS[VARS]] = {
    let mut out = [0; STARTS[VARS]];
    let mut i = 0;
    while i < VARS {
        let name = name(i);
        let mut j = 0;
        while j < name.len() {
            out[STARTS[i] + j] = name[j];
            j += 1;
        }
        i += 1;
    }
    out
};

/// Where each name starts in [`NAMES`], and its end.
const STARTS: [usize; VARS + 1] = {
    let mut starts = [0; VARS + 1];
    let mut i = 0;
    while i < VARS {
        starts[i + 1] = starts[i] + name(i).len();
        i += 1;
    }
    starts
};

/// Name `i` of [`ASKING`], then [`OWN`].
const fn name(i: usize) -> &'static [u8] {
    if i < ASKING.len() {
        ASKING[i].to_bytes_with_nul()
    } else {
        OWN[i - ASKING.len()]
    }
}

/// Whether a variable the front reads starts with this byte: most of the
/// environment is passed over on its first byte.
const FIRST: [bool; 256] = {
    let mut first = [false; 256];
    let mut i = 0;
    while i < VARS {
        first[name(i)[0] as usize] = true;
        i += 1;
    }
    first
};

/// The values of the variables the front reads ([`ASKING`], [`OWN`]), as
/// `getenv` would find them (the first of each name), from one pass over
/// `environ`: cheaper than a `getenv` of each, and than looking `getenv`
/// up besides (a `dlsym`, as `environ` is).
pub(crate) struct Vars([*const u8; VARS]);

impl Vars {
    /// The process's environment now.
    pub(crate) fn read() -> Vars {
        let mut vars = Vars([ptr::null(); VARS]);
        // SAFETY: a NUL-terminated name; RTLD_DEFAULT finds the
        // executable's copy of `environ` where it has one, as libc's
        // `getenv` uses it.
        let environ = unsafe { dlsym(RTLD_DEFAULT, c"environ".as_ptr()) };
        if environ.is_null() {
            return vars;
        }
        // SAFETY: `environ` is a `char **`, null or a null-terminated
        // array of NUL-terminated `NAME=value` strings, which lives as long
        // as the environment is not changed (by another thread, which it
        // may do to `getenv` too).
        let mut entry = unsafe { environ.cast::<*const *const u8>().read() };
        while !entry.is_null() {
            // SAFETY: an entry of the array, which ends with a null one.
            let text = unsafe { entry.read() };
            if text.is_null() {
                break;
            }
            // SAFETY: a NUL-terminated string's first byte.
            let first = unsafe { text.read() };
            if FIRST[usize::from(first)] {
                for (i, slot) in vars.0.iter_mut().enumerate() {
                    let start = STARTS.get(i).copied().unwrap_or_default();
                    if !slot.is_null() || NAMES.get(start) != Some(&first) {
                        continue;
                    }
                    let end = STARTS.get(i + 1).copied().unwrap_or_default();
                    let name = NAMES.get(start..end).unwrap_or_default();
                    // SAFETY: a NUL-terminated string.
                    if let Some(value) = unsafe { value_of(text, name) } {
                        *slot = value;
                    }
                }
            }
            entry = entry.wrapping_add(1);
        }
        vars
    }

    /// Whether variable `i` (of [`ASKING`], then [`OWN`]) is set and not
    /// empty.
    pub(crate) fn set(&self, i: usize) -> bool {
        let value = self.0.get(i).copied().unwrap_or(ptr::null());
        // SAFETY: null or a NUL-terminated value (`read`).
        !value.is_null() && unsafe { *value } != 0
    }

    /// The value of `name` as the engine reads it: `None`
    /// unset or empty, a doubt if not UTF-8 (the engine would take it as
    /// unset, and the front would look elsewhere) or longer than a path.
    fn get(&self, name: Own) -> Option<Result<&'static [u8], Doubt>> {
        let value = self.0.get(ASKING.len() + name as usize).copied()?;
        if value.is_null() {
            return None;
        }
        let (mut len, mut high) = (0, 0);
        // SAFETY: a NUL-terminated value, up to its NUL. A loop of its
        // own, bounded: `CStr` and an unbounded loop call libc's
        // `strlen`, an import.
        while len < PATH_ROOM && unsafe { value.wrapping_add(len).read() } != 0 {
            // SAFETY: as above.
            high |= unsafe { value.wrapping_add(len).read() };
            len += 1;
        }
        if len == PATH_ROOM {
            return Some(Err(Doubt));
        }
        if len == 0 {
            return None;
        }
        // SAFETY: the value's `len` bytes before its NUL.
        let value = unsafe { core::slice::from_raw_parts(value, len) };
        // ASCII (no byte from 0x80) is UTF-8.
        if high & 0x80 != 0 && core::str::from_utf8(value).is_err() {
            return Some(Err(Doubt));
        }
        Some(Ok(value))
    }
}

/// The value in `NAME=value` if `name` (NUL-terminated) is its name.
///
/// # Safety
/// `text` is NUL-terminated.
unsafe fn value_of(text: *const u8, name: &[u8]) -> Option<*const u8> {
    let name = name.strip_suffix(b"\0").unwrap_or(name);
    for (i, &b) in name.iter().enumerate() {
        // SAFETY: a mismatch stops at the NUL at the latest.
        if unsafe { text.wrapping_add(i).read() } != b {
            return None;
        }
    }
    // SAFETY: the text matched so far had no NUL; this byte is in it.
    let next = unsafe { text.wrapping_add(name.len()).read() };
    (next == b'=').then(|| text.wrapping_add(name.len() + 1))
}

/// Whether two byte strings are equal, without a call of libc's `bcmp`
/// (an import) that `==` makes.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// What the process is, read once and only if some index has entries.
struct Process<'b> {
    /// The executable's real path, and the real uid.
    exe: Option<(usize, u32)>,
    buf: &'b mut [u8; PATH_ROOM],
}

impl Process<'_> {
    fn get(&mut self) -> Result<(&[u8], u32), Doubt> {
        let (len, uid) = match self.exe {
            Some(known) => known,
            None => {
                // SAFETY: a NUL-terminated path; `buf` is writable for its
                // length.
                let n = unsafe {
                    sys::link(c"/proc/self/exe".as_ptr(), self.buf.as_mut_ptr(), PATH_ROOM)
                };
                // A target that fills the buffer may be cut short.
                if n <= 0 || n as usize >= PATH_ROOM {
                    return Err(Doubt);
                }
                let link = self.buf.get(..n as usize).ok_or(Doubt)?;
                // A target named " (deleted)" whose file cannot be looked
                // at: the engine decides.
                let mut unknown = false;
                let len = exe_path(link, || {
                    unlinked().unwrap_or_else(|| {
                        unknown = true;
                        false
                    })
                })
                .len();
                if unknown {
                    return Err(Doubt);
                }
                let known = (len, sys::uid());
                self.exe = Some(known);
                known
            }
        };
        Ok((self.buf.get(..len).ok_or(Doubt)?, uid))
    }
}

/// Whether the executable has no link left, if `statx` says.
fn unlinked() -> Option<bool> {
    let mut meta = Statx::default();
    // SAFETY: a NUL-terminated path, followed: the executable itself.
    let found = unsafe { sys::stat(AT_FDCWD, c"/proc/self/exe".as_ptr(), 0, &mut meta) };
    (found == 0 && meta.mask & STATX_BASIC_STATS == STATX_BASIC_STATS).then_some(meta.nlink == 0)
}

/// Whether a match of the config file at `path` (NUL-terminated after its
/// end) fits the process: `Ok(false)` also for a file that does not exist
/// (the system and the user's), a doubt whenever its index cannot be
/// trusted to say so.
fn layer_fits(
    vars: &Vars,
    source: Source,
    path: &[u8],
    other: &mut [u8; PATH_ROOM],
    index: &mut [u8; INDEX_ROOM],
    process: &mut Process<'_>,
) -> Result<bool, Doubt> {
    let mut config = Statx::default();
    // SAFETY: `path` is followed by its NUL (Path::join).
    match unsafe { sys::stat(AT_FDCWD, path.as_ptr().cast(), 0, &mut config) } as isize {
        0 => {}
        err if err == -ENOENT && source != Source::Named => return Ok(false),
        // A file that is there but cannot be looked at: the engine says why.
        _ => return Err(Doubt),
    }
    let owner = match source {
        Source::System => 0,
        Source::User | Source::Named => sys::euid(),
    };
    let len = read_index(vars, source, path, owner, other, index)?;
    let index = Index::parse(index.get(..len).ok_or(Doubt)?).ok_or(Doubt)?;
    let mut stamped = index.stamped();
    // The index is of this file (not of another whose path hashes alike).
    match stamped.next() {
        Some((first, stamp)) if same(first, path) && stamp == stamp_of(&config) => {}
        _ => return Err(Doubt),
    }
    for (file, stamp) in stamped {
        if fresh_stamp(file, other)? != stamp {
            return Err(Doubt);
        }
    }
    if index.entries().next().is_none() {
        return Ok(false);
    }
    let (exe, uid) = process.get()?;
    Ok(index.may_fit(exe, uid))
}

/// Reads the index of the config file at `path` into `index`, if it and
/// its directory belong to `owner` and no one else may write them; its
/// length.
fn read_index(
    vars: &Vars,
    source: Source,
    path: &[u8],
    owner: u32,
    other: &mut [u8; PATH_ROOM],
    index: &mut [u8; INDEX_ROOM],
) -> Result<usize, Doubt> {
    let name = index_name(path);
    let dir = match source {
        Source::System => Path::of(&[SYSTEM_INDEX_DIR.as_bytes()]),
        Source::User | Source::Named => cache_dir(vars)?,
    };
    let dir_len = dir.join(other)?.ok_or(Doubt)?.len();
    let mut meta = Statx::default();
    // SAFETY: `other` holds the directory, NUL-terminated.
    let found = unsafe {
        sys::stat(
            AT_FDCWD,
            other.as_ptr().cast(),
            AT_SYMLINK_NOFOLLOW,
            &mut meta,
        )
    };
    if found != 0 || !trusted(&meta, S_IFDIR, owner) {
        return Err(Doubt);
    }
    let file = other.get_mut(dir_len..).ok_or(Doubt)?;
    Path::of(&[b"/", &name]).join(file)?;
    // SAFETY: `other` holds the index's path, NUL-terminated.
    let fd = unsafe { sys::open(other.as_ptr().cast()) };
    if fd < 0 {
        return Err(Doubt);
    }
    let read = read_all(fd, owner, index);
    sys::close(fd);
    read
}

/// The contents of the open index `fd`, if it is a regular file of
/// `owner` that no one else may write and fits in `index`.
fn read_all(fd: i32, owner: u32, index: &mut [u8; INDEX_ROOM]) -> Result<usize, Doubt> {
    let mut meta = Statx::default();
    // SAFETY: an empty path with AT_EMPTY_PATH: the open file itself.
    if unsafe { sys::stat(fd, c"".as_ptr(), AT_EMPTY_PATH, &mut meta) } != 0
        || !trusted(&meta, S_IFREG, owner)
        || meta.size >= INDEX_ROOM as u64
    {
        return Err(Doubt);
    }
    let mut len = 0;
    loop {
        let rest = index.get_mut(len..).ok_or(Doubt)?;
        // SAFETY: `rest` is writable for its length.
        let n = unsafe { sys::read_some(fd, rest.as_mut_ptr(), rest.len()) };
        match n {
            0 => return Ok(len),
            n if n > 0 => len += n as usize,
            _ => return Err(Doubt),
        }
        // Grown past its stat since: being rewritten.
        if len >= INDEX_ROOM {
            return Err(Doubt);
        }
    }
}

/// The user's cache directory, as `bindto_core::cache::Dir::new` finds it
/// (a doubt where there is none: the engine decides without an index).
fn cache_dir(vars: &Vars) -> Result<Path<'static>, Doubt> {
    if vars.get(Own::BindtoCache).transpose()? == Some(b"0") {
        return Err(Doubt);
    }
    let absolute = |dir: Option<&'static [u8]>| dir.filter(|d| d.first() == Some(&b'/'));
    if let Some(dir) = absolute(vars.get(Own::XdgCacheHome).transpose()?) {
        return Ok(Path::of(&[dir, b"/bindto"]));
    }
    match absolute(vars.get(Own::Home).transpose()?) {
        Some(home) => Ok(Path::of(&[home, b"/.cache/bindto"])),
        None => Err(Doubt),
    }
}

/// Whether a file of type `kind` belongs to `owner` and is not writable
/// by group or others.
fn trusted(meta: &Statx, kind: u16, owner: u32) -> bool {
    meta.mask & STATX_BASIC_STATS == STATX_BASIC_STATS
        && meta.mode & S_IFMT == kind
        && meta.uid == owner
        && meta.mode & SHARED_WRITE == 0
}

/// A file's stamp now (`statx` following links, as the writer's `fstat`
/// of the file it opened), the path copied into `buf` for its NUL.
fn fresh_stamp(file: &[u8], buf: &mut [u8; PATH_ROOM]) -> Result<Stamp, Doubt> {
    let path = Path::of(&[file]).join(buf)?.ok_or(Doubt)?;
    let mut meta = Statx::default();
    // SAFETY: `path` is followed by its NUL.
    if unsafe { sys::stat(AT_FDCWD, path.as_ptr().cast::<c_char>(), 0, &mut meta) } != 0 {
        return Err(Doubt);
    }
    Ok(stamp_of(&meta))
}

/// The index's stamp of what `statx` said.
fn stamp_of(meta: &Statx) -> Stamp {
    Stamp {
        dev: meta.dev(),
        ino: meta.ino,
        size: meta.size,
        mtime_sec: meta.mtime.sec,
        mtime_nsec: meta.mtime.nsec,
        ctime_sec: meta.ctime.sec,
        ctime_nsec: meta.ctime.nsec,
    }
}
