//! What the shim writes, and where.
//!
//! Two channels, both never stdout:
//! - *notices*: one line on stderr (`bindto: ...`) the first time a kind of
//!   failure happens, so that a user sees why a program cannot connect even
//!   with logging off. Written with a raw `write(2)` on fd 2: no buffer, no
//!   lock, and nothing that an interposed program's stdio could reorder.
//! - *the log*: `tracing` events, off unless `BINDTO_LOG` holds a filter
//!   (`info`, `debug`, `trace`, or `target=level` directives separated by
//!   commas; tracing-subscriber's `Targets`, which unlike `EnvFilter` needs
//!   no regex engine: a quarter of the library's size); at `debug`
//!   every decision is logged with the rule and file that made it.
//!   `BINDTO_LOG_FILE=path` appends there (created 0600) instead of stderr,
//!   except in a privileged (AT_SECURE) process, which only ever logs to
//!   stderr: a setuid program must never write a file its user names.

use std::ffi::CStr;
use std::fmt::{self, Write as _};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use libc::c_int;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

/// Whether the log is on: the hot path's only cost when it is off.
static ENABLED: AtomicBool = AtomicBool::new(false);
static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Whether log events are wanted at all.
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Sets up the log from `BINDTO_LOG` and `BINDTO_LOG_FILE`, once per
/// process.
pub(crate) fn init(secure: bool) {
    if INITIALISED.swap(true, Ordering::Relaxed) {
        return;
    }
    let Some(filter) = crate::state::getenv(c"BINDTO_LOG") else {
        return;
    };
    let mut fd = 2;
    if let Some(path) = crate::state::getenv(c"BINDTO_LOG_FILE") {
        if secure {
            notice(
                Notice::LogFile,
                format_args!(
                    "BINDTO_LOG_FILE is ignored in a privileged process; logging to stderr"
                ),
            );
        } else {
            match open_log(&path) {
                Ok(file) => fd = file,
                Err(e) => notice(
                    Notice::LogFile,
                    format_args!(
                        "cannot open BINDTO_LOG_FILE {path:?} ({}); logging to stderr",
                        strerror(e)
                    ),
                ),
            }
        }
    }
    let filter = filter.parse::<Targets>().unwrap_or_else(|e| {
        notice(
            Notice::LogFilter,
            format_args!("BINDTO_LOG={filter:?} is not a filter ({e}); logging at info"),
        );
        Targets::new().with_default(LevelFilter::INFO)
    });
    // The builder's own filter stops at INFO unless told otherwise; the
    // Targets layer is the filter.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_writer(RawFd(fd))
        .with_ansi(false)
        .with_target(false)
        .finish()
        .with(filter);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        ENABLED.store(true, Ordering::Relaxed);
    }
}

fn open_log(path: &str) -> Result<c_int, c_int> {
    let path = std::ffi::CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: `path` is NUL-terminated; the flags and mode are plain ints.
    let fd = unsafe {
        libc::open64(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    };
    if fd < 0 {
        Err(crate::errno::get())
    } else {
        Ok(fd)
    }
}

/// A writer of whole events to a file descriptor, one `write(2)` per event
/// (the formatter hands over a complete line), so lines from threads and
/// processes appending to one file do not interleave.
#[derive(Debug, Clone, Copy)]
struct RawFd(c_int);

impl io::Write for RawFd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for reads of its length.
        let n = unsafe { libc::write(self.0, buf.as_ptr().cast(), buf.len()) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for RawFd {
    type Writer = RawFd;

    fn make_writer(&'a self) -> RawFd {
        *self
    }
}

/// The kinds of notice, each shown on stderr at most once per process
/// (except [`Notice::Reload`], shown for every change that fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The config or environment is broken: everything is blocked.
    Setup,
    /// A reload failed; the previous table stays.
    Reload,
    /// SO_BINDTODEVICE failed or the interface is missing.
    Interface,
    /// The source address could not be bound.
    Source,
    /// The binding names nothing for the destination's family.
    Family,
    /// A wildcard bind has no listen address it could take.
    Listen,
    /// A route said `action = "block"`.
    Blocked,
    /// The shim could not undo its own SO_BINDTODEVICE for a direct route.
    Unbind,
    /// `BINDTO_LOG_FILE` could not be used.
    LogFile,
    /// `BINDTO_LOG` could not be parsed.
    LogFilter,
}

const KINDS: usize = 10;
static SHOWN: [AtomicBool; KINDS] = [const { AtomicBool::new(false) }; KINDS];

/// Writes `bindto: <message>` on stderr, the first time for its kind, and
/// to the log (at warn level) every time.
pub(crate) fn notice(kind: Notice, message: fmt::Arguments<'_>) {
    if enabled() {
        tracing::warn!("{message}");
    }
    if kind != Notice::Reload && SHOWN[kind as usize].swap(true, Ordering::Relaxed) {
        return;
    }
    let mut line = String::with_capacity(128);
    // Writing to a String cannot fail.
    let _ = writeln!(line, "bindto: {message}");
    let mut rest = line.as_bytes();
    while !rest.is_empty() {
        // SAFETY: `rest` is valid for reads of its length.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        match usize::try_from(n) {
            Ok(0) => break,
            Ok(n) => rest = &rest[n..],
            Err(_) if crate::errno::get() == libc::EINTR => {}
            Err(_) => break,
        }
    }
}

/// The C library's text for `errno`, e.g. "No such device".
pub(crate) fn strerror(errno: c_int) -> String {
    let mut buf = [0u8; 128];
    // SAFETY: `buf` is writable for its length; the XSI strerror_r (which
    // the libc crate binds) writes a NUL-terminated message into it.
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr().cast(), buf.len()) };
    match CStr::from_bytes_until_nul(&buf) {
        Ok(text) if rc == 0 => text.to_string_lossy().into_owned(),
        _ => format!("error {errno}"),
    }
}
