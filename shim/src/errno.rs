//! The calling thread's errno, which every pass-through path must hand to
//! the real function untouched and every refusal must set.

use libc::c_int;

/// The calling thread's errno slot.
fn slot() -> *mut c_int {
    // SAFETY: __errno_location has no preconditions.
    unsafe { libc::__errno_location() }
}

/// The current errno.
pub(crate) fn get() -> c_int {
    // SAFETY: the thread's errno slot, valid for reads for the thread's
    // lifetime.
    unsafe { *slot() }
}

/// Sets errno to `value`.
pub(crate) fn set(value: c_int) {
    // SAFETY: as in `get`, and the slot is the thread's own, so the write
    // races with nothing.
    unsafe { *slot() = value }
}
