//! A libkrb5 context that does not load the SPAKE pre-authentication module, for AS exchanges
//! whose keys are at hand (the client's keytab delivery).
//!
//! SPAKE is the one client module libkrb5 loads from a file (`preauth/spake.so`), and it pulls
//! in OpenSSL's libcrypto: relocating it costs about a millisecond of CPU, on a login that needs
//! none of it when the KDC takes the encrypted timestamp sent in the first request (see
//! `initial_creds_into`). The context reads the same profile files as a default one, plus a
//! fragment after them (so every setting of the user's files still wins) that disables the
//! module. The fragment lives in a memfd: nothing is written to a disk, and libkrb5 reads it by
//! its `/proc/self/fd` path like any other file. A realm whose KDC insists on SPAKE makes the
//! exchange fail with a code [`crate::Krb5Error::needs_another_preauth`] recognises; the caller
//! then tries once more with a default context.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::raw::c_char;

use crate::{Krb5Error, ffi};

/// Appended after the user's profile files. `disable` is a list: it adds to whatever the user's
/// files disable, and overrides nothing else.
const FRAGMENT: &[u8] = b"[plugins]\n    clpreauth = {\n        disable = spake\n    }\n";

/// A new context and the memfd holding the fragment, which stays open as long as the context
/// (libkrb5 re-reads a profile file that changed; this one never does).
pub(crate) fn new_context() -> Result<(ffi::krb5_context, OwnedFd), Krb5Error> {
    let fragment = fragment_file()?;
    let fragment_path = CString::new(format!("/proc/self/fd/{}", fragment.as_raw_fd()))
        .map_err(|_| Krb5Error::local("memfd path", "a path with a NUL byte"))?;
    let files = DefaultConfigFiles::get()?;
    let mut paths: Vec<*const c_char> = files.paths().collect();
    paths.push(fragment_path.as_ptr());
    paths.push(std::ptr::null());

    let mut profile: ffi::profile_t = std::ptr::null_mut();
    // SAFETY: paths is a NULL-terminated array of C strings that outlive the call (files and
    // fragment_path are alive); profile receives a new profile or stays NULL on error.
    let code = unsafe { ffi::profile_init_flags(paths.as_ptr(), ffi::PROFILE_INIT_ALLOW_MODULE, &mut profile) };
    if code != 0 || profile.is_null() {
        return Err(Krb5Error {
            code: i32::try_from(code).unwrap_or(-1),
            message: "cannot read the krb5 configuration files".into(),
            during: "profile_init_flags",
        });
    }
    let mut raw: ffi::krb5_context = std::ptr::null_mut();
    // SAFETY: profile is live; the context takes a copy of it (re-reading the same files), so
    // ours is released right after; flags 0 are a default context's.
    let code = unsafe { ffi::krb5_init_context_profile(profile, 0, &mut raw) };
    // SAFETY: profile came from profile_init_flags and is released once, never written back
    // (abandon, not release: nothing here may ever rewrite the user's krb5.conf).
    unsafe { ffi::profile_abandon(profile) };
    if code != 0 || raw.is_null() {
        return Err(Krb5Error::no_context(code, "krb5_init_context_profile"));
    }
    Ok((raw, fragment))
}

fn fragment_file() -> Result<OwnedFd, Krb5Error> {
    // SAFETY: the name is a valid C string; the call returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(c"ktbroker-krb5-fragment".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Krb5Error::local(
            "memfd_create",
            &std::io::Error::last_os_error().to_string(),
        ));
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    std::fs::File::from(fd.try_clone().map_err(|e| Krb5Error::local("memfd", &e.to_string()))?)
        .write_all(FRAGMENT)
        .map_err(|e| Krb5Error::local("memfd write", &e.to_string()))?;
    Ok(fd)
}

/// The list `krb5_get_default_config_files` returns, freed on drop.
struct DefaultConfigFiles(*mut *mut c_char);

impl DefaultConfigFiles {
    fn get() -> Result<Self, Krb5Error> {
        let mut files: *mut *mut c_char = std::ptr::null_mut();
        // SAFETY: files receives a NULL-terminated list of C strings, or stays NULL on error.
        let code = unsafe { ffi::krb5_get_default_config_files(&mut files) };
        if code != 0 || files.is_null() {
            return Err(Krb5Error {
                code,
                message: "cannot tell which krb5 configuration files to read".into(),
                during: "krb5_get_default_config_files",
            });
        }
        Ok(Self(files))
    }

    fn paths(&self) -> impl Iterator<Item = *const c_char> + '_ {
        (0..)
            // SAFETY: the list is NULL-terminated and live while self is; iteration stops at
            // the terminator, so no read goes past it.
            .map(|i| unsafe { *self.0.add(i) })
            .take_while(|p| !p.is_null())
            .map(|p| p.cast_const())
    }

    #[cfg(test)]
    fn names(&self) -> Vec<String> {
        self.paths()
            // SAFETY: every entry is a live C string (see paths).
            .map(|p| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for DefaultConfigFiles {
    fn drop(&mut self) {
        // SAFETY: the list came from krb5_get_default_config_files and is freed once.
        unsafe { ffi::krb5_free_config_files(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fragment_comes_after_the_files_a_default_context_reads() {
        let files = DefaultConfigFiles::get().unwrap();
        assert!(!files.names().is_empty(), "{:?}", files.names());
        let fragment = fragment_file().unwrap();
        let text = std::fs::read(format!("/proc/self/fd/{}", fragment.as_raw_fd())).unwrap();
        assert_eq!(text, FRAGMENT);
    }
}
