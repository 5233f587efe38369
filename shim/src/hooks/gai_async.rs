//! glibc's asynchronous lookups: `getaddrinfo_a`, `gai_suspend`,
//! `gai_error` and `gai_cancel`.
//!
//! glibc (in libc since 2.34, in libanl before) answers `getaddrinfo_a` on
//! threads of its own that call libc's internal `getaddrinfo`, which no
//! hook sees: the queries would leave by the default route. So when the
//! profile names a DNS server (the decision of [`crate::hooks::dns`]), the
//! shim answers the requests itself: up to 20 threads (glibc's pool has as
//! many) take them in order, each through the shim's `getaddrinfo`, and
//! fill the request's `ar_result`, then its `__return` (which glibc's
//! `gai_error` reads). `GAI_WAIT` waits for all
//! of them; `GAI_NOWAIT` returns at once and, when the last request of the
//! call is done, notifies as its `sigevent` says (`SIGEV_SIGNAL`: the
//! signal, with `SI_ASYNCNL`, the caller's pid and the value, queued to the
//! process; `SIGEV_THREAD`: the function on a new thread, of the given
//! attributes or detached). As glibc's, the request threads block every
//! signal, so that none meant for the program lands on them, and a
//! notification thread starts with none blocked.
//!
//! glibc's `gai_suspend` and `gai_cancel` know only glibc's requests, so
//! for a request the shim is still answering they are answered here:
//! `gai_suspend` waits, as glibc's, until one of the listed requests in
//! progress at the call completes (0), the timeout passes (EAI_AGAIN) or a
//! signal interrupts it (EAI_INTR); `gai_cancel` says EAI_NOTCANCELED for
//! a running request and EAI_CANCELED for a waiting one, as glibc (which
//! then leaves it in progress for ever: here it is done, EAI_CANCELED).
//! Everything else goes to libc's,
//! which answers the shim's finished requests as its own finished ones
//! (EAI_ALLDONE). `gai_error` reads `__return` with acquire ordering, for
//! the shim's requests and glibc's alike.
//!
//! Without a DNS server in the profile the call goes to libc untouched:
//! its lookups take libc's route, as `getaddrinfo`'s do then.

use std::collections::VecDeque;
use std::mem::{self, MaybeUninit};
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use libc::{addrinfo, c_char, c_int, c_void, pid_t, pthread_attr_t, timespec, uid_t};

use crate::boundary;
use crate::errno;
use crate::hooks::dns;
use crate::real;
use crate::resolve::LookupError;

/// glibc's `struct gaicb`.
#[derive(Debug)]
#[repr(C)]
pub struct Gaicb {
    ar_name: *const c_char,
    ar_service: *const c_char,
    ar_request: *const addrinfo,
    ar_result: *mut addrinfo,
    /// `__return`: EAI_INPROGRESS while the request runs, then what
    /// `getaddrinfo` returned.
    status: c_int,
    #[allow(dead_code)] // the layout
    reserved: [c_int; 5],
}

/// glibc's `struct sigevent`, as far as `getaddrinfo_a` reads it.
#[derive(Debug)]
#[repr(C)]
pub struct Sigevent {
    value: *mut c_void,
    signo: c_int,
    notify: c_int,
    function: Option<unsafe extern "C" fn(*mut c_void)>,
    attributes: *const pthread_attr_t,
}

/// netdb.h's values that the libc crate lacks.
const GAI_WAIT: c_int = 0;
const GAI_NOWAIT: c_int = 1;
const EAI_INPROGRESS: c_int = -100;
const EAI_CANCELED: c_int = -101;
const EAI_NOTCANCELED: c_int = -102;
const EAI_INTR: c_int = -104;

/// How often `gai_suspend` looks at glibc's own requests when the list
/// mixes them with the shim's: glibc wakes no one here when they finish.
const POLL: Duration = Duration::from_millis(10);

/// At most this many threads answer requests at once, as glibc's pool;
/// the others wait in [`Queue::waiting`].
const MAX_THREADS: usize = 20;

/// The requests the shim is answering.
struct Queue {
    /// Waiting for a thread, in order.
    waiting: VecDeque<(Request, Arc<Batch>)>,
    /// A thread's, by address.
    running: Vec<usize>,
    /// Threads started and not yet done: each takes requests from
    /// `waiting` until there is none.
    threads: usize,
}

impl Queue {
    /// Whether `req` is the shim's and not yet done.
    fn has(&self, req: *const Gaicb) -> bool {
        self.running.contains(&(req as usize))
            || self.waiting.iter().any(|(r, _)| r.0.cast_const() == req)
    }
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    waiting: VecDeque::new(),
    running: Vec::new(),
    threads: 0,
});

