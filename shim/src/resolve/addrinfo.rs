//! `struct addrinfo` lists the shim hands out, and telling them from
//! libc's when they come back to `freeaddrinfo`.
//!
//! Two safeguards, so that neither allocator ever frees the other's list:
//! - every list head the shim returns is recorded in [`OURS`], a fixed
//!   table of atomics (no lock, so a fork at any moment leaves it usable):
//!   `freeaddrinfo` frees a recorded list itself and hands anything else
//!   to libc's;
//! - every list is laid out exactly as glibc lays out its own: one
//!   `malloc` per node holding the node and its socket address, the
//!   canonical name in a `malloc` of its own. So a list that could not be
//!   recorded (the table full: [`SLOTS`] lists held at once) or that a
//!   program frees by some other path (libc's `freeaddrinfo` found with
//!   `dlsym`, freeing from a later node) is still freed correctly by libc.

use std::ffi::CStr;
use std::net::SocketAddr;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use libc::{addrinfo, c_int};

use crate::fds::Family;
use crate::sockaddr::SockaddrBuf;

/// List heads recorded at once; more are still freed correctly (see the
/// module docs).
const SLOTS: usize = 256;

static OURS: [AtomicPtr<addrinfo>; SLOTS] = [const { AtomicPtr::new(ptr::null_mut()) }; SLOTS];
/// How many slots are in use, so that a process that never got a list
/// from the shim frees libc's without scanning.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// One result: an address and the socket type to use it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    pub(crate) socktype: c_int,
    pub(crate) protocol: c_int,
}

/// Builds the list for `entries` (not empty), with `canonical` on the
/// first node; `None` if memory ran out (nothing is leaked then).
pub(crate) fn build(entries: &[Endpoint], canonical: Option<&CStr>) -> Option<*mut addrinfo> {
    let mut head: *mut addrinfo = ptr::null_mut();
    // Built back to front, so each node is linked as it is made.
    for entry in entries.iter().rev() {
        let Some(node) = node(entry) else {
            free(head);
            return None;
        };
        // SAFETY: `node` was just allocated and initialised by `node`.
        unsafe { (*node).ai_next = head };
        head = node;
    }
    if let (Some(name), false) = (canonical, head.is_null()) {
        let bytes = name.to_bytes_with_nul();
        // SAFETY: plain allocation.
        let copy = unsafe { libc::malloc(bytes.len()) }.cast::<u8>();
        if copy.is_null() {
            free(head);
            return None;
        }
        // SAFETY: `copy` is writable for `bytes.len()` bytes.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len()) };
        // SAFETY: `head` is a node of ours, not yet handed out.
        unsafe { (*head).ai_canonname = copy.cast() };
    }
    record(head);
    Some(head)
}

/// One node and its socket address in one allocation, as glibc makes them.
fn node(entry: &Endpoint) -> Option<*mut addrinfo> {
    let (family, domain) = match entry.addr {
        SocketAddr::V4(_) => (Family::V4, libc::AF_INET),
        SocketAddr::V6(_) => (Family::V6, libc::AF_INET6),
    };
    let raw = SockaddrBuf::new(entry.addr, family)?;
    let len = raw.len() as usize;
    // SAFETY: plain allocation; malloc's alignment suits addrinfo, and the
    // socket address that follows it at an 8-byte multiple.
    let node = unsafe { libc::malloc(size_of::<addrinfo>() + len) }.cast::<addrinfo>();
    if node.is_null() {
        return None;
    }
    let addr = node.wrapping_add(1).cast::<libc::sockaddr>();
    // SAFETY: `addr`, right after the node, is writable for `len` bytes;
    // `raw` holds `len` initialised bytes.
    unsafe { ptr::copy_nonoverlapping(raw.as_ptr().cast::<u8>(), addr.cast::<u8>(), len) };
    // SAFETY: `node` is writable for an addrinfo.
    unsafe {
        node.write(addrinfo {
            ai_flags: 0,
            ai_family: domain,
            ai_socktype: entry.socktype,
            ai_protocol: entry.protocol,
            ai_addrlen: raw.len(),
            ai_addr: addr,
            ai_canonname: ptr::null_mut(),
            ai_next: ptr::null_mut(),
        });
    }
    Some(node)
}

fn record(head: *mut addrinfo) {
    for slot in &OURS {
        if slot
            .compare_exchange(ptr::null_mut(), head, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            HELD.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
}

/// Frees `head` if it is a list the shim made, and says whether it was;
/// `false` means it is libc's, for libc's `freeaddrinfo`.
pub(crate) fn release(head: *mut addrinfo) -> bool {
    if head.is_null() || HELD.load(Ordering::Relaxed) == 0 {
        return false;
    }
    for slot in &OURS {
        if slot
            .compare_exchange(head, ptr::null_mut(), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            HELD.fetch_sub(1, Ordering::Relaxed);
            free(head);
            return true;
        }
    }
    false
}

/// Frees a list of ours, node by node, as glibc's freeaddrinfo would.
fn free(mut node: *mut addrinfo) {
    while !node.is_null() {
        // SAFETY: a node of the list, still allocated.
        let addrinfo {
            ai_next: next,
            ai_canonname: canonical,
            ..
        } = unsafe { *node };
        // SAFETY: every node of the list and its canonical name were
        // allocated with malloc by `build`, and are freed once: the list
        // has just left the registry (or was never handed out).
        unsafe { libc::free(canonical.cast()) };
        // SAFETY: as above.
        unsafe { libc::free(node.cast()) };
        node = next;
    }
}

#[cfg(test)]
// A test reads through the structures it has just built, each under one
// SAFETY argument.
#[allow(clippy::multiple_unsafe_ops_per_block)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_recorded_until_freed() {
        let entries = [
            Endpoint {
                addr: "198.19.0.1:80".parse().unwrap(),
                socktype: libc::SOCK_STREAM,
                protocol: libc::IPPROTO_TCP,
            },
            Endpoint {
                addr: "[2001:db8:ff::1]:80".parse().unwrap(),
                socktype: libc::SOCK_DGRAM,
                protocol: libc::IPPROTO_UDP,
            },
        ];
        let head = build(&entries, Some(c"host.bindto.test")).unwrap();
        // SAFETY: `head` is a two-node list just built.
        unsafe {
            assert_eq!(CStr::from_ptr((*head).ai_canonname), c"host.bindto.test");
            let second = (*head).ai_next;
            assert_eq!((*second).ai_family, libc::AF_INET6);
            assert_eq!(
                (*second).ai_addrlen as usize,
                size_of::<libc::sockaddr_in6>()
            );
            let addr = crate::sockaddr::read((*second).ai_addr, (*second).ai_addrlen);
            assert_eq!(addr, Some(entries[1].addr));
            assert!((*second).ai_next.is_null());
        }
        let other = 0x1000 as *mut addrinfo;
        assert!(!release(other), "not ours");
        assert!(release(head));
        assert!(!release(head), "freed once");
    }
}
