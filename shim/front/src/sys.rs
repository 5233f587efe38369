//! The system calls the front makes itself: who the calling thread is
//! ([`crate::whoami`]) and what the match decision reads
//! ([`crate::matches`]).
//!
//! On x86_64 and aarch64 they are the kernel's calls themselves, inline:
//! each libc function the front found with `dlsym` cost a process a lookup
//! at its first use, and with the front preloaded machine-wide every
//! process that makes one network call pays for them (BENCHMARKS.md,
//! "System-wide").
//! Elsewhere (i686) libc's functions of the same names, looked up on first
//! use as [`libc!`] does.
//!
//! Each returns what the kernel returns, a negative number for an error
//! (its errno negated), and leaves the thread's errno as it was.

use core::ffi::{c_char, c_int};

/// `openat`'s and `statx`'s directory for a path relative to the working
/// directory.
pub(crate) const AT_FDCWD: c_int = -100;
/// `statx`: do not follow a final symbolic link.
pub(crate) const AT_SYMLINK_NOFOLLOW: c_int = 0x100;
/// `statx`: the descriptor itself, with an empty path.
pub(crate) const AT_EMPTY_PATH: c_int = 0x1000;
const O_RDONLY: c_int = 0;
/// An index path that names a FIFO must not block the process (its trust
/// is judged after the open, on the open file).
const O_NONBLOCK: c_int = 0o4_000;
const O_NOFOLLOW: c_int = 0o400_000;
const O_CLOEXEC: c_int = 0o2_000_000;
/// `statx`: type, mode, owner, size, inode, times.
pub(crate) const STATX_BASIC_STATS: u32 = 0x7ff;

/// `struct statx`, the same on every architecture.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct Statx {
    pub(crate) mask: u32,
    blksize: u32,
    attributes: u64,
    pub(crate) nlink: u32,
    pub(crate) uid: u32,
    gid: u32,
    pub(crate) mode: u16,
    spare0: u16,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    blocks: u64,
    attributes_mask: u64,
    atime: Timestamp,
    btime: Timestamp,
    pub(crate) ctime: Timestamp,
    pub(crate) mtime: Timestamp,
    rdev_major: u32,
    rdev_minor: u32,
    dev_major: u32,
    dev_minor: u32,
    spare: [u64; 14],
}

/// `struct statx_timestamp`.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct Timestamp {
    pub(crate) sec: i64,
    pub(crate) nsec: u32,
    reserved: i32,
}

