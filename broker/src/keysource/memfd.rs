//! A keytab file that exists only in memory, for a kadmin child to write into: a memfd the child
//! gets as its standard input and opens as `FILE:/proc/self/fd/0` (MIT's keytab code seeks, so a
//! pipe will not do; a memfd does). Only the one child spawned with it sees it: the broker's own
//! descriptor is close-on-exec. The contents are overwritten with zeros and truncated when the
//! value is wiped or dropped.

use rustix::fs::{MemfdFlags, fstat, ftruncate, memfd_create};
use rustix::io::{pread, pwrite};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use zeroize::Zeroizing;

/// Largest keytab read back from a memfd (a user's keytab is a few hundred bytes).
pub const MAX_MEMFD_KEYTAB: u64 = 1024 * 1024;

/// The name under which the child opens the memfd it got as standard input.
pub const KEYTAB_NAME_IN_CHILD: &str = "FILE:/proc/self/fd/0";

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
        let fd = memfd_create("ktbroker-keytab", MemfdFlags::CLOEXEC)?;
        let header = ktbroker_keytab::FORMAT_0502;
        let mut written = 0;
        while written < header.len() {
            written += pwrite(&fd, &header[written..], written as u64)?;
        }
        Ok(Self { fd })
    }

    /// A second descriptor of the same file, to be the child's standard input.
    pub fn as_child_stdin(&self) -> io::Result<Stdio> {
        Ok(Stdio::from(self.fd.try_clone()?))
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
        self.overwrite_with_zeros()?;
        ftruncate(&self.fd, 0)?;
        Ok(())
    }

    /// Zeroes every byte in place, so that no page the file gives back still holds a key.
    fn overwrite_with_zeros(&self) -> io::Result<()> {
        let size = fstat(&self.fd)?.st_size as usize;
        let zeros = vec![0u8; size.min(MAX_MEMFD_KEYTAB as usize)];
        let mut done = 0;
        while done < zeros.len() {
            done += pwrite(&self.fd, &zeros[done..], done as u64)?;
        }
        Ok(())
    }
}

impl Drop for KeytabMemfd {
    fn drop(&mut self) {
        let _ = self.wipe();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn write(memfd: &KeytabMemfd, bytes: &[u8]) {
        pwrite(&memfd.fd, bytes, 0).unwrap();
    }

    #[test]
    fn starts_as_an_empty_keytab_and_reads_back_what_was_written() {
        let memfd = KeytabMemfd::empty().unwrap();
        assert_eq!(memfd.read().unwrap().as_slice(), &ktbroker_keytab::FORMAT_0502);
        write(&memfd, b"\x05\x02secret");
        assert_eq!(memfd.read().unwrap().as_slice(), b"\x05\x02secret");
        assert!(format!("{memfd:?}").contains("redacted"));
    }

    #[test]
    fn wiping_zeroes_every_byte_then_truncates() {
        let memfd = KeytabMemfd::empty().unwrap();
        write(&memfd, b"\x05\x02secret");
        memfd.overwrite_with_zeros().unwrap();
        assert_eq!(memfd.read().unwrap().as_slice(), [0u8; 8]);
        write(&memfd, b"\x05\x02secret");
        memfd.wipe().unwrap();
        assert!(memfd.read().unwrap().is_empty());
    }

    #[test]
    fn dropping_wipes_the_file_other_descriptors_still_see() {
        let memfd = KeytabMemfd::empty().unwrap();
        write(&memfd, b"\x05\x02secret");
        let witness = memfd.fd.try_clone().unwrap();
        drop(memfd);
        assert_eq!(fstat(&witness).unwrap().st_size, 0, "dropped means wiped");
    }

    #[test]
    fn is_close_on_exec_so_that_only_the_chosen_child_gets_it() {
        let memfd = KeytabMemfd::empty().unwrap();
        let flags = rustix::io::fcntl_getfd(memfd.fd.as_fd()).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    }
}
