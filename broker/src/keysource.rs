//! Reading a principal's current keys from the KDC without changing them, and, separately, the
//! two admin operations that do change the KDC: first-login provisioning and key rotation.
//!
//! - [`Kadm5KeySource`] (`source = "kadmin"`, the default): the kadm5 client library talks to the
//!   remote kadmind as the broker's admin principal (`e` privilege to read keys; `a` to provision,
//!   `c` to rotate), over a few admin sessions reused across requests; a session is checked out
//!   for one call, so a call that hangs holds only its own (see [`kadm5_source`]).
//! - [`KadminProcessKeySource`] (`source = "kadmin-cli"` or `"kadmin-local"`): runs MIT `kadmin`
//!   (remote, authenticated with the admin keytab) or `kadmin.local` (on the KDC host, reading the
//!   database directly) per request, with `ktadd -norandkey` writing into a memfd the child
//!   inherits (never a file). `kadmin -q` exits 0 even when it failed, so success is judged by
//!   what landed in the keytab or by kadmin's own success line.
//! - [`StoreKeySource`] (`source = "store"`): a directory of pre-exported keytabs, one per
//!   principal, for sites that do not let the broker talk to kadmind. Cannot provision or rotate.

use crate::config::KeysConfig;
use crate::kadm5::KeyData;
mod kadm5_source;
mod memfd;

pub use kadm5_source::{Kadm5Admin, Kadm5KeySource};

use ktbroker_keytab::Keytab;
use ktbroker_keytab::{Entry, Key, Principal};
use memfd::{KEYTAB_NAME_IN_CHILD, KeytabMemfd};
use std::future::Future;
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
    #[error("this key source cannot {0}")]
    Unsupported(&'static str),
}

/// Where keys come from. A trait so the service can be unit-tested with a fake.
pub trait KeySource: Send + Sync + 'static {
    /// The principal's keys, unchanged.
    fn fetch(&self, principal: &str) -> impl Future<Output = Result<Keytab, KeySourceError>> + Send;
    /// Creates the principal with a random key and `+requires_preauth` (first-login provisioning).
    fn create(&self, principal: &str) -> impl Future<Output = Result<(), KeySourceError>> + Send;
    /// Gives the principal a new random key; returns the new kvno.
    fn rotate(&self, principal: &str) -> impl Future<Output = Result<u32, KeySourceError>> + Send;
}

/// Which kadmin program runs, and how it authenticates.
#[derive(Debug, Clone)]
pub enum KadminProgram {
    /// `kadmin` against the remote kadmind, as the admin principal with its keytab.
    Remote {
        kadmin_path: PathBuf,
        admin_principal: String,
        admin_keytab: PathBuf,
    },
    /// `kadmin.local` on the KDC host; `kdc_profile` is the KDC's kdc.conf (KRB5_KDC_PROFILE).
    Local {
        kadmin_local_path: PathBuf,
        kdc_profile: Option<PathBuf>,
    },
}

#[derive(Debug, Clone)]
pub struct KadminProcessKeySource {
    pub program: KadminProgram,
    pub realm: String,
    pub timeout: Duration,
}

/// What a kadmin run printed.
struct KadminOutput {
    stdout: String,
    stderr: String,
}

