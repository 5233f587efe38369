//! The re-entrancy guard: while a hook is working, the shim's own libc
//! calls (reading config, logging, resolving interfaces) must not be
//! decided again, or initialisation would recurse into itself.
//!
//! A hook call that finds the guard held is one of three things, told
//! apart here:
//! - the shim's own libc call re-entering a hook: only inside a stretch
//!   marked with [`own`] (an NSS lookup of a service name), which also
//!   blocks signals, so that nothing else can run in the thread meanwhile;
//! - a signal handler that interrupted a hook in the same thread: the hook
//!   must not be re-entered, and the call must not leave undecided, so it
//!   is refused as worth retrying;
//! - neither: the hook that took the guard is gone, abandoned by a
//!   `siglongjmp` out of a signal handler (the `alarm()` timeout around
//!   `getaddrinfo`), so its guard was never released. The guard records
//!   the stack pointer of the frame that took it: a caller at or above
//!   that frame on the same stack cannot be nested inside it, so the guard
//!   is retaken ([`abandoned`]). A later call from deeper in the stack
//!   cannot be told from a nested handler by its stack pointer: it is
//!   refused as a handler's (never sent unbound) until a call from that
//!   depth or above retakes the guard.
//!
//! The guard's flag shares one thread-local with the thread's view of the
//! rules ([`state::Cached`]), so that a hook finds both at once (in the
//! engine, a `dlopen`ed library, with one call of `__tls_get_addr`).

use std::cell::Cell;

use crate::state::Cached;

/// What the shim keeps per thread.
#[derive(Debug)]
pub(crate) struct Local {
    /// The stack pointer where the guard was taken; 0 when it is free.
    holder: Cell<usize>,
    /// Inside a stretch of the shim's own libc calls ([`own`]).
    own: Cell<bool>,
    /// The rules this thread last used.
    pub(crate) cached: Cached,
}

thread_local! {
    // `const` and without Drop: no lazy init and no destructor, so it is
    // usable from any hook, even while the thread is being torn down.
    static LOCAL: Local = const {
        Local {
            holder: Cell::new(0),
            own: Cell::new(false),
            cached: Cached::new(),
        }
    };
}

/// Runs `f` with this thread's [`Local`], if the thread still has one.
#[inline(always)]
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

/// Why [`Guard::enter`] found the thread inside the shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inside {
    /// The shim's own libc call, in a stretch marked with [`own`].
    Own,
    /// A signal handler that interrupted a hook.
    Interrupted,
}

impl Guard {
    /// Enters the shim, or `None` if this thread is already inside it.
    #[inline]
    pub(crate) fn enter() -> Option<Guard> {
        Guard::try_enter().ok()
    }

    /// Enters the shim, or says why this thread is already inside it.
    #[inline]
    pub(crate) fn try_enter() -> Result<Guard, Inside> {
        local(|local| {
            let here = stack_pointer();
            let holder = local.holder.get();
            if holder != 0 && !abandoned(holder, here) {
                return Err(if local.own.get() {
                    Inside::Own
                } else {
                    Inside::Interrupted
                });
            }
            local.holder.set(here);
            Ok(Guard { local })
        })
        // A thread being torn down: as the shim's own call, to libc.
        .unwrap_or(Err(Inside::Own))
    }

    /// This thread's Local.
    #[inline]
    pub(crate) fn local(&self) -> &Local {
        // SAFETY: `local` is this thread's Local (the guard is neither Send
        // nor Sync, so it is used on the thread that made it), which lives
        // as long as its thread: a const thread-local without destructor.
        unsafe { &*self.local }
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        self.local().holder.set(0);
    }
}

/// The current stack pointer, or near enough: an address in the calling
/// frame.
#[inline(always)]
fn stack_pointer() -> usize {
    let sp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads a register; no memory, stack or flags touched.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reads a register; no memory, stack or flags touched.
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let here = 0u8;
        sp = std::hint::black_box(&here) as *const u8 as usize;
    }
    sp
}

/// Whether the guard taken at stack pointer `holder` was abandoned, seen
/// from stack pointer `here` in the same thread. The stack grows down: a
/// signal handler nested in the holder's frame runs below it, and a
/// caller at or above it is not nested in it, so the frame is gone (a
/// `siglongjmp` left it). A handler on the alternate signal stack
/// (`sigaltstack`) runs on another stack, where addresses do not compare:
/// there, a holder on the alternate stack seen from the thread's stack is
/// gone, and a holder on the thread's stack seen from the alternate stack
/// was interrupted.
#[cold]
#[inline(never)]
fn abandoned(holder: usize, here: usize) -> bool {
    let mut alt = std::mem::MaybeUninit::<libc::stack_t>::uninit();
    // SAFETY: queries only; `alt` is writable for one stack_t.
    let alt = (unsafe { libc::sigaltstack(std::ptr::null(), alt.as_mut_ptr()) } == 0)
        // SAFETY: sigaltstack succeeded and filled it.
        .then(|| unsafe { alt.assume_init() })
        .filter(|alt| alt.ss_flags & libc::SS_DISABLE == 0)
        .map(|alt| {
            let low = alt.ss_sp as usize;
            low..low.saturating_add(alt.ss_size)
        });
    match alt {
        Some(alt) if alt.contains(&holder) != alt.contains(&here) => alt.contains(&holder),
        _ => here >= holder,
    }
}

/// Runs `f`, a stretch of the shim's own libc calls that may reach one of
/// its hooks while the guard is held (NSS modules): such a call is the
/// shim's own ([`Inside::Own`]) and goes to libc. Signals are blocked
/// meanwhile, so that a handler can neither run and be taken for the
/// shim's own call, nor `siglongjmp` out of the stretch.
pub(crate) fn own<R>(f: impl FnOnce() -> R) -> R {
    let _stretch = Own::new();
    f()
}

/// A stretch of [`own`]; ended on drop, also when a panic unwinds.
struct Own {
    /// The signal mask before, if it could be changed.
    saved: Option<libc::sigset_t>,
    /// The flag before (a stretch inside another).
    was: Option<bool>,
}

impl Own {
    fn new() -> Own {
        let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        let mut saved = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `all` is a sigset_t to fill.
        unsafe { libc::sigfillset(all.as_mut_ptr()) };
        // SAFETY: `all` is filled; `saved` receives the thread's mask when
        // the call succeeds.
        let blocked =
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), saved.as_mut_ptr()) }
                == 0;
        // SAFETY: initialised by the call that succeeded.
        let saved = blocked.then(|| unsafe { saved.assume_init() });
        Own {
            saved,
            was: local(|local| local.own.replace(true)),
        }
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        if let Some(was) = self.was {
            local(|local| local.own.set(was));
        }
        if let Some(saved) = &self.saved {
            // SAFETY: the mask saved in `new`.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, saved, std::ptr::null_mut()) };
        }
    }
}
