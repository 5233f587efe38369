//! The seccomp filter a supervised program runs under: classic BPF that
//! sends the kernel's user notification to bindto for every system call a
//! destination can enter by, and lets everything else through untouched.
//!
//! Trapped: `connect`, `sendto` with an address (args\[4\] non-null; a send
//! on a connected socket passes without a stop), `sendmsg` and `sendmmsg`
//! (their address is in memory the filter cannot read), `bind` when the
//! profile has a `listen` address, and `io_uring_setup` (answered ENOSYS:
//! io_uring cannot be filtered per operation). A system call of another
//! architecture than bindto's kills the process, and on x86-64 an x32 call
//! of the same kind fails with EPERM: neither can be decided, and both
//! would otherwise pass unseen.

use std::io;

use libc::{c_int, c_long, c_uint, sock_filter, sock_fprog};

/// `struct seccomp_data`: nr at 0, arch at 4, args from 16, 8 bytes each.
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg_low(i: u32) -> u32 {
    16 + 8 * i + if cfg!(target_endian = "little") { 0 } else { 4 }
}
const fn arg_high(i: u32) -> u32 {
    16 + 8 * i + if cfg!(target_endian = "little") { 4 } else { 0 }
}

/// AUDIT_ARCH_X86_64 / AUDIT_ARCH_AARCH64 (<linux/audit.h>): the machine,
/// 64-bit, little-endian.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;

/// x32 system calls are x86-64 ones with this bit set.
#[cfg(target_arch = "x86_64")]
const X32_BIT: u32 = 0x4000_0000;

const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
#[cfg(target_arch = "x86_64")]
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
#[cfg(target_arch = "x86_64")]
const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Where a jump goes: the next instruction, or a labelled one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Next,
    Label(Label),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Allow,
    Notify,
    Kill,
    #[cfg(target_arch = "x86_64")]
    X32,
    #[cfg(target_arch = "x86_64")]
    Refuse,
}

enum Item {
    At(Label),
    Op(u16, u32, To, To),
}

fn sys(nr: c_long) -> u32 {
    nr as u32
}

/// The program, before its jumps are resolved.
fn items(trap_bind: bool) -> Vec<Item> {
    use Item::Op;
    use Label::*;
    use To::Next;
    let to = To::Label;
    let mut p = vec![
        Op(LD_ABS, ARCH, Next, Next),
        Op(JEQ, AUDIT_ARCH, Next, to(Kill)),
        Op(LD_ABS, NR, Next, Next),
    ];
    #[cfg(target_arch = "x86_64")]
    p.push(Op(JGE, X32_BIT, to(X32), Next));
    let mut trapped = vec![
        libc::SYS_connect,
        libc::SYS_sendmsg,
        libc::SYS_sendmmsg,
        libc::SYS_io_uring_setup,
    ];
    if trap_bind {
        trapped.push(libc::SYS_bind);
    }
    p.extend(trapped.iter().map(|&nr| Op(JEQ, sys(nr), to(Notify), Next)));
    p.extend([
        Op(JEQ, sys(libc::SYS_sendto), Next, to(Allow)),
        // sendto(fd, buf, len, flags, NULL, 0) names no destination.
        Op(LD_ABS, arg_low(4), Next, Next),
        Op(JEQ, 0, Next, to(Notify)),
        Op(LD_ABS, arg_high(4), Next, Next),
        Op(JEQ, 0, to(Allow), to(Notify)),
    ]);
    #[cfg(target_arch = "x86_64")]
    {
        p.push(Item::At(X32));
        p.push(Op(AND, !X32_BIT, Next, Next));
        // x32 has its own numbers for sendmsg (518) and sendmmsg (538).
        for nr in [
            sys(libc::SYS_connect),
            sys(libc::SYS_sendto),
            sys(libc::SYS_bind),
            518,
            538,
            sys(libc::SYS_io_uring_setup),
        ] {
            p.push(Op(JEQ, nr, to(Refuse), Next));
        }
        p.push(Op(RET, libc::SECCOMP_RET_ALLOW, Next, Next));
        p.push(Item::At(Refuse));
        p.push(Op(
            RET,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            Next,
            Next,
        ));
    }
    p.extend([
        Item::At(Allow),
        Op(RET, libc::SECCOMP_RET_ALLOW, Next, Next),
        Item::At(Notify),
        Op(RET, libc::SECCOMP_RET_USER_NOTIF, Next, Next),
        Item::At(Kill),
        Op(RET, libc::SECCOMP_RET_KILL_PROCESS, Next, Next),
    ]);
    p
}

/// The filter's instructions, jumps resolved.
pub(super) fn program(trap_bind: bool) -> Vec<sock_filter> {
    let items = items(trap_bind);
    let mut labels = Vec::new();
    let mut at = 0usize;
    for item in &items {
        match item {
            Item::At(label) => labels.push((*label, at)),
            Item::Op(..) => at += 1,
        }
    }
    let mut out = Vec::with_capacity(at);
    for item in &items {
        let Item::Op(code, k, jt, jf) = *item else {
            continue;
        };
        let here = out.len();
        let offset = |to: To| -> u8 {
            match to {
                To::Next => 0,
                To::Label(label) => {
                    let target = labels
                        .iter()
                        .find(|(l, _)| *l == label)
                        .map(|(_, at)| *at)
                        .expect("every label is placed");
                    u8::try_from(target - here - 1).expect("the filter is short")
                }
            }
        };
        out.push(sock_filter {
            code,
            jt: offset(jt),
            jf: offset(jf),
            k,
        });
    }
    out
}

/// Sets `no_new_privs` and installs `program` with a new listener, which
/// it returns. Runs in the forked child: no allocation.
pub(super) fn install(program: &[sock_filter]) -> Result<c_int, c_int> {
    let prog = sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(errno());
    }
    // SAFETY: `prog` points at `program`, alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as c_uint,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as c_uint,
            &prog as *const sock_fprog,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    Ok(fd as c_int)
}

fn errno() -> c_int {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program() {
        for bind in [false, true] {
            let p = program(bind);
            for (i, ins) in p.iter().enumerate().filter(|(_, i)| i.code != RET) {
                assert!(i + 1 + usize::from(ins.jt) < p.len());
                assert!(i + 1 + usize::from(ins.jf) < p.len());
            }
            assert_eq!(p.last().map(|i| i.code), Some(RET));
        }
    }
}
