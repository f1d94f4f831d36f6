//! The broker's TOML configuration: parsed strictly (unknown keys refused, see [`raw`]), then
//! validated into typed values so the rest of the daemon never sees an unchecked setting. An
//! invalid value is an error naming its key, e.g. `tenants.corp.directory.url`.
//!
//! Global tables (`server`, `kerberos`, `auth`, `audit`, `limits`, `metrics`, `admin`) and one
//! `[tenants.NAME]` table per tenant, each with its own realm, principal template, policy,
//! `directory` and `keys`.

mod directory;
mod effective;
mod oidc;
mod raw;

pub use directory::{
    DirectoryConfig, DirectoryServer, GroupCheck, LdapTransport, Schema, SrvDiscovery, UserLookup, normalized_dn,
};
pub use oidc::OidcConfig;

use crate::connections::ConnectionLimits;
use crate::hosts::{Cidr, ClientRule};
use crate::limits::LimitPolicy;
use crate::policy::PrincipalPolicy;
use raw::{RawConfig, RawKeys, RawLimits, RawTenant, SourceKind, all_key_fields};
use serde::Deserialize;
use std::collections::BTreeMap;
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
    Invalid { key: String, problem: String },
}

/// The least `[auth] failure_delay_ms` may be: refused logins never answer sooner.
pub const MIN_FAILURE_DELAY: Duration = Duration::from_millis(200);

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// A secret read from a file; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Zeroizing<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Admin sessions to kadmind per tenant, by default and at most. Each call holds one for its
/// duration; a broker busy enough to use them all queues the next call for the first free one.
pub const DEFAULT_KADM5_SESSIONS: usize = 8;
pub const MAX_KADM5_SESSIONS: usize = 64;

/// Where a tenant's keys come from (see `keysource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysConfig {
    /// kadm5 client library to the remote kadmind (the default).
    Kadmin {
        admin_principal: String,
        admin_keytab: PathBuf,
        timeout: Duration,
        /// Admin sessions to kadmind at once, at most (see `keysource::kadm5_source`).
        sessions: usize,
    },
    /// One `kadmin` process per request.
    KadminCli {
        kadmin_path: PathBuf,
        admin_principal: String,
        admin_keytab: PathBuf,
        timeout: Duration,
    },
    /// One `kadmin.local` process per request, on the KDC host (reads the database directly).
    KadminLocal {
        kadmin_local_path: PathBuf,
        kdc_profile: Option<PathBuf>,
        timeout: Duration,
    },
    /// Pre-exported keytabs, one file per principal, owner-only.
    Store { dir: PathBuf },
}

impl KeysConfig {
    pub fn source_name(&self) -> &'static str {
        match self {
            Self::Kadmin { .. } => "kadmin",
            Self::KadminCli { .. } => "kadmin-cli",
            Self::KadminLocal { .. } => "kadmin-local",
            Self::Store { .. } => "store",
        }
    }
}

/// What the service enforces for one tenant: the part of its configuration a request is judged by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPolicy {
    pub name: String,
    pub principals: PrincipalPolicy,
    /// Enctype numbers that may be served, in preference order; other keys are stripped.
    pub enctypes: Vec<u16>,
    /// Registered client hosts; empty means any host.
    pub clients: Vec<ClientRule>,
    /// Create a missing principal (random key, requires_preauth) for an authorized user.
    pub provision: bool,
    /// Which deliveries a login may ask for.
    pub deliveries: crate::delivery::Deliveries,
    /// Ticket delivery's request to the KDC (which bounds it).
    pub ticket: ktbroker_krb5::TicketRequest,
}

