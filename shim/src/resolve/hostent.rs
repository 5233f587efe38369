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
        let skip = base.align_offset(align_of::<*mut c_char>());
        // SAFETY: everything written below lies inside `buf[..len]`: `size`
        // counted it, including the alignment skipped here.
        unsafe {
            let mut at = base.add(skip);
            let addr_list = at.cast::<*mut c_char>();
            at = at.add((self.addrs.len() + 1) * size_of::<*mut c_char>());
            let alias_list = at.cast::<*mut c_char>();
            at = at.add((self.aliases.len() + 1) * size_of::<*mut c_char>());
            for (i, addr) in self.addrs.iter().enumerate() {
                let octets = match addr {
                    IpAddr::V4(a) => a.octets().to_vec(),
                    IpAddr::V6(a) => a.octets().to_vec(),
                };
                ptr::copy_nonoverlapping(octets.as_ptr(), at, octets.len());
                addr_list.add(i).write(at.cast());
                at = at.add(octets.len());
            }
            addr_list.add(self.addrs.len()).write(ptr::null_mut());
            let mut string = |text: &str| {
                let start = at;
                ptr::copy_nonoverlapping(text.as_ptr(), at, text.len());
                at.add(text.len()).write(0);
                at = at.add(text.len() + 1);
                start.cast::<c_char>()
            };
            for (i, alias) in self.aliases.iter().enumerate() {
                alias_list.add(i).write(string(alias));
            }
            alias_list.add(self.aliases.len()).write(ptr::null_mut());
            let name = string(self.name);
            out.write(hostent {
                h_name: name,
                h_aliases: alias_list,
                h_addrtype: if self.v6 {
                    libc::AF_INET6
                } else {
                    libc::AF_INET
                },
                h_length: self.addr_len() as i32,
                h_addr_list: addr_list,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
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
