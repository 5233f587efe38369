//! Reading and writing a supervised program's memory, at addresses and
//! lengths it chose: every length is checked against a bound before
//! anything is read, and a read that comes back short is a failure (the
//! program would get EFAULT from the kernel for the same bytes).
//!
//! `process_vm_readv` needs the right to ptrace the program, which bindto
//! has as its ancestor (and subreaper: orphans of the tree stay its
//! descendants, which Yama's `ptrace_scope = 1` asks for).

use libc::{c_int, c_void, iovec};

/// The most bytes read for one system call's data: a UDP datagram's
/// largest payload, with room to spare.
pub(super) const MAX_PAYLOAD: usize = 65_536;
/// The most iovecs in one message (UIO_MAXIOV): more is EMSGSIZE.
pub(super) const MAX_IOV: usize = 1024;
/// The most control data read from one message.
pub(super) const MAX_CONTROL: usize = 16_384;

/// Reads `out.len()` bytes at `addr` of process `pid`.
pub(super) fn read(pid: u32, addr: u64, out: &mut [u8]) -> Result<(), c_int> {
    if out.is_empty() {
        return Ok(());
    }
    let local = iovec {
        iov_base: out.as_mut_ptr().cast::<c_void>(),
        iov_len: out.len(),
    };
    let remote = iovec {
        iov_base: addr as usize as *mut c_void,
        iov_len: out.len(),
    };
    // SAFETY: `local` describes `out`, writable for its length; the remote
    // side is only read by the kernel, which checks it.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    match n {
        n if n < 0 => Err(last_errno()),
        n if n as usize != out.len() => Err(libc::EFAULT),
        _ => Ok(()),
    }
}

/// Reads `len` bytes at `addr`, `len` checked against `max` first.
pub(super) fn read_vec(pid: u32, addr: u64, len: u64, max: usize) -> Result<Vec<u8>, c_int> {
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= max)
        .ok_or(libc::EMSGSIZE)?;
    let mut out = vec![0u8; len];
    read(pid, addr, &mut out)?;
    Ok(out)
}

/// Writes `bytes` at `addr` of process `pid`.
pub(super) fn write(pid: u32, addr: u64, bytes: &[u8]) -> Result<(), c_int> {
    let local = iovec {
        iov_base: bytes.as_ptr().cast_mut().cast::<c_void>(),
        iov_len: bytes.len(),
    };
    let remote = iovec {
        iov_base: addr as usize as *mut c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: `local` describes `bytes`, which the kernel only reads.
    let n = unsafe { libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    match n {
        n if n < 0 => Err(last_errno()),
        n if n as usize != bytes.len() => Err(libc::EFAULT),
        _ => Ok(()),
    }
}

/// The iovecs of a message, read and checked: at most [`MAX_IOV`] of them,
/// each read whole, [`MAX_PAYLOAD`] bytes at most in all. Returns the
/// bytes, concatenated (a datagram is one datagram however many pieces it
/// is sent in).
pub(super) fn gather(pid: u32, iov: u64, count: u64) -> Result<Vec<u8>, c_int> {
    let count = usize::try_from(count)
        .ok()
        .filter(|&c| c <= MAX_IOV)
        .ok_or(libc::EMSGSIZE)?;
    let raw = read_vec(pid, iov, (count * 16) as u64, MAX_IOV * 16)?;
    let mut total = 0usize;
    let mut pieces = Vec::with_capacity(count);
    for entry in raw.chunks_exact(16) {
        let base = u64::from_ne_bytes(entry[..8].try_into().map_err(|_| libc::EFAULT)?);
        let len = u64::from_ne_bytes(entry[8..].try_into().map_err(|_| libc::EFAULT)?);
        total = usize::try_from(len)
            .ok()
            .and_then(|l| total.checked_add(l))
            .filter(|&t| t <= MAX_PAYLOAD)
            .ok_or(libc::EMSGSIZE)?;
        pieces.push((base, len as usize));
    }
    let mut out = vec![0u8; total];
    let mut at = 0;
    for (base, len) in pieces {
        read(pid, base, &mut out[at..at + len])?;
        at += len;
    }
    Ok(out)
}

pub(super) fn last_errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> u32 {
        std::process::id()
    }

    #[test]
    fn iovecs_are_checked_before_anything_is_read() {
        let (a, b) = (b"hello ".to_vec(), b"world".to_vec());
        let iov = |pieces: &[(&[u8], usize)]| -> Vec<u8> {
            pieces
                .iter()
                .flat_map(|(p, len)| {
                    let mut e = (p.as_ptr() as u64).to_ne_bytes().to_vec();
                    e.extend_from_slice(&(*len as u64).to_ne_bytes());
                    e
                })
                .collect()
        };
        let two = iov(&[(&a, a.len()), (&b, b.len())]);
        assert_eq!(
            gather(me(), two.as_ptr() as u64, 2).unwrap(),
            b"hello world"
        );
        // Too many iovecs, too long in all (a length that would overflow
        // too): refused without reading the pieces.
        assert_eq!(gather(me(), two.as_ptr() as u64, 1025), Err(libc::EMSGSIZE));
        let long = iov(&[(&a, MAX_PAYLOAD), (&b, 1)]);
        assert_eq!(gather(me(), long.as_ptr() as u64, 2), Err(libc::EMSGSIZE));
        let wrap = iov(&[(&a, 1), (&b, usize::MAX)]);
        assert_eq!(gather(me(), wrap.as_ptr() as u64, 2), Err(libc::EMSGSIZE));
        // Memory that is not there.
        let mut out = [0u8; 4];
        assert_eq!(read(me(), 8, &mut out), Err(libc::EFAULT));
        assert_eq!(read_vec(me(), 8, 1 << 20, 1024), Err(libc::EMSGSIZE));
    }
}