/// Who checks a tenant's people: its directory, an OpenID Connect provider, or both (passwords
/// at the directory, sign-ins at the provider).
#[derive(Debug, Clone, PartialEq, Eq)]
// One per tenant, made at load: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum IdentityConfig {
    Directory(DirectoryConfig),
    Oidc(OidcConfig),
    DirectoryAndProvider(DirectoryConfig, OidcConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantConfig {
    pub realm: String,
    pub policy: TenantPolicy,
    pub identity: IdentityConfig,
    pub keys: KeysConfig,
}

impl TenantConfig {
    /// The tenant's directory, when that is its identity source.
    pub fn directory(&self) -> Option<&DirectoryConfig> {
        match &self.identity {
            IdentityConfig::Directory(directory) | IdentityConfig::DirectoryAndProvider(directory, _) => {
                Some(directory)
            }
            IdentityConfig::Oidc(_) => None,
        }
    }

    /// The tenant's identity provider, when it has one.
    pub fn provider(&self) -> Option<&OidcConfig> {
        match &self.identity {
            IdentityConfig::Oidc(oidc) | IdentityConfig::DirectoryAndProvider(_, oidc) => Some(oidc),
            IdentityConfig::Directory(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Client certificates are requested (optional) and verified against this CA bundle.
    pub client_ca: Option<PathBuf>,
    /// Requests beyond this many at once are refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// A request that has not finished after this long is abandoned (DEADLINE_EXCEEDED).
    pub request_timeout: Duration,
    /// Caps on open connections (all, per source) and their idle timeout.
    pub connections: ConnectionLimits,
    /// The krb5 profile libkrb5 and kadm5 read (all tenants' realms); `None` keeps the default.
    pub krb5_config: Option<PathBuf>,
    /// Every refused authentication answers no sooner than this after the request arrived, so
    /// "unknown user" and "wrong password" fall in the same timing class.
    pub failure_delay: Duration,
    /// Hash-chained JSON audit file; `None` audits to the log only.
    pub audit_file: Option<PathBuf>,
    /// The audit chain's HMAC key (a secret file), if the chain is keyed.
    pub audit_key_file: Option<PathBuf>,
    /// Failed-authentication limits per username and per source address.
    pub limits: LimitPolicy,
    /// Where Prometheus scrapes `/metrics` (plain HTTP, its own port); `None` disables metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// Client-certificate identities allowed to call admin RPCs.
    pub admin_identities: Vec<String>,
    /// Hosts exempt from the per-source failure count (never from the per-username one).
    pub trusted_sources: Vec<ClientRule>,
    pub default_tenant: Option<String>,
    pub tenants: BTreeMap<String, TenantConfig>,
}

impl Config {
    /// Loads and validates `path`; `credential:NAME` paths resolve in `$CREDENTIALS_DIRECTORY`
    /// (systemd's `LoadCredential=`).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Self::load_with(path, Credentials::from(credentials.as_deref()))
    }

    /// Like [`Config::load`] with an explicit credentials directory.
    pub fn load_with_credentials(path: &Path, credentials: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, Credentials::from(credentials))
    }

    /// Like [`Config::load`], `credential:NAME` paths resolving as `credentials` says.
    pub fn load_with(path: &Path, credentials: Credentials<'_>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_text(&text, path, credentials)
    }

    /// Parses and validates `text` as if read from `path` (relative paths resolve beside it).
    pub fn from_text(text: &str, path: &Path, credentials: Credentials<'_>) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Paths { base, credentials }.validate(raw)
    }
}

/// Where `credential:NAME` secrets are read from.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    /// None known (not under systemd): naming a credential is an error.
    Unset,
    /// `NAME` is a file in this directory (`$CREDENTIALS_DIRECTORY`, or `check-config
    /// --credentials-dir`).
    Directory(&'a Path),
    /// `NAME` is the file a unit's `LoadCredential=NAME:PATH` loads (`check-config` outside the
    /// unit, reading the unit).
    Sources(&'a BTreeMap<String, PathBuf>),
}

impl<'a> From<Option<&'a Path>> for Credentials<'a> {
    fn from(directory: Option<&'a Path>) -> Self {
        directory.map_or(Self::Unset, Self::Directory)
    }
}

/// Where relative paths and `credential:NAME` paths resolve.
#[derive(Clone, Copy)]
struct Paths<'a> {
    base: &'a Path,
    credentials: Credentials<'a>,
}

impl Paths<'_> {
    fn validate(self, raw: RawConfig) -> Result<Config, ConfigError> {
        if raw.version != 1 {
            return Err(invalid(
                "version",
                format!("is {}, this ktbrokerd reads version 1", raw.version),
            ));
        }
        let listen = parse_address(&raw.server.listen, "server.listen")?;
        let connections = connection_limits(&raw.server)?;
        let tls_key = self.secret(raw.server.tls_key, "server.tls_key")?;
        check_private(&tls_key, "server.tls_key")?;
        let audit_key_file = match raw.audit.key_file {
            Some(path) => {
                let path = self.secret(path, "audit.key_file")?;
                check_private(&path, "audit.key_file")?;
                Some(path)
            }
            None => None,
        };
        if audit_key_file.is_some() && raw.audit.file.is_none() {
            return Err(invalid("audit.key_file", "needs audit.file"));
        }
        let max_concurrent_requests = raw.server.max_concurrent_requests.unwrap_or(256);
        if !(1..=100_000).contains(&max_concurrent_requests) {
            return Err(invalid(
                "server.max_concurrent_requests",
                "must be between 1 and 100000",
            ));
        }
        let request_timeout = secs_in(
            raw.server.request_timeout_secs,
            ktbroker_codes::timeouts::BROKER_REQUEST.as_secs(),
            1..=600,
            "server.request_timeout_secs",
        )?;
        let metrics_listen = match &raw.metrics.listen {
            Some(text) => Some(parse_address(text, "metrics.listen")?),
            None => None,
        };
        if metrics_listen.is_some_and(|m| m == listen) {
            return Err(invalid("metrics.listen", "must differ from server.listen"));
        }
        let failure_delay = Duration::from_millis(raw.auth.failure_delay_ms.unwrap_or(400));
        // Below the floor a slow directory answer would outlast it, and tell unknown users from
        // wrong passwords by timing again.
        if failure_delay < MIN_FAILURE_DELAY || failure_delay > Duration::from_secs(10) {
            return Err(invalid(
                "auth.failure_delay_ms",
                format!("must be between {} and 10000", MIN_FAILURE_DELAY.as_millis()),
            ));
        }
        for identity in &raw.admin.identities {
            if identity.trim().is_empty() {
                return Err(invalid("admin.identities", "must not contain an empty name"));
            }
        }
        let client_ca = raw.server.client_ca_file.map(|p| self.path(p));
        if !raw.admin.identities.is_empty() && client_ca.is_none() {
            return Err(invalid(
                "admin.identities",
                "needs server.client_ca_file (admins are known by their client certificate)",
            ));
        }

        let trusted_sources = trusted_sources(&raw.limits.trusted_sources)?;
        if trusted_sources.iter().any(|r| r.cert.is_some()) && client_ca.is_none() {
            return Err(invalid(
                "limits.trusted_sources",
                "names a client certificate but server.client_ca_file is not set",
            ));
        }

        if raw.tenants.is_empty() {
            return Err(invalid("tenants", "must define at least one [tenants.NAME] table"));
        }
        let mut tenants = BTreeMap::new();
        for (name, tenant) in raw.tenants {
            let tenant = self.tenant(&name, tenant)?;
            if !tenant.policy.clients.iter().all(|r| r.cert.is_none()) && client_ca.is_none() {
                return Err(invalid(
                    format!("tenants.{name}.clients"),
                    "names a client certificate but server.client_ca_file is not set",
                ));
            }
            tenants.insert(name, tenant);
        }
        let default_tenant = match raw.default_tenant {
            Some(name) if tenants.contains_key(&name) => Some(name),
            Some(name) => return Err(invalid("default_tenant", format!("{name:?} is not a tenant"))),
            None if tenants.len() == 1 => tenants.keys().next().cloned(),
            None => None,
        };

        Ok(Config {
            listen,
            tls_cert: self.path(raw.server.tls_cert),
            tls_key,
            client_ca,
            max_concurrent_requests,
            request_timeout,
            connections,
            krb5_config: raw.kerberos.krb5_config.map(|p| self.path(p)),
            failure_delay,
            audit_file: raw.audit.file.map(|p| self.path(p)),
            audit_key_file,
            limits: limit_policy(&raw.limits)?,
            metrics_listen,
            admin_identities: raw.admin.identities,
            trusted_sources,
            default_tenant,
            tenants,
        })
    }

    fn tenant(self, name: &str, raw: RawTenant) -> Result<TenantConfig, ConfigError> {
        let key = |field: &str| format!("tenants.{name}.{field}");
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                format!("tenants.{name}"),
                "name must be [a-z0-9_-], at most 64 bytes",
            ));
        }
        let realm = raw.realm;
        if realm.is_empty() || !realm.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
            return Err(invalid(key("realm"), "must be a realm name like EXAMPLE.COM"));
        }
        let template = raw.principal.as_deref().unwrap_or("{user}@{realm}");
        let principals =
            PrincipalPolicy::new(&realm, template, raw.allow_principals).map_err(|e| invalid(key("principal"), e))?;
        let sample = crate::policy::validate_username("user").expect("a valid sample name");
        if principals.principal_for(&sample, None).is_err() {
            return Err(invalid(
                key("principal"),
                format!("{template:?} maps users to principals denied by default; grant them in allow_principals"),
            ));
        }
        let enctypes = match &raw.enctypes {
            Some(names) => crate::policy::parse_enctypes(names).map_err(|e| invalid(key("enctypes"), e))?,
            None => crate::policy::default_enctypes(),
        };
        let mut clients = Vec::new();
        for rule in raw.clients {
            let cidr = match &rule.cidr {
                Some(text) => Some(Cidr::parse(text).map_err(|e| invalid(key("clients.cidr"), e))?),
                None => None,
            };
            if cidr.is_none() && rule.cert.is_none() {
                return Err(invalid(key("clients"), "each rule needs cidr, cert or both"));
            }
            clients.push(ClientRule { cidr, cert: rule.cert });
        }
        let deliveries = match &raw.deliveries {
            Some(names) => crate::delivery::Deliveries::parse(names).map_err(|e| invalid(key("deliveries"), e))?,
            None => crate::delivery::Deliveries::default(),
        };
        let duration = |value: &Option<String>, field: &str| match value {
            None => Ok(None),
            Some(text) => match ktbroker_krb5::parse_duration(text) {
                Ok(d) if !d.is_zero() => Ok(Some(d)),
                _ => Err(invalid(
                    key(field),
                    format!("{text:?} is not a duration as kinit -l takes (10h, 7d)"),
                )),
            },
        };
        let ticket = ktbroker_krb5::TicketRequest {
            lifetimes: ktbroker_krb5::Lifetimes {
                ticket: duration(&raw.ticket_lifetime, "ticket_lifetime")?,
                renewable: duration(&raw.renew_lifetime, "renew_lifetime")?,
            },
            forwardable: raw.forwardable,
        };
        let identity = match (raw.directory, raw.oidc) {
            (Some(directory), None) => IdentityConfig::Directory(self.directory(name, directory)?),
            (None, Some(oidc)) => IdentityConfig::Oidc(self.oidc(name, oidc)?),
            (None, None) => {
                return Err(invalid(
                    format!("tenants.{name}"),
                    "needs an identity source: a [directory] or an [oidc] table",
                ));
            }
            (Some(directory), Some(oidc)) => {
                let oidc = self.oidc(name, oidc)?;
                // Beside a directory, the provider is for sign-ins only: a password goes to one place.
                if oidc.password_grant {
                    return Err(invalid(
                        format!("tenants.{name}.oidc.password_grant"),
                        "must be false beside a [directory]: password logins go to the directory",
                    ));
                }
                if !oidc.device_grant {
                    return Err(invalid(
                        format!("tenants.{name}.oidc.device_grant"),
                        "must be true beside a [directory]: else the provider has nothing to do",
                    ));
                }
                IdentityConfig::DirectoryAndProvider(self.directory(name, directory)?, oidc)
            }
        };
        Ok(TenantConfig {
            identity,
            keys: self.keys(name, raw.keys)?,
            realm,
            policy: TenantPolicy {
                name: name.to_owned(),
                principals,
                enctypes,
                clients,
                provision: raw.provision,
                deliveries,
                ticket,
            },
        })
    }

    fn keys(self, tenant: &str, mut table: toml::Table) -> Result<KeysConfig, ConfigError> {
        let key = |field: &str| format!("tenants.{tenant}.keys.{field}");
        let source_value = table
            .entry("source")
            .or_insert_with(|| SourceKind::DEFAULT.into())
            .clone();
        let source = SourceKind::deserialize(source_value.clone()).map_err(|_| {
            invalid(
                key("source"),
                format!("is {source_value}; use \"kadmin\", \"kadmin-cli\", \"kadmin-local\" or \"store\""),
            )
        })?;
        // Each source takes its own keys; one that another source uses is a mistake worth naming.
        let accepted = source.fields();
        let misplaced = all_key_fields()
            .iter()
            .find(|field| **field != "source" && table.contains_key(**field) && !accepted.contains(field));
        if let Some(field) = misplaced {
            return Err(invalid(
                key(field),
                format!("does not apply to source = {source_value}"),
            ));
        }
        let raw = RawKeys::deserialize(table).map_err(|e| invalid(format!("tenants.{tenant}.keys"), e.to_string()))?;
        let timeout = |secs| {
            secs_in(
                secs,
                ktbroker_codes::timeouts::KEY_SOURCE.as_secs(),
                1..=300,
                &key("timeout_secs"),
            )
        };
        let required = |value: String, field: &str| {
            Some(value)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| invalid(key(field), format!("is required for source = {source_value}")))
        };
        let admin_keytab = |path: PathBuf| -> Result<PathBuf, ConfigError> {
            let path = self.secret(path, &key("admin_keytab"))?;
            check_private(&path, &key("admin_keytab"))?;
            Ok(path)
        };
        Ok(match raw {
            RawKeys::Kadmin(k) => KeysConfig::Kadmin {
                admin_principal: required(k.admin_principal, "admin_principal")?,
                admin_keytab: admin_keytab(k.admin_keytab)?,
                timeout: timeout(k.timeout_secs)?,
                sessions: match k.sessions {
                    None => DEFAULT_KADM5_SESSIONS,
                    Some(n @ 1..=MAX_KADM5_SESSIONS) => n,
                    Some(_) => {
                        return Err(invalid(
                            key("sessions"),
                            format!("must be between 1 and {MAX_KADM5_SESSIONS}"),
                        ));
                    }
                },
            },
            RawKeys::KadminCli(k) => KeysConfig::KadminCli {
                kadmin_path: k.kadmin_path.unwrap_or_else(|| PathBuf::from("/usr/bin/kadmin")),
                admin_principal: required(k.admin_principal, "admin_principal")?,
                admin_keytab: admin_keytab(k.admin_keytab)?,
                timeout: timeout(k.timeout_secs)?,
            },
            RawKeys::KadminLocal(k) => KeysConfig::KadminLocal {
                kadmin_local_path: k
                    .kadmin_local_path
                    .unwrap_or_else(|| PathBuf::from("/usr/sbin/kadmin.local")),
                kdc_profile: k.kdc_profile.map(|p| self.path(p)),
                timeout: timeout(k.timeout_secs)?,
            },
            RawKeys::Store(k) => {
                let dir = self.path(k.store_dir);
                check_private(&dir, &key("store_dir"))?;
                KeysConfig::Store { dir }
            }
        })
    }

    /// A configured path: relative paths are relative to the config file's directory.
    fn path(self, path: PathBuf) -> PathBuf {
        relative_to(self.base, path)
    }

    /// Where a secret lives: `credential:NAME` is `NAME` in the systemd credentials directory;
    /// anything else is a path, relative to the config file's directory.
    fn secret(self, raw: PathBuf, key: &str) -> Result<PathBuf, ConfigError> {
        secret_path(raw, self.base, self.credentials, key)
    }
}

