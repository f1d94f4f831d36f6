//! Reading a principal's current keys from the KDC without changing them.
//!
//! [`KadminKeySource`] runs MIT `kadmin` against the remote kadmind as the broker's admin principal
//! (which needs the `e` extract privilege) with `ktadd -norandkey`, writing into a memfd the child
//! inherits: the keytab never touches a filesystem. `kadmin -q` exits 0 even when kadmind refused,
//! so success is judged by what landed in the keytab, not by the exit code.

use ktbroker_keytab::Keytab;
use ktbroker_keytab::memfd::{KeytabMemfd, clear_cloexec};
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

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
        if principal.is_empty()
            || !principal
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\'))
        {
            return Err(KeySourceError::Refused(
                "principal name has characters kadmin would parse".into(),
            ));
        }
        let memfd = KeytabMemfd::empty().map_err(|e| KeySourceError::Unavailable(format!("memfd: {e}")))?;
        let fd = memfd.raw_fd();
        let query = format!("ktadd -norandkey -k {} {principal}", memfd.child_keytab_name());

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
        if let Some(krb5_config) = self
            .krb5_config
            .clone()
            .or_else(|| std::env::var_os("KRB5_CONFIG").map(PathBuf::from))
        {
            command.env("KRB5_CONFIG", krb5_config);
        }
        // SAFETY: the closure runs in the forked child before exec and only calls fcntl(2), which
        // is async-signal-safe; it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(move || clear_cloexec(fd));
        }

        let output = tokio::time::timeout(self.timeout, command.output())
            .await
            .map_err(|_| KeySourceError::Unavailable(format!("kadmin did not finish within {:?}", self.timeout)))?
            .map_err(|e| KeySourceError::Unavailable(format!("cannot run {}: {e}", self.kadmin_path.display())))?;
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();

        let bytes = memfd
            .read()
            .map_err(|e| KeySourceError::Unavailable(format!("reading memfd: {e}")))?;
        drop(memfd); // wipes it
        let mut keytab = Keytab::parse(&bytes)
            .map_err(|e| KeySourceError::Unavailable(format!("kadmin wrote a bad keytab: {e}")))?;
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
    text.lines()
        .last()
        .unwrap_or("kadmin failed without a message")
        .to_owned()
}
