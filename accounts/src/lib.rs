//! Local accounts as the system's user database knows them (NSS: files, systemd's userdb, SSSD,
//! LDAP): the PAM module looks up the person logging in, `ktbrokerd check-config` the service user
//! whose access to the configured files it checks.
#![allow(unsafe_code)] // the C library's user database calls, each with its SAFETY note

use std::ffi::{CString, c_char, c_int};

/// A local account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Looks up `name` in the system's user database (getpwnam_r, getgrouplist).
pub fn account(name: &str) -> Option<Account> {
    let (uid, gid) = identity(name)?;
    let c_name = CString::new(name).ok()?;
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut count = groups.len() as c_int;
    // SAFETY: groups has room for count entries; getgrouplist writes at most that many and
    // updates count.
    let code = unsafe { libc::getgrouplist(c_name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
    groups.truncate(if code < 0 { 0 } else { count.max(0) as usize });
    if groups.is_empty() {
        groups.push(gid);
    }
    Some(Account {
        name: name.to_owned(),
        uid,
        gid,
        groups,
    })
}

/// The uid and primary gid of `name` (getpwnam_r alone): where the supplementary groups are not
/// needed, [`account`]'s getgrouplist, which asks every group source NSS has (systemd's userdb,
/// SSSD, LDAP), is skipped.
pub fn identity(name: &str) -> Option<(u32, u32)> {
    let c_name = CString::new(name).ok()?;
    let mut entry: libc::passwd = unsafe_zeroed_passwd();
    let mut buffer = vec![0 as c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buffer is large enough for one entry (a
    // too-small buffer returns ERANGE, which we treat as not found).
    let code = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if code != 0 || found.is_null() {
        return None;
    }
    Some((entry.pw_uid, entry.pw_gid))
}

fn unsafe_zeroed_passwd() -> libc::passwd {
    // SAFETY: passwd is a plain C struct of integers and pointers; all-zero is a valid value that
    // getpwnam_r overwrites.
    unsafe { std::mem::zeroed() }
}
