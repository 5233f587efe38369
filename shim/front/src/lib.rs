//! libbindto.so, the library users preload: a front that exports the same
//! functions as the engine (`libbindto_engine.so`, the `shim` crate) and
//! loads the engine only in a process that asks for bindto.
//!
//! Why it exists: `ld.so` binds every import and applies every relocation
//! of a preloaded library at exec, whether or not the program ever touches
//! the network. The engine links std (its panic runtime and backtrace
//! printer alone are dozens of imports and hundreds of relocations), which
//! every exec would pay (BENCHMARKS.md, "Start-up"). This front is `no_std`, has no dependency
//! but `bindto-abi` (no_std, no code of its own at run time), one import
//! (`dlsym`) and one relocation per hook (its slot's first value), and no
//! thread-local storage (a TLS block is one more module for `ld.so` to set
//! up at every exec: docs/ARCHITECTURE.md, "How it is loaded"), so a process that
//! never makes a network call pays for little more than mapping it.
//!
//! The hooks are those of `bindto_abi::hook_list!`, the list the engine's
//! exports are made from too ([`hooks!`] says what the front makes of it).
//!
//! How a call goes: each export loads its slot and jumps to it with the
//! same arguments (a load and a jump). The slot holds where the call goes:
//! libc's next definition (`dlsym(RTLD_NEXT)`, found by the front, which
//! is in the global scope) in a process that passes through, the engine's
//! export of the same name when bindto is active, and until then the
//! hook's cold path, which goes to [`settle`]. That decides once per
//! process, at the first call of any export but `close`, `close_range`,
//! `closefrom`, `dup2`, `dup3`, `freeaddrinfo` and `pthread_cancel`, which
//! only make the engine forget what it recorded (or note a cancellation
//! for its resolver), and `gai_suspend`, `gai_error` and `gai_cancel`,
//! which only ask after the requests it started: nothing before it is
//! loaded, so until something decides they go to libc and leave their
//! slot as it is.
//! The decision:
//!
//! - bindto is asked when `BIND_PROFILE` or one of the older tools'
//!   variables (`BIND_INTERFACE`, `BIND_SOURCE_IP`, `BIND_ADDR`,
//!   `BIND_EXCLUDE`, `DNS_OVERRIDE_IP`) is set and not empty: the rule of
//!   the core's `Env::asks_anything`. In a privileged process (AT_SECURE)
//!   only `BIND_PROFILE`, as the engine reads it there. Or when a
//!   `[[match]]` rule of the config files may fit the process, or the
//!   front cannot tell ([`matches`]). Not asked: the engine is never
//!   loaded, and each hook's first call routes its slot to libc's
//!   definition (lazily: [`load`] says why).
//! - Asked: `dlopen(<the front's directory>/libbindto_engine.so,
//!   RTLD_NOW | RTLD_LOCAL)`, then one call of its `bindto_engine_attach`
//!   hands it the front's `RTLD_NEXT` resolver (glibc resolves
//!   `RTLD_NEXT` for a library opened `RTLD_LOCAL` in its loader's scope,
//!   which would not find libc's definitions after the front) and answers
//!   the engine's export of every hook, which the slots get.
//! - The engine cannot be loaded (missing file, a `dlerror`, a missing
//!   symbol, another engine ABI): fail closed. One line on stderr, then
//!   every call to an IPv4 or IPv6 destination and every name lookup fails
//!   as the engine fails them for a broken config ([`refuse`]); calls on
//!   Unix sockets and descriptor bookkeeping (`socket`, `close`,
//!   `close_range`, `closefrom`, `dup2`, `dup3`, `freeaddrinfo`,
//!   `pthread_cancel`) go to libc.
//!
//! Besides the hooks, the front exports `dlopen` and `dlmopen` of its own
//! ([`plugins`], x86_64 and i686): they need no engine, and keep plugins from
//! binding to libc past the front.
//!
//! Concurrency ([`settle`]): the state is one atomic word, unset, ready,
//! failed, or the pid and tid of the thread loading. Threads that race the
//! first call wait (`sched_yield`) for the loader rather than pass through
//! unbound. The loader's own thread re-entering during the load (the
//! engine's constructors, a signal handler) is refused with EAGAIN for
//! network calls and sent to libc for descriptor bookkeeping, so it cannot
//! deadlock. A fork child whose parent was loading in another thread sees
//! another pid as the loader's and loads again itself.
//!
//! Nothing here writes to stdout, allocates, or can panic: the panic
//! handler is dead code (`nm` shows no panic symbol in a release build).
//!
//! Thread cancellation (`pthread_cancel`) unwinds from a cancellation point
//! in libc or the engine to the program's frames. Each export is a load
//! and a tail jump, no frame of its own; the cold path's frames have
//! unwind tables and no landing pads (no personality), so the forced
//! unwind passes them.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_uchar, c_uint, c_ulong, c_void};
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use bindto_abi::hooks::{ASKING, Attach, ENGINE_ABI};

mod plugins;

/// `socklen_t`.
type Socklen = u32;
/// `struct sockaddr`: only its family (the first `sa_family_t`) is read.
type Sockaddr = c_void;
/// `struct addrinfo`, never looked into.
type Addrinfo = c_void;
/// `struct hostent`, never looked into.
type Hostent = c_void;
/// glibc's `struct __res_state`, never looked into.
type ResState = c_void;
/// `struct sigevent`, never looked into.
type Sigevent = c_void;
/// `struct timespec`, never looked into.
type Timespec = c_void;
/// `pthread_t`.
type Pthread = usize;

