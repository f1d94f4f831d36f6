//! The broker's TOML configuration: parsed strictly (unknown keys refused), then validated into
//! typed values so the rest of the daemon never sees an unchecked setting.

use crate::limits::LimitPolicy;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: `{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: u32,
    server: RawServer,
    directory: RawDirectory,
    kerberos: RawKerberos,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    metrics: RawMetrics,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    enctypes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_failures: Option<u32>,
    window_secs: Option<u64>,
    lockout_secs: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    tls_cert: PathBuf,
    tls_key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    url: String,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    starttls: bool,
    #[serde(default)]
    allow_plaintext_loopback: bool,
    bind_dn: String,
    bind_password_file: PathBuf,
    user_base: String,
    group_dn: String,
    #[serde(default = "default_ldap_timeout")]
    timeout_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKerberos {
    realm: String,
    #[serde(default = "default_key_source")]
    key_source: String,
    admin_principal: String,
    admin_keytab: PathBuf,
    #[serde(default = "default_kadmin")]
    kadmin_path: PathBuf,
    krb5_config: Option<PathBuf>,
    #[serde(default = "default_kadmin_timeout")]
    timeout_secs: u64,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    failure_delay_ms: Option<u64>,
}

fn default_ldap_timeout() -> u64 {
    5
}
fn default_kadmin_timeout() -> u64 {
    10
}
fn default_key_source() -> String {
    "kadmin".into()
}
fn default_kadmin() -> PathBuf {
    PathBuf::from("/usr/bin/kadmin")
}

/// How the broker reaches the directory. Plaintext exists only as an explicit opt-in for loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapTransport {
    Ldaps,
    StartTls,
    PlaintextLoopback,
}

/// A secret read from a file; never printed.
#[derive(Clone)]
pub struct Secret(pub Zeroizing<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    pub url: String,
    pub transport: LdapTransport,
    /// PEM bundle the directory's certificate must chain to (pinned; no system roots).
    pub ca_pem: Option<Vec<u8>>,
    pub bind_dn: String,
    pub bind_password: Secret,
    pub user_base: String,
    pub group_dn: String,
    pub timeout: Duration,
}

/// Where keys come from (see `keysource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySourceKind {
    /// kadm5 client library to the remote kadmind (the default).
    Kadmin,
    /// one `kadmin` process per request.
    KadminCli,
}

#[derive(Debug, Clone)]
pub struct KerberosConfig {
    pub realm: String,
    pub key_source: KeySourceKind,
    pub admin_principal: String,
    pub admin_keytab: PathBuf,
    pub kadmin_path: PathBuf,
    pub krb5_config: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub directory: DirectoryConfig,
    pub kerberos: KerberosConfig,
    /// Every refused authentication answers no sooner than this after the request arrived, so
    /// "unknown user" and "wrong password" fall in the same timing class.
    pub failure_delay: Duration,
    /// Hash-chained JSON audit file; `None` audits to the log only.
    pub audit_file: Option<PathBuf>,
    /// Failed-authentication limits per username and per source address.
    pub limits: LimitPolicy,
    /// Enctype numbers that may be served, in preference order; other keys are stripped.
    pub enctypes: Vec<u16>,
    /// Where Prometheus scrapes `/metrics` (plain HTTP, its own port); `None` disables metrics.
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// Loads and validates `path`; `credential:NAME` paths resolve in `$CREDENTIALS_DIRECTORY`
    /// (systemd's `LoadCredential=`).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Self::load_with_credentials(path, credentials.as_deref())
    }

    /// Like [`Config::load`] with an explicit credentials directory.
    pub fn load_with_credentials(path: &Path, credentials: Option<&Path>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        validate(raw, base, credentials)
    }
}

