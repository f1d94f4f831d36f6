//! A keytab file that exists only in memory: a memfd a child process (kadmin, kinit) opens as
//! `FILE:/proc/self/fd/N`. MIT's keytab code seeks, so a pipe will not do; a memfd does.
//!
//! The fd is close-on-exec; the one child meant to see it clears that flag for itself in
//! `pre_exec` with [`clear_cloexec`], so concurrently spawned children never inherit it. The
//! contents are overwritten with zeros and truncated when the value is wiped or dropped.

use rustix::fs::{MemfdFlags, fstat, ftruncate, memfd_create};
use rustix::io::{pread, pwrite};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use zeroize::Zeroizing;

/// Largest keytab read back from a memfd (a user's keytab is a few hundred bytes).
pub const MAX_MEMFD_KEYTAB: u64 = 1024 * 1024;

pub struct KeytabMemfd {
    fd: OwnedFd,
}

impl std::fmt::Debug for KeytabMemfd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeytabMemfd(fd {}, <redacted>)", self.fd.as_raw_fd())
    }
}

impl KeytabMemfd {
    /// A valid keytab with no entries (MIT's writer refuses a zero-length file but appends to this).
    pub fn empty() -> io::Result<Self> {
        Self::with_contents(&crate::FORMAT_0502)
    }

    /// A memfd holding `bytes`.
    pub fn with_contents(bytes: &[u8]) -> io::Result<Self> {
        let fd = memfd_create("ktbroker-keytab", MemfdFlags::CLOEXEC)?;
        let mut written = 0;
        while written < bytes.len() {
            written += pwrite(&fd, &bytes[written..], written as u64)?;
        }
        Ok(Self { fd })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The keytab name a child that inherited the fd uses: `FILE:/proc/self/fd/N`.
    pub fn child_keytab_name(&self) -> String {
        format!("FILE:/proc/self/fd/{}", self.raw_fd())
    }

    /// Reads the whole file into a zeroizing buffer, refusing files over [`MAX_MEMFD_KEYTAB`].
    pub fn read(&self) -> io::Result<Zeroizing<Vec<u8>>> {
        let size = fstat(&self.fd)?.st_size as u64;
        if size > MAX_MEMFD_KEYTAB {
            return Err(io::Error::other(format!("keytab of {size} bytes exceeds the limit")));
        }
        let mut bytes = Zeroizing::new(vec![0u8; size as usize]);
        let mut done = 0;
        while done < bytes.len() {
            match pread(&self.fd, &mut bytes[done..], done as u64)? {
                0 => break,
                n => done += n,
            }
        }
        bytes.truncate(done);
        Ok(bytes)
    }

    /// Overwrites the contents with zeros and truncates the file to nothing.
    pub fn wipe(&self) -> io::Result<()> {
        let size = fstat(&self.fd)?.st_size as usize;
        let zeros = vec![0u8; size.min(MAX_MEMFD_KEYTAB as usize)];
        let mut done = 0;
        while done < zeros.len() {
            done += pwrite(&self.fd, &zeros[done..], done as u64)?;
        }
        ftruncate(&self.fd, 0)?;
        Ok(())
    }
}

impl Drop for KeytabMemfd {
    fn drop(&mut self) {
        let _ = self.wipe();
    }
}

/// Clears close-on-exec on `fd`, for use inside `pre_exec` so that exactly the child being
/// spawned inherits the memfd. Only calls fcntl(2), which is async-signal-safe.
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl(F_SETFD) takes an int and touches no memory of ours; a bad fd gives EBADF.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_reads_and_wipes_contents() {
        let memfd = KeytabMemfd::with_contents(b"\x05\x02secret").unwrap();
        assert_eq!(memfd.read().unwrap().as_slice(), b"\x05\x02secret");
        assert!(memfd.child_keytab_name().starts_with("FILE:/proc/self/fd/"));
        memfd.wipe().unwrap();
        assert!(memfd.read().unwrap().is_empty());
        assert_eq!(
            KeytabMemfd::empty().unwrap().read().unwrap().as_slice(),
            &crate::FORMAT_0502
        );
        assert!(format!("{memfd:?}").contains("redacted"));
    }

    #[test]
    fn is_close_on_exec_until_cleared() {
        let memfd = KeytabMemfd::empty().unwrap();
        let flags = || unsafe_free_getfd(memfd.raw_fd());
        assert_eq!(flags() & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        clear_cloexec(memfd.raw_fd()).unwrap();
        assert_eq!(flags() & libc::FD_CLOEXEC, 0);
    }

    fn unsafe_free_getfd(fd: RawFd) -> i32 {
        // SAFETY: F_GETFD reads the fd flags only.
        #[allow(unsafe_code)]
        unsafe {
            libc::fcntl(fd, libc::F_GETFD)
        }
    }
}
