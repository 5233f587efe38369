//! Supervision: the command runs as bindto's child under a seccomp filter
//! that stops every system call a destination can enter by and hands it
//! to bindto (`SECCOMP_RET_USER_NOTIF`), which decides it with the
//! profile's compiled table, the one the preloaded library consults. It
//! covers what the library cannot see: static programs, Go's own system
//! calls, raw `syscall(2)`, and descendants that clear their environment
//! (the filter is inherited across fork and exec, and cannot be removed).
//!
//! The child sets `no_new_privs`, installs the filter and tells bindto the
//! listener's descriptor number through a pipe; bindto takes the listener
//! with `pidfd_getfd` (a send of the descriptor would be a `sendmsg`, which
//! the filter already stops), and only then lets the child exec. bindto
//! stays the parent, as the subreaper of the whole tree: orphans stay its
//! descendants, it answers their calls until the last has exited, and it
//! exits as the command did (a death by signal is raised again on itself).
//! If bindto dies, the kernel fails the pending calls (fail closed).
//!
//! Signals sent to bindto by another process are passed on to the
//! command; those the terminal sends reach it directly (it is in bindto's
//! process group, in the foreground).

mod decide;
mod filter;
mod memory;
mod notify;
mod socket;

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use bindto_core::Table;
use libc::c_int;

use crate::exit::Code;
use crate::select::Vars;
use memory::last_errno;

/// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP.
const SYNC_WAKE_UP: u64 = 1;

/// Why the command could not be started under supervision.
#[derive(Debug)]
pub(crate) enum Error {
    /// This kernel (or its settings) does not allow supervision.
    Unavailable(String),
    /// The command could not be executed.
    Exec(io::Error),
}

/// The signals bindto takes through a signalfd: children's exits, and
/// those passed on to the command.
const SIGNALS: [c_int; 8] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
];

/// Runs `path` with `argv` (argv\[0\] first) under supervision by `table`,
/// with `vars` set in its environment; returns its exit status.
pub(crate) fn run(
    path: &Path,
    argv: &[OsString],
    vars: &Vars,
    table: &Table,
) -> Result<ExitCode, Error> {
    let other = |e: io::Error| Error::Unavailable(e.to_string());
    let exec = Exec::new(path, argv, vars).map_err(other)?;
    let program = filter::program(!table.listen().is_empty());
    let (from_child, to_parent) = pipe().map_err(other)?;
    let (from_parent, to_child) = pipe().map_err(other)?;
    let signals = Signals::block().map_err(other)?;
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    // SAFETY: bindto is single-threaded here; the child only makes
    // async-signal-safe calls (no allocation) before it execs or exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(other(io::Error::last_os_error()));
    }
    if child == 0 {
        // SAFETY: in the forked child, with descriptors and buffers made
        // before the fork.
        unsafe {
            child_main(
                &signals.old,
                &program,
                to_parent.as_raw_fd(),
                from_parent.as_raw_fd(),
                &exec,
            )
        }
    }
    drop((to_parent, from_parent));
    let kill = |why: Error| {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child, libc::SIGKILL) };
        // SAFETY: reaping it; no status wanted.
        unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
        why
    };
    let listener = match read_message(&from_child) {
        Some((Tag::Listener, fd)) => take_listener(child, fd).map_err(|e| {
            kill(Error::Unavailable(format!(
                "cannot take the seccomp listener from the child (pidfd_getfd: {e})"
            )))
        })?,
        Some((Tag::Install, e)) => {
            return Err(kill(Error::Unavailable(format!(
                "cannot install a seccomp filter with a user-notification listener ({})",
                io::Error::from_raw_os_error(e)
            ))));
        }
        _ => {
            return Err(kill(Error::Unavailable(
                "the child exited before supervision started".to_owned(),
            )));
        }
    };
    // Linux 6.6: the program and bindto hand the CPU to each other at each
    // notification instead of waking each other up, which roughly halves
    // the time a trapped call takes. Best effort: older kernels say EINVAL.
    // SAFETY: the ioctl reads the u64 flags it is given.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            &SYNC_WAKE_UP,
        )
    };
    // The child goes on to exec once it reads this.
    // SAFETY: writes one byte from a local.
    unsafe { libc::write(to_child.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    drop(to_child);
    if let Some((Tag::Exec, e)) = read_message(&from_child) {
        return Err(kill(Error::Exec(io::Error::from_raw_os_error(e))));
    }
    drop(from_child);
    let status = serve(listener, &signals, child, table).map_err(other)?;
    Ok(exit_like(status))
}

/// Whether supervision works here: `true` run under it, and bindto's
/// signal mask and subreaper setting put back.
pub(crate) fn probe(table: &Table) -> Result<(), String> {
    let program = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or("no true(1) to start")?;
    // SAFETY: sigset_t is plain data; the calls only read and write it.
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: reads the thread's mask into `mask`.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) };
    let result = run(program, &[OsString::from("true")], &Vec::new(), table);
    // SAFETY: puts back what was read above.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut()) };
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) };
    match result {
        Ok(_) => Ok(()),
        Err(Error::Unavailable(why)) => Err(why),
        Err(Error::Exec(e)) => Err(format!("cannot start {}: {e}", program.display())),
    }
}

