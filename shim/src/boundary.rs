//! The panic boundary: every exported function runs its body through
//! [`call`], so no unwind ever crosses into C. A caught panic fails the
//! call closed, as if the profile had refused it: `-1` with errno EPERM.

use std::panic::{self, AssertUnwindSafe};

use libc::{c_int, ssize_t};

use crate::errno;

/// The return value of a failed call, per return type.
pub(crate) trait Failed {
    /// `-1`, for every libc function the shim exports that returns a
    /// value; errno says why.
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

/// Runs `body`; a panic returns `failed()` instead, for exports whose
/// failure is not `-1` with errno (the resolver's EAI codes, null
/// pointers).
pub(crate) fn call_or<R>(failed: impl FnOnce() -> R, body: impl FnOnce() -> R) -> R {
    panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| failed())
}
