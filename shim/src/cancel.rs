//! `pthread_cancel` of a thread whose name lookup the shim's resolver is
//! making.
//!
//! The resolver's waits run inside the panic boundary with cancellation
//! off (`crate::boundary`: glibc's forced unwind cannot get through
//! `catch_unwind`), so glibc cannot cancel the thread there. The shim sees
//! `pthread_cancel` itself ([`crate::hooks::dns::pthread_cancel`]) and
//! notes the thread here; the resolver's waits poll in slices and give up
//! once their thread is noted, and the lookup's export then lets the
//! cancellation act, after its boundary. A lookup is thus cancelled within
//! a slice, as libc's would be at once.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The threads (`pthread_t`) whose cancellation was asked last, in a ring:
/// more requests at once than it holds may overwrite one before its thread
/// looks, which then waits out its lookup before it is cancelled.
static ASKED: [AtomicUsize; 16] = [const { AtomicUsize::new(0) }; 16];
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn me() -> usize {
    // SAFETY: no preconditions.
    unsafe { libc::pthread_self() as usize }
}

/// Notes that `thread`'s cancellation was asked.
pub(crate) fn ask(thread: libc::pthread_t) {
    let slot = NEXT.fetch_add(1, Ordering::Relaxed) % ASKED.len();
    if let Some(slot) = ASKED.get(slot) {
        slot.store(thread as usize, Ordering::Release);
    }
}

/// Whether this thread's cancellation was asked since it last called
/// [`forget`].
pub(crate) fn asked() -> bool {
    let me = me();
    ASKED.iter().any(|slot| slot.load(Ordering::Acquire) == me)
}

/// Forgets the requests noted for this thread: at the start of a lookup,
/// they were for an earlier thread with the same `pthread_t`, or libc has
/// seen them already.
pub(crate) fn forget() {
    let me = me();
    for slot in &ASKED {
        let _ = slot.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}
