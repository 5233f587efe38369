//! `dlopen` and `dlmopen`: the doors by which a plugin would reach libc
//! past the front.
//!
//! - `RTLD_DEEPBIND` (PHP opens its extensions so) puts the plugin's own
//!   dependencies, libc among them, before the global scope when its
//!   symbols are bound: its `connect`, `sendto` and `getaddrinfo` would be
//!   libc's, not the front's. In a process that asks for bindto the flag
//!   is dropped, so the plugin binds through the global scope, where the
//!   front comes first. The price: a plugin that counted on its own copy
//!   of a symbol the program also defines gets the program's. A process
//!   that asks for nothing sees no change.
//! - `dlmopen(LM_ID_NEWLM, ...)` gives the plugin a namespace of its own,
//!   with its own libc and without `LD_PRELOAD`. In a process that asks,
//!   the front first opens itself into the new namespace, whose first
//!   object is then the global scope of everything opened there, and the
//!   plugin is opened into that namespace: its calls reach that copy of
//!   the front, which loads its own engine as a preloaded front does. If
//!   the front cannot be opened there, the call fails (NULL, `dlerror`
//!   says why) with one line on stderr. The namespace then stays until
//!   the process exits, as the front's handle holds it.
//!
//! Both keep the caller's library search: glibc's `dlopen` and `dlmopen`
//! look a bare name up along the RUNPATH (or RPATH) of the object that
//! called them and expand its `$ORIGIN`, finding that object by their
//! return address (`RETURN_ADDRESS (0)` in glibc's `dlfcn/dlopen.c`). So
//! each export is a naked trampoline: it saves the argument registers,
//! asks a route function (which may change the saved arguments) where to
//! go, restores them and jumps there, a jump and not a call, so that libc
//! sees the caller's return address. The route function runs at every
//! call: these are not hot paths, and one shape serves both functions.
//!
//! x86_64 and i686: elsewhere the front exports neither, and plugins keep
//! the door. On i686 the arguments are on the stack already, where the
//! route function changes them in place.

use core::ffi::{c_char, c_int, c_long, c_void};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::{
    DlInfo, PASSING, RTLD_LOCAL, RTLD_NEXT, RTLD_NOW, STATE, UNSET, claim, dladdr, dlinfo, dlsym,
    whoami, write,
};

/// glibc's `RTLD_DEEPBIND`.
const RTLD_DEEPBIND: usize = 0x0008;
/// glibc's `LM_ID_NEWLM`.
const LM_ID_NEWLM: c_long = -1;
/// glibc's `RTLD_DI_LMID`.
const RTLD_DI_LMID: c_int = 1;

type Dlopen = unsafe extern "C" fn(*const c_char, c_int) -> *mut c_void;
type Dlmopen = unsafe extern "C" fn(c_long, *const c_char, c_int) -> *mut c_void;

/// libc's `dlopen` and `dlmopen`, the next after the front: null until
/// found.
static DLOPEN: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
static DLMOPEN: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

/// libc's function `name` (NUL-terminated), cached in `cache`, or
/// [`unavailable`] if there is none (not with glibc 2.34 or later, which
/// the front's `dlsym@GLIBC_2.34` requires).
fn next(cache: &AtomicPtr<c_void>, name: &[u8]) -> *mut c_void {
    let mut f = cache.load(Ordering::Acquire);
    if f.is_null() {
        // SAFETY: a NUL-terminated name; RTLD_NEXT is valid from a shared
        // object. Racing threads store the same pointer.
        f = unsafe { dlsym(RTLD_NEXT, name.as_ptr().cast()) };
        if f.is_null() {
            return unavailable as *mut c_void;
        }
        cache.store(f, Ordering::Release);
    }
    f
}

/// Where a call goes that must fail: NULL, as `dlopen` fails.
extern "C" fn unavailable() -> *mut c_void {
    ptr::null_mut()
}

/// libc's `dlopen`, which the front calls to load the engine.
///
/// # Safety
/// As libc's `dlopen`.
pub(super) unsafe fn libc_dlopen(file: *const c_char, mode: c_int) -> *mut c_void {
    // SAFETY: libc's dlopen (or `unavailable`, which takes fewer
    // arguments: harmless in the C calling convention).
    let f = unsafe { core::mem::transmute::<*mut c_void, Dlopen>(next(&DLOPEN, b"dlopen\0")) };
    // SAFETY: as the caller promises.
    unsafe { f(file, mode) }
}

/// Whether the process asks for bindto: the front's own decision, made now
/// if no call made it yet, since a `[[match]]` rule may choose the process
/// as well as a variable. Never waits for another thread deciding (this
/// `dlopen` may come from a library's constructor, holding the dynamic
/// linker's lock that the other thread's `dlopen` of the engine needs):
/// then, as mid-load in this thread, or in a fork child of a parent that
/// was loading, it takes the process for one that asks.
fn asks() -> bool {
    match STATE.load(Ordering::Acquire) {
        PASSING => false,
        UNSET if claim(UNSET, whoami()) => STATE.load(Ordering::Acquire) != PASSING,
        _ => true,
    }
}

/// Where `dlopen` goes: libc's, with `RTLD_DEEPBIND` dropped from the
/// mode (`args[1]`) when the process asks for bindto.
///
/// # Safety
/// `args` holds `dlopen`'s arguments as the trampoline saved them.
unsafe extern "C" fn route_dlopen(args: *mut [usize; 2]) -> *mut c_void {
    if asks() {
        // SAFETY: as the caller promises.
        unsafe { (*args)[1] &= !RTLD_DEEPBIND };
    }
    next(&DLOPEN, b"dlopen\0")
}