fn validate(raw: RawConfig, base: &Path, credentials: Option<&Path>) -> Result<Config, ConfigError> {
    if raw.version != 1 {
        return Err(invalid(
            "version",
            format!("is {}, this ktbrokerd reads version 1", raw.version),
        ));
    }
    let listen: SocketAddr = raw
        .server
        .listen
        .parse()
        .map_err(|e| invalid("server.listen", format!("is not an address: {e}")))?;
    let resolve = |p: PathBuf| relative_to(base, p);

    let d = raw.directory;
    let transport = ldap_transport(&d.url, d.starttls, d.allow_plaintext_loopback)?;
    let ca_pem = match d.ca_file {
        Some(path) => {
            let path = resolve(path);
            Some(std::fs::read(&path).map_err(|e| invalid("directory.ca_file", format!("{}: {e}", path.display())))?)
        }
        None if transport == LdapTransport::PlaintextLoopback => None,
        None => return Err(invalid("directory.ca_file", "is required for LDAPS and StartTLS")),
    };
    let bind_password_key = "directory.bind_password_file";
    let bind_password_path = secret_path(d.bind_password_file, base, credentials, bind_password_key)?;
    let bind_password = read_secret_file(&bind_password_path, bind_password_key)?;
    let tls_key = secret_path(raw.server.tls_key, base, credentials, "server.tls_key")?;
    check_private(&tls_key, "server.tls_key")?;
    if d.timeout_secs == 0 || d.timeout_secs > 120 {
        return Err(invalid("directory.timeout_secs", "must be between 1 and 120"));
    }
    for (key, value) in [
        ("directory.bind_dn", &d.bind_dn),
        ("directory.user_base", &d.user_base),
        ("directory.group_dn", &d.group_dn),
    ] {
        if value.trim().is_empty() {
            return Err(invalid(key, "must not be empty"));
        }
    }

    let k = raw.kerberos;
    if k.realm.is_empty()
        || !k
            .realm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(invalid("kerberos.realm", "must be a realm name like EXAMPLE.COM"));
    }
    if k.timeout_secs == 0 || k.timeout_secs > 300 {
        return Err(invalid("kerberos.timeout_secs", "must be between 1 and 300"));
    }
    let key_source = match k.key_source.as_str() {
        "kadmin" => KeySourceKind::Kadmin,
        "kadmin-cli" => KeySourceKind::KadminCli,
        other => {
            return Err(invalid(
                "kerberos.key_source",
                format!("is {other:?}; use \"kadmin\" or \"kadmin-cli\""),
            ));
        }
    };
    let limits = limit_policy(&raw.limits)?;
    let metrics_listen = match &raw.metrics.listen {
        Some(text) => Some(
            text.parse()
                .map_err(|e| invalid("metrics.listen", format!("is not an address: {e}")))?,
        ),
        None => None,
    };
    if metrics_listen.is_some_and(|m| m == listen) {
        return Err(invalid("metrics.listen", "must differ from server.listen"));
    }
    let enctypes = match &raw.policy.enctypes {
        Some(names) => crate::policy::parse_enctypes(names).map_err(|e| invalid("policy.enctypes", e))?,
        None => crate::policy::default_enctypes(),
    };
    let admin_keytab = secret_path(k.admin_keytab, base, credentials, "kerberos.admin_keytab")?;
    check_private(&admin_keytab, "kerberos.admin_keytab")?;
    let failure_delay = Duration::from_millis(raw.auth.failure_delay_ms.unwrap_or(400));
    if failure_delay > Duration::from_secs(10) {
        return Err(invalid("auth.failure_delay_ms", "must be at most 10000"));
    }

    Ok(Config {
        listen,
        tls_cert: resolve(raw.server.tls_cert),
        tls_key,
        directory: DirectoryConfig {
            url: d.url,
            transport,
            ca_pem,
            bind_dn: d.bind_dn,
            bind_password,
            user_base: d.user_base,
            group_dn: d.group_dn,
            timeout: Duration::from_secs(d.timeout_secs),
        },
        kerberos: KerberosConfig {
            realm: k.realm,
            key_source,
            admin_principal: k.admin_principal,
            admin_keytab,
            kadmin_path: k.kadmin_path,
            krb5_config: k.krb5_config.map(resolve),
            timeout: Duration::from_secs(k.timeout_secs),
        },
        failure_delay,
        audit_file: raw.audit.file.map(resolve),
        limits,
        enctypes,
        metrics_listen,
    })
}

