//! The panic boundary: every exported function runs its body through
//! [`call`], so no panic ever unwinds into C. A caught panic fails the
//! call closed, as if the profile had refused it: `-1` with errno EPERM.
//!
//! Thread cancellation (`pthread_cancel`) unwinds too, from a libc
//! cancellation point (`connect`, `poll`, `write`...), with a forced unwind
//! that runs every frame's cleanups (the guard's Drop) up to the thread's
//! start. It must get through the shim as it gets through libc, but
//! `catch_unwind` cannot let it pass: its landing pad stops any unwind, and
//! a foreign one aborts the process. So no cancellation point may act
//! inside a boundary:
//! - the hooked call's own blocking call (the real `connect`, `sendto`,
//!   `close`, libc's `getaddrinfo`...) runs after the boundary, in
//!   [`call_then`]'s `then`, where a cancellation unwinds through the
//!   exports (`extern "C-unwind"`) to the program's frames as without the
//!   shim;
//! - the shim's own libc calls inside a boundary (config reading, logging,
//!   its resolver's waits, a datagram's send with its pktinfo) run with
//!   cancellation disabled ([`NoCancel`]), and a cancellation requested
//!   meanwhile acts at the next cancellation point after the boundary: the
//!   real call, or [`testcancel`]. The resolver's waits, which can be
//!   long, give up as soon as the thread's cancellation is asked
//!   ([`crate::cancel`]).

use std::panic::{self, AssertUnwindSafe};

use libc::{c_int, ssize_t};

use crate::errno;

// Not in the libc crate for glibc.
unsafe extern "C" {
    fn pthread_setcancelstate(state: c_int, old: *mut c_int) -> c_int;
}

unsafe extern "C-unwind" {
    /// Unwinds (forced) when a cancellation is pending.
    fn pthread_testcancel();
}

const PTHREAD_CANCEL_ENABLE: c_int = 0;
const PTHREAD_CANCEL_DISABLE: c_int = 1;

/// The return value of a failed call, per return type.
pub(crate) trait Failed {
    /// `-1` (NULL for a pointer), for every libc function the shim
    /// exports that returns a value; errno (or h_errno) says why.
    const FAILED: Self;
}

/// `closefrom` returns nothing: only errno tells.
impl Failed for () {
    const FAILED: Self = ();
}

impl Failed for c_int {
    const FAILED: Self = -1;
}

impl Failed for ssize_t {
    const FAILED: Self = -1;
}

/// `gethostbyname` and the like: NULL, and h_errno says why.
impl Failed for *mut libc::hostent {
    const FAILED: Self = std::ptr::null_mut();
}

/// Runs `body`; a panic becomes `-1` with errno EPERM.
pub(crate) fn call<R: Failed>(body: impl FnOnce() -> R) -> R {
    // The shim's state stays consistent across a panic: it is either the
    // previous arc-swapped snapshot or a fresh one, and the guard is
    // released by its Drop.
    panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        errno::set(libc::EPERM);
        R::FAILED
    })
}

/// Runs `body`, which decides: `Ok` is the call's result, `Err(next)` hands
/// `next` to `then`, which runs after the boundary and makes the hooked
/// call's own blocking call. A panic in `body` becomes `-1` with errno
/// EPERM; `then` must not panic (it only calls libc).
pub(crate) fn call_then<R: Failed, T>(
    body: impl FnOnce() -> Result<R, T>,
    then: impl FnOnce(T) -> R,
) -> R {
    // `next` is written in place, out of the unwinding closure, which
    // returns a plain R: a hooked call passes through here on every call.
    let mut next = None;
    let decided = panic::catch_unwind(AssertUnwindSafe(|| match body() {
        Ok(result) => result,
        Err(then) => {
            next = Some(then);
            R::FAILED
        }
    }));
    match (decided, next) {
        (Ok(_), Some(next)) => then(next),
        (Ok(result), None) => result,
        (Err(_), _) => {
            errno::set(libc::EPERM);
            R::FAILED
        }
    }
}

/// Runs `body`; a panic returns `failed()` instead, for exports whose
/// failure is not `-1` with errno (the resolver's EAI codes, null
/// pointers).
pub(crate) fn call_or<R>(failed: impl FnOnce() -> R, body: impl FnOnce() -> R) -> R {
    panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| failed())
}

/// Cancellation disabled for as long as it lives, for the shim's own libc
/// calls inside a boundary; restored on drop (also when a panic unwinds).
#[derive(Debug)]
pub(crate) struct NoCancel {
    old: c_int,
}

impl NoCancel {
    pub(crate) fn new() -> NoCancel {
        let mut old = PTHREAD_CANCEL_ENABLE;
        // SAFETY: a valid state and a writable out pointer.
        unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old) };
        NoCancel { old }
    }
}

impl Drop for NoCancel {
    fn drop(&mut self) {
        let mut ignored = 0;
        // SAFETY: the state saved in `new`, and a writable out pointer.
        unsafe { pthread_setcancelstate(self.old, &mut ignored) };
    }
}

/// A cancellation point, after a boundary whose own work ran under
/// [`NoCancel`]: a cancellation requested meanwhile acts here, outside any
/// boundary, as it would have in libc's call.
pub(crate) fn testcancel() {
    // SAFETY: no arguments; outside any boundary, so its forced unwind goes
    // through the exports to the program's frames.
    unsafe { pthread_testcancel() };
}