/// Where `dlmopen` goes: as [`route_dlopen`] for the mode (`args[2]`),
/// and in a process that asks, a new namespace (`args[0]`) is one that
/// the front was first opened into, or the call fails.
///
/// # Safety
/// `args` holds `dlmopen`'s arguments as the trampoline saved them.
unsafe extern "C" fn route_dlmopen(args: *mut [usize; 3]) -> *mut c_void {
    let f = next(&DLMOPEN, b"dlmopen\0");
    if !asks() {
        return f;
    }
    // SAFETY: as the caller promises.
    let args = unsafe { &mut *args };
    args[2] &= !RTLD_DEEPBIND;
    if args[0] as c_long == LM_ID_NEWLM {
        // SAFETY: libc's dlmopen (or `unavailable`), of this prototype.
        let dlmopen = unsafe { core::mem::transmute::<*mut c_void, Dlmopen>(f) };
        // SAFETY: as the caller promises.
        match unsafe { namespace(dlmopen) } {
            Some(lmid) => args[0] = lmid as usize,
            None => return unavailable as *mut c_void,
        }
    }
    f
}

/// A new namespace with the front opened into it, or `None` after one
/// line on stderr (`dlerror` keeps libc's reason for the caller).
///
/// # Safety
/// `dlmopen` is libc's.
unsafe fn namespace(dlmopen: Dlmopen) -> Option<c_long> {
    const LINE: &[u8] = b"bindto: dlmopen(LM_ID_NEWLM) refused: libbindto.so cannot be \
        opened into the new namespace (dlerror says why), and a library there would \
        escape the profile\n";
    // Writes nothing, but finds libc's `write` now: the `dlsym` that finds
    // it would clear the error a failed dlmopen leaves for the caller.
    // SAFETY: a valid buffer, of which no byte is written.
    unsafe { write(2, LINE.as_ptr().cast(), 0) };
    let mut info = DlInfo {
        fname: ptr::null(),
        fbase: ptr::null_mut(),
        sname: ptr::null(),
        saddr: ptr::null_mut(),
    };
    // SAFETY: an address in the front; `info` is writable.
    let found = unsafe { dladdr(ptr::addr_of!(DLMOPEN).cast(), &mut info) } != 0;
    let mut lmid: c_long = 0;
    if found && !info.fname.is_null() {
        // SAFETY: the front's file name, as ld.so keeps it.
        let front = unsafe { dlmopen(LM_ID_NEWLM, info.fname, RTLD_NOW | RTLD_LOCAL) };
        // SAFETY: a handle from dlmopen; `lmid` is writable.
        if !front.is_null() && unsafe { dlinfo(front, RTLD_DI_LMID, (&raw mut lmid).cast()) } == 0 {
            return Some(lmid);
        }
    }
    // SAFETY: a valid buffer; a short write loses part of a warning.
    unsafe { write(2, LINE.as_ptr().cast(), LINE.len()) };
    None
}

/// Defines a naked export that, on x86_64, pushes its argument registers
/// (`save`, so that the last pushed is the first argument, and the call
/// below stays 16-byte aligned), calls `route` with their address, pops
/// them (`restore`) and jumps where `route` answered: a jump, not a call,
/// as libc's function finds its caller by its return address. On i686
/// `route` gets the address of the arguments the caller pushed (above the
/// return address), behind 8 bytes that keep the call 16-byte aligned.
macro_rules! trampoline {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) via $route:ident,
        save [$($save:literal),*], restore [$($restore:literal),*]) => {
        $(#[$doc])*
        ///
        /// # Safety
        #[doc = concat!("As libc's `", stringify!($name), "`.")]
        #[cfg(target_arch = "x86_64")]
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub(crate) unsafe extern "C" fn $name($($arg: $ty),*) -> *mut c_void {
            core::arch::naked_asm!(
                $($save,)*
                "mov rdi, rsp",
                "call {route}",
                $($restore,)*
                "jmp rax",
                route = sym $route,
            )
        }

        $(#[$doc])*
        ///
        /// # Safety
        #[doc = concat!("As libc's `", stringify!($name), "`.")]
        #[cfg(target_arch = "x86")]
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub(crate) unsafe extern "C" fn $name($($arg: $ty),*) -> *mut c_void {
            core::arch::naked_asm!(
                "lea eax, [esp + 4]",
                "sub esp, 8",
                "push eax",
                "call {route}",
                "add esp, 12",
                "jmp eax",
                route = sym $route,
            )
        }
    };
}

trampoline! {
    /// `dlopen()`, past [`route_dlopen`]; 8 bytes more than its two
    /// arguments keep the call aligned.
    dlopen(file: *const c_char, mode: c_int) via route_dlopen,
    save ["sub rsp, 8", "push rsi", "push rdi"],
    restore ["pop rdi", "pop rsi", "add rsp, 8"]
}

trampoline! {
    /// `dlmopen()`, past [`route_dlmopen`].
    dlmopen(lmid: c_long, file: *const c_char, mode: c_int) via route_dlmopen,
    save ["push rdx", "push rsi", "push rdi"],
    restore ["pop rdi", "pop rsi", "pop rdx"]
}