/// `struct msghdr`: the front reads the destination of `sendmsg` and
/// `sendmmsg` to tell whether a refused process may still send.
#[derive(Debug)]
#[repr(C)]
#[allow(dead_code)] // fields for the layout
pub struct Msghdr {
    name: *const Sockaddr,
    namelen: Socklen,
    iov: *mut c_void,
    iovlen: usize,
    control: *mut c_void,
    controllen: usize,
    flags: c_int,
}

/// `struct mmsghdr`.
#[derive(Debug)]
#[repr(C)]
pub struct Mmsghdr {
    hdr: Msghdr,
    len: c_uint,
}

/// glibc's `struct gaicb`: the front only fails a refused request.
#[derive(Debug)]
#[repr(C)]
#[allow(dead_code)] // fields for the layout
pub struct Gaicb {
    name: *const c_char,
    service: *const c_char,
    request: *const Addrinfo,
    result: *mut Addrinfo,
    status: c_int,
    reserved: [c_int; 5],
}

/// `Dl_info`.
#[derive(Debug)]
#[repr(C)]
#[allow(dead_code)] // fields for the layout
struct DlInfo {
    fname: *const c_char,
    fbase: *mut c_void,
    sname: *const c_char,
    saddr: *mut c_void,
}

// The one function the front imports: ld.so binds every import of a
// preloaded library at every exec (a symbol lookup each, more for each
// symbol version), whether or not the process ever calls it. The rest of
// libc is looked up with it when first needed ([`libc!`]).
#[link(name = "c")]
unsafe extern "C" {
    fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void;
    /// Only referenced by the panic handler, which is dead code: not an
    /// import of a release build.
    fn abort() -> !;
}

/// Defines each libc function the front calls as a function of the same
/// name and prototype that looks libc's up with `dlsym(RTLD_DEFAULT)` on
/// its first call (the global scope, where an import would have been
/// bound) and returns `$missing` if there is none. All of them are only
/// needed at a process's first decision, or on rarer paths (loading the
/// engine, refusing, waiting for another thread), which pay a `dlsym`
/// each once instead of every exec paying an import.
///
/// Not the engine's way to libc (`shim/src/real.rs`): that is in the
/// engine, which the front loads only when asked and must not link, and
/// it finds libc's definitions through the front. The hooks' own libc
/// definitions come from the hook list ([`Hook::next`]), these are the
/// front's other needs.
macro_rules! libc {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty, or $missing:expr;)*) => {
        /// Where each function was found: null until its first call.
        #[allow(non_upper_case_globals)]
        mod found {
            use super::*;
            $(pub(super) static $name: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());)*
        }

        $(
            /// libc's function of this name, or
            #[doc = concat!("`", stringify!($missing), "`")]
            /// if there is none (not with glibc 2.34 or later, which the
            /// front's `dlsym@GLIBC_2.34` already requires).
            ///
            /// # Safety
            /// As libc's function of this name.
            unsafe fn $name($($arg: $ty),*) -> $ret {
                let mut f = found::$name.load(Ordering::Acquire);
                if f.is_null() {
                    let name = concat!(stringify!($name), "\0");
                    // SAFETY: a NUL-terminated name; RTLD_DEFAULT is a valid
                    // pseudo-handle. Racing threads store the same pointer.
                    f = unsafe { dlsym(RTLD_DEFAULT, name.as_ptr().cast()) };
                    if f.is_null() {
                        return $missing;
                    }
                    found::$name.store(f, Ordering::Release);
                }
                // SAFETY: libc's definition of this function, of this C
                // prototype.
                let f = unsafe {
                    core::mem::transmute::<*mut c_void, unsafe extern "C" fn($($ty),*) -> $ret>(f)
                };
                // SAFETY: as the caller promises.
                unsafe { f($($arg),*) }
            }
        )*
    };
}

libc! {
    dlinfo(handle: *mut c_void, request: c_int, arg: *mut c_void) -> c_int, or -1;
    // Without it, the process is taken for a privileged one.
    getauxval(kind: c_ulong) -> c_ulong, or 1;
    dlerror() -> *const c_char, or ptr::null();
    dladdr(addr: *const c_void, info: *mut DlInfo) -> c_int, or 0;
    write(fd: c_int, buf: *const c_void, n: usize) -> isize, or -1;
    sched_yield() -> c_int, or 0;
    __errno_location() -> *mut c_int, or ptr::null_mut();
    __h_errno_location() -> *mut c_int, or ptr::null_mut();
}

mod matches;
mod sys;

/// glibc's `RTLD_DEFAULT` pseudo-handle.
const RTLD_DEFAULT: *mut c_void = ptr::null_mut();
/// glibc's `RTLD_NEXT` pseudo-handle.
const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;
const RTLD_NOW: c_int = 2;
const RTLD_LOCAL: c_int = 0;

