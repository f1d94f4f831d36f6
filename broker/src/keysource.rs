//! Reading a principal's current keys from the KDC without changing them.
//!
//! - [`Kadm5KeySource`] (`key_source = "kadmin"`, the default): the kadm5 client library talks to the
//!   remote kadmind as the broker's admin principal (which needs the `e` extract privilege), over one
//!   admin session reused across requests and re-established when it fails.
//! - [`KadminCliKeySource`] (`key_source = "kadmin-cli"`): runs MIT `kadmin` per request with
//!   `ktadd -norandkey`, writing into a memfd the child inherits (never a file). `kadmin -q` exits 0
//!   even when kadmind refused, so success is judged by what landed in the keytab. Slower (a process
//!   and a fresh authentication per request); kept as a fallback and as the base for `kadmin-local`.

use crate::kadm5::{Kadm5Session, KeyData};
use ktbroker_keytab::Keytab;
use ktbroker_keytab::memfd::{KeytabMemfd, clear_cloexec};
use ktbroker_keytab::{Entry, Key, Principal};
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
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

/// Where keys come from. A trait so the service can be unit-tested, and so further sources
/// (kadmin.local, a keytab store) slot in.
pub trait KeySource: Send + Sync + 'static {
    fn fetch(&self, principal: &str) -> impl Future<Output = Result<Keytab, KeySourceError>> + Send;
}

#[derive(Debug, Clone)]
pub struct KadminCliKeySource {
    pub kadmin_path: PathBuf,
    pub admin_principal: String,
    pub admin_keytab: PathBuf,
    pub krb5_config: Option<PathBuf>,
    pub timeout: Duration,
}

impl KeySource for KadminCliKeySource {
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

/// Keys through the kadm5 client library, one admin session shared by all requests.
#[derive(Clone)]
pub struct Kadm5KeySource {
    admin_principal: String,
    admin_keytab: PathBuf,
    timeout: Duration,
    session: Arc<Mutex<Option<Kadm5Session>>>,
}

impl Kadm5KeySource {
    pub fn new(admin_principal: String, admin_keytab: PathBuf, timeout: Duration) -> Self {
        Self {
            admin_principal,
            admin_keytab,
            timeout,
            session: Arc::new(Mutex::new(None)),
        }
    }

    /// Opens the admin session ahead of the first request; a failure is only logged (the next
    /// request tries again), so a broker can start while kadmind is briefly down.
    pub async fn warm_up(&self) {
        let this = self.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let mut session = this.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            this.ensure_open(&mut session).map(drop)
        })
        .await;
        match opened {
            Ok(Ok(())) => tracing::info!(admin = %self.admin_principal, "kadm5 admin session open"),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot open the kadm5 admin session yet"),
            Err(e) => tracing::error!(error = %e, "kadm5 warm-up task failed"),
        }
    }

    fn ensure_open<'a>(&self, session: &'a mut Option<Kadm5Session>) -> Result<&'a mut Kadm5Session, KeySourceError> {
        if session.is_none() {
            let opened = Kadm5Session::open(&self.admin_principal, &self.admin_keytab)
                .map_err(|e| KeySourceError::Unavailable(e.to_string()))?;
            *session = Some(opened);
        }
        Ok(session.as_mut().expect("just opened"))
    }

    /// Blocking: reads the keys, re-establishing the session once if the call failed for a reason
    /// other than "no such principal" or "not authorized" (expired ticket, kadmind restarted).
    fn read_keys(&self, principal: &str) -> Result<Vec<KeyData>, KeySourceError> {
        let mut session = self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut last_error = None;
        for _attempt in 0..2 {
            match self.ensure_open(&mut session)?.principal_keys(principal) {
                Ok(keys) => return Ok(keys),
                Err(e) if e.is_unknown_principal() => {
                    return Err(KeySourceError::NoSuchPrincipal(principal.to_owned()));
                }
                Err(e) if e.is_not_authorized() => return Err(KeySourceError::Refused(e.to_string())),
                Err(e) => {
                    tracing::warn!(error = %e, "kadm5 call failed; re-establishing the admin session");
                    *session = None;
                    last_error = Some(e);
                }
            }
        }
        Err(KeySourceError::Unavailable(
            last_error.map(|e| e.to_string()).unwrap_or_default(),
        ))
    }
}

impl KeySource for Kadm5KeySource {
    async fn fetch(&self, principal: &str) -> Result<Keytab, KeySourceError> {
        let this = self.clone();
        let name = principal.to_owned();
        let task = tokio::task::spawn_blocking(move || this.read_keys(&name));
        let keys = tokio::time::timeout(self.timeout, task)
            .await
            .map_err(|_| KeySourceError::Unavailable(format!("kadmind did not answer within {:?}", self.timeout)))?
            .map_err(|e| KeySourceError::Unavailable(format!("kadm5 task failed: {e}")))??;
        keytab_from_keys(principal, keys)
    }
}

/// Builds keytab entries (timestamped now, name type KRB5_NT_PRINCIPAL) from keys read from the KDC.
fn keytab_from_keys(principal: &str, keys: Vec<KeyData>) -> Result<Keytab, KeySourceError> {
    let (name, realm) = principal
        .rsplit_once('@')
        .ok_or_else(|| KeySourceError::Refused(format!("principal {principal} has no realm")))?;
    let principal = Principal::new(name.split('/').map(str::to_owned).collect(), realm);
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys {
        let enctype = u16::try_from(key.enctype)
            .map_err(|_| KeySourceError::Unavailable(format!("the KDC returned enctype {}", key.enctype)))?;
        let contents: Zeroizing<Vec<u8>> = key.contents;
        entries.push(Entry {
            principal: principal.clone(),
            timestamp,
            kvno: key.kvno,
            key: Key { enctype, contents },
        });
    }
    if entries.is_empty() {
        return Err(KeySourceError::Unavailable(format!(
            "the KDC holds no keys for {principal}"
        )));
    }
    Ok(Keytab { entries })
}

/// The key source a broker was configured with.
#[derive(Clone)]
pub enum ConfiguredKeySource {
    Kadm5(Kadm5KeySource),
    KadminCli(KadminCliKeySource),
}

impl KeySource for ConfiguredKeySource {
    async fn fetch(&self, principal: &str) -> Result<Keytab, KeySourceError> {
        match self {
            Self::Kadm5(source) => source.fetch(principal).await,
            Self::KadminCli(source) => source.fetch(principal).await,
        }
    }
}
