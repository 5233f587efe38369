//! The re-entrancy guard: while a hook is working, the shim's own libc
//! calls (reading config, logging, resolving interfaces) must not be
//! decided again, or initialisation would recurse into itself.
//!
//! The guard's flag shares one thread-local with the thread's view of the
//! rules ([`state::Cached`]): in a shared library every thread-local
//! access is a call to `__tls_get_addr`, and a hook pays for it once.

use std::cell::Cell;

use crate::state::Cached;

/// What the shim keeps per thread.
#[derive(Debug)]
pub(crate) struct Local {
    held: Cell<bool>,
    /// The rules this thread last used.
    pub(crate) cached: Cached,
}

thread_local! {
    // `const` and without Drop: no lazy init and no destructor, so it is
    // usable from any hook, even while the thread is being torn down.
    static LOCAL: Local = const {
        Local {
            held: Cell::new(false),
            cached: Cached::new(),
        }
    };
}

/// Runs `f` with this thread's [`Local`], if the thread still has one.
pub(crate) fn local<R>(f: impl FnOnce(&Local) -> R) -> Option<R> {
    LOCAL.try_with(f).ok()
}

/// Proof that this thread is inside the shim; released on drop, also when
/// unwinding.
#[derive(Debug)]
pub(crate) struct Guard {
    /// This thread's Local, kept so that release (and the rules) cost no
    /// second thread-local lookup. The raw pointer also keeps the guard on
    /// the thread whose flag it is.
    local: *const Local,
}

impl Guard {
    /// Enters the shim, or `None` if this thread is already inside it.
    #[inline]
    pub(crate) fn enter() -> Option<Guard> {
        LOCAL
            .try_with(|local| {
                // A test and a store: `replace` would load, flip and store.
                if local.held.get() {
                    return None;
                }
                local.held.set(true);
                Some(Guard { local })
            })
            .ok()
            .flatten()
    }

    /// This thread's Local.
    #[inline]
    pub(crate) fn local(&self) -> &Local {
        // SAFETY: `local` is this thread's LOCAL (the guard is neither Send
        // nor Sync, so it is used on the thread that made it), and a const
        // thread-local without destructor lives as long as its thread.
        unsafe { &*self.local }
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        self.local().held.set(false);
    }
}