const EPERM: c_int = 1;
const ENOENT: c_int = 2;
const EAGAIN: c_int = 11;
const ENOSYS: c_int = 38;
const AF_UNSPEC: u16 = 0;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// `sizeof(struct sockaddr_in)`: the least an IPv4 path of the kernel
/// reads of a name, AF_UNSPEC included.
const SOCKADDR_IN_LEN: usize = 16;
const EAI_AGAIN: c_int = -3;
const EAI_FAIL: c_int = -4;
const EAI_SYSTEM: c_int = -11;
/// `h_errno` values (netdb.h).
const TRY_AGAIN: c_int = 2;
const NO_RECOVERY: c_int = 3;

/// The engine's file name, looked for beside the front.
const ENGINE: &[u8] = b"libbindto_engine.so";
/// The value of a call that failed, per return type.
trait Failed {
    const FAILED: Self;
}

impl Failed for () {
    const FAILED: Self = ();
}

impl Failed for c_int {
    const FAILED: Self = -1;
}

impl Failed for isize {
    const FAILED: Self = -1;
}

impl Failed for *mut Hostent {
    const FAILED: Self = ptr::null_mut();
}

/// Why a call is refused without the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// The engine could not be loaded: EPERM, as for a broken config.
    Blocked,
    /// The loading thread called in again, mid-load: EAGAIN.
    Again,
}

/// The hooks, by their place in the tables that [`hooks!`] makes: every
/// table but the slots is an array of numbers or a string, so that the
/// front needs no relocation for them (each is one more thing for `ld.so`
/// to do at every exec; the slots' save a test and a branch per call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hook(usize);

impl Hook {
    fn all() -> impl Iterator<Item = Hook> {
        (0..COUNT).map(Hook)
    }

    /// Sends this hook's calls to `f`; a null `f` (libc has no such
    /// function) leaves them on the cold path, which then fails them.
    fn route(self, f: *mut c_void) {
        if !f.is_null() {
            SLOTS[self.0 % COUNT].store(f, Ordering::Release);
        }
    }

    /// The hook's name, NUL-terminated, from [`NAMES`].
    fn name(self) -> &'static [u8] {
        let mut rest = NAMES;
        for _ in 0..self.0 {
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .map_or(rest.len(), |i| i + 1);
            rest = rest.get(end..).unwrap_or_default();
        }
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .map_or(rest.len(), |i| i + 1);
        rest.get(..end).unwrap_or_default()
    }

    /// Descriptor bookkeeping: goes to libc whenever the engine cannot
    /// decide (not loadable, or mid-load).
    fn bookkeeping(self) -> bool {
        BOOKKEEPING[self.0 % COUNT]
    }

    /// libc's definition (the next after the front), found once; null if
    /// libc has none.
    fn next(self) -> *mut c_void {
        let cache = &NEXT[self.0 % COUNT];
        let mut f = cache.load(Ordering::Acquire);
        if f.is_null() {
            let name = self.name();
            if name.last() != Some(&0) {
                return ptr::null_mut();
            }
            // SAFETY: the name is NUL-terminated; RTLD_NEXT is valid from a
            // shared object. Racing threads store the same pointer.
            f = unsafe { dlsym(RTLD_NEXT, name.as_ptr().cast()) };
            cache.store(f, Ordering::Release);
        }
        f
    }
}

/// libc's definitions, found when needed.
static NEXT: [AtomicPtr<c_void>; COUNT] = [const { AtomicPtr::new(ptr::null_mut()) }; COUNT];

/// Whether a kind of hook is descriptor bookkeeping: libc's whenever the
/// engine cannot decide.
macro_rules! bookkeeping {
    (record) => {
        true
    };
    (forget) => {
        true
    };
    (net) => {
        false
    };
}

/// Whether a kind of hook makes the process decide. `forget` hooks do not:
/// before the engine is loaded it has recorded nothing to forget, so
/// they go to libc (without filling their slot) until something else
/// decides. A process that asks for bindto but only closes and duplicates
/// descriptors (most programs a bound shell starts) never loads the
/// engine.
macro_rules! decides {
    (record) => {
        true
    };
    (forget) => {
        false
    };
    (net) => {
        true
    };
}

/// What a hook returns when libc has no such function, by how it reports
/// a failure (`fails` in `bindto_abi::hook_list!`).
macro_rules! missing {
    (errno, $ret:ty) => {{
        set_errno(ENOSYS);
        <$ret as Failed>::FAILED
    }};
    (eai, $ret:ty) => {{
        set_errno(ENOSYS);
        EAI_SYSTEM
    }};
    (code, $ret:ty) => {
        ENOSYS
    };
    (h_errno, $ret:ty) => {{
        set_h_errno(NO_RECOVERY);
        <$ret as Failed>::FAILED
    }};
}

