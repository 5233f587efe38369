//! The hook list: every function the front (`libbindto.so`) exports and
//! the engine (`libbindto_engine.so`) implements, written once, in
//! [`hook_list!`](crate::hook_list), with the facts of the front–engine
//! hand-over beside it.
//!
//! From the list the front makes its exports, their slots and cold paths;
//! the engine its export table (each entry type-checked against the
//! list's prototype, so an engine function of another prototype, or a hook
//! without one, does not compile), the `__res_*` aliases, and its slots
//! for libc's definitions. Adding a hook is one entry here and the
//! engine's function (docs/ARCHITECTURE.md, "The hook list").

use core::ffi::{CStr, c_char, c_int, c_void};

/// The list, handed to a macro of the caller's: `hook_list!(then)` expands
/// to `then! { attach: NAME; ENTRY* }`, where NAME is the engine's entry
/// point ([`Attach`]) and each ENTRY is
///
/// ```text
/// /// doc
/// KIND NAME [/ ALIAS] (ARG: TYPE, ...) -> RET, fails FAILS [, refused REFUSAL(ARG, ...)];
/// ```
///
/// - KIND: `record` (descriptor bookkeeping that makes the front decide:
///   `socket`), `forget` (bookkeeping that does not: before the engine is
///   loaded it has recorded nothing to forget), or `net` (a network call
///   or a name lookup, refused when the engine cannot decide).
/// - ALIAS: glibc's pre-2.34 `__res_*` name, exported beside NAME and
///   going where NAME goes.
/// - TYPE, RET: C types by name (`c_int`, `c_uint`, `c_char`, `c_uchar`,
///   `c_void`, `usize`, `isize`, `()`, and `Socklen`, `Sockaddr`,
///   `Msghdr`, `Mmsghdr`, `Addrinfo`, `Hostent`, `Gaicb`, `Sigevent`,
///   `Timespec`, `Pthread`, `ResState`), which the caller has in scope
///   where it invokes the list: each side decides how much of a struct it
///   sees.
/// - FAILS: how the function reports a failure, for when libc lacks it:
///   `errno` (-1, NULL or nothing, errno set), `eai` (an EAI_ code;
///   EAI_SYSTEM with errno), `code` (the error number itself), `h_errno`
///   (-1 or NULL, h_errno set).
/// - REFUSAL (`net` only): the front's function (in its `refuse` module)
///   that fails the call while the engine cannot decide, given the reason
///   and these arguments.
#[macro_export]
macro_rules! hook_list {
    ($then:ident) => {
        $then! {
            attach: bindto_engine_attach;

            /// `socket()`: the engine records the socket's kind.
            record socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int, fails errno;
            /// `close()`.
            forget close(fd: c_int) -> c_int, fails errno;
            /// `close_range()`.
            forget close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int, fails errno;
            /// `closefrom()`.
            forget closefrom(low: c_int) -> (), fails errno;
            /// `dup2()`.
            forget dup2(old: c_int, new: c_int) -> c_int, fails errno;
            /// `dup3()`.
            forget dup3(old: c_int, new: c_int, flags: c_int) -> c_int, fails errno;
            /// `connect()`.
            net connect(fd: c_int, addr: *const Sockaddr, len: Socklen) -> c_int, fails errno,
                refused connect(addr, len);
            /// `bind()`.
            net bind(fd: c_int, addr: *const Sockaddr, len: Socklen) -> c_int, fails errno,
                refused bind(addr, len);
            /// `sendto()`.
            net sendto(
                fd: c_int,
                buf: *const c_void,
                n: usize,
                flags: c_int,
                addr: *const Sockaddr,
                len: Socklen
            ) -> isize, fails errno, refused sendto(addr, len);
            /// `sendmsg()`.
            net sendmsg(fd: c_int, msg: *const Msghdr, flags: c_int) -> isize, fails errno,
                refused message(msg);
            /// `sendmmsg()`.
            net sendmmsg(fd: c_int, msgs: *mut Mmsghdr, vlen: c_uint, flags: c_int) -> c_int,
                fails errno, refused messages(msgs, vlen);
            /// `getaddrinfo()`.
            net getaddrinfo(
                node: *const c_char,
                service: *const c_char,
                hints: *const Addrinfo,
                res: *mut *mut Addrinfo
            ) -> c_int, fails eai, refused eai();
            /// `freeaddrinfo()`: the engine frees its own lists, libc's to libc.
            forget freeaddrinfo(res: *mut Addrinfo) -> (), fails errno;
            /// `getaddrinfo_a()`.
            net getaddrinfo_a(
                mode: c_int,
                list: *mut *mut Gaicb,
                ent: c_int,
                sig: *mut Sigevent
            ) -> c_int, fails eai, refused gai_a(list, ent);
            /// `gai_suspend()`: the engine's wait for requests it runs itself.
            forget gai_suspend(
                list: *const *const Gaicb,
                ent: c_int,
                timeout: *const Timespec
            ) -> c_int, fails eai;
            /// `gai_error()`.
            forget gai_error(req: *mut Gaicb) -> c_int, fails eai;
            /// `gai_cancel()`.
            forget gai_cancel(req: *mut Gaicb) -> c_int, fails eai;
            /// `pthread_cancel()`: the engine notes it for its resolver, which
            /// has none to cancel before it is loaded.
            forget pthread_cancel(thread: Pthread) -> c_int, fails code;
            /// `getnameinfo()`.
            net getnameinfo(
                sa: *const Sockaddr,
                salen: Socklen,
                host: *mut c_char,
                hostlen: Socklen,
                serv: *mut c_char,
                servlen: Socklen,
                flags: c_int
            ) -> c_int, fails eai, refused eai();
            /// `gethostbyname()`.
            net gethostbyname(name: *const c_char) -> *mut Hostent, fails h_errno,
                refused host();
            /// `gethostbyname2()`.
            net gethostbyname2(name: *const c_char, family: c_int) -> *mut Hostent,
                fails h_errno, refused host();
            /// `gethostbyname_r()`.
            net gethostbyname_r(
                name: *const c_char,
                ret: *mut Hostent,
                buf: *mut c_char,
                buflen: usize,
                result: *mut *mut Hostent,
                h_errnop: *mut c_int
            ) -> c_int, fails code, refused host_r(result, h_errnop);
            /// `gethostbyname2_r()`.
            net gethostbyname2_r(
                name: *const c_char,
                family: c_int,
                ret: *mut Hostent,
                buf: *mut c_char,
                buflen: usize,
                result: *mut *mut Hostent,
                h_errnop: *mut c_int
            ) -> c_int, fails code, refused host_r(result, h_errnop);
            /// `gethostbyaddr()`.
            net gethostbyaddr(addr: *const c_void, len: Socklen, family: c_int) -> *mut Hostent,
                fails h_errno, refused host();
            /// `gethostbyaddr_r()`.
            net gethostbyaddr_r(
                addr: *const c_void,
                len: Socklen,
                family: c_int,
                ret: *mut Hostent,
                buf: *mut c_char,
                buflen: usize,
                result: *mut *mut Hostent,
                h_errnop: *mut c_int
            ) -> c_int, fails code, refused host_r(result, h_errnop);
            /// `res_query()`.
            net res_query / __res_query(
                dname: *const c_char,
                class: c_int,
                rtype: c_int,
                answer: *mut c_uchar,
                anslen: c_int
            ) -> c_int, fails h_errno, refused res();
            /// `res_nquery()`.
            net res_nquery / __res_nquery(
                statp: *mut ResState,
                dname: *const c_char,
                class: c_int,
                rtype: c_int,
                answer: *mut c_uchar,
                anslen: c_int
            ) -> c_int, fails h_errno, refused res();
            /// `res_search()`.
            net res_search / __res_search(
                dname: *const c_char,
                class: c_int,
                rtype: c_int,
                answer: *mut c_uchar,
                anslen: c_int
            ) -> c_int, fails h_errno, refused res();
            /// `res_nsearch()`.
            net res_nsearch / __res_nsearch(
                statp: *mut ResState,
                dname: *const c_char,
                class: c_int,
                rtype: c_int,
                answer: *mut c_uchar,
                anslen: c_int
            ) -> c_int, fails h_errno, refused res();
            /// `res_querydomain()`.
            net res_querydomain / __res_querydomain(
                name: *const c_char,
                domain: *const c_char,
                class: c_int,
                rtype: c_int,
                answer: *mut c_uchar,
                anslen: c_int
            ) -> c_int, fails h_errno, refused res();
            /// `res_nquerydomain()`.
            net res_nquerydomain / __res_nquerydomain(
                statp: *mut ResState,
                name: *const c_char,
                domain: *const c_char,
                class: c_int,
                rtype: c_int,
                answer: *mut c_uchar,
                anslen: c_int
            ) -> c_int, fails h_errno, refused res();
            /// `res_send()`.
            net res_send / __res_send(
                msg: *const c_uchar,
                msglen: c_int,
                answer: *mut c_uchar,
                anslen: c_int
            ) -> c_int, fails h_errno, refused res();
            /// `res_nsend()`.
            net res_nsend / __res_nsend(
                statp: *mut ResState,
                msg: *const c_uchar,
                msglen: c_int,
                answer: *mut c_uchar,
                anslen: c_int
            ) -> c_int, fails h_errno, refused res();
        }
    };
}

