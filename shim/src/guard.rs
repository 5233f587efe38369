//! The re-entrancy guard: while a hook is working, the shim's own libc
//! calls (reading config, logging, resolving interfaces) must not be
//! decided again, or initialisation would recurse into itself.

use std::cell::Cell;

thread_local! {
    // `const` and without Drop: no lazy init and no destructor, so it is
    // usable from any hook, even while the thread is being torn down.
    static HELD: Cell<bool> = const { Cell::new(false) };
}

/// Proof that this thread is inside the shim; released on drop, also when
/// unwinding.
#[derive(Debug)]
pub(crate) struct Guard {
    /// This thread's flag, kept so that release costs no second
    /// thread-local lookup. The raw pointer also keeps the guard on the
    /// thread whose flag it is.
    held: *const Cell<bool>,
}

impl Guard {
    /// Enters the shim, or `None` if this thread is already inside it.
    pub(crate) fn enter() -> Option<Guard> {
        HELD.try_with(|held| (!held.replace(true)).then_some(Guard { held }))
            .ok()
            .flatten()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: `held` is this thread's HELD (the guard is neither Send
        // nor Sync, so it is dropped on the thread that made it), and a
        // const thread-local without destructor lives as long as its
        // thread.
        unsafe { (*self.held).set(false) }
    }
}
