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
//!   no regex engine: benches/analysis.md, "What the first measurements
//!   led to"); at `debug`
//!   every decision is logged with the rule and file that made it. Lines
//!   are written by [`Log`], in the format of tracing-subscriber's `fmt()`
//!   without colours or targets.
//!   `BINDTO_LOG_FILE=path` appends there (created 0600) instead of stderr,
//!   except in a privileged (AT_SECURE) process, which only ever logs to
//!   stderr: a setuid program must never write a file its user names.
//!   That descriptor is the shim's, but the program can close it without
//!   the shim seeing (a raw `close` syscall, a libc-internal close) and
//!   reuse its number: every line first checks that the descriptor is
//!   still the file the shim opened ([`LogFile`]), and opens the file
//!   again if not, so no line lands in the program's socket, pipe or file.

use std::ffi::{CStr, CString};
use std::fmt::{self, Write as _};
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use libc::c_int;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::{Interest, Subscriber};
use tracing::{Event, Level, Metadata};
use tracing_subscriber::filter::{LevelFilter, Targets};

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
    let mut sink = Sink::Stderr;
    if let Some(path) = crate::state::getenv(c"BINDTO_LOG_FILE") {
        if secure {
            notice(
                Notice::LogFile,
                format_args!(
                    "BINDTO_LOG_FILE is ignored in a privileged process; logging to stderr"
                ),
            );
        } else {
            match LogFile::open(&path) {
                Ok(file) => sink = Sink::File(file),
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
    if tracing::subscriber::set_global_default(Log { filter, sink }).is_ok() {
        ENABLED.store(true, Ordering::Relaxed);
    }
}

/// Where the log's lines go.
enum Sink {
    /// fd 2, which is the program's as much as the shim's.
    Stderr,
    /// `BINDTO_LOG_FILE`.
    File(LogFile),
}

/// The shim's own descriptor on `BINDTO_LOG_FILE`, and which file it is.
struct LogFile {
    path: CString,
    /// The descriptor last opened, never null. A replaced one is left
    /// allocated: another thread may still be reading it, and there is one
    /// only each time the program closed the shim's descriptor.
    opened: AtomicPtr<Opened>,
}

/// A descriptor the shim opened, with the device and inode it was opened
/// on: the same number with another identity is the program's now.
struct Opened {
    fd: c_int,
    dev: u64,
    ino: u64,
}

impl Opened {
    /// Opens `path` for appending (created 0600, close-on-exec).
    fn new(path: &CStr) -> Result<Opened, c_int> {
        // SAFETY: `path` is NUL-terminated; the flags and mode are plain
        // ints.
        let fd = unsafe {
            libc::open64(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(crate::errno::get());
        }
        match identity(fd) {
            Some((dev, ino)) => Ok(Opened { fd, dev, ino }),
            None => {
                let e = crate::errno::get();
                // SAFETY: the descriptor just opened, not handed out.
                unsafe { libc::close(fd) };
                Err(e)
            }
        }
    }

    /// Whether `fd` is still the file the shim opened.
    fn current(&self) -> bool {
        identity(self.fd) == Some((self.dev, self.ino))
    }
}

/// The device and inode of the file open on `fd`, if it is open.
fn identity(fd: c_int) -> Option<(u64, u64)> {
    let mut st = mem::MaybeUninit::<libc::stat64>::uninit();
    // SAFETY: `st` is writable for one stat64.
    if unsafe { libc::fstat64(fd, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat64 succeeded and filled it.
    let st = unsafe { st.assume_init() };
    Some((st.st_dev, st.st_ino))
}

impl LogFile {
    fn open(path: &str) -> Result<LogFile, c_int> {
        let path = CString::new(path).map_err(|_| libc::EINVAL)?;
        let opened = Opened::new(&path)?;
        Ok(LogFile {
            path,
            opened: AtomicPtr::new(Box::into_raw(Box::new(opened))),
        })
    }

    /// The shim's descriptor on the file: the one it has if the program
    /// has not closed or reused it, else the file opened again; `None` if
    /// it cannot be opened again, and the line is lost rather than written
    /// into a descriptor of the program's.
    fn fd(&self) -> Option<c_int> {
        let seen = self.opened.load(Ordering::Acquire);
        // SAFETY: never null, and never freed once published.
        let current = unsafe { &*seen };
        if current.current() {
            return Some(current.fd);
        }
        let fresh = Box::into_raw(Box::new(Opened::new(&self.path).ok()?));
        match self
            .opened
            .compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: just published, never freed.
            Ok(_) => Some(unsafe { &*fresh }.fd),
            Err(winner) => {
                // Another thread opened it again first: its descriptor is
                // the one kept.
                // SAFETY: `fresh` was never published.
                let fresh = unsafe { Box::from_raw(fresh) };
                // SAFETY: a published descriptor is never freed.
                let winner = unsafe { &*winner };
                // SAFETY: the descriptor this thread just opened.
                unsafe { libc::close(fresh.fd) };
                Some(winner.fd)
            }
        }
    }
}

/// The log's subscriber. tracing-subscriber's `fmt()` wrote the same lines,
/// but brought a span registry and formatting layers (their size:
/// benches/analysis.md, "What the first measurements led to"), and the shim
/// makes no spans.
struct Log {
    filter: Targets,
    sink: Sink,
}

impl Subscriber for Log {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.enabled(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter
            .would_enable(metadata.target(), metadata.level())
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    /// One line, `<UTC time> <level> <message> <field>=<value>...`, in one
    /// `write(2)`, so that lines from threads and processes appending to
    /// one file do not interleave.
    fn event(&self, event: &Event<'_>) {
        let mut line = String::with_capacity(160);
        timestamp(&mut line);
        line.push_str(match *event.metadata().level() {
            Level::TRACE => "TRACE ",
            Level::DEBUG => "DEBUG ",
            Level::INFO => " INFO ",
            Level::WARN => " WARN ",
            Level::ERROR => "ERROR ",
        });
        event.record(&mut Fields {
            line: &mut line,
            first: true,
        });
        line.push('\n');
        let fd = match &self.sink {
            Sink::Stderr => Some(2),
            Sink::File(file) => file.fd(),
        };
        if let Some(fd) = fd {
            write_all(fd, line.as_bytes());
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Appends the time as `2026-11-23T15:33:12.123456Z `.
fn timestamp(line: &mut String) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    // Days to a civil date, after Howard Hinnant's `civil_from_days`.
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let of_era = days.rem_euclid(146_097);
    let year_of_era = (of_era - of_era / 1460 + of_era / 36_524 - of_era / 146_096) / 365;
    let of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * of_year + 2) / 153;
    let day = of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    let of_day = secs % 86_400;
    // Writing to a String cannot fail.
    let _ = write!(
        line,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z ",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_micros()
    );
}

/// An event's fields as `fmt()` writes them: the message as it is, every
/// other field as `name=value` (`Debug`), separated by spaces.
struct Fields<'a> {
    line: &'a mut String,
    first: bool,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !mem::take(&mut self.first) {
            self.line.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = match field.name() {
            "message" => write!(Escaped(self.line), "{value:?}"),
            name => write!(
                self.line,
                "{}={value:?}",
                name.strip_prefix("r#").unwrap_or(name)
            ),
        };
    }
}

/// A message with the control characters a terminal could act on written
/// as escapes, as `fmt()` does: a host name or profile name in a message
/// cannot drive the terminal that shows the log.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' => {
                    write!(self.0, "\\x{:02x}", u32::from(c))?;
                }
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
                c => self.0.push(c),
            }
        }
        Ok(())
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
    write_all(2, line.as_bytes());
}

/// Writes all of `bytes` to `fd`, retrying after a signal; gives up
/// silently on any other error.
fn write_all(fd: c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for reads of its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(n) {
            Ok(0) => break,
            Ok(n) => bytes = &bytes[n..],
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