/// The version of the hand-over that [`Attach`] returns; the front refuses
/// an engine that answers another. Bumped whenever a hook's prototype,
/// [`Attach`] or what they mean changes; a hook added needs none, as an
/// engine without it answers null for its name, which the front reports.
pub const ENGINE_ABI: c_int = 3;

/// The front's resolver, which the engine gets at attach: the definition of
/// a NUL-terminated name that comes after the front (its
/// `dlsym(RTLD_NEXT)`), or null. The engine, `dlopen`ed `RTLD_LOCAL`, is
/// not in the global scope and cannot ask for it itself.
pub type Resolver = unsafe extern "C" fn(*const c_char) -> *mut c_void;

/// The engine's entry point (named `attach:` in [`hook_list!`](crate::hook_list)), which the
/// front calls once, right after `dlopen`, before any hook: it takes the
/// [`Resolver`]; `names` holds `count` NUL-terminated names back to back,
/// and the engine writes its export of the `i`th to `out[i]` (null if it has
/// none); it returns [`ENGINE_ABI`].
pub type Attach = unsafe extern "C" fn(
    next: Resolver,
    names: *const c_char,
    count: usize,
    out: *mut *mut c_void,
) -> c_int;

/// `s`, which ends in its only NUL, as a C string; evaluated in a const,
/// a string without that NUL does not compile.
pub const fn cstr(s: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(s.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("not a NUL-terminated string"),
    }
}

/// The variables that ask for bindto, once: [`PROFILE`], [`SELECTORS`] and
/// [`ASKING`] (both NUL-terminated, for `getenv`).
macro_rules! asking {
    ($profile:literal, [$($selector:literal),* $(,)?]) => {
        /// The variable that names the profile.
        pub const PROFILE: &str = $profile;

        /// The older tools' variables that ask for a binding
        /// (`DNS_OVERRIDE_PORT` alone does not).
        pub const SELECTORS: [&str; [$($selector),*].len()] = [$($selector),*];

        /// Every variable whose value, set and not empty, asks for bindto
        /// (the core's `Env::asks_anything`): [`PROFILE`] first, the only one
        /// read in a privileged process, then [`SELECTORS`].
        pub const ASKING: [&CStr; 1 + SELECTORS.len()] =
            [cstr(concat!($profile, "\0")), $(cstr(concat!($selector, "\0"))),*];
    };
}

asking!(
    "BIND_PROFILE",
    [
        "BIND_INTERFACE",
        "BIND_SOURCE_IP",
        "BIND_ADDR",
        "BIND_EXCLUDE",
        "DNS_OVERRIDE_IP",
    ]
);
