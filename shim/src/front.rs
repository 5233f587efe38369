//! The engine's side of its interface with the front (libbindto.so,
//! `shim/front`), which users preload and which `dlopen`s the engine
//! `RTLD_LOCAL` in a process that asks for bindto.
//!
//! The front then calls [`bindto_engine_attach`] once, before any hook:
//! it hands over its `RTLD_NEXT` resolver ([`crate::real`] says why) and
//! gets the engine's export of each name it asks for, which its slots then
//! jump to. Asking here rather than with `dlsym` on the engine's handle
//! saves the front some 77 000 instructions per process: 28 `dlsym`s, and
//! 28 `dladdr`s to make sure that each answer is the engine's own and not
//! libc's (`dlsym` on a handle also searches its dependencies).
//!
//! The addresses are the engine's own only because it is linked with
//! `-Bsymbolic-functions` (`build.rs`): otherwise taking the address of an
//! exported function goes through the global scope, which finds the
//! front's function of that name first, and the front's slot would jump to
//! itself.

use std::ffi::CStr;

use libc::{c_char, c_int, c_void};

/// The interface's version: the front refuses an engine that answers
/// another (`ENGINE_ABI` in `shim/front/src/lib.rs`).
const ABI: c_int = 2;

/// The exports the front can ask for, by the name it asks with: every
/// hook but the `__res_*` aliases, which the front sends to their plain
/// names as the engine's aliases do.
macro_rules! exports {
    ($(($($module:ident)::+) $name:ident),* $(,)?) => {
        /// The engine's export `name`, or null if it has none.
        fn export(name: &CStr) -> *mut c_void {
            $(
                if name.to_bytes() == stringify!($name).as_bytes() {
                    return crate::$($module::)+$name as *mut c_void;
                }
            )*
            std::ptr::null_mut()
        }
    };
}

exports!(
    (hooks) socket,
    (hooks) close,
    (hooks) close_range,
    (hooks) closefrom,
    (hooks) dup2,
    (hooks) dup3,
    (hooks) connect,
    (hooks) bind,
    (hooks) sendto,
    (hooks) sendmsg,
    (hooks) sendmmsg,
    (hooks::dns) getaddrinfo,
    (hooks::dns) freeaddrinfo,
    (hooks::dns) getnameinfo,
    (hooks::dns) gethostbyname,
    (hooks::dns) gethostbyname2,
    (hooks::dns) gethostbyname_r,
    (hooks::dns) gethostbyname2_r,
    (hooks::dns) gethostbyaddr,
    (hooks::dns) gethostbyaddr_r,
    (hooks::gai_async) getaddrinfo_a,
    (hooks::gai_async) gai_suspend,
    (hooks::gai_async) gai_error,
    (hooks::gai_async) gai_cancel,
    (hooks::dns) pthread_cancel,
    (hooks::res) res_query,
    (hooks::res) res_nquery,
    (hooks::res) res_search,
    (hooks::res) res_nsearch,
    (hooks::res) res_querydomain,
    (hooks::res) res_nquerydomain,
    (hooks::res) res_send,
    (hooks::res) res_nsend,
);

/// Called by the front right after it `dlopen`s the engine, before any
/// hook: `next(name)` is the front's `dlsym(RTLD_NEXT, name)`; `names` holds
/// `count` NUL-terminated names, one after another, and `out[i]` receives
/// the engine's export of the `i`th (null if it has none); `local` is the
/// offset from the thread pointer of each thread's block for
/// [`crate::guard`], or 0 if the front keeps none. Returns the interface
/// version.
///
/// # Safety
/// `next` takes a NUL-terminated name and returns the next definition of
/// that symbol after the front, or null; `names` holds `count`
/// NUL-terminated strings back to back; `out` is valid for `count` writes;
/// `local` is 0 or as [`crate::guard::attach`] requires.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn bindto_engine_attach(
    next: unsafe extern "C" fn(*const c_char) -> *mut c_void,
    names: *const c_char,
    count: usize,
    out: *mut *mut c_void,
    local: isize,
) -> c_int {
    // First, before anything of the engine's could enter a guard.
    if local != 0 {
        // SAFETY: as the caller promises.
        unsafe { crate::guard::attach(local) };
    }
    crate::real::attach(next);
    let mut name = names;
    for i in 0..count {
        // SAFETY: the caller's `i`th string, NUL-terminated.
        let text = unsafe { CStr::from_ptr(name) };
        // SAFETY: `out` is valid for `count` writes.
        unsafe { *out.add(i) = export(text) };
        // SAFETY: the next string starts after this one's NUL, within the
        // caller's `count` strings.
        name = unsafe { name.add(text.to_bytes_with_nul().len()) };
    }
    ABI
}
