//! The engine's side of its interface with the front (libbindto.so,
//! `shim/front`), which users preload and which `dlopen`s the engine
//! `RTLD_LOCAL` in a process that asks for bindto.
//!
//! The front then calls the engine's entry point ([`attach`]) once, before any hook:
//! it hands over its `RTLD_NEXT` resolver ([`crate::real`] says why) and
//! gets the engine's export of each name it asks for, which its slots then
//! jump to. Asking here rather than with `dlsym` on the engine's handle
//! saves the front a `dlsym` and a `dladdr` per hook in every process (the
//! `dladdr` to make sure that each answer is the engine's own and not
//! libc's: `dlsym` on a handle also searches its dependencies).
//!
//! The addresses are the engine's own only because it is linked with
//! `-Bsymbolic-functions` (`build.rs`): otherwise taking the address of an
//! exported function goes through the global scope, which finds the
//! front's function of that name first, and the front's slot would jump to
//! itself.

use std::ffi::CStr;
use std::mem::MaybeUninit;

use bindto_abi::hooks::{Attach, ENGINE_ABI, Resolver};
use libc::{c_char, c_int, c_uchar, c_uint, c_void};

use crate::real::types::*;

/// The engine's hooks, wherever they are defined, under the hook list's
/// names. A hook defined in another module of `crate::hooks` needs that
/// module here.
mod hooks {
    pub(super) use crate::hooks::{dns::*, gai_async::*, res::*, *};
}

/// Makes, from the hook list (`bindto_abi::hook_list!`): the entry point
/// the front calls, under the list's name; [`export`], the engine's export
/// of each name the front can ask for, each checked against the list's
/// prototype (an engine function of another prototype does not compile);
/// and the `__res_*` aliases, which call their plain names, as the
/// front sends them there.
macro_rules! exports {
    (
        attach: $attach:ident;
        $(
            $(#[$doc:meta])*
            $kind:ident $name:ident $(/ $alias:ident)? ($($arg:ident: $ty:ty),*) -> $ret:ty,
                fails $fails:ident $(, refused $refusal:ident($($rarg:ident),*))?;
        )*
    ) => {
        /// The entry point, [`attach`].
        ///
        /// # Safety
        /// As [`attach`].
        #[unsafe(no_mangle)]
        pub(crate) unsafe extern "C" fn $attach(
            next: Resolver,
            names: *const c_char,
            count: usize,
            out: *mut *mut c_void,
        ) -> c_int {
            // SAFETY: as the caller promises.
            unsafe { attach(next, names, count, out) }
        }

        /// The front calls it with this prototype.
        const _: Attach = $attach;

        /// The engine's export `name`, or null if it has none.
        fn export(name: &CStr) -> *mut c_void {
            $(
                if name.to_bytes() == stringify!($name).as_bytes() {
                    let f: unsafe extern "C-unwind" fn($($ty),*) -> $ret = hooks::$name;
                    return f as *mut c_void;
                }
            )*
            std::ptr::null_mut()
        }

        $(exports!(@alias $name [$($alias)?] ($($arg: $ty),*) -> $ret);)*
    };
    (@alias $name:ident [] $args:tt -> $ret:ty) => {};
    (@alias $name:ident [$alias:ident] ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[doc = concat!("`", stringify!($name), "` under its pre-2.34 name.")]
        ///
        /// # Safety
        /// As libc's function of the same name.
        #[unsafe(no_mangle)]
        pub(crate) unsafe extern "C-unwind" fn $alias($($arg: $ty),*) -> $ret {
            // SAFETY: the same contract.
            unsafe { hooks::$name($($arg),*) }
        }
    };
}

bindto_abi::hook_list!(exports);

/// Called by the front right after it `dlopen`s the engine, before any
/// hook, through the entry point that [`exports!`] names as the hook list
/// says: `next(name)` is the front's `dlsym(RTLD_NEXT, name)`; `names`
/// holds `count` NUL-terminated names, one after another, and `out[i]`
/// receives the engine's export of the `i`th (null if it has none).
/// Returns the interface version.
///
/// # Safety
/// `next` takes a NUL-terminated name and returns the next definition of
/// that symbol after the front, or null; `names` holds `count`
/// NUL-terminated strings back to back; `out` is valid for `count` writes.
unsafe fn attach(
    next: Resolver,
    names: *const c_char,
    count: usize,
    out: *mut *mut c_void,
) -> c_int {
    crate::real::attach(next);
    // SAFETY: valid for `count` writes, and not read (the front does not
    // zero it: its answers may be uninitialised until written).
    let out =
        unsafe { std::slice::from_raw_parts_mut(out.cast::<MaybeUninit<*mut c_void>>(), count) };
    let mut name = names;
    for answer in out {
        // SAFETY: the caller's next string, NUL-terminated.
        let text = unsafe { CStr::from_ptr(name) };
        answer.write(export(text));
        // SAFETY: the next string starts after this one's NUL, within the
        // caller's `count` strings.
        name = unsafe { name.add(text.to_bytes_with_nul().len()) };
    }
    ENGINE_ABI
}