/// Counts the requests the shim has finished: the futex that `GAI_WAIT`
/// and `gai_suspend` sleep on.
static FINISHED: AtomicU32 = AtomicU32::new(0);

fn queue() -> MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A request's `__return`.
///
/// # Safety
/// `req` is a valid request, for as long as the reference is used.
unsafe fn status<'r>(req: *const Gaicb) -> &'r AtomicI32 {
    // SAFETY: a field of a valid request, whose address is taken without
    // reading it.
    let status = unsafe { &raw const (*req).status };
    // SAFETY: an aligned c_int of a valid request; every writer of a
    // running request's status writes it atomically.
    unsafe { AtomicI32::from_ptr(status.cast_mut()) }
}

/// Whether `req` is still running.
///
/// # Safety
/// `req` is a valid request.
unsafe fn in_progress(req: *const Gaicb) -> bool {
    // SAFETY: as the caller promises.
    unsafe { status(req) }.load(Ordering::Acquire) == EAI_INPROGRESS
}

/// The caller's `ent` requests, without the null ones.
///
/// # Safety
/// `list` is valid for `ent` entries.
unsafe fn requests<T>(list: *const *mut T, ent: c_int) -> Vec<*mut T> {
    let len = usize::try_from(ent).unwrap_or(0);
    if list.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: the caller's `ent` entries, which it says are valid.
    let list = unsafe { std::slice::from_raw_parts(list, len) };
    list.iter().copied().filter(|req| !req.is_null()).collect()
}

/// A request of the caller's, in the queue.
struct Request(*mut Gaicb);

// SAFETY: the caller of getaddrinfo_a keeps the request valid and leaves
// it alone until it is done; only its thread writes it meanwhile.
unsafe impl Send for Request {}

/// What to do when the last request of a call is done.
#[derive(Debug, Clone, Copy)]
enum Notify {
    Nothing,
    Signal {
        signo: c_int,
        value: *mut c_void,
        pid: pid_t,
    },
    Thread {
        function: unsafe extern "C" fn(*mut c_void),
        value: *mut c_void,
        attributes: *const pthread_attr_t,
    },
}

/// The requests of one `getaddrinfo_a` call.
struct Batch {
    /// Requests not yet done, plus one for the call itself until it has
    /// started them all, so that the notification comes once, last.
    left: AtomicUsize,
    notify: Notify,
}

// SAFETY: the pointers in `notify` are the caller's, handed over as glibc
// hands them to its notification: the value, the function and the
// attributes it promised to keep valid.
unsafe impl Send for Batch {}
// SAFETY: as above; `notify` is only read.
unsafe impl Sync for Batch {}

impl Batch {
    /// One of its requests (or the call) is done.
    fn done_one(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            notify(self.notify);
        }
    }
}

/// What `sig` asks for (glibc copies it too: the caller may free it).
///
/// # Safety
/// `sig` is null or a valid `struct sigevent`.
unsafe fn notify_of(sig: *const Sigevent) -> Notify {
    if sig.is_null() {
        return Notify::Nothing;
    }
    // SAFETY: a valid `struct sigevent`, as the caller promises; each field
    // is used below only where its kind of notification defines it.
    let sig = unsafe { &*sig };
    match sig.notify {
        libc::SIGEV_SIGNAL => Notify::Signal {
            signo: sig.signo,
            value: sig.value,
            // SAFETY: getpid has no preconditions.
            pid: unsafe { libc::getpid() },
        },
        libc::SIGEV_THREAD => match sig.function {
            Some(function) => Notify::Thread {
                function,
                value: sig.value,
                attributes: sig.attributes,
            },
            None => Notify::Nothing,
        },
        _ => Notify::Nothing,
    }
}

/// The head of a `siginfo_t` for a queued signal.
#[repr(C)]
struct QueuedInfo {
    signo: c_int,
    errno: c_int,
    code: c_int,
    #[cfg(target_pointer_width = "64")]
    pad: c_int,
    pid: pid_t,
    uid: uid_t,
    value: *mut c_void,
}

const _: () = assert!(size_of::<QueuedInfo>() <= size_of::<libc::siginfo_t>());

