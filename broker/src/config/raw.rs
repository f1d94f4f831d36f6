//! The TOML file as written: every table refuses unknown keys; defaults and checks happen when
//! these are validated into the typed [`super::Config`].

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub version: u32,
    /// The tenant of requests that name none (optional when there is exactly one tenant).
    pub default_tenant: Option<String>,
    pub server: RawServer,
    #[serde(default)]
    pub kerberos: RawKerberos,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub admin: RawAdmin,
    pub tenants: BTreeMap<String, RawTenant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub listen: String,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// CA bundle for client certificates (mTLS); without it no client certificate is asked for.
    pub client_ca_file: Option<PathBuf>,
    pub max_concurrent_requests: Option<usize>,
    pub request_timeout_secs: Option<u64>,
}

/// Process-wide Kerberos settings (libkrb5 reads one profile per process).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKerberos {
    pub krb5_config: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub failure_delay_ms: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_failures: Option<u32>,
    pub window_secs: Option<u64>,
    pub lockout_secs: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub listen: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    /// Client-certificate identities (DNS SAN or CN) allowed to call the admin RPCs (Rotate).
    #[serde(default)]
    pub identities: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
    pub realm: String,
    pub principal: Option<String>,
    #[serde(default)]
    pub allow_principals: Vec<String>,
    pub enctypes: Option<Vec<String>>,
    #[serde(default)]
    pub provision: bool,
    #[serde(default)]
    pub clients: Vec<RawClientRule>,
    pub directory: RawDirectory,
    pub keys: RawKeys,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClientRule {
    pub cidr: Option<String>,
    pub cert: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirectory {
    pub url: String,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub starttls: bool,
    #[serde(default)]
    pub allow_plaintext_loopback: bool,
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<PathBuf>,
    pub user_base: Option<String>,
    pub user_dn_template: Option<String>,
    pub service_connections: Option<usize>,
    pub group_dn: String,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeys {
    pub source: Option<String>,
    pub admin_principal: Option<String>,
    pub admin_keytab: Option<PathBuf>,
    pub kadmin_path: Option<PathBuf>,
    pub kadmin_local_path: Option<PathBuf>,
    pub kdc_profile: Option<PathBuf>,
    pub store_dir: Option<PathBuf>,
    pub timeout_secs: Option<u64>,
}
