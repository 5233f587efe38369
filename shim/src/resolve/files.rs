//! `/etc/resolv.conf` and `/etc/hosts`, parsed once per thread and again
//! only when a `stat` says the file changed (device, inode, size, mtime,
//! ctime: glibc's test for resolv.conf), so that a lookup costs a `stat`
//! of each rather than a read and a parse.
//!
//! Per thread, not per process: no lock for a fork to leave held, and a
//! lookup never waits for another thread's.

use std::cell::RefCell;
use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::rc::Rc;

use bindto_core::DnsOptions;

use super::conf::{Conf, System};
use super::hosts::Hosts;

const RESOLV_CONF: &CStr = c"/etc/resolv.conf";
const HOSTS: &CStr = c"/etc/hosts";

/// What tells one version of a file from the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (libc::time_t, libc::c_long),
    ctime: (libc::time_t, libc::c_long),
}

impl Stamp {
    /// `None` when the file is missing or unreadable.
    fn of(path: &CStr) -> Option<Stamp> {
        // stat64: on i686 plain stat fails with EOVERFLOW for an inode
        // number past 32 bits; on x86_64 the two are one.
        let mut st = MaybeUninit::<libc::stat64>::uninit();
        // SAFETY: a NUL-terminated path and a stat buffer to fill.
        if unsafe { libc::stat64(path.as_ptr(), st.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: stat succeeded, so it filled the buffer.
        let st = unsafe { st.assume_init() };
        Some(Stamp {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        })
    }
}

/// A file's parsed contents and the stamp they were parsed at.
struct Watched<T> {
    parsed: Option<(Option<Stamp>, Rc<T>)>,
}

impl<T> Watched<T> {
    const fn new() -> Watched<T> {
        Watched { parsed: None }
    }

    /// The contents of `path` as `parse` reads them (an unreadable file
    /// reads as empty), parsed again only if the file changed.
    fn get(&mut self, path: &CStr, parse: impl FnOnce(&str) -> T) -> Rc<T> {
        let stamp = Stamp::of(path);
        if let Some((seen, parsed)) = &self.parsed
            && *seen == stamp
        {
            return Rc::clone(parsed);
        }
        let text = path
            .to_str()
            .ok()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default();
        let parsed = Rc::new(parse(&text));
        self.parsed = Some((stamp, Rc::clone(&parsed)));
        parsed
    }
}

struct Files {
    resolv: Watched<System>,
    hosts: Watched<Hosts>,
    /// The settings merged from the profile's options and the last
    /// resolv.conf read.
    conf: Option<(Rc<System>, DnsOptions, Rc<Conf>)>,
}

impl Files {
    const fn new() -> Files {
        Files {
            resolv: Watched::new(),
            hosts: Watched::new(),
            conf: None,
        }
    }
}

thread_local! {
    static FILES: RefCell<Files> = const { RefCell::new(Files::new()) };
}

/// `f` with this thread's files; with files read afresh if they are in
/// use (cannot happen: nothing here calls back into a lookup).
fn with_files<R>(f: impl FnOnce(&mut Files) -> R) -> R {
    FILES.with(|files| match files.try_borrow_mut() {
        Ok(mut files) => f(&mut files),
        Err(_) => f(&mut Files::new()),
    })
}

/// The settings for a profile with `options`, resolv.conf filling in
/// what they leave open.
pub(crate) fn conf(options: &DnsOptions) -> Rc<Conf> {
    with_files(|files| {
        let system = files.resolv.get(RESOLV_CONF, System::parse);
        if let Some((seen, merged_options, conf)) = &files.conf
            && Rc::ptr_eq(seen, &system)
            && merged_options == options
        {
            return Rc::clone(conf);
        }
        let conf = Rc::new(Conf::merge(options, &system));
        files.conf = Some((system, options.clone(), Rc::clone(&conf)));
        conf
    })
}

/// `/etc/hosts`, parsed.
pub(crate) fn hosts() -> Rc<Hosts> {
    with_files(|files| files.hosts.get(HOSTS, Hosts::parse))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    #[test]
    fn a_file_is_parsed_again_only_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("bindto-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hosts");
        let path = CString::new(file.to_str().unwrap()).unwrap();
        let mut watched = Watched::new();
        let mut parses = 0;
        let mut read = |watched: &mut Watched<String>| {
            watched.get(&path, |text| {
                parses += 1;
                text.to_owned()
            })
        };
        assert_eq!(*read(&mut watched), "", "a missing file reads as empty");
        std::fs::write(&file, "one").unwrap();
        assert_eq!(*read(&mut watched), "one");
        assert_eq!(*read(&mut watched), "one");
        // Same size and, on a coarse clock, the same mtime: the inode tells.
        let next = dir.join("next");
        std::fs::write(&next, "two").unwrap();
        std::fs::rename(&next, &file).unwrap();
        assert_eq!(*read(&mut watched), "two");
        assert_eq!(*read(&mut watched), "two");
        assert_eq!(parses, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