/// Sends the notification, as glibc's `__gai_notify_only`.
fn notify(notify: Notify) {
    let saved = errno::get();
    match notify {
        Notify::Nothing => {}
        Notify::Signal { signo, value, pid } => {
            // SAFETY: all zeroes is a valid siginfo_t.
            let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
            let head = QueuedInfo {
                signo,
                errno: 0,
                code: libc::SI_ASYNCNL,
                #[cfg(target_pointer_width = "64")]
                pad: 0,
                pid,
                // SAFETY: no preconditions.
                uid: unsafe { libc::getuid() },
                value,
            };
            // SAFETY: the head fits in the siginfo_t (checked above).
            unsafe { (&raw mut info).cast::<QueuedInfo>().write(head) };
            // SAFETY: a valid siginfo_t; a failure is the caller's
            // signal's (glibc ignores it too).
            unsafe { libc::syscall(libc::SYS_rt_sigqueueinfo, pid, signo, &raw const info) };
        }
        Notify::Thread {
            function,
            value,
            attributes,
        } => {
            let call = Box::into_raw(Box::new((function, value)));
            // SAFETY: the caller's attributes; `call` is the box
            // `notified` takes.
            if unsafe { start_thread(attributes, notified, call.cast()) } != 0 {
                // SAFETY: no thread started: the box is still ours alone.
                drop(unsafe { Box::from_raw(call) });
            }
        }
    }
    errno::set(saved);
}

/// The start of a notification thread: `arg` is the boxed function and
/// value.
extern "C" fn notified(arg: *mut c_void) -> *mut c_void {
    // SAFETY: the box `notify` made for this thread alone.
    let (function, value) =
        *unsafe { Box::from_raw(arg.cast::<(unsafe extern "C" fn(*mut c_void), *mut c_void)>()) };
    // As glibc's: the thread that made this one blocked every signal.
    let mut none = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `none` is a sigset_t to fill.
    unsafe { libc::sigemptyset(none.as_mut_ptr()) };
    // SAFETY: `none`, initialised above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, none.as_ptr(), ptr::null_mut()) };
    // SAFETY: the caller's function, with its value, as it asked.
    unsafe { function(value) };
    ptr::null_mut()
}

/// `pthread_create` with `attributes`, or detached if null; the error.
///
/// # Safety
/// `attributes` is null or valid; `start` may run with `arg` on a thread.
unsafe fn start_thread(
    attributes: *const pthread_attr_t,
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    let mut thread: libc::pthread_t = 0;
    if !attributes.is_null() {
        // SAFETY: as the caller promises.
        return unsafe { libc::pthread_create(&mut thread, attributes, start, arg) };
    }
    let mut detached = MaybeUninit::<pthread_attr_t>::uninit();
    // SAFETY: `detached` is an attribute object to initialise.
    unsafe { libc::pthread_attr_init(detached.as_mut_ptr()) };
    // SAFETY: `detached`, initialised above.
    unsafe {
        libc::pthread_attr_setdetachstate(detached.as_mut_ptr(), libc::PTHREAD_CREATE_DETACHED)
    };
    // SAFETY: `detached`, initialised above; `start` may run with `arg`, as
    // the caller promises.
    let error = unsafe { libc::pthread_create(&mut thread, detached.as_ptr(), start, arg) };
    // SAFETY: `detached`, initialised above and used no more.
    unsafe { libc::pthread_attr_destroy(detached.as_mut_ptr()) };
    error
}

/// Runs `f` with every signal blocked in the calling thread, so that the
/// threads it makes start so.
fn signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `all` is a sigset_t to fill.
    unsafe { libc::sigfillset(all.as_mut_ptr()) };
    // SAFETY: `all`, initialised above; `old` is filled in.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr()) };
    let result = f();
    // SAFETY: the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), ptr::null_mut()) };
    result
}

/// Sleeps while [`FINISHED`] is `seen`, at most `timeout`; the errno that
/// ended the sleep (0 when woken), the caller's errno kept.
fn sleep(seen: u32, timeout: Option<Duration>) -> c_int {
    let timeout = timeout.map(|d| timespec {
        tv_sec: d.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        // Below 10^9: fits i686's 32-bit long too.
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let saved = errno::get();
    // SAFETY: the futex word is a live static; the timeout is null or valid.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            FINISHED.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            seen,
            timeout.as_ref().map_or(ptr::null(), ptr::from_ref),
        )
    };
    let error = if rc == 0 { 0 } else { errno::get() };
    errno::set(saved);
    error
}

/// Wakes whoever waits for a request of the shim's to finish.
fn wake() {
    FINISHED.fetch_add(1, Ordering::Release);
    // SAFETY: wakes the sleepers of a live static futex word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            FINISHED.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            c_int::MAX,
        )
    };
}