fn parse_address(text: &str, key: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|e| invalid(key, format!("is not an address: {e}")))
}

/// `value` seconds (or `default`) within `range`.
fn connection_limits(server: &raw::RawServer) -> Result<ConnectionLimits, ConfigError> {
    let max_total = server.max_connections.unwrap_or(ConnectionLimits::DEFAULT_MAX_TOTAL);
    if !(1..=1_000_000).contains(&max_total) {
        return Err(invalid("server.max_connections", "must be between 1 and 1000000"));
    }
    let max_per_source = server
        .max_connections_per_source
        .unwrap_or(ConnectionLimits::DEFAULT_MAX_PER_SOURCE.min(max_total));
    if !(1..=max_total).contains(&max_per_source) {
        return Err(invalid(
            "server.max_connections_per_source",
            "must be between 1 and server.max_connections",
        ));
    }
    let idle_timeout = secs_in(
        server.idle_timeout_secs,
        ConnectionLimits::DEFAULT_IDLE_TIMEOUT.as_secs(),
        1..=3600,
        "server.idle_timeout_secs",
    )?;
    Ok(ConnectionLimits {
        max_total,
        max_per_source,
        idle_timeout,
    })
}

fn secs_in(
    value: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    key: &str,
) -> Result<Duration, ConfigError> {
    let secs = value.unwrap_or(default);
    if !range.contains(&secs) {
        return Err(invalid(
            key,
            format!("must be between {} and {}", range.start(), range.end()),
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// Each entry an address range (`10.0.0.0/8`, `2001:db8::/64`, an address) or else a
/// client-certificate name (`edge1.example.com`).
fn trusted_sources(entries: &[String]) -> Result<Vec<ClientRule>, ConfigError> {
    entries
        .iter()
        .map(|entry| {
            let entry = entry.trim();
            if let Ok(cidr) = Cidr::parse(entry) {
                return Ok(ClientRule {
                    cidr: Some(cidr),
                    cert: None,
                });
            }
            let is_name = !entry.is_empty()
                && entry
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if !is_name {
                return Err(invalid(
                    "limits.trusted_sources",
                    format!("{entry:?} is neither an address range nor a certificate name"),
                ));
            }
            Ok(ClientRule {
                cidr: None,
                cert: Some(entry.to_owned()),
            })
        })
        .collect()
}

fn limit_policy(raw: &RawLimits) -> Result<LimitPolicy, ConfigError> {
    let default = LimitPolicy::default();
    let max_failures = raw.max_failures.unwrap_or(default.max_failures);
    if !(1..=1000).contains(&max_failures) {
        return Err(invalid("limits.max_failures", "must be between 1 and 1000"));
    }
    let max_source_failures = raw.max_source_failures.unwrap_or(default.max_source_failures);
    if !(1..=100_000).contains(&max_source_failures) {
        return Err(invalid("limits.max_source_failures", "must be between 1 and 100000"));
    }
    let source_credit_per_user = raw.source_credit_per_user.unwrap_or(default.source_credit_per_user);
    if source_credit_per_user > 100 {
        return Err(invalid("limits.source_credit_per_user", "must be between 0 and 100"));
    }
    let seconds = |value: Option<u64>, fallback: Duration, key| match value {
        None => Ok(fallback),
        Some(secs @ 1..=86_400) => Ok(Duration::from_secs(secs)),
        Some(_) => Err(invalid(key, "must be between 1 and 86400")),
    };
    Ok(LimitPolicy {
        max_failures,
        max_source_failures,
        source_credit_per_user,
        window: seconds(raw.window_secs, default.window, "limits.window_secs")?,
        lockout: seconds(raw.lockout_secs, default.lockout, "limits.lockout_secs")?,
    })
}

fn relative_to(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_relative() { base.join(path) } else { path }
}

/// Where a secret lives: `credential:NAME` is `NAME` in the systemd credentials directory;
/// anything else is a path, relative to the config file's directory.
fn secret_path(raw: PathBuf, base: &Path, credentials: Credentials<'_>, key: &str) -> Result<PathBuf, ConfigError> {
    let Some(name) = raw.to_str().and_then(|s| s.strip_prefix("credential:")) else {
        return Ok(relative_to(base, raw));
    };
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(invalid(
            key,
            format!("credential name {name:?} must be a plain file name"),
        ));
    }
    match credentials {
        Credentials::Directory(dir) => Ok(dir.join(name)),
        Credentials::Sources(sources) => sources.get(name).cloned().ok_or_else(|| {
            invalid(
                key,
                format!("names credential {name:?}, which the unit does not load (no LoadCredential={name}:PATH)"),
            )
        }),
        Credentials::Unset => Err(invalid(
            key,
            format!(
                "names credential {name:?} but $CREDENTIALS_DIRECTORY is not set (systemd LoadCredential=; \
                 outside the unit: check-config --credentials-dir DIR, or --unit FILE)"
            ),
        )),
    }
}

/// Refuses a secret file that group or others may read.
fn check_private(path: &Path, key: &str) -> Result<(), ConfigError> {
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
pub fn read_private_file(path: &Path, key: &str) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
    check_private(path, key)?;
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| invalid(key, format!("{}: {e}", path.display())))
}

/// Reads a secret string from a private file; trailing newlines are dropped.
fn read_secret_file(path: &Path, key: &str) -> Result<Secret, ConfigError> {
    let bytes = read_private_file(path, key)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid(key, format!("{} is not UTF-8", path.display())))?;
    let text = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned());
    if text.is_empty() {
        return Err(invalid(key, format!("{} is empty", path.display())));
    }
    Ok(Secret(text))
}

#[cfg(test)]
mod tests;