/// What the child reports through the pipe: a tag and a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    /// The filter is installed; the listener's descriptor.
    Listener = 1,
    /// Installing failed; the errno.
    Install = 2,
    /// exec failed; the errno.
    Exec = 3,
}

fn read_message(from: &OwnedFd) -> Option<(Tag, c_int)> {
    let mut buf = [0u8; 5];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reads into the rest of `buf`.
        let n = unsafe {
            libc::read(
                from.as_raw_fd(),
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
            )
        };
        match n {
            0 => return None,
            n if n < 0 && last_errno() == libc::EINTR => {}
            n if n < 0 => return None,
            n => got += n as usize,
        }
    }
    let tag = match buf[0] {
        1 => Tag::Listener,
        2 => Tag::Install,
        3 => Tag::Exec,
        _ => return None,
    };
    Some((tag, c_int::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]])))
}

/// The child's side, after fork: restore the signal mask, install the
/// filter, report the listener, wait until bindto holds it, exec.
///
/// # Safety
/// Called once, in the child of a fork, with descriptors and buffers that
/// were valid before it.
unsafe fn child_main(
    old_mask: &libc::sigset_t,
    program: &[libc::sock_filter],
    to_parent: c_int,
    from_parent: c_int,
    exec: &Exec,
) -> ! {
    let report = |tag: Tag, value: c_int| {
        let mut buf = [0u8; 5];
        buf[0] = tag as u8;
        buf[1..].copy_from_slice(&value.to_ne_bytes());
        // SAFETY: writes from a local; a pipe write of 5 bytes is atomic.
        unsafe { libc::write(to_parent, buf.as_ptr().cast(), buf.len()) };
    };
    // SAFETY: restores the mask bindto had before it blocked its signals.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, old_mask, std::ptr::null_mut()) };
    // SAFETY: SIGPIPE's default action, which Rust's runtime set to ignored
    // in bindto (an ignored signal stays ignored across exec: `cmd | head`
    // would get EPIPE instead of dying quietly).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let listener = match filter::install(program) {
        Ok(fd) => fd,
        Err(e) => {
            report(Tag::Install, e);
            // SAFETY: leaving the child without running Rust's exit code.
            unsafe { libc::_exit(126) }
        }
    };
    report(Tag::Listener, listener);
    let mut ack = [0u8; 1];
    // SAFETY: reads one byte into a local.
    let n = unsafe { libc::read(from_parent, ack.as_mut_ptr().cast(), 1) };
    if n != 1 {
        // SAFETY: as above.
        unsafe { libc::_exit(126) }
    }
    // SAFETY: the listener is bindto's now; the command must not hold it
    // (it could answer its own calls).
    unsafe { libc::close(listener) };
    // SAFETY: the pointers are NUL-terminated arrays of NUL-terminated
    // strings, built before the fork.
    unsafe { libc::execve(exec.path.as_ptr(), exec.argv.as_ptr(), exec.envp.as_ptr()) };
    report(Tag::Exec, last_errno());
    // SAFETY: as above.
    unsafe { libc::_exit(127) }
}

/// execve's arguments, built before the fork.
struct Exec {
    path: CString,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// The strings the pointers point into.
    _strings: Vec<CString>,
}

impl Exec {
    fn new(path: &Path, argv: &[OsString], vars: &Vars) -> io::Result<Exec> {
        let c = |bytes: &[u8]| {
            CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
        };
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| !vars.iter().any(|(v, _)| k.as_bytes() == v.as_bytes()))
            .collect();
        for (var, value) in vars {
            if let Some(value) = value {
                env.push((var.into(), value.into()));
            }
        }
        let args = argv
            .iter()
            .map(|a| c(a.as_bytes()))
            .collect::<io::Result<Vec<_>>>()?;
        let envs = env
            .iter()
            .map(|(k, v)| c(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
            .collect::<io::Result<Vec<_>>>()?;
        let pointers = |strings: &[CString]| {
            strings
                .iter()
                .map(|s| s.as_ptr())
                .chain([std::ptr::null()])
                .collect()
        };
        let argv = pointers(&args);
        let envp = pointers(&envs);
        Ok(Exec {
            path: c(path.as_os_str().as_bytes())?,
            argv,
            envp,
            _strings: args.into_iter().chain(envs).collect(),
        })
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just made and owned here.
    let reader = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above.
    let writer = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    Ok((reader, writer))
}

/// Takes descriptor `fd` of process `pid`.
fn take_listener(pid: libc::pid_t, fd: c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain system calls with integer arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just made, owned here.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as c_int) };
    // SAFETY: as above.
    let listener = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if listener < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just made, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(listener as c_int) })
}