impl Statx {
    /// `st_dev` as glibc's `stat` encodes it (`makedev`), which is what
    /// the index's writer stamped.
    pub(crate) fn dev(&self) -> u64 {
        let (major, minor) = (u64::from(self.dev_major), u64::from(self.dev_minor));
        ((major & 0xffff_f000) << 32)
            | ((major & 0xfff) << 8)
            | ((minor & 0xffff_ff00) << 12)
            | (minor & 0xff)
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod imp {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    mod nr {
        pub(super) const READ: usize = 0;
        pub(super) const CLOSE: usize = 3;
        pub(super) const GETPID: usize = 39;
        pub(super) const GETUID: usize = 102;
        pub(super) const GETEUID: usize = 107;
        pub(super) const GETTID: usize = 186;
        pub(super) const OPENAT: usize = 257;
        pub(super) const READLINKAT: usize = 267;
        pub(super) const STATX: usize = 332;
    }

    #[cfg(target_arch = "aarch64")]
    mod nr {
        pub(super) const OPENAT: usize = 56;
        pub(super) const CLOSE: usize = 57;
        pub(super) const READ: usize = 63;
        pub(super) const READLINKAT: usize = 78;
        pub(super) const GETPID: usize = 172;
        pub(super) const GETUID: usize = 174;
        pub(super) const GETEUID: usize = 175;
        pub(super) const GETTID: usize = 178;
        pub(super) const STATX: usize = 291;
    }

    /// System call `nr` with five arguments (the unused ones ignored).
    ///
    /// # Safety
    /// As the system call with these arguments.
    unsafe fn call(nr: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
        let ret: isize;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the kernel's calling convention: number in rax, arguments
        // in rdi, rsi, rdx, r10, r8; it clobbers rcx and r11. Memory is as
        // the caller promises.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") a,
                in("rsi") b,
                in("rdx") c,
                in("r10") d,
                in("r8") e,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: the kernel's calling convention: number in x8, arguments
        // and result in x0.., nothing else clobbered. Memory is as the
        // caller promises.
        unsafe {
            core::arch::asm!(
                "svc 0",
                in("x8") nr,
                inlateout("x0") a as isize => ret,
                in("x1") b,
                in("x2") c,
                in("x3") d,
                in("x4") e,
                options(nostack),
            );
        }
        ret
    }

    pub(crate) fn pid() -> c_int {
        // SAFETY: no arguments, no memory.
        unsafe { call(nr::GETPID, 0, 0, 0, 0, 0) as c_int }
    }

    pub(crate) fn tid() -> c_int {
        // SAFETY: no arguments, no memory.
        unsafe { call(nr::GETTID, 0, 0, 0, 0, 0) as c_int }
    }

    pub(crate) fn uid() -> u32 {
        // SAFETY: no arguments, no memory.
        unsafe { call(nr::GETUID, 0, 0, 0, 0, 0) as u32 }
    }

    pub(crate) fn euid() -> u32 {
        // SAFETY: no arguments, no memory.
        unsafe { call(nr::GETEUID, 0, 0, 0, 0, 0) as u32 }
    }

    /// # Safety
    /// `path` is NUL-terminated.
    pub(crate) unsafe fn open(path: *const c_char) -> c_int {
        let flags = O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC;
        // SAFETY: as the caller promises.
        unsafe {
            call(
                nr::OPENAT,
                AT_FDCWD as usize,
                path as usize,
                flags as usize,
                0,
                0,
            ) as c_int
        }
    }

    /// # Safety
    /// `buf` is valid for writes of `len` bytes.
    pub(crate) unsafe fn read_some(fd: c_int, buf: *mut u8, len: usize) -> isize {
        // SAFETY: as the caller promises.
        unsafe { call(nr::READ, fd as usize, buf as usize, len, 0, 0) }
    }

    pub(crate) fn close(fd: c_int) {
        // SAFETY: the caller's descriptor, no memory.
        unsafe { call(nr::CLOSE, fd as usize, 0, 0, 0, 0) };
    }

    /// # Safety
    /// `path` is NUL-terminated, `buf` valid for writes of `len` bytes.
    pub(crate) unsafe fn link(path: *const c_char, buf: *mut u8, len: usize) -> isize {
        // SAFETY: as the caller promises.
        unsafe {
            call(
                nr::READLINKAT,
                AT_FDCWD as usize,
                path as usize,
                buf as usize,
                len,
                0,
            )
        }
    }

    /// # Safety
    /// `path` is NUL-terminated.
    pub(crate) unsafe fn stat(
        dirfd: c_int,
        path: *const c_char,
        flags: c_int,
        out: &mut Statx,
    ) -> c_int {
        let out: *mut Statx = out;
        // SAFETY: as the caller promises; `out` is a whole `struct statx`.
        unsafe {
            call(
                nr::STATX,
                dirfd as usize,
                path as usize,
                flags as usize,
                STATX_BASIC_STATS as usize,
                out as usize,
            ) as c_int
        }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod imp {
    use super::*;
    use crate::*;

    libc! {
        getpid() -> c_int, or 0;
        gettid() -> c_int, or 0;
        // Without them nothing fits and every file is untrusted: the
        // engine decides.
        getuid() -> u32, or u32::MAX;
        geteuid() -> u32, or u32::MAX;
        openat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int, or -1;
        read(fd: c_int, buf: *mut u8, len: usize) -> isize, or -1;
        // `close` itself would be the front's own export (the global scope
        // finds the front first).
        __close(fd: c_int) -> c_int, or -1;
        readlink(path: *const c_char, buf: *mut u8, len: usize) -> isize, or -1;
        statx(dirfd: c_int, path: *const c_char, flags: c_int, mask: u32, out: *mut Statx) -> c_int, or -1;
    }

    pub(crate) fn pid() -> c_int {
        // SAFETY: no arguments.
        unsafe { getpid() }
    }

    pub(crate) fn tid() -> c_int {
        // SAFETY: no arguments.
        unsafe { gettid() }
    }

    pub(crate) fn uid() -> u32 {
        // SAFETY: no arguments.
        unsafe { getuid() }
    }

    pub(crate) fn euid() -> u32 {
        // SAFETY: no arguments.
        unsafe { geteuid() }
    }

    /// Runs `call`, a libc call, and puts errno back as it was (the
    /// hooked call the decision runs in must leave the caller's errno as
    /// libc's would): what it returned, or its errno negated if it failed.
    fn quietly(call: impl FnOnce() -> isize) -> isize {
        // SAFETY: no arguments.
        let errno = unsafe { __errno_location() };
        if errno.is_null() {
            return call();
        }
        // SAFETY: the thread's errno, valid for its lifetime.
        let saved = unsafe { *errno };
        let done = call();
        // SAFETY: as above.
        let failed = unsafe { core::mem::replace(&mut *errno, saved) };
        if done < 0 { -(failed as isize) } else { done }
    }

    /// # Safety
    /// `path` is NUL-terminated.
    pub(crate) unsafe fn open(path: *const c_char) -> c_int {
        let flags = O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC;
        // SAFETY: as the caller promises.
        quietly(|| unsafe { openat(AT_FDCWD, path, flags) } as isize) as c_int
    }

    /// # Safety
    /// `buf` is valid for writes of `len` bytes.
    pub(crate) unsafe fn read_some(fd: c_int, buf: *mut u8, len: usize) -> isize {
        // SAFETY: as the caller promises.
        quietly(|| unsafe { read(fd, buf, len) })
    }

    pub(crate) fn close(fd: c_int) {
        // SAFETY: the caller's descriptor.
        quietly(|| unsafe { __close(fd) } as isize);
    }

    /// # Safety
    /// `path` is NUL-terminated, `buf` valid for writes of `len` bytes.
    pub(crate) unsafe fn link(path: *const c_char, buf: *mut u8, len: usize) -> isize {
        // SAFETY: as the caller promises.
        quietly(|| unsafe { readlink(path, buf, len) })
    }

    /// # Safety
    /// `path` is NUL-terminated.
    pub(crate) unsafe fn stat(
        dirfd: c_int,
        path: *const c_char,
        flags: c_int,
        out: &mut Statx,
    ) -> c_int {
        // SAFETY: as the caller promises; `out` is a whole `struct statx`.
        quietly(|| unsafe { statx(dirfd, path, flags, STATX_BASIC_STATS, out) } as isize) as c_int
    }
}

pub(crate) use imp::*;