impl KadminProcessKeySource {
    /// Runs one query. `memfd`, when given (for `ktadd`), is the child's standard input.
    async fn run(&self, query: &str, memfd: Option<&KeytabMemfd>) -> Result<KadminOutput, KeySourceError> {
        let (path, mut command) = match &self.program {
            KadminProgram::Remote {
                kadmin_path,
                admin_principal,
                admin_keytab,
            } => {
                let mut command = tokio::process::Command::new(kadmin_path);
                command
                    .arg("-p")
                    .arg(admin_principal)
                    .arg("-k")
                    .arg("-t")
                    .arg(admin_keytab);
                (kadmin_path, command)
            }
            KadminProgram::Local {
                kadmin_local_path,
                kdc_profile,
            } => {
                let mut command = tokio::process::Command::new(kadmin_local_path);
                if let Some(profile) = kdc_profile {
                    command.env("KRB5_KDC_PROFILE", profile);
                }
                (kadmin_local_path, command)
            }
        };
        command
            .arg("-r")
            .arg(&self.realm)
            .arg("-q")
            .arg(query)
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            // kadmin reports only in text: keep that text MIT's untranslated English, whatever
            // the daemon's locale, so that the few phrases judged below mean what they say.
            .env("LC_ALL", "C")
            .env_remove("LANGUAGE")
            .env("KRB5CCNAME", "MEMORY:ktbroker-kadmin")
            .env_remove("KRB5_KTNAME")
            .env_remove("KRB5_CLIENT_KTNAME")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in crate::systemd::VARIABLES {
            command.env_remove(name); // kadmin must not talk to systemd in the broker's name
        }
        // kadmin -q reads nothing from stdin: with -k (or as kadmin.local) it never prompts.
        let stdin = match memfd {
            Some(memfd) => memfd
                .as_child_stdin()
                .map_err(|e| KeySourceError::Unavailable(format!("memfd: {e}")))?,
            None => Stdio::null(),
        };
        command.stdin(stdin);
        let output = tokio::time::timeout(self.timeout, command.output())
            .await
            .map_err(|_| KeySourceError::Unavailable(format!("kadmin did not finish within {:?}", self.timeout)))?
            .map_err(|e| KeySourceError::Unavailable(format!("cannot run {}: {e}", path.display())))?;
        Ok(KadminOutput {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// The principal reaches kadmin's own query parser: nothing but a plain name may pass.
fn check_kadmin_name(principal: &str) -> Result<(), KeySourceError> {
    if principal.is_empty()
        || !principal
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\'))
    {
        return Err(KeySourceError::Refused(
            "principal name has characters kadmin would parse".into(),
        ));
    }
    Ok(())
}

/// Classifies a kadmin failure from its stderr.
fn kadmin_error(principal: &str, stderr: &str) -> KeySourceError {
    if stderr.contains("does not exist") {
        KeySourceError::NoSuchPrincipal(principal.to_owned())
    } else if stderr.contains("privilege") || stderr.contains("not authorized") {
        KeySourceError::Refused(last_line(stderr))
    } else {
        KeySourceError::Unavailable(last_line(stderr))
    }
}

impl KeySource for KadminProcessKeySource {
    async fn fetch(&self, principal: &str) -> Result<Keytab, KeySourceError> {
        check_kadmin_name(principal)?;
        let memfd = KeytabMemfd::empty().map_err(|e| KeySourceError::Unavailable(format!("memfd: {e}")))?;
        let query = format!("ktadd -norandkey -k {KEYTAB_NAME_IN_CHILD} {principal}");
        let output = self.run(&query, Some(&memfd)).await?;
        let stderr = output.stderr;

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
        tracing::warn!(principal, kadmin_stderr = %stderr, "kadmin extracted no keys");
        Err(kadmin_error(principal, &stderr))
    }

    async fn create(&self, principal: &str) -> Result<(), KeySourceError> {
        check_kadmin_name(principal)?;
        let output = self
            .run(&format!("addprinc -randkey +requires_preauth {principal}"), None)
            .await?;
        if output.stdout.contains("created") || output.stderr.contains(&format!("\"{principal}\" created")) {
            return Ok(());
        }
        tracing::warn!(principal, kadmin_stderr = %output.stderr, "kadmin did not create the principal");
        Err(kadmin_error(principal, &output.stderr))
    }

    async fn rotate(&self, principal: &str) -> Result<u32, KeySourceError> {
        check_kadmin_name(principal)?;
        let output = self.run(&format!("cpw -randkey {principal}"), None).await?;
        let randomized = output.stdout.contains("randomized") || output.stderr.contains("randomized");
        if !randomized {
            tracing::warn!(principal, kadmin_stderr = %output.stderr, "kadmin did not randomize the key");
            return Err(kadmin_error(principal, &output.stderr));
        }
        let info = self.run(&format!("getprinc {principal}"), None).await?;
        info.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("Key: vno "))
            .filter_map(|rest| rest.split(',').next()?.trim().parse().ok())
            .max()
            .ok_or_else(|| kadmin_error(principal, &info.stderr))
    }
}

fn last_line(text: &str) -> String {
    text.lines()
        .last()
        .unwrap_or("kadmin failed without a message")
        .to_owned()
}

/// Builds keytab entries (timestamped now, name type KRB5_NT_PRINCIPAL) from keys read from the KDC.
pub(crate) fn keytab_from_keys(principal: &str, keys: Vec<KeyData>) -> Result<Keytab, KeySourceError> {
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

/// The key source a tenant was configured with.
#[derive(Clone)]
pub enum ConfiguredKeySource {
    Kadm5(Kadm5KeySource),
    Process(KadminProcessKeySource),
    Store(StoreKeySource),
}

impl ConfiguredKeySource {
    pub fn from_config(config: &KeysConfig, realm: &str) -> Self {
        match config.clone() {
            KeysConfig::Kadmin {
                admin_principal,
                admin_keytab,
                timeout,
                sessions,
            } => Self::Kadm5(Kadm5KeySource::new(
                Kadm5Admin {
                    principal: admin_principal,
                    keytab: admin_keytab,
                    realm: realm.to_owned(),
                },
                timeout,
                sessions,
            )),
            KeysConfig::KadminCli {
                kadmin_path,
                admin_principal,
                admin_keytab,
                timeout,
            } => Self::Process(KadminProcessKeySource {
                program: KadminProgram::Remote {
                    kadmin_path,
                    admin_principal,
                    admin_keytab,
                },
                realm: realm.to_owned(),
                timeout,
            }),
            KeysConfig::KadminLocal {
                kadmin_local_path,
                kdc_profile,
                timeout,
            } => Self::Process(KadminProcessKeySource {
                program: KadminProgram::Local {
                    kadmin_local_path,
                    kdc_profile,
                },
                realm: realm.to_owned(),
                timeout,
            }),
            KeysConfig::Store { dir } => Self::Store(StoreKeySource { dir }),
        }
    }

    /// Opens long-lived sessions ahead of the first request (kadm5 only; failures only logged).
    pub async fn warm_up(&self) {
        if let Self::Kadm5(source) = self {
            source.warm_up().await;
        }
    }
}

impl KeySource for ConfiguredKeySource {
    async fn fetch(&self, principal: &str) -> Result<Keytab, KeySourceError> {
        match self {
            Self::Kadm5(source) => source.fetch(principal).await,
            Self::Process(source) => source.fetch(principal).await,
            Self::Store(source) => source.fetch(principal).await,
        }
    }

    async fn create(&self, principal: &str) -> Result<(), KeySourceError> {
        match self {
            Self::Kadm5(source) => source.create(principal).await,
            Self::Process(source) => source.create(principal).await,
            Self::Store(source) => source.create(principal).await,
        }
    }

    async fn rotate(&self, principal: &str) -> Result<u32, KeySourceError> {
        match self {
            Self::Kadm5(source) => source.rotate(principal).await,
            Self::Process(source) => source.rotate(principal).await,
            Self::Store(source) => source.rotate(principal).await,
        }
    }
}

/// Pre-exported keytabs: `DIR/<principal>.keytab`, with `/` in the principal written as `%2F`
/// (e.g. `alice%2Fnetdisk@EXAMPLE.COM.keytab`). Each file must be a regular file owned by the
/// broker's user and readable by nobody else; it is opened without following symlinks.
#[derive(Debug, Clone)]
pub struct StoreKeySource {
    pub dir: PathBuf,
}

impl StoreKeySource {
    pub fn file_name(principal: &str) -> String {
        format!("{}.keytab", principal.replace('/', "%2F"))
    }

    fn read(&self, principal: &str) -> Result<Keytab, KeySourceError> {
        use std::io::Read;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        if principal.is_empty() || principal.starts_with('.') || principal.contains(['\0', '%']) {
            return Err(KeySourceError::Refused("principal name unfit for a file name".into()));
        }
        let path = self.dir.join(Self::file_name(principal));
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeySourceError::NoSuchPrincipal(principal.to_owned()));
            }
            Err(e) => return Err(KeySourceError::Unavailable(format!("{}: {e}", path.display()))),
        };
        let meta = file
            .metadata()
            .map_err(|e| KeySourceError::Unavailable(format!("{}: {e}", path.display())))?;
        let euid = rustix::process::geteuid().as_raw();
        if !meta.is_file() || meta.mode() & 0o077 != 0 || meta.uid() != euid {
            return Err(KeySourceError::Refused(format!(
                "{} must be a regular file owned by the broker's user with mode 0600 or stricter",
                path.display()
            )));
        }
        if meta.len() > ktbroker_codes::MAX_KEYTAB_SIZE {
            return Err(KeySourceError::Refused(format!("{} is too large", path.display())));
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
        (&file)
            .take(ktbroker_codes::MAX_KEYTAB_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| KeySourceError::Unavailable(format!("{}: {e}", path.display())))?;
        let mut keytab = Keytab::parse(&bytes)
            .map_err(|e| KeySourceError::Unavailable(format!("{} is not a keytab: {e}", path.display())))?;
        keytab.retain(|entry| entry.principal.to_string() == principal);
        if keytab.entries.is_empty() {
            return Err(KeySourceError::NoSuchPrincipal(principal.to_owned()));
        }
        Ok(keytab)
    }
}

impl KeySource for StoreKeySource {
    async fn fetch(&self, principal: &str) -> Result<Keytab, KeySourceError> {
        self.read(principal)
    }

    async fn create(&self, _principal: &str) -> Result<(), KeySourceError> {
        Err(KeySourceError::Unsupported(
            "create principals (the store is read-only)",
        ))
    }

    async fn rotate(&self, _principal: &str) -> Result<u32, KeySourceError> {
        Err(KeySourceError::Unsupported("rotate keys (the store is read-only)"))
    }
}
