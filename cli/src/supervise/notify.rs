//! The kernel side of supervision: receiving a notification from the
//! listener, checking that it is still pending, reaching the calling
//! process, and sending the answer. Every notification received is
//! answered, whatever happens while deciding it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use libc::{c_int, seccomp_notif, seccomp_notif_resp};

use super::memory::last_errno;

/// What a trapped call becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// The kernel carries on with the call as the program made it.
    Continue,
    /// The call returns this value (done by bindto on the program's behalf).
    Value(i64),
    /// The call fails with this errno.
    Error(c_int),
}

/// One trapped call.
#[derive(Debug)]
pub(super) struct Call<'l> {
    listener: &'l OwnedFd,
    pub(super) id: u64,
    /// The calling thread, as bindto's pid namespace sees it.
    pub(super) pid: u32,
    pub(super) nr: i64,
    pub(super) args: [u64; 6],
}

/// `PIDFD_THREAD` (Linux 6.9): a pidfd for a thread that is not the
/// leader, which is what a notification names in multithreaded programs.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

impl Call<'_> {
    /// Whether the call is still waiting for its answer: after anything
    /// was read of the process, this says the process is the one that made
    /// the call (its pid was not reused meanwhile).
    pub(super) fn valid(&self) -> bool {
        // SAFETY: the ioctl reads the u64 it is given.
        unsafe {
            libc::ioctl(
                self.listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
                &self.id,
            ) == 0
        }
    }

    /// A pidfd for the calling thread. Until [`Call::valid`] says so
    /// afterwards, it may be another process that took the thread's id.
    pub(super) fn pidfd(&self) -> Result<OwnedFd, c_int> {
        let pid = self.pid as libc::pid_t;
        // SAFETY: plain system calls with integer arguments.
        let mut fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, PIDFD_THREAD) };
        if fd < 0 && last_errno() == libc::EINVAL {
            // Before Linux 6.9: the thread group's leader shares the
            // thread's descriptor table.
            let leader = thread_group(self.pid).ok_or(libc::ESRCH)?;
            // SAFETY: as above.
            fd = unsafe { libc::syscall(libc::SYS_pidfd_open, leader, 0) };
        }
        if fd < 0 {
            return Err(last_errno());
        }
        // SAFETY: the descriptor was just made and is owned here. Whether
        // it is the caller's (and not a process that took its pid since)
        // is checked with `valid` once whatever was needed was taken.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as c_int) })
    }
}

/// The thread group (process) of thread `tid`, from /proc.
fn thread_group(tid: u32) -> Option<libc::pid_t> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits for the next notification on `listener` and hands it to
/// `decide`, then sends the answer. `Ok(false)` when there was none to
/// take after all (the caller was killed, or a signal interrupted).
pub(super) fn serve_one(
    listener: &OwnedFd,
    decide: impl FnOnce(&Call<'_>) -> Answer,
) -> io::Result<bool> {
    // SAFETY: all-zero is a valid seccomp_notif, and RECV wants it zeroed.
    let mut notif: seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one seccomp_notif into `notif`.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut notif,
        )
    };
    if rc != 0 {
        return match last_errno() {
            // ENOENT: the caller went away before it was received.
            libc::EINTR | libc::ENOENT | libc::EAGAIN => Ok(false),
            e => Err(io::Error::from_raw_os_error(e)),
        };
    }
    let call = Call {
        listener,
        id: notif.id,
        pid: notif.pid,
        nr: i64::from(notif.data.nr),
        args: notif.data.args,
    };
    // A panic while deciding would leave the call without an answer until
    // bindto exits: it is answered EPERM instead.
    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decide(&call)))
        .unwrap_or(Answer::Error(libc::EPERM));
    let mut resp = seccomp_notif_resp {
        id: notif.id,
        val: 0,
        error: 0,
        flags: 0,
    };
    match answer {
        Answer::Continue => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        Answer::Value(v) => resp.val = v,
        Answer::Error(e) => resp.error = -e,
    }
    // SAFETY: the ioctl reads one seccomp_notif_resp.
    let rc = unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    // ENOENT: the caller was killed, or a signal interrupted its call
    // (which the kernel restarts, sending a new notification).
    if rc != 0 && last_errno() != libc::ENOENT {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}
