//! The re-entrancy guard: while a hook is working, the shim's own libc
//! calls (reading config, logging, resolving interfaces) must not be
//! decided again, or initialisation would recurse into itself.

use std::cell::Cell;
use std::marker::PhantomData;

thread_local! {
    // `const` and without Drop: no lazy init and no destructor, so it is
    // usable from any hook, even while the thread is being torn down.
    static HELD: Cell<bool> = const { Cell::new(false) };
}

/// Proof that this thread is inside the shim; released on drop, also when
/// unwinding.
#[derive(Debug)]
pub(crate) struct Guard {
    // Thread-bound: the flag it releases is this thread's.
    _not_send: PhantomData<*const ()>,
}

impl Guard {
    /// Enters the shim, or `None` if this thread is already inside it.
    pub(crate) fn enter() -> Option<Guard> {
        HELD.try_with(|held| !held.replace(true))
            .unwrap_or(false)
            .then_some(Guard {
                _not_send: PhantomData,
            })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Cannot fail: `enter` reached the same thread-local.
        let _ = HELD.try_with(|held| held.set(false));
    }
}