/// Decides the LDAP transport from the URL: `ldaps://` is TLS; `ldap://` needs StartTLS, or the
/// explicit plaintext opt-in together with a loopback host.
fn ldap_transport(url: &str, starttls: bool, allow_plaintext_loopback: bool) -> Result<LdapTransport, ConfigError> {
    if url.starts_with("ldaps://") {
        return Ok(LdapTransport::Ldaps);
    }
    let Some(rest) = url.strip_prefix("ldap://") else {
        return Err(invalid("directory.url", "must start with ldaps:// or ldap://"));
    };
    if starttls {
        return Ok(LdapTransport::StartTls);
    }
    let host = rest.split('/').next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h).trim_matches(['[', ']']);
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match (allow_plaintext_loopback, loopback) {
        (true, true) => Ok(LdapTransport::PlaintextLoopback),
        (true, false) => Err(invalid(
            "directory.allow_plaintext_loopback",
            "applies only to a loopback address",
        )),
        (false, _) => Err(invalid(
            "directory.url",
            "ldap:// needs starttls = true (plaintext LDAP is refused)",
        )),
    }
}

fn limit_policy(raw: &RawLimits) -> Result<LimitPolicy, ConfigError> {
    let default = LimitPolicy::default();
    let max_failures = raw.max_failures.unwrap_or(default.max_failures);
    if !(1..=1000).contains(&max_failures) {
        return Err(invalid("limits.max_failures", "must be between 1 and 1000"));
    }
    let seconds = |value: Option<u64>, fallback: Duration, key| match value {
        None => Ok(fallback),
        Some(secs @ 1..=86_400) => Ok(Duration::from_secs(secs)),
        Some(_) => Err(invalid(key, "must be between 1 and 86400")),
    };
    Ok(LimitPolicy {
        max_failures,
        window: seconds(raw.window_secs, default.window, "limits.window_secs")?,
        lockout: seconds(raw.lockout_secs, default.lockout, "limits.lockout_secs")?,
    })
}

/// A configured path: relative paths are relative to the config file's directory.
fn relative_to(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_relative() { base.join(path) } else { path }
}

/// Where a secret lives: `credential:NAME` is `NAME` in the systemd credentials directory;
/// anything else is a path, relative to the config file's directory.
fn secret_path(
    raw: PathBuf,
    base: &Path,
    credentials: Option<&Path>,
    key: &'static str,
) -> Result<PathBuf, ConfigError> {
    let Some(name) = raw.to_str().and_then(|s| s.strip_prefix("credential:")) else {
        return Ok(relative_to(base, raw));
    };
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(invalid(
            key,
            format!("credential name {name:?} must be a plain file name"),
        ));
    }
    let dir = credentials.ok_or_else(|| {
        invalid(
            key,
            format!("names credential {name:?} but $CREDENTIALS_DIRECTORY is not set (systemd LoadCredential=)"),
        )
    })?;
    Ok(dir.join(name))
}

/// Refuses a secret file that group or others may read.
fn check_private(path: &Path, key: &'static str) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| invalid(key, format!("{}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(invalid(
            key,
            format!("{} is readable by group or others (chmod 600 it)", path.display()),
        ));
    }
    Ok(())
}

/// Reads a file that only its owner may read (a key or a password) into a zeroizing buffer.
pub fn read_private_file(path: &Path, key: &'static str) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
    check_private(path, key)?;
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| invalid(key, format!("{}: {e}", path.display())))
}

