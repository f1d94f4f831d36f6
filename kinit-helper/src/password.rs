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

/// An empty password is refused before anything is sent: the directory would take an empty
/// simple bind for an anonymous one, and the broker would count it as a failed login. (The
/// readers return it: netdisk tells "no password given" apart as "login required".)
pub fn require_non_empty(password: Zeroizing<Vec<u8>>) -> Result<Zeroizing<Vec<u8>>, HelperError> {
    if password.is_empty() {
        return Err(HelperError::Password(
            "the password is empty (nothing was sent to the broker)".into(),
        ));
    }
    Ok(password)
}

/// Reads one password from file descriptor `fd` (`--password-fd N`: a pipe or a file the caller
/// set up), up to the first newline. The descriptor is opened afresh through `/proc/self/fd/N`,
/// which needs no claim on a number this process did not open itself (and so no `unsafe`).
pub fn read_password_from_fd(fd: i32) -> Result<Zeroizing<Vec<u8>>, HelperError> {
    read_line_from_fd(&open_password_fd(fd)?)
}

/// Where a login's passwords come from: the terminal or stdin ([`read_password`]), or
/// `--password-fd N`, opened once so that successive lines (old, new, new again) follow on.
pub enum PasswordSource {
    Stdin,
    Fd(std::fs::File),
}

impl PasswordSource {
    pub fn new(fd: Option<i32>) -> Result<Self, HelperError> {
        Ok(match fd {
            Some(fd) => Self::Fd(open_password_fd(fd)?),
            None => Self::Stdin,
        })
    }

    /// The next password (the prompt is shown only on a terminal).
    pub fn read(&self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, HelperError> {
        match self {
            Self::Stdin => read_password(prompt),
            Self::Fd(file) => read_line_from_fd(file),
        }
    }
}

fn open_password_fd(fd: i32) -> Result<std::fs::File, HelperError> {
    if fd < 0 {
        return Err(HelperError::Password(format!("{fd} is not a file descriptor")));
    }
    std::fs::File::open(format!("/proc/self/fd/{fd}")).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => HelperError::Password(format!("file descriptor {fd} is not open")),
        _ => HelperError::Password(format!("file descriptor {fd}: {e} (give a pipe or a file)")),
    })
}

/// Reads up to the first `\n` (or EOF) straight from the fd into a buffer that is never
/// reallocated, so no stray copy of the password is left in freed memory. `\r\n` is accepted.
/// One byte at a time: nothing past the newline is consumed, so the next line (a new password,
/// after the old) is still there for the next read.
fn read_line_from_fd(fd: impl std::os::fd::AsFd) -> Result<Zeroizing<Vec<u8>>, HelperError> {
    let mut buf = Zeroizing::new(vec![0u8; MAX_PASSWORD_LEN + 2]);
    let mut len = 0;
    while len < buf.len() {
        let n = rustix::io::read(&fd, &mut buf[len..=len]).map_err(|e| HelperError::Password(e.to_string()))?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[len - 1] == b'\n' {
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
    fn an_empty_password_is_refused_before_anything_is_sent() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "\n").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let read = read_password_from_fd(file.as_raw_fd()).unwrap();
        let error = require_non_empty(read).unwrap_err();
        assert_eq!(error.code(), "password");
        assert!(error.to_string().contains("empty"), "{error}");
    }

    #[test]
    fn successive_lines_are_successive_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "old\nnew\nnew\n").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let source = PasswordSource::Fd(file);
        for expected in ["old", "new", "new", ""] {
            assert_eq!(source.read("").unwrap().as_slice(), expected.as_bytes());
        }
        let (reader, mut writer) = std::io::pipe().unwrap();
        writer.write_all(b"one\ntwo\n").unwrap();
        drop(writer);
        assert_eq!(read_line_from_fd(&reader).unwrap().as_slice(), b"one");
        assert_eq!(read_line_from_fd(&reader).unwrap().as_slice(), b"two");
    }

    #[test]
    fn refuses_overlong_passwords() {
        assert!(read_from(&vec![b'x'; MAX_PASSWORD_LEN]).is_ok());
        assert!(read_from(&vec![b'x'; 1024 * 1024]).is_err());
    }
}
