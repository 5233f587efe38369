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
//! ([`crate::front`]), and every lookup here
//! ([`next`]) goes through it. Preloaded directly
//! (still supported, and how the front's saving is measured), the engine
//! is never attached and uses `dlsym(RTLD_NEXT)` itself.
//!
//! One slot per hook of the hook list (`bindto_abi::hook_list!`), each
//! called as `real::NAME(...)` with the hook's own prototype: the list is
//! the only place that names them, so a hook cannot lack its real
//! function, nor call it with another prototype. When libc lacks one (not
//! in a dynamically linked program on glibc 2.34 or later), the call fails
//! as the function reports failures (the list's `fails`).
//!
//! All of them are looked up together the first time any is needed, so the
//! dynamic linker's lock is taken once, early, rather than whenever a
//! program first uses some rarer call (a fork racing with it could leave
//! the child waiting for that lock). That costs a bound process one lookup
//! per hook through the front's resolver, once, at its first hooked call
//! (benches/analysis.md).

use std::ffi::CStr;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use libc::{c_char, c_int, c_uchar, c_uint, c_void};

use bindto_abi::hooks::Resolver;

use crate::boundary::Failed;
use crate::errno;

/// The C types that the hook list names, as the engine sees them.
pub(crate) mod types {
    pub(crate) use crate::hooks::gai_async::{Gaicb, Sigevent};
    pub(crate) use crate::hooks::res::ResState;
    pub(crate) type Socklen = libc::socklen_t;
    pub(crate) type Sockaddr = libc::sockaddr;
    pub(crate) type Msghdr = libc::msghdr;
    pub(crate) type Mmsghdr = libc::mmsghdr;
    pub(crate) type Addrinfo = libc::addrinfo;
    pub(crate) type Hostent = libc::hostent;
    pub(crate) type Timespec = libc::timespec;
    pub(crate) type Pthread = libc::pthread_t;
}

use types::*;

/// What a real function does when libc lacks it, by how it reports a
/// failure (the list's `fails`).
macro_rules! missing {
    (errno, $ret:ty) => {{
        errno::set(libc::ENOSYS);
        <$ret as Failed>::FAILED
    }};
    (eai, $ret:ty) => {{
        errno::set(libc::ENOSYS);
        libc::EAI_SYSTEM
    }};
    (code, $ret:ty) => {
        libc::ENOSYS
    };
    (h_errno, $ret:ty) => {{
        crate::hooks::dns::set_h_errno(crate::resolve::NO_RECOVERY);
        <$ret as Failed>::FAILED
    }};
}

macro_rules! real {
    (
        attach: $attach:ident;
        $(
            $(#[$doc:meta])*
            $kind:ident $name:ident $(/ $alias:ident)? ($($arg:ident: $ty:ty),*) -> $ret:ty,
                fails $fails:ident $(, refused $refusal:ident($($rarg:ident),*))?;
        )*
    ) => {
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
                const { bindto_abi::hooks::cstr(concat!(stringify!($name), "\0")) },
                first::$name as *mut c_void,
                missing::$name as *mut c_void,
            );)*
        }

        $(
            /// Calls the real function. `C-unwind`: a cancellation
            /// point (`connect`, `close`, the sends, the lookups) unwinds
            /// out of it when the thread is cancelled (`crate::boundary`).
            ///
            /// # Safety
            /// The arguments must satisfy the libc function's contract.
            #[inline(always)]
            #[allow(clippy::too_many_arguments)] // C's prototypes
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
                #[allow(clippy::too_many_arguments)] // C's prototypes
                pub(super) unsafe extern "C-unwind" fn $name($($arg: $ty),*) -> $ret {
                    resolve_all();
                    // SAFETY: as the caller promises; the slot is resolved
                    // now, so this does not come back here.
                    unsafe { super::$name($($arg),*) }
                }
            )*
        }

        /// The functions whose slot holds their `missing`.
        #[cfg(test)]
        fn unresolved() -> Vec<&'static str> {
            let mut names = Vec::new();
            $(
                if slot::$name.load(Ordering::Acquire) == missing::$name as *mut c_void {
                    names.push(stringify!($name));
                }
            )*
            names
        }

        /// What a function libc lacks does instead.
        mod missing {
            use super::*;
            $(
                #[cold]
                #[allow(clippy::too_many_arguments)] // C's prototypes
                pub(super) extern "C" fn $name($(_: $ty),*) -> $ret {
                    missing!($fails, $ret)
                }
            )*
        }
    };
}

bindto_abi::hook_list!(real);

/// Fills `slot` with the next definition of `name`, or `missing` if there
/// is none, unless it no longer holds `first`. Racing threads store the
/// same pointer.
fn resolve(slot: &AtomicPtr<c_void>, name: &CStr, first: *mut c_void, missing: *mut c_void) {
    if slot.load(Ordering::Acquire) != first {
        return;
    }
    let found = next(name);
    slot.store(
        if found.is_null() { missing } else { found },
        Ordering::Release,
    );
}

/// The front's resolver, as the engine's entry point ([`crate::front`])
/// received it; null when the engine was preloaded itself.
static RESOLVER: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

/// Makes every later lookup go through the front's `RTLD_NEXT` resolver.
pub(crate) fn attach(next: Resolver) {
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
    let resolver = unsafe { std::mem::transmute::<*mut c_void, Resolver>(resolver) };
    // SAFETY: `name` is NUL-terminated, as the resolver requires.
    unsafe { resolver(name.as_ptr()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hook_finds_libcs_definition_whatever_the_length_of_its_name() {
        resolve_all();
        assert_eq!(unresolved(), Vec::<&str>::new());
    }
}