/// Reads a secret string from a private file; trailing newlines are dropped.
fn read_secret_file(path: &Path, key: &'static str) -> Result<Secret, ConfigError> {
    let bytes = read_private_file(path, key)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid(key, format!("{} is not UTF-8", path.display())))?;
    let text = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned());
    if text.is_empty() {
        return Err(invalid(key, format!("{} is empty", path.display())));
    }
    Ok(Secret(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldap_transport_refuses_plaintext_unless_loopback_and_opted_in() {
        assert_eq!(
            ldap_transport("ldaps://dir:636", false, false).unwrap(),
            LdapTransport::Ldaps
        );
        assert_eq!(
            ldap_transport("ldap://dir", true, false).unwrap(),
            LdapTransport::StartTls
        );
        assert!(ldap_transport("ldap://dir", false, false).is_err());
        assert!(ldap_transport("ldap://10.0.0.1:389", false, true).is_err());
        assert_eq!(
            ldap_transport("ldap://127.0.0.1:389/", false, true).unwrap(),
            LdapTransport::PlaintextLoopback
        );
        assert_eq!(
            ldap_transport("ldap://[::1]:389", false, true).unwrap(),
            LdapTransport::PlaintextLoopback
        );
        assert!(ldap_transport("http://dir", false, false).is_err());
    }

    #[test]
    fn secret_files_must_be_private_and_are_never_printed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_secret_file(&path, "directory.bind_password_file")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("directory.bind_password_file") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = read_secret_file(&path, "k").unwrap();
        assert_eq!(secret.0.as_str(), "s3cret");
        assert_eq!(format!("{secret:?}"), "<redacted>");
    }

    #[test]
    fn unknown_keys_and_wrong_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.toml");
        std::fs::write(&path, "version = 1\nlisten_everywhere = true\n").unwrap();
        assert!(matches!(Config::load(&path), Err(ConfigError::Parse { .. })));
        std::fs::write(&path, VALID.replace("version = 1", "version = 2")).unwrap();
        for file in ["pw", "key.pem", "admin.keytab"] {
            std::fs::write(dir.path().join(file), "x").unwrap();
            let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
            std::fs::set_permissions(dir.path().join(file), private).unwrap();
        }
        let err = Config::load_with_credentials(&path, None).unwrap_err().to_string();
        assert!(err.contains("`version`"), "{err}");
        std::fs::write(&path, VALID).unwrap();
        let config = Config::load_with_credentials(&path, None).unwrap();
        assert_eq!(config.directory.transport, LdapTransport::PlaintextLoopback);
        assert_eq!(config.kerberos.admin_keytab, dir.path().join("admin.keytab"));
    }

    #[test]
    fn credential_paths_resolve_in_the_credentials_directory() {
        let base = Path::new("/etc/ktbroker");
        let creds = Path::new("/run/credentials/ktbrokerd.service");
        let resolve = |raw: &str, dir| secret_path(PathBuf::from(raw), base, dir, "server.tls_key");
        assert_eq!(
            resolve("credential:tls-key", Some(creds)).unwrap(),
            creds.join("tls-key")
        );
        assert_eq!(resolve("key.pem", Some(creds)).unwrap(), base.join("key.pem"));
        assert_eq!(resolve("/abs/key.pem", None).unwrap(), PathBuf::from("/abs/key.pem"));
        let err = resolve("credential:tls-key", None).unwrap_err().to_string();
        assert!(
            err.contains("server.tls_key") && err.contains("CREDENTIALS_DIRECTORY"),
            "{err}"
        );
        for bad in ["credential:", "credential:../x", "credential:a/b", "credential:.."] {
            assert!(resolve(bad, Some(creds)).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_secret_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.toml");
        std::fs::write(&path, VALID).unwrap();
        for file in ["pw", "key.pem", "admin.keytab"] {
            std::fs::write(dir.path().join(file), "x").unwrap();
            std::fs::set_permissions(dir.path().join(file), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(Config::load_with_credentials(&path, None).is_ok());
        for (file, key) in [("key.pem", "server.tls_key"), ("admin.keytab", "kerberos.admin_keytab")] {
            std::fs::set_permissions(dir.path().join(file), std::fs::Permissions::from_mode(0o640)).unwrap();
            let err = Config::load_with_credentials(&path, None).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
            std::fs::set_permissions(dir.path().join(file), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    const VALID: &str = r#"
version = 1
[server]
listen = "127.0.0.1:0"
tls_cert = "cert.pem"
tls_key = "key.pem"
[directory]
url = "ldap://127.0.0.1:389"
allow_plaintext_loopback = true
bind_dn = "cn=svc,dc=example,dc=com"
bind_password_file = "pw"
user_base = "ou=people,dc=example,dc=com"
group_dn = "cn=hadoop,dc=example,dc=com"
[kerberos]
realm = "EXAMPLE.COM"
admin_principal = "ktbroker/admin@EXAMPLE.COM"
admin_keytab = "admin.keytab"
"#;
}