/// The signals bindto takes through a signalfd instead of their handlers.
struct Signals {
    fd: OwnedFd,
    /// The mask before, for the child.
    old: libc::sigset_t,
}

impl Signals {
    fn block() -> io::Result<Signals> {
        // SAFETY: sigset_t is plain data; sigprocmask fills it in.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        let set = sigset(&SIGNALS);
        // SAFETY: the sets are valid; the call only writes `old` and the
        // thread's mask.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) };
        // SAFETY: `set` is initialised.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Signals {
            // SAFETY: just made, owned here.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            old,
        })
    }

    /// The next signal: its number and code, and the sender.
    fn read(&self) -> Option<libc::signalfd_siginfo> {
        // SAFETY: plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        // SAFETY: reads one siginfo into `info`.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size_of::<libc::signalfd_siginfo>(),
            )
        };
        (n == size_of::<libc::signalfd_siginfo>() as isize).then_some(info)
    }
}

/// Answers notifications until the command and every descendant have
/// exited; returns the command's wait status.
///
/// The answers come from a thread of their own that waits in the
/// listener's RECV: with the synchronous wake-up set above, the program
/// and that thread hand the CPU to each other (waiting in poll instead
/// would lose that). The calling thread waits for signals and children.
fn serve(
    listener: OwnedFd,
    signals: &Signals,
    child: libc::pid_t,
    table: &Table,
) -> io::Result<c_int> {
    let table = table.clone();
    std::thread::Builder::new()
        .name("bindto-notify".to_owned())
        .spawn(move || {
            let rules = decide::Rules::new(&table);
            loop {
                if let Err(e) = notify::serve_one(&listener, |call| decide::answer(&rules, call)) {
                    // Exiting closes the listener: the kernel fails every
                    // pending and later call (fail closed).
                    eprintln!("bindto: supervision failed ({e}); exiting");
                    std::process::exit(Code::CannotExecute as i32);
                }
            }
        })?;
    let mut status = None;
    loop {
        let Some(info) = signals.read() else { continue };
        let signal = info.ssi_signo as c_int;
        if signal != libc::SIGCHLD {
            // The terminal's signals reach the command directly.
            if status.is_none() && info.ssi_code != libc::SI_KERNEL {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(child, signal) };
            }
            continue;
        }
        loop {
            let mut wstatus = 0;
            // SAFETY: reaps any child of bindto's (it is their subreaper).
            let pid = unsafe { libc::waitpid(-1, &mut wstatus, libc::WNOHANG) };
            if pid == child {
                status = Some(wstatus);
            } else if pid < 0 && last_errno() == libc::ECHILD {
                if let Some(status) = status {
                    return Ok(status);
                }
                break;
            } else if pid <= 0 {
                break;
            }
        }
    }
}

/// A signal set holding `signals`.
fn sigset(signals: &[c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a set to empty.
    unsafe { libc::sigemptyset(&mut set) };
    for &signal in signals {
        // SAFETY: an initialised set.
        unsafe { libc::sigaddset(&mut set, signal) };
    }
    set
}

/// Exits as the command did: its status, or its death by the same signal.
fn exit_like(status: c_int) -> ExitCode {
    if libc::WIFEXITED(status) {
        return ExitCode::from(libc::WEXITSTATUS(status) as u8);
    }
    let signal = libc::WTERMSIG(status);
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // Plain calls on bindto itself: no core file of bindto's for the
    // command's crash, the default action, the signal unblocked.
    // SAFETY: a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    // SAFETY: the default action, no handler.
    unsafe { libc::signal(signal, libc::SIG_DFL) };
    // SAFETY: a valid set; only the thread's mask changes.
    unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &sigset(&[signal]), std::ptr::null_mut()) };
    // SAFETY: raising a signal is always allowed.
    unsafe { libc::raise(signal) };
    // A signal whose default is not to terminate: as the shell shows it.
    ExitCode::from(128u8.wrapping_add(signal as u8))
}