/// Marks a request that has left the queue done with `code`, under the
/// queue's lock (the guard's `&mut Queue` shows it is held), so that
/// whoever sees it done and then asks `gai_cancel` or `gai_suspend` finds
/// it gone.
///
/// # Safety
/// `req` is a valid request, not touched afterwards.
unsafe fn mark(_q: &mut Queue, req: *mut Gaicb, code: c_int) {
    // SAFETY: as the caller promises.
    unsafe { status(req).store(code, Ordering::Release) };
}

/// A request thread: takes the waiting requests one after another, each
/// through the shim's `getaddrinfo`, until there is none.
fn serve() {
    loop {
        let (Request(req), batch) = {
            let mut q = queue();
            let Some(next) = q.waiting.pop_front() else {
                q.threads -= 1;
                return;
            };
            q.running.push(next.0.0 as usize);
            next
        };
        let mut result = ptr::null_mut();
        // SAFETY: a request stays valid until it is marked done (each read
        // below too), and nothing else writes these fields.
        let name = unsafe { (*req).ar_name };
        // SAFETY: as above.
        let service = unsafe { (*req).ar_service };
        // SAFETY: as above.
        let hints = unsafe { (*req).ar_request };
        // SAFETY: the request's own arguments, valid until it is done.
        let code = unsafe { dns::getaddrinfo(name, service, hints, &mut result) };
        {
            let mut q = queue();
            if let Some(i) = q.running.iter().position(|&r| r == req as usize) {
                q.running.swap_remove(i);
            }
            // SAFETY: the request is valid until `mark` marks it done.
            unsafe { (*req).ar_result = result };
            // SAFETY: as above; the status, written last, publishes the
            // result.
            unsafe { mark(&mut q, req, code) };
        }
        wake();
        batch.done_one();
    }
}

/// `getaddrinfo_a` answered by the shim.
///
/// # Safety
/// As glibc's `getaddrinfo_a`.
unsafe fn answer(mode: c_int, list: *const *mut Gaicb, ent: c_int, sig: *const Sigevent) -> c_int {
    if mode != GAI_WAIT && mode != GAI_NOWAIT {
        errno::set(libc::EINVAL);
        return libc::EAI_SYSTEM;
    }
    // SAFETY: as the caller promises.
    let requests = unsafe { requests(list, ent) };
    let notify = match mode {
        // SAFETY: as the caller promises.
        GAI_NOWAIT => unsafe { notify_of(sig) },
        _ => Notify::Nothing,
    };
    let batch = Arc::new(Batch {
        left: AtomicUsize::new(requests.len() + 1),
        notify,
    });
    let failed = {
        let mut q = queue();
        for &req in &requests {
            // SAFETY: the caller's request.
            unsafe { status(req).store(EAI_INPROGRESS, Ordering::Relaxed) };
            q.waiting.push_back((Request(req), Arc::clone(&batch)));
        }
        signals_blocked(|| {
            while q.threads < MAX_THREADS && q.threads < q.running.len() + q.waiting.len() {
                let spawned = thread::Builder::new()
                    .name("bindto-gai".into())
                    .spawn(serve);
                if spawned.is_err() {
                    break;
                }
                q.threads += 1;
            }
        });
        // No thread, and none could be started: as glibc then, the
        // requests fail (EAI_SYSTEM), and so does the call, with EAGAIN.
        // Only this call's can be waiting: threads leave an empty queue.
        let failed: Vec<_> = if q.threads == 0 {
            q.waiting.drain(..).collect()
        } else {
            Vec::new()
        };
        for (request, _) in &failed {
            // SAFETY: a request of this call, never started.
            unsafe { mark(&mut q, request.0, libc::EAI_SYSTEM) };
        }
        failed
    };
    let started = failed.is_empty();
    for (_, batch) in failed {
        wake();
        batch.done_one();
    }
    batch.done_one();
    if mode == GAI_WAIT {
        loop {
            let seen = FINISHED.load(Ordering::Acquire);
            // SAFETY: the caller's requests, which it leaves alone.
            if !requests.iter().any(|&req| unsafe { in_progress(req) }) {
                break;
            }
            sleep(seen, None);
        }
    }
    if started {
        0
    } else {
        errno::set(libc::EAGAIN);
        libc::EAI_SYSTEM
    }
}

/// `getaddrinfo_a()`: answered by the shim when the profile has a DNS
/// server.
///
/// # Safety
/// As libc's `getaddrinfo_a`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn getaddrinfo_a(
    mode: c_int,
    list: *mut *mut Gaicb,
    ent: c_int,
    sig: *mut Sigevent,
) -> c_int {
    // SAFETY: the caller's arguments, as given.
    let real = || unsafe { real::getaddrinfo_a(mode, list, ent, sig) };
    dns::resolving(
        |failure| match failure {
            // A signal handler that interrupted a hook of this thread.
            LookupError::Again => libc::EAI_AGAIN,
            _ => {
                errno::set(libc::EPERM);
                libc::EAI_SYSTEM
            }
        },
        // SAFETY: the caller's arguments, as glibc takes them.
        |_| unsafe { answer(mode, list, ent, sig) },
        real,
    )
}

