//! Reading a principal's current keys from the KDC without changing them.
//!
//! [`KadminKeySource`] runs MIT `kadmin` against the remote kadmind as the broker's admin principal
//! (which needs the `e` extract privilege) with `ktadd -norandkey`, writing into a memfd the child
//! inherits: the keytab never touches a filesystem. `kadmin -q` exits 0 even when kadmind refused,
//! so success is judged by what landed in the keytab, not by the exit code.

use ktbroker_keytab::Keytab;
use rustix::fs::{MemfdFlags, memfd_create};
use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    #[error("principal {0} does not exist in the KDC")]
    NoSuchPrincipal(String),
    #[error("the KDC refused to hand out keys: {0}")]
    Refused(String),
    #[error("key source unavailable: {0}")]
    Unavailable(String),
}

/// Where keys come from. A trait so the service can be unit-tested, and so later sources (kadm5
/// library, kadmin.local, a keytab store) slot in.
pub trait KeySource: Send + Sync + 'static {
    fn fetch(&self, principal: &str) -> impl Future<Output = Result<Keytab, KeySourceError>> + Send;
}

#[derive(Debug, Clone)]
pub struct KadminKeySource {
    pub kadmin_path: PathBuf,
    pub admin_principal: String,
    pub admin_keytab: PathBuf,
    pub krb5_config: Option<PathBuf>,
    pub timeout: Duration,
}

impl KeySource for KadminKeySource {
    async fn fetch(&self, principal: &str) -> Result<Keytab, KeySourceError> {
        // The principal reaches kadmin's own query parser: nothing but a plain name may pass.
        if principal.is_empty() || !principal.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\')) {
            return Err(KeySourceError::Refused("principal name has characters kadmin would parse".into()));
        }
        let memfd = KeytabMemfd::new().map_err(|e| KeySourceError::Unavailable(format!("memfd: {e}")))?;
        let fd = memfd.fd.as_raw_fd();
        let query = format!("ktadd -norandkey -k FILE:/proc/self/fd/{fd} {principal}");

        let mut command = tokio::process::Command::new(&self.kadmin_path);
        command
            .arg("-p")
            .arg(&self.admin_principal)
            .arg("-k")
            .arg("-t")
            .arg(&self.admin_keytab)
            .arg("-q")
            .arg(&query)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("KRB5CCNAME", "MEMORY:ktbroker-kadmin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(krb5_config) = self.krb5_config.clone().or_else(|| std::env::var_os("KRB5_CONFIG").map(PathBuf::from)) {
            command.env("KRB5_CONFIG", krb5_config);
        }
        // SAFETY: the closure runs in the forked child before exec and only calls fcntl(2), which
        // is async-signal-safe; it allocates nothing and touches no lock.
        unsafe {
            command.pre_exec(move || inherit_fd(fd));
        }

        let output = tokio::time::timeout(self.timeout, command.output())
            .await
            .map_err(|_| KeySourceError::Unavailable(format!("kadmin did not finish within {:?}", self.timeout)))?
            .map_err(|e| KeySourceError::Unavailable(format!("cannot run {}: {e}", self.kadmin_path.display())))?;
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();

        let bytes = memfd.read_and_wipe().map_err(|e| KeySourceError::Unavailable(format!("reading memfd: {e}")))?;
        let mut keytab =
            Keytab::parse(&bytes).map_err(|e| KeySourceError::Unavailable(format!("kadmin wrote a bad keytab: {e}")))?;
        keytab.retain(|entry| entry.principal.to_string() == principal);
        if !keytab.entries.is_empty() {
            return Ok(keytab);
        }
        tracing::warn!(principal, status = ?output.status, kadmin_stderr = %stderr, "kadmin extracted no keys");
        if stderr.contains("does not exist") {
            Err(KeySourceError::NoSuchPrincipal(principal.to_owned()))
        } else if stderr.contains("privilege") || stderr.contains("not authorized") {
            Err(KeySourceError::Refused(last_line(&stderr)))
        } else {
            Err(KeySourceError::Unavailable(last_line(&stderr)))
        }
    }
}

fn last_line(text: &str) -> String {
    text.lines().last().unwrap_or("kadmin failed without a message").to_owned()
}

/// Clears close-on-exec on `fd` so the exec'd child keeps it. Meant for `pre_exec` only.
fn inherit_fd(fd: i32) -> std::io::Result<()> {
    // SAFETY: fcntl(F_SETFD) on an fd number is async-signal-safe; a bad fd yields EBADF, not UB.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// An anonymous in-memory file holding just the keytab version header, for kadmin to append to.
/// Closed with close-on-exec set, so only the one child it is handed to inherits it.
struct KeytabMemfd {
    fd: OwnedFd,
}

impl KeytabMemfd {
    fn new() -> std::io::Result<Self> {
        let fd = memfd_create("ktbroker-keytab", MemfdFlags::CLOEXEC)?;
        // MIT's keytab writer refuses an empty file; a header-only keytab is a valid empty one.
        rustix::io::write(&fd, &ktbroker_keytab::FORMAT_0502)?;
        Ok(Self { fd })
    }

    /// Reads the whole file, then overwrites it with zeros and truncates it.
    fn read_and_wipe(self) -> std::io::Result<Zeroizing<Vec<u8>>> {
        let size = rustix::fs::fstat(&self.fd)?.st_size as u64;
        if size > ktbroker_proto::MAX_KEYTAB_SIZE {
            return Err(std::io::Error::other(format!("keytab of {size} bytes exceeds the limit")));
        }
        let mut bytes = Zeroizing::new(vec![0u8; size as usize]);
        let mut done = 0;
        while done < bytes.len() {
            match rustix::io::pread(&self.fd, &mut bytes[done..], done as u64)? {
                0 => break,
                n => done += n,
            }
        }
        bytes.truncate(done);
        let zeros = vec![0u8; size as usize];
        rustix::io::pwrite(&self.fd, &zeros, 0)?;
        rustix::fs::ftruncate(&self.fd, 0)?;
        Ok(bytes)
    }
}
