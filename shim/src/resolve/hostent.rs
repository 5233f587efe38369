//! `struct hostent` answers for the gethostbyname family, packed into the
//! caller's buffer as the `_r` functions require (the non-reentrant ones
//! pass a thread-local buffer of their own).

use std::mem::align_of;
use std::net::IpAddr;
use std::ptr;

use libc::{c_char, hostent};

/// What a hostent says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Host<'a> {
    pub(crate) name: &'a str,
    pub(crate) aliases: &'a [String],
    /// All of one family.
    pub(crate) addrs: &'a [IpAddr],
    pub(crate) v6: bool,
}

/// The buffer is too small: ERANGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooSmall;

impl Host<'_> {
    fn addr_len(&self) -> usize {
        if self.v6 { 16 } else { 4 }
    }

    /// Bytes `fill` needs, at worst (the buffer's start unaligned).
    pub(crate) fn size(&self) -> usize {
        let pointers = (self.addrs.len() + 1 + self.aliases.len() + 1) * size_of::<*mut c_char>();
        let strings: usize =
            self.aliases.iter().map(|a| a.len() + 1).sum::<usize>() + self.name.len() + 1;
        align_of::<*mut c_char>() - 1 + pointers + self.addrs.len() * self.addr_len() + strings
    }

    /// Writes the entry into `out`, its lists and strings into `buf`.
    ///
    /// # Safety
    /// `out` is valid for writes of a hostent and `buf` for `len` bytes;
    /// the entry is valid while `buf` is.
    pub(crate) unsafe fn fill(
        &self,
        out: *mut hostent,
        buf: *mut c_char,
        len: usize,
    ) -> Result<(), TooSmall> {
        if buf.is_null() || self.size() > len {
            return Err(TooSmall);
        }
        let base = buf.cast::<u8>();
        // SAFETY: the caller's buffer, writable for `len` bytes and not
        // otherwise referenced while this runs.
        let bytes = unsafe { std::slice::from_raw_parts_mut(base, len) };
        // Where a byte of `buf` is, for the pointers the entry holds.
        let address = |offset: usize| base.wrapping_add(offset).cast::<c_char>();
        let word = size_of::<*mut c_char>();
        // Everything lies inside `buf[..len]`: `size` counted it, including
        // the alignment skipped here.
        let addr_list = base.align_offset(align_of::<*mut c_char>());
        let alias_list = addr_list + (self.addrs.len() + 1) * word;
        let mut at = alias_list + (self.aliases.len() + 1) * word;
        let pointer = |bytes: &mut [u8], slot: usize, to: *mut c_char| {
            bytes[slot..slot + word].copy_from_slice(&(to as usize).to_ne_bytes());
        };
        for (i, addr) in self.addrs.iter().enumerate() {
            let octets = match addr {
                IpAddr::V4(a) => &a.octets()[..],
                IpAddr::V6(a) => &a.octets()[..],
            };
            bytes[at..at + octets.len()].copy_from_slice(octets);
            pointer(bytes, addr_list + i * word, address(at));
            at += octets.len();
        }
        pointer(bytes, addr_list + self.addrs.len() * word, ptr::null_mut());
        let mut string = |bytes: &mut [u8], text: &str| {
            let start = at;
            bytes[at..at + text.len()].copy_from_slice(text.as_bytes());
            bytes[at + text.len()] = 0;
            at += text.len() + 1;
            address(start)
        };
        for (i, alias) in self.aliases.iter().enumerate() {
            let alias = string(bytes, alias);
            pointer(bytes, alias_list + i * word, alias);
        }
        pointer(
            bytes,
            alias_list + self.aliases.len() * word,
            ptr::null_mut(),
        );
        let name = string(bytes, self.name);
        let entry = hostent {
            h_name: name,
            h_aliases: address(alias_list).cast(),
            h_addrtype: if self.v6 {
                libc::AF_INET6
            } else {
                libc::AF_INET
            },
            h_length: self.addr_len() as i32,
            h_addr_list: address(addr_list).cast(),
        };
        // SAFETY: `out` is valid for writes of a hostent, as the caller
        // promises.
        unsafe { out.write(entry) };
        Ok(())
    }
}

#[cfg(test)]
// A test reads through the structures it has just built, each under one
// SAFETY argument.
#[allow(clippy::multiple_unsafe_ops_per_block)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn packs_into_the_callers_buffer() {
        let aliases = ["www.bindto.test".to_owned()];
        let addrs: [IpAddr; 2] = ["198.19.0.1".parse().unwrap(), "198.19.0.2".parse().unwrap()];
        let host = Host {
            name: "host.bindto.test",
            aliases: &aliases,
            addrs: &addrs,
            v6: false,
        };
        let mut buf = vec![0 as c_char; host.size()];
        let mut out = std::mem::MaybeUninit::<hostent>::uninit();
        // SAFETY: `buf` is writable for `size()` bytes; too small a length
        // writes nothing.
        unsafe {
            assert_eq!(
                host.fill(out.as_mut_ptr(), buf.as_mut_ptr(), host.size() - 8),
                Err(TooSmall)
            );
            host.fill(out.as_mut_ptr(), buf.as_mut_ptr(), host.size())
                .unwrap();
            let out = out.assume_init();
            assert_eq!(CStr::from_ptr(out.h_name), c"host.bindto.test");
            assert_eq!(CStr::from_ptr(*out.h_aliases), c"www.bindto.test");
            assert!((*out.h_aliases.add(1)).is_null());
            assert_eq!(out.h_length, 4);
            let second = std::slice::from_raw_parts((*out.h_addr_list.add(1)).cast::<u8>(), 4);
            assert_eq!(second, [198, 19, 0, 2]);
            assert!((*out.h_addr_list.add(2)).is_null());
        }
    }
}