/// `gai_suspend` for a list with requests the shim is running.
///
/// # Safety
/// As glibc's `gai_suspend`.
unsafe fn suspend(list: *const *const Gaicb, ent: c_int, timeout: *const timespec) -> c_int {
    // SAFETY: as the caller promises.
    let pending: Vec<*const Gaicb> = unsafe { requests(list.cast::<*mut Gaicb>(), ent) }
        .into_iter()
        .map(<*mut Gaicb>::cast_const)
        // SAFETY: the caller's requests.
        .filter(|&req| unsafe { in_progress(req) })
        .collect();
    let glibcs = {
        let q = queue();
        pending.iter().any(|&req| !q.has(req))
    };
    // None: no timeout, or one too long for the clock, as good as none.
    let deadline = (!timeout.is_null())
        .then(|| {
            // SAFETY: the caller's timeout.
            let t = unsafe { &*timeout };
            let secs = Duration::from_secs(t.tv_sec.try_into().unwrap_or(0));
            let nanos = Duration::from_nanos(t.tv_nsec.try_into().unwrap_or(0));
            Instant::now().checked_add(secs.saturating_add(nanos))
        })
        .flatten();
    loop {
        let seen = FINISHED.load(Ordering::Acquire);
        // SAFETY: the caller's requests.
        if !pending.iter().all(|&req| unsafe { in_progress(req) }) {
            return 0;
        }
        let left = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return libc::EAI_AGAIN,
            },
            None => None,
        };
        let nap = if glibcs {
            Some(left.map_or(POLL, |left| left.min(POLL)))
        } else {
            left
        };
        if sleep(seen, nap) == libc::EINTR {
            return EAI_INTR;
        }
    }
}

/// `gai_suspend()`: the shim's wait when a listed request is the shim's
/// and still running, otherwise libc's.
///
/// # Safety
/// As libc's `gai_suspend`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn gai_suspend(
    list: *const *const Gaicb,
    ent: c_int,
    timeout: *const timespec,
) -> c_int {
    // SAFETY: the caller's arguments, as given.
    let real = || unsafe { real::gai_suspend(list, ent, timeout) };
    boundary::call_or(
        || libc::EAI_SYSTEM,
        || {
            // SAFETY: the caller's list of `ent` entries.
            let listed = unsafe { requests(list.cast::<*mut Gaicb>(), ent) };
            let mine = {
                let q = queue();
                listed.iter().any(|&req| q.has(req))
            };
            if mine {
                // SAFETY: as the caller promises.
                unsafe { suspend(list, ent, timeout) }
            } else {
                real()
            }
        },
    )
}

/// `gai_error()`: the request's `__return`, read with acquire ordering, so
/// that a finished request's result is seen.
///
/// # Safety
/// As libc's `gai_error`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn gai_error(req: *mut Gaicb) -> c_int {
    if req.is_null() {
        // No request: whatever glibc makes of it.
        // SAFETY: the caller's argument, as given.
        return unsafe { real::gai_error(req) };
    }
    // SAFETY: the caller's request.
    unsafe { status(req) }.load(Ordering::Acquire)
}

/// `gai_cancel()`: for a request of the shim's, EAI_NOTCANCELED while it
/// runs, EAI_CANCELED while it waits for a thread (it is done then, with
/// EAI_CANCELED, where glibc leaves a cancelled request in progress for
/// ever); otherwise libc's.
///
/// # Safety
/// As libc's `gai_cancel`.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn gai_cancel(req: *mut Gaicb) -> c_int {
    // SAFETY: the caller's argument, as given.
    let real = || unsafe { real::gai_cancel(req) };
    boundary::call_or(
        || libc::EAI_SYSTEM,
        || {
            let mut q = queue();
            if q.running.contains(&(req as usize)) {
                return EAI_NOTCANCELED;
            }
            let Some(i) = q.waiting.iter().position(|(r, _)| r.0 == req) else {
                drop(q);
                return real();
            };
            if let Some((_, batch)) = q.waiting.remove(i) {
                // SAFETY: a waiting request, valid until done.
                unsafe { mark(&mut q, req, EAI_CANCELED) };
                drop(q);
                wake();
                batch.done_one();
            }
            EAI_CANCELED
        },
    )
}
