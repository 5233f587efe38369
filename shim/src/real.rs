//! The functions the hooks stand in for, found once with
//! `dlsym(RTLD_NEXT, ...)`: the next definition after the preloaded
//! library, which is libc's, or another preloaded library's if one comes
//! after ours.
//!
//! The engine is normally not preloaded itself: the front (libbindto.so,
//! `shim/front`) `dlopen`s it `RTLD_LOCAL`, and glibc resolves
//! `RTLD_NEXT` from such a library in its loader's scope, where it is not:
//! the answer would not be the definition after the front. So the front
//! hands the engine its own `RTLD_NEXT` resolver first
//! ([`crate::front::bindto_engine_attach`]), and every lookup here
//! ([`next`]) goes through it. Preloaded directly
//! (still supported, and how the front's saving is measured), the engine
//! is never attached and uses `dlsym(RTLD_NEXT)` itself.
//!
//! All of them are looked up together the first time any is needed, so the
//! dynamic linker's lock is taken once, early, rather than whenever a
//! program first uses some rarer call (a fork racing with it could leave
//! the child waiting for that lock).

use std::ffi::CStr;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use libc::{c_char, c_int, c_uint, c_void, mmsghdr, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use crate::boundary::Failed;
use crate::errno;

macro_rules! real {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        /// One slot per function. Never null, so that a call is a load and
        /// a jump: it holds the function's `first` below until resolved,
        /// then the real function, or its `missing` if there is none.
        #[allow(non_upper_case_globals)]
        mod slot {
            use super::*;
            $(
                pub(super) static $name: AtomicPtr<c_void> =
                    AtomicPtr::new(first::$name as *mut c_void);
            )*
        }

        fn resolve_all() {
            $(resolve(
                &slot::$name,
                stringify!($name),
                first::$name as *mut c_void,
                missing::$name as *mut c_void,
            );)*
        }

        $(
            /// Calls the real function (ENOSYS if there is none: no libc
            /// further down the chain, which cannot happen in a
            /// dynamically linked program). `C-unwind`: a cancellation
            /// point (`connect`, `close`, the sends) unwinds out of it when
            /// the thread is cancelled (`crate::boundary`).
            ///
            /// # Safety
            /// The arguments must satisfy the libc function's contract.
            #[inline(always)]
            pub(crate) unsafe fn $name($($arg: $ty),*) -> $ret {
                let f = slot::$name.load(Ordering::Acquire);
                // SAFETY: the slot holds a function of this C prototype:
                // libc's definition of this very symbol, or this module's
                // `first` or `missing` of the same name.
                let f = unsafe {
                    std::mem::transmute::<*mut c_void, unsafe extern "C-unwind" fn($($ty),*) -> $ret>(f)
                };
                // SAFETY: the caller upholds the function's contract.
                unsafe { f($($arg),*) }
            }
        )*

        /// The first call of each function, which resolves them all.
        mod first {
            use super::*;
            $(
                /// # Safety
                /// As the function's.
                #[cold]
                pub(super) unsafe extern "C-unwind" fn $name($($arg: $ty),*) -> $ret {
                    resolve_all();
                    // SAFETY: as the caller promises; the slot is resolved
                    // now, so this does not come back here.
                    unsafe { super::$name($($arg),*) }
                }
            )*
        }

        /// What a function libc lacks does instead.
        mod missing {
            use super::*;
            $(
                #[cold]
                pub(super) extern "C" fn $name($(_: $ty),*) -> $ret {
                    errno::set(libc::ENOSYS);
                    <$ret as Failed>::FAILED
                }
            )*
        }
    };
}

real! {
    socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    close(fd: c_int) -> c_int;
    close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int;
    closefrom(low: c_int) -> ();
    dup2(old: c_int, new: c_int) -> c_int;
    dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
    connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    sendto(fd: c_int, buf: *const c_void, n: size_t, flags: c_int, addr: *const sockaddr, len: socklen_t) -> ssize_t;
    sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t;
    sendmmsg(fd: c_int, msgs: *mut mmsghdr, vlen: c_uint, flags: c_int) -> c_int;
}

/// Fills `slot` with the next definition of `name`, or `missing` if there
/// is none, unless it no longer holds `first`. Racing threads store the
/// same pointer.
fn resolve(slot: &AtomicPtr<c_void>, name: &str, first: *mut c_void, missing: *mut c_void) {
    if slot.load(Ordering::Acquire) != first {
        return;
    }
    let mut buf = [0u8; 16];
    buf[..name.len()].copy_from_slice(name.as_bytes());
    let found = CStr::from_bytes_until_nul(&buf).map_or(ptr::null_mut(), next);
    slot.store(
        if found.is_null() { missing } else { found },
        Ordering::Release,
    );
}

/// The front's resolver, as [`crate::front::bindto_engine_attach`]
/// received it; null when the engine was preloaded itself.
static RESOLVER: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

/// Makes every later lookup go through the front's `RTLD_NEXT` resolver:
/// `next(name)` takes a NUL-terminated name and returns the next definition
/// of that symbol after the front, or null.
pub(crate) fn attach(next: unsafe extern "C" fn(*const c_char) -> *mut c_void) {
    RESOLVER.store(next as *mut c_void, Ordering::Release);
}

/// The definition of `name` after the preloaded library (the front, or
/// the engine preloaded directly), or null if there is none.
pub(crate) fn next(name: &CStr) -> *mut c_void {
    let resolver = RESOLVER.load(Ordering::Acquire);
    if resolver.is_null() {
        // SAFETY: `name` is NUL-terminated; RTLD_NEXT is a valid
        // pseudo-handle for a call made from a shared object.
        return unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    }
    // SAFETY: only `attach` stores here, a resolver of this prototype.
    let resolver = unsafe {
        std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*const c_char) -> *mut c_void>(
            resolver,
        )
    };
    // SAFETY: `name` is NUL-terminated, as the resolver requires.
    unsafe { resolver(name.as_ptr()) }
}
