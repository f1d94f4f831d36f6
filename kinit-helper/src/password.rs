//! Reading the password: from the terminal without echo, or from stdin when stdin is not a
//! terminal (for scripts and the PAM module). Never from argv or the environment.

use crate::HelperError;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use zeroize::Zeroizing;

/// Longest password accepted (the broker refuses longer ones too).
pub use ktbroker_codes::MAX_PASSWORD_LEN;

/// Reads one password: prompts on the terminal if stdin is one, else reads stdin up to the
/// first newline. The result is wiped on drop.
pub fn read_password(prompt: &str) -> Result<Zeroizing<Vec<u8>>, HelperError> {
    let password = if std::io::stdin().is_terminal() {
        let typed = rpassword::prompt_password(prompt).map_err(|e| HelperError::Password(e.to_string()))?;
        Zeroizing::new(typed.into_bytes())
    } else {
        read_line_from_fd(std::io::stdin().as_fd())?
    };
    if password.len() > MAX_PASSWORD_LEN {
        return Err(HelperError::Password(format!("longer than {MAX_PASSWORD_LEN} bytes")));
    }
    Ok(password)
}

/// Reads one password from file descriptor `fd` (`--password-fd N`: a pipe the caller set up),
/// up to the first newline, then closes it.
pub fn read_password_from_fd(fd: i32) -> Result<Zeroizing<Vec<u8>>, HelperError> {
    use std::os::fd::{FromRawFd, OwnedFd};
    if fd < 0 {
        return Err(HelperError::Password(format!("{fd} is not a file descriptor")));
    }
    if rustix::io::fcntl_getfd(
        // SAFETY: borrowed only for this check; fcntl on a closed number fails with EBADF.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
    )
    .is_err()
    {
        return Err(HelperError::Password(format!("file descriptor {fd} is not open")));
    }
    // SAFETY: the caller handed us this open descriptor for the password; we take ownership and
    // close it after reading, so nothing else in this process uses it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    read_line_from_fd(&owned)
}

/// Reads up to the first `\n` (or EOF) straight from the fd into a buffer that is never
/// reallocated, so no stray copy of the password is left in freed memory. `\r\n` is accepted.
fn read_line_from_fd(fd: impl std::os::fd::AsFd) -> Result<Zeroizing<Vec<u8>>, HelperError> {
    let mut buf = Zeroizing::new(vec![0u8; MAX_PASSWORD_LEN + 2]);
    let mut len = 0;
    while len < buf.len() {
        let n = rustix::io::read(&fd, &mut buf[len..]).map_err(|e| HelperError::Password(e.to_string()))?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].contains(&b'\n') {
            break;
        }
    }
    let end = buf[..len].iter().position(|&b| b == b'\n').unwrap_or(len);
    let end = if end > 0 && buf[end - 1] == b'\r' { end - 1 } else { end };
    if len == buf.len() && end == len {
        return Err(HelperError::Password(format!("longer than {MAX_PASSWORD_LEN} bytes")));
    }
    let mut password = Zeroizing::new(Vec::with_capacity(end));
    password.extend_from_slice(&buf[..end]);
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_from(input: &[u8]) -> Result<Zeroizing<Vec<u8>>, HelperError> {
        let (reader, writer) = std::io::pipe().unwrap();
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || {
            let mut writer = writer;
            let _ = writer.write_all(&input);
        });
        let result = read_line_from_fd(&reader);
        drop(reader); // lets a writer blocked on a full pipe fail instead of hanging
        feeder.join().unwrap();
        result
    }

    #[test]
    fn reads_the_first_line_only() {
        assert_eq!(read_from(b"alicepw\nignored\n").unwrap().as_slice(), b"alicepw");
        assert_eq!(read_from(b"crlf\r\n").unwrap().as_slice(), b"crlf");
        assert_eq!(read_from(b"no newline").unwrap().as_slice(), b"no newline");
        assert_eq!(read_from(b"").unwrap().as_slice(), b"");
    }

    #[test]
    fn refuses_overlong_passwords() {
        assert!(read_from(&vec![b'x'; MAX_PASSWORD_LEN]).is_ok());
        assert!(read_from(&vec![b'x'; 1024 * 1024]).is_err());
    }
}
