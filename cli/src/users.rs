//! The user database, as a `[[match]]`'s `user` is looked up in it
//! (getpwnam_r, so NSS sources count as they do for the engine).

use std::ffi::{CStr, CString};

use bindto_core::User;

/// The uid of user `name`, if the database knows it.
pub(crate) fn uid(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    entry(|pwd, buf, result| {
        // SAFETY: `name` is NUL-terminated; `pwd`, `buf` (of its length)
        // and `result` are valid for writes.
        unsafe { libc::getpwnam_r(name.as_ptr(), pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
    .map(|(uid, _)| uid)
}

/// The name of the user whose uid is `uid`, if the database knows it.
pub(crate) fn name(uid: u32) -> Option<String> {
    entry(|pwd, buf, result| {
        // SAFETY: `pwd`, `buf` (of its length) and `result` are valid for
        // writes.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
    .map(|(_, name)| name)
}

/// The real uid of this process.
pub(crate) fn real_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The effective uid of this process.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `user` as "name (uid)", its uid if it has one.
pub(crate) fn describe(user: &User) -> (String, Option<u32>) {
    match user {
        User::Id(uid) => match name(*uid) {
            Some(name) => (format!("{name} ({uid})"), Some(*uid)),
            None => (format!("uid {uid}"), Some(*uid)),
        },
        User::Name(name) => match uid(name) {
            Some(uid) => (format!("{name} ({uid})"), Some(uid)),
            None => (format!("{name} (no such user)"), None),
        },
    }
}

/// One getpw*_r call with a buffer that grows while it is too small: the
/// uid and name of the entry found.
fn entry(
    call: impl Fn(&mut libc::passwd, &mut Vec<libc::c_char>, &mut *mut libc::passwd) -> libc::c_int,
) -> Option<(u32, String)> {
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: passwd is plain data; all zeroes is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result = std::ptr::null_mut();
        match call(&mut pwd, &mut buf, &mut result) {
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            0 if !result.is_null() => {
                // SAFETY: on success pw_name points to a NUL-terminated
                // string in `buf`, alive here.
                let name = unsafe { CStr::from_ptr(pwd.pw_name) };
                return Some((pwd.pw_uid, name.to_string_lossy().into_owned()));
            }
            _ => return None,
        }
    }
}
