//! The re-entrancy guard: while a hook is working, the shim's own libc
//! calls (reading config, logging, resolving interfaces) must not be
//! decided again, or initialisation would recurse into itself.
//!
//! The guard's flag shares one thread-local with the thread's view of the
//! rules ([`state::Cached`]), so that a hook finds both at once. In the
//! engine, a `dlopen`ed library, that access is a call to `__tls_get_addr`;
//! the preloaded front therefore keeps a block in its static TLS, at a
//! fixed offset from the thread pointer, where the engine keeps its
//! [`Local`] instead ([`attach`]): two instructions.

use std::cell::Cell;
#[cfg(target_arch = "x86_64")]
use std::sync::atomic::{AtomicIsize, Ordering};

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

/// Bytes of the front's per-thread block (`LOCAL_SIZE` in
/// `shim/front/src/lib.rs`), aligned to as many.
#[cfg(target_arch = "x86_64")]
const FRONT_BLOCK: usize = 64;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(size_of::<Local>() <= FRONT_BLOCK && align_of::<Local>() <= FRONT_BLOCK);

/// Offset from the thread pointer of the front's block, 0 until
/// [`attach`] (and for good where the engine is preloaded itself).
#[cfg(target_arch = "x86_64")]
static FRONT_LOCAL: AtomicIsize = AtomicIsize::new(0);

/// Keeps every thread's [`Local`] at `offset` from its thread pointer from
/// now on. Called once, before any hook, so that no thread has used the
/// engine's own thread-local yet. Elsewhere than on x86_64 the front
/// hands over no block.
///
/// # Safety
/// At `offset` from every thread's thread pointer, for as long as the
/// thread lives, lies a zeroed block of [`FRONT_BLOCK`] bytes, aligned to
/// as many, that nothing else uses: the front's initial-exec TLS.
pub(crate) unsafe fn attach(offset: isize) {
    #[cfg(target_arch = "x86_64")]
    FRONT_LOCAL.store(offset, Ordering::Relaxed);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = offset;
}

/// Runs `f` with this thread's [`Local`], if the thread still has one.
#[inline(always)]
pub(crate) fn local<R>(f: impl FnOnce(&Local) -> R) -> Option<R> {
    #[cfg(target_arch = "x86_64")]
    {
        let offset = FRONT_LOCAL.load(Ordering::Relaxed);
        if offset != 0 {
            let tp: usize;
            // SAFETY: on x86_64 Linux the word at %fs:0 is the thread
            // pointer itself (the TCB's self-pointer); reads only.
            unsafe {
                std::arch::asm!(
                    "mov {}, qword ptr fs:[0]",
                    out(reg) tp,
                    options(nostack, pure, readonly, preserves_flags),
                );
            }
            let at = tp.wrapping_add_signed(offset) as *const Local;
            // SAFETY: `attach`'s caller promised a zeroed block of the
            // right size and alignment for this thread's lifetime, used by
            // nothing else; all zeroes is the const initialiser below
            // (false, null, generation 0), and the block is only reached
            // through shared references to its Cells, on this thread.
            return Some(f(unsafe { &*at }));
        }
    }
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
        local(|local| {
            // A test and a store: `replace` would load, flip and store.
            if local.held.get() {
                return None;
            }
            local.held.set(true);
            Some(Guard { local })
        })
        .flatten()
    }

    /// This thread's Local.
    #[inline]
    pub(crate) fn local(&self) -> &Local {
        // SAFETY: `local` is this thread's Local (the guard is neither Send
        // nor Sync, so it is used on the thread that made it), which lives
        // as long as its thread: in the front's static TLS, or a const
        // thread-local without destructor.
        unsafe { &*self.local }
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        self.local().held.set(false);
    }
}