/// Defines every export of `bindto_abi::hook_list!` and the tables of
/// their slots, names and kinds, which [`settle`] fills. An entry is
/// descriptor bookkeeping, libc's whenever the engine cannot decide:
/// `record` (`socket`, which decides) or `forget` (which does not, see
/// [`decides!`]); or `net`, with the [`refuse`] function that fails it
/// then (`None`: libc has it). `name / alias` also exports `alias`
/// (glibc's pre-2.34 `__res_*` names) on the same slot, as the engine's
/// alias calls its plain name.
macro_rules! hooks {
    (
        attach: $attach:ident;
        $(
            $(#[$doc:meta])*
            $kind:ident $name:ident $(/ $alias:ident)? ($($arg:ident: $ty:ty),*) -> $ret:ty,
                fails $fails:ident $(, refused $refusal:ident($($rarg:ident),*))?;
        )*
    ) => {
        /// The engine's entry point, NUL-terminated.
        const ATTACH: &[u8] = concat!(stringify!($attach), "\0").as_bytes();

        /// How many hooks have a slot (aliases share their name's).
        const COUNT: usize = [$(stringify!($name)),*].len();

        /// Every hook's slot, by [`Index`]: its cold path until
        /// [`settle`] routes it, so that an export is a load and a jump.
        static SLOTS: [AtomicPtr<c_void>; COUNT] =
            [$(AtomicPtr::new(cold::$name as *mut c_void)),*];

        /// Every hook's name, NUL-terminated, in [`Index`] order.
        const NAMES: &[u8] = concat!($(stringify!($name), "\0"),*).as_bytes();

        /// Whether each hook is descriptor bookkeeping, by [`Index`].
        const BOOKKEEPING: [bool; COUNT] = [$(bookkeeping!($kind)),*];

        $(hooks!(@exports $(#[$doc])* $name [$($alias)?] ($($arg: $ty),*) -> $ret);)*

        /// The first calls: out of line, so that each export is a load, a
        /// test and a jump.
        mod cold {
            use super::*;
            $(
                /// # Safety
                /// As libc's function of this name.
                #[cold]
                #[inline(never)]
                #[allow(clippy::too_many_arguments)] // C's prototypes
                pub(super) unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
                    type F = unsafe extern "C" fn($($ty),*) -> $ret;
                    let undecided = !decides!($kind) && STATE.load(Ordering::Acquire) == UNSET;
                    let why = match if undecided { Settled::Undecided } else { settle() } {
                        Settled::Undecided => None,
                        Settled::Routed => {
                            let f = SLOTS[Index::$name as usize].load(Ordering::Acquire);
                            if f != $name as *mut c_void {
                                // SAFETY: a slot holds a definition of this
                                // very function, of this C prototype.
                                let f = unsafe { core::mem::transmute::<*mut c_void, F>(f) };
                                // SAFETY: the caller's arguments, as given.
                                return unsafe { f($($arg),*) };
                            }
                            // Passing through: this hook's first call,
                            // which routes its slot to libc ([`load`]).
                            // Ready but still here: libc has no such
                            // function. Failed: a network call, refused.
                            match STATE.load(Ordering::Acquire) {
                                PASSING => {
                                    let hook = Hook(Index::$name as usize);
                                    hook.route(hook.next());
                                    None
                                }
                                FAILED => Some(Why::Blocked),
                                _ => None,
                            }
                        }
                        Settled::Reentered => Some(Why::Again),
                    };
                    $(
                        if let Some(why) = why {
                            // SAFETY: the refusal reads (and, for out
                            // pointers and requests, writes) only the
                            // caller's arguments it is given, as libc's
                            // function would.
                            if let Some(failed) = unsafe { refuse::$refusal(why, $($rarg),*) } {
                                return failed;
                            }
                        }
                    )?
                    let _ = why;
                    let f = Hook(Index::$name as usize).next();
                    if f.is_null() {
                        return missing!($fails, $ret);
                    }
                    // SAFETY: libc's definition of this function, of this
                    // C prototype.
                    let f = unsafe { core::mem::transmute::<*mut c_void, F>(f) };
                    // SAFETY: the caller's arguments, as given.
                    unsafe { f($($arg),*) }
                }
            )*
        }

        /// Each hook's place in the tables.
        #[allow(non_camel_case_types, dead_code)]
        #[derive(Debug, Clone, Copy)]
        #[repr(usize)]
        enum Index { $($name),* }
    };
    (@exports $(#[$doc:meta])* $name:ident [] $args:tt -> $ret:ty) => {
        hooks!(@export $(#[$doc])* $name, $name $args -> $ret);
    };
    (@exports $(#[$doc:meta])* $name:ident [$alias:ident] $args:tt -> $ret:ty) => {
        hooks!(@export $(#[$doc])* $name, $name $args -> $ret);
        hooks!(@export
            #[doc = concat!("`", stringify!($name), "` under its pre-2.34 name.")]
            $alias, $name $args -> $ret);
    };
    (@export $(#[$doc:meta])* $export:ident, $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// As libc's function of this name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $export($($arg: $ty),*) -> $ret {
            let f = SLOTS[Index::$name as usize].load(Ordering::Acquire);
            // SAFETY: a slot holds a definition of this very function (the
            // engine's, libc's, or its cold path), of this C prototype.
            let f = unsafe {
                core::mem::transmute::<*mut c_void, unsafe extern "C" fn($($ty),*) -> $ret>(f)
            };
            // SAFETY: the caller's arguments, as given.
            unsafe { f($($arg),*) }
        }
    };
}

bindto_abi::hook_list!(hooks);

/// The refusals of network calls made while the engine cannot decide, with
/// the engine's values for a config it cannot read (`shim/src/hooks`,
/// `hooks/dns.rs`, `hooks/res.rs`): EPERM (EAGAIN mid-load) for TCP and
/// UDP, EAI_FAIL, NULL or ENOENT with h_errno NO_RECOVERY, -1 with h_errno
/// NO_RECOVERY.
mod refuse {
    use super::*;

    fn errno_of(why: Why) -> c_int {
        match why {
            Why::Blocked => EPERM,
            Why::Again => EAGAIN,
        }
    }

    fn h_errno_of(why: Why) -> c_int {
        match why {
            Why::Blocked => NO_RECOVERY,
            Why::Again => TRY_AGAIN,
        }
    }

    /// What a call does with an AF_UNSPEC name, as the kernel takes it.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Unspec {
        /// `connect`: dissolves an association, sends nothing.
        Dissolves,
        /// `bind`: inet_bind takes it as AF_INET when its address is
        /// INADDR_ANY.
        Wildcard,
        /// The sends: udp_sendmsg sends to it as AF_INET.
        Sends,
    }

    /// `connect`.
    ///
    /// # Safety
    /// As [`to`].
    pub(super) unsafe fn connect(why: Why, addr: *const Sockaddr, len: Socklen) -> Option<c_int> {
        // SAFETY: as the caller promises.
        unsafe { to(why, addr, len, Unspec::Dissolves) }
    }

    /// `bind`.
    ///
    /// # Safety
    /// As [`to`].
    pub(super) unsafe fn bind(why: Why, addr: *const Sockaddr, len: Socklen) -> Option<c_int> {
        // SAFETY: as the caller promises.
        unsafe { to(why, addr, len, Unspec::Wildcard) }
    }

    /// `sendto`.
    ///
    /// # Safety
    /// As [`to`].
    pub(super) unsafe fn sendto(why: Why, addr: *const Sockaddr, len: Socklen) -> Option<isize> {
        // SAFETY: as the caller promises.
        unsafe { to(why, addr, len, Unspec::Sends) }
    }

    /// A call with a destination: refused when the kernel takes it as
    /// IPv4 or IPv6 (AF_UNSPEC as `unspec` says; the front does not ask
    /// which socket it is, and refuses what an IPv4 socket would take),
    /// as the engine decides those; a Unix socket's call goes on. Without
    /// a destination (a connected socket: none can have been connected
    /// through the front) it goes on too.
    ///
    /// # Safety
    /// `addr` is null or valid for reads of `len` bytes.
    unsafe fn to<R: Failed>(
        why: Why,
        addr: *const Sockaddr,
        len: Socklen,
        unspec: Unspec,
    ) -> Option<R> {
        if addr.is_null() || (len as usize) < size_of::<u16>() {
            return None;
        }
        // SAFETY: the first two bytes of the caller's address, its family.
        let family = unsafe { addr.cast::<u16>().read_unaligned() };
        let inet = match family {
            AF_INET | AF_INET6 => true,
            AF_UNSPEC if (len as usize) >= SOCKADDR_IN_LEN => match unspec {
                Unspec::Dissolves => false,
                Unspec::Sends => true,
                Unspec::Wildcard => {
                    let sin_addr = addr.cast::<u8>().wrapping_add(4).cast::<u32>();
                    // SAFETY: `len` covers a sockaddr_in, whose sin_addr is
                    // at offset 4.
                    unsafe { sin_addr.read_unaligned() == 0 }
                }
            },
            _ => false,
        };
        if !inet {
            return None;
        }
        set_errno(errno_of(why));
        Some(R::FAILED)
    }

    /// `sendmsg`: as [`to`] for the message's destination.
    ///
    /// # Safety
    /// `msg` is null or a valid `struct msghdr` whose name is valid.
    pub(super) unsafe fn message<R: Failed>(why: Why, msg: *const Msghdr) -> Option<R> {
        if msg.is_null() {
            return None;
        }
        // SAFETY: as the caller promises.
        let msg = unsafe { &*msg };
        // SAFETY: as the caller promises.
        unsafe { to(why, msg.name, msg.namelen, Unspec::Sends) }
    }

    /// `sendmmsg`: refused whole when any message goes to IPv4 or IPv6.
    ///
    /// # Safety
    /// `msgs` is null or valid for `vlen` messages whose names are valid.
    pub(super) unsafe fn messages<R: Failed>(
        why: Why,
        msgs: *const Mmsghdr,
        vlen: c_uint,
    ) -> Option<R> {
        if msgs.is_null() {
            return None;
        }
        for i in 0..vlen as usize {
            let msg = msgs.wrapping_add(i);
            // SAFETY: message `i` of the caller's `vlen`.
            let msg = unsafe { &(*msg).hdr };
            // SAFETY: as the caller promises.
            if let Some(failed) = unsafe { to(why, msg.name, msg.namelen, Unspec::Sends) } {
                return Some(failed);
            }
        }
        None
    }

    /// The EAI code of a lookup refused, with its errno.
    fn eai_of(why: Why) -> c_int {
        set_errno(errno_of(why));
        match why {
            Why::Blocked => EAI_FAIL,
            Why::Again => EAI_AGAIN,
        }
    }

    /// `getaddrinfo`, `getnameinfo`.
    ///
    /// # Safety
    /// None: unsafe as every refusal, which the hook list calls alike.
    pub(super) unsafe fn eai(why: Why) -> Option<c_int> {
        Some(eai_of(why))
    }

    /// `getaddrinfo_a`: each request fails (EAI_FAIL, EAI_AGAIN mid-load)
    /// and so does the call, as glibc's when it cannot start them:
    /// EAI_SYSTEM with errno EPERM (EAI_AGAIN mid-load).
    ///
    /// # Safety
    /// `list` is null or valid for `ent` entries, each null or a request.
    pub(super) unsafe fn gai_a(why: Why, list: *mut *mut Gaicb, ent: c_int) -> Option<c_int> {
        if !list.is_null() {
            for i in 0..ent.max(0) as usize {
                // SAFETY: entry `i` of the caller's `ent`.
                let req = unsafe { list.wrapping_add(i).read() };
                if !req.is_null() {
                    // SAFETY: the caller's request.
                    unsafe { (*req).status = eai_of(why) };
                }
            }
        }
        set_errno(errno_of(why));
        Some(match why {
            Why::Blocked => EAI_SYSTEM,
            Why::Again => EAI_AGAIN,
        })
    }

    /// `gethostbyname`, `gethostbyname2`, `gethostbyaddr`.
    ///
    /// # Safety
    /// None: unsafe as every refusal, which the hook list calls alike.
    pub(super) unsafe fn host(why: Why) -> Option<*mut Hostent> {
        set_h_errno(h_errno_of(why));
        Some(ptr::null_mut())
    }

    /// The `_r` functions: no result, h_errno in `*h_errnop` and the
    /// thread's, and ENOENT (EAGAIN mid-load, as glibc on TRY_AGAIN).
    ///
    /// # Safety
    /// `result` and `h_errnop` are null or valid for writes.
    pub(super) unsafe fn host_r(
        why: Why,
        result: *mut *mut Hostent,
        h_errnop: *mut c_int,
    ) -> Option<c_int> {
        if !result.is_null() {
            // SAFETY: as the caller promises.
            unsafe { *result = ptr::null_mut() };
        }
        if !h_errnop.is_null() {
            // SAFETY: as the caller promises.
            unsafe { *h_errnop = h_errno_of(why) };
        }
        set_h_errno(h_errno_of(why));
        Some(match why {
            Why::Blocked => ENOENT,
            Why::Again => EAGAIN,
        })
    }

    /// The `res_*` functions.
    ///
    /// # Safety
    /// None: unsafe as every refusal, which the hook list calls alike.
    pub(super) unsafe fn res(why: Why) -> Option<c_int> {
        set_h_errno(h_errno_of(why));
        Some(-1)
    }
}

fn set_errno(value: c_int) {
    // SAFETY: no arguments.
    let errno = unsafe { __errno_location() };
    if !errno.is_null() {
        // SAFETY: the calling thread's errno, valid for its lifetime.
        unsafe { *errno = value };
    }
}

fn set_h_errno(value: c_int) {
    // SAFETY: no arguments.
    let h_errno = unsafe { __h_errno_location() };
    if !h_errno.is_null() {
        // SAFETY: the calling thread's h_errno, valid for its lifetime.
        unsafe { *h_errno = value };
    }
}

/// No process has decided yet.
const UNSET: u64 = 0;
/// Every slot is set (to the engine's or to libc's definitions).
const READY: u64 = 1;
/// The engine could not be loaded: bookkeeping slots are libc's, network
/// slots stay null and refuse.
const FAILED: u64 = 2;
/// Nothing asked: the engine is not loaded, and each slot goes to libc
/// from its hook's first call on ([`load`]).
const PASSING: u64 = 3;
// Any other value: the thread loading (see `whoami`).

/// The process's decision: [`UNSET`], [`READY`], [`FAILED`], or the loader.
static STATE: AtomicU64 = AtomicU64::new(UNSET);

/// What [`settle`] leaves a first call to do.
#[derive(Debug)]
enum Settled {
    /// Take the slot: set, or null for a refused call.
    Routed,
    /// The loader's own thread, mid-load.
    Reentered,
    /// Not asked: a `forget` hook before anything decided.
    Undecided,
}

/// The calling thread, as [`STATE`] records the loader: the top bit set
/// (pids stay below 2^22), so that it is never [`UNSET`], [`READY`],
/// [`FAILED`] or [`PASSING`]; the pid above bit 32, the tid below.
fn whoami() -> u64 {
    let (pid, tid) = (sys::pid(), sys::tid());
    (1 << 63) | (u64::from(pid as u32) << 32) | u64::from(tid as u32)
}

/// Decides the process's routes, once: the first call of any export comes
/// here. Returns when every slot is what it will stay, or at once to the
/// loader's own thread re-entering.
///
/// Threads that race a load wait for it: passing through would leak, and
/// refusing would fail calls that the engine, ready a moment later, lets
/// through. The wait is a `sched_yield` loop: the load takes
/// microseconds (a `dlopen`) and happens once per process.
///
/// A fork child inherits [`STATE`] as it was: ready and failed stay so; a
/// loader of another pid was a thread of the parent, which the child does
/// not have, so the child takes the load over.
#[cold]
#[inline(never)]
fn settle() -> Settled {
    let mut me = None;
    loop {
        let state = STATE.load(Ordering::Acquire);
        if state == READY || state == FAILED || state == PASSING {
            return Settled::Routed;
        }
        let me = *me.get_or_insert_with(whoami);
        let take = if state == UNSET {
            true
        } else if state == me {
            return Settled::Reentered;
        } else {
            state >> 32 != me >> 32
        };
        if take && claim(state, me) {
            return Settled::Routed;
        }
        if !take {
            // SAFETY: no preconditions.
            unsafe { sched_yield() };
        }
    }
}

/// Takes the load over from `state` (unset, or the loader of another
/// process) for `me` ([`whoami`]) and decides; `false` if another thread
/// took it first.
fn claim(state: u64, me: u64) -> bool {
    if STATE
        .compare_exchange(state, me, Ordering::Acquire, Ordering::Acquire)
        .is_err()
    {
        return false;
    }
    // SAFETY: this thread is the loader now.
    let done = unsafe { load() };
    STATE.store(done, Ordering::Release);
    true
}

/// `getauxval`'s key for whether the process is privileged (setuid,
/// setgid, file capabilities).
const AT_SECURE: c_ulong = 23;

/// Whether a variable asks for bindto: the rule of the core's
/// `Env::asks_anything`, and in a privileged process of
/// `Env::privileged`, which ignores the older tools' variables: only
/// `BIND_PROFILE` asks there. Privilege is looked up only when one of
/// those is set: `getauxval`'s lookup (a `dlsym`) would cost every other
/// process ([`matches`] asks likewise only when it must).
fn asked(vars: &matches::Vars) -> bool {
    // SAFETY: getauxval only reads the auxiliary vector.
    vars.set(0) || ((1..ASKING.len()).any(|i| vars.set(i)) && unsafe { getauxval(AT_SECURE) } == 0)
}

/// Fills the slots and returns the final state.
///
/// # Safety
/// Only the thread that [`STATE`] names as loader.
unsafe fn load() -> u64 {
    // Not asked: each slot is routed to libc by its hook's own first call
    // (the cold path), not all of them now. Looking all of them up costs
    // every process that makes one network call a `dlsym` per hook, which
    // a machine-wide preload pays in every process (benches/analysis.md,
    // "System-wide"). Lazily, a later first
    // call may come from a signal handler and take the dynamic linker's
    // lock in `dlsym` there: so does a `forget` hook's first call before
    // anything decides (it goes to libc through the same lookup), and
    // glibc's own lazy binding resolves a program's every libc function
    // at its first call, wherever that is, unless it was linked with
    // `-z now` (walking the same symbol tables, without the lock). The
    // lock is recursive: a handler that interrupts the dynamic linker in
    // its own thread does not wait for itself; it waits only while
    // another thread loads or looks up, which a handler's `malloc` or
    // `printf` risks as much.
    let vars = matches::Vars::read();
    // SAFETY: as the caller promises.
    if !asked(&vars) && !unsafe { matches::wanted(&vars) } {
        return PASSING;
    }
    // SAFETY: as the caller promises.
    match unsafe { engine() } {
        Ok(()) => READY,
        Err(failure) => {
            // SAFETY: as the caller promises.
            unsafe { report(failure) };
            for hook in Hook::all().filter(|hook| hook.bookkeeping()) {
                hook.route(hook.next());
            }
            FAILED
        }
    }
}

/// Why the engine could not be loaded.
#[derive(Debug)]
enum Failure {
    /// The front's own path is unknown or too long.
    NoPath,
    /// `dlopen` or `dlsym` failed: `dlerror`'s text, if any.
    Dl(*const c_char),
    /// The engine lacks this export (NUL-terminated).
    Missing(&'static [u8]),
    /// `bindto_engine_attach` returned another version.
    Version,
}

/// Room for the line on stderr, path (`PATH_MAX`) and `dlerror` included.
const LINE_ROOM: usize = 4096 + 1024;

/// How the line starts; the engine's path follows it in [`LINE`].
const PREFIX: &[u8] = b"bindto: cannot load ";

/// The line on stderr, written only by the loader: [`PREFIX`], the
/// engine's path as `dlopen` takes it (NUL-terminated), then the rest of
/// the line over the NUL. One buffer for both, as each costs `ld.so` the
/// zeroing of its pages at every exec.
struct Line(UnsafeCell<[u8; LINE_ROOM]>);

// SAFETY: only the thread that STATE names as loader touches it (`load`
// and what it calls), one at a time.
unsafe impl Sync for Line {}

static LINE: Line = Line(UnsafeCell::new([0; LINE_ROOM]));

/// Bytes appended to a fixed buffer; what does not fit is dropped.
struct Text<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Text<'_> {
    fn push(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        self
    }

    /// Appends a NUL-terminated string.
    ///
    /// # Safety
    /// `s` is null or NUL-terminated.
    unsafe fn push_c(&mut self, s: *const c_char) -> &mut Self {
        if s.is_null() {
            return self;
        }
        let mut p = s.cast::<u8>();
        loop {
            // SAFETY: bytes of a NUL-terminated string, up to its NUL.
            let byte = unsafe { p.read() };
            if byte == 0 {
                break;
            }
            self.push(&[byte]);
            p = p.wrapping_add(1);
        }
        self
    }

    fn written(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    fn full(&self) -> bool {
        self.len >= self.buf.len()
    }
}

/// The engine's path (NUL-terminated, in [`LINE`] after [`PREFIX`]): the front's own
/// directory, as `ld.so` named the front (its `LD_PRELOAD` entry), and
/// [`ENGINE`].
///
/// # Safety
/// Only the loader.
unsafe fn engine_path() -> Option<*const c_char> {
    let mut info = DlInfo {
        fname: ptr::null(),
        fbase: ptr::null_mut(),
        sname: ptr::null(),
        saddr: ptr::null_mut(),
    };
    // SAFETY: an address in the front; `info` is writable.
    if unsafe { dladdr(ptr::addr_of!(STATE).cast(), &mut info) } == 0 || info.fname.is_null() {
        return None;
    }
    // SAFETY: the loader alone writes LINE.
    let buf = unsafe { &mut *LINE.0.get() };
    let mut text = Text { buf, len: 0 };
    text.push(PREFIX);
    // SAFETY: dladdr's file name is NUL-terminated.
    unsafe { text.push_c(info.fname) };
    // The directory, with its slash; none for a bare name (ld.so found it
    // in the current directory).
    let dir = text
        .written()
        .iter()
        .rposition(|&b| b == b'/')
        .map_or(PREFIX.len(), |i| i.max(PREFIX.len() - 1) + 1);
    text.len = dir;
    text.push(ENGINE).push(b"\0");
    if text.full() {
        return None;
    }
    text.buf
        .get(PREFIX.len()..)
        .map(|path| path.as_ptr().cast())
}

/// The resolver the engine gets: libc's definition of `name`, the next
/// after the front in the global scope.
///
/// # Safety
/// `name` is NUL-terminated.
unsafe extern "C" fn next_symbol(name: *const c_char) -> *mut c_void {
    // SAFETY: as the caller promises; RTLD_NEXT from the front, which is
    // in the global scope.
    unsafe { dlsym(RTLD_NEXT, name) }
}

/// Loads the engine, attaches it and points every slot at its exports.
/// Nothing is published unless the engine has all of them.
///
/// # Safety
/// Only the loader.
unsafe fn engine() -> Result<(), Failure> {
    // SAFETY: as the caller promises.
    let path = unsafe { engine_path() }.ok_or(Failure::NoPath)?;
    // Before dlopen: the first call looks `dlerror` itself up with a
    // `dlsym`, which would clear the error that dlopen leaves.
    // SAFETY: no preconditions.
    unsafe { dlerror() };
    // SAFETY: a NUL-terminated path.
    let handle = unsafe { plugins::libc_dlopen(path, RTLD_NOW | RTLD_LOCAL) };
    if handle.is_null() {
        // SAFETY: no preconditions.
        return Err(Failure::Dl(unsafe { dlerror() }));
    }
    // SAFETY: a handle from dlopen; a NUL-terminated name.
    let attach = unsafe { dlsym(handle, ATTACH.as_ptr().cast()) };
    if attach.is_null() {
        return Err(Failure::Missing(ATTACH));
    }
    // SAFETY: the engine's entry point, of this prototype.
    let attach = unsafe { core::mem::transmute::<*mut c_void, Attach>(attach) };
    // Not zeroed: the engine writes every answer, and zeroing this many
    // words would be a call of libc's memset, an import more.
    let mut found = [const { MaybeUninit::<*mut c_void>::uninit() }; COUNT];
    // SAFETY: NAMES holds COUNT NUL-terminated names; `found` has room for
    // COUNT answers.
    let version = unsafe {
        attach(
            next_symbol,
            NAMES.as_ptr().cast(),
            COUNT,
            found.as_mut_ptr().cast(),
        )
    };
    if version != ENGINE_ABI {
        return Err(Failure::Version);
    }
    // SAFETY: an engine of this interface version wrote all COUNT answers
    // (null for a name it does not export).
    let found = found.map(|f| unsafe { f.assume_init() });
    if let Some((hook, _)) = Hook::all().zip(&found).find(|(_, f)| f.is_null()) {
        return Err(Failure::Missing(hook.name()));
    }
    for (hook, &f) in Hook::all().zip(&found) {
        hook.route(f);
    }
    Ok(())
}

/// The one line on stderr that says the engine could not be loaded.
///
/// # Safety
/// Only the loader, after [`engine`].
unsafe fn report(failure: Failure) {
    // SAFETY: the loader alone writes LINE.
    let buf = unsafe { &mut *LINE.0.get() };
    // Over the path's NUL, if `engine_path` left one.
    let path_end = buf
        .iter()
        .skip(PREFIX.len())
        .position(|&b| b == 0)
        .map(|i| i + PREFIX.len());
    let mut text = Text { buf, len: 0 };
    match (failure, path_end) {
        (Failure::NoPath, _) | (_, None) => {
            text.push(PREFIX)
                .push(ENGINE)
                .push(b": the path of libbindto.so is unknown or too long");
        }
        (Failure::Dl(error), Some(end)) => {
            text.len = end;
            // SAFETY: dlerror's text is null or NUL-terminated.
            unsafe { text.push(b": ").push_c(error) };
        }
        (Failure::Missing(name), Some(end)) => {
            text.len = end;
            text.push(b": it does not define ")
                .push(name.strip_suffix(b"\0").unwrap_or(name));
        }
        (Failure::Version, Some(end)) => {
            text.len = end;
            text.push(b": it is of another bindto version than libbindto.so");
        }
    }
    const TAIL: &[u8] = b"; network calls are blocked\n";
    if text.len + TAIL.len() > text.buf.len() {
        text.len = text.buf.len() - TAIL.len();
    }
    text.push(TAIL);
    let mut rest = text.written();
    while !rest.is_empty() {
        // SAFETY: `rest` is valid for its length.
        let n = unsafe { write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            break;
        }
        rest = rest.get(n as usize..).unwrap_or_default();
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // Unreachable: nothing here can panic (a release build has no panic
    // symbol). Should it ever change, stop rather than go on unbound.
    // SAFETY: abort has no preconditions.
    unsafe { abort() }
}
