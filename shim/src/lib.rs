//! libbindto_engine.so, the engine: loaded into a program that asks for
//! bindto, it puts every TCP and UDP socket of that program where a bindto
//! profile says.
//!
//! Users preload the front, libbindto.so (`shim/front`, built by this
//! crate's `build.rs`), which exports the same functions and `dlopen`s
//! this library beside it at the first call of a process that sets
//! `BIND_PROFILE` or one of the older tools' variables; it then hands over
//! its `RTLD_NEXT` resolver ([`real`]), takes the engine's exports
//! ([`front`]) and sends every call there. The
//! engine can also be preloaded directly.
//!
//! The shim interposes `connect`, `bind`, `sendto`, `sendmsg` and
//! `sendmmsg` ([`hooks`]), and keeps track of socket types through
//! `socket`, `close`, `close_range`, `closefrom`, `dup2` and `dup3` so that
//! the hot path needs no syscall to tell a TCP socket from anything else.
//! With a DNS server in the profile it also answers name lookups
//! ([`hooks::dns`]) and `res_query` and its kin ([`hooks::res`]) itself. Every decision comes from the pure
//! `bindto_core` table; this crate only reads the environment, applies
//! decisions to sockets and reports failures.
//!
//! Ground rules, each kept by one module:
//! - nothing runs at load: the first intercepted call initialises
//!   ([`state`]);
//! - no lock and no allocation on the hot path, so `fork` from any thread is
//!   safe ([`state`], [`fds`]);
//! - the shim's own libc calls never re-enter its hooks ([`guard`]);
//! - no panic crosses the FFI boundary, and a caught panic fails closed;
//!   a thread cancellation unwinds through the shim as through libc
//!   ([`boundary`]);
//! - errno is exactly what the real call leaves, or the documented errno of
//!   a refusal ([`errno`], [`hooks`]).
//!
//! Policies that docs/REFERENCE.md documents are written where they are enforced:
//! [`hooks`] (errnos, wildcard binds), [`apply`] (sockets the program bound
//! itself), [`log`] (what is written where).

mod apply;
mod boundary;
mod cancel;
mod errno;
mod fds;
mod front;
mod guard;
pub mod hooks;
mod log;
mod matches;
mod real;
mod resolve;
mod sockaddr;
mod state;
