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
    pub max_connections: Option<usize>,
    pub max_connections_per_source: Option<usize>,
    pub idle_timeout_secs: Option<u64>,
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
    /// A secret key: with it every audit line carries an HMAC (a keyed chain).
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_failures: Option<u32>,
    pub max_source_failures: Option<u32>,
    /// How much each distinct user who logged in from a source raises its limit.
    pub source_credit_per_user: Option<u32>,
    /// Login hosts: CIDRs or client-certificate names, never counted as a spraying source.
    #[serde(default)]
    pub trusted_sources: Vec<String>,
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
    /// `["keytab", "ticket"]` (the default), or one of them.
    pub deliveries: Option<Vec<String>>,
    /// Ticket delivery: what the broker asks the KDC for (kinit -l/-r syntax), and forwardable.
    pub ticket_lifetime: Option<String>,
    pub renew_lifetime: Option<String>,
    pub forwardable: Option<bool>,
    #[serde(default)]
    pub clients: Vec<RawClientRule>,
    pub directory: Option<RawDirectory>,
    /// An OpenID Connect provider instead of the directory.
    pub oidc: Option<super::oidc::RawOidc>,
    /// Read as a table first: `source` may be left out (it means "kadmin"), and a key that does
    /// not belong to the chosen source is named before [`RawKeys`] takes the table. A key no
    /// source knows is refused right here, like every unknown key.
    #[serde(deserialize_with = "known_key_fields")]
    pub keys: toml::Table,
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
    /// `rfc2307` (the default) or `active-directory`: where the defaults below come from.
    pub schema: Option<super::Schema>,
    /// One server; `urls` for several, tried in order.
    pub url: Option<String>,
    pub urls: Option<Vec<String>>,
    /// Instead of URLs: the servers of `_ldap._tcp.DOMAIN` (DNS SRV), as AD publishes them.
    pub srv_domain: Option<String>,
    /// The DNS server for that lookup (default: the system's resolvers).
    pub dns_server: Option<String>,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub starttls: bool,
    #[serde(default)]
    pub allow_plaintext_loopback: bool,
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<PathBuf>,
    pub user_base: Option<String>,
    pub user_dn_template: Option<String>,
    /// The person search, `{user}` standing for the escaped login name.
    pub user_filter: Option<String>,
    /// The attribute the schema's filter matches the login name against.
    pub login_attribute: Option<String>,
    pub principal_attribute: Option<String>,
    pub service_connections: Option<usize>,
    pub user_bind_connections: Option<usize>,
    pub group_dn: Option<String>,
    pub groups: Option<Vec<String>>,
    /// Members of these groups may get keytabs where the tenant's `deliveries` allow only tickets.
    pub keytab_groups: Option<Vec<String>>,
    pub nested_groups: Option<bool>,
    pub group_base: Option<String>,
    pub group_depth: Option<u32>,
    pub timeout_secs: Option<u64>,
}

/// `[tenants.NAME.keys]`: `source` says which of the key sources, and each takes its own keys.
#[derive(Debug, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub(super) enum RawKeys {
    Kadmin(RawKadmin),
    KadminCli(RawKadminCli),
    KadminLocal(RawKadminLocal),
    Store(RawStore),
}

/// The key source a `source` value names, and which keys it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum SourceKind {
    Kadmin,
    KadminCli,
    KadminLocal,
    Store,
}

impl SourceKind {
    pub const DEFAULT: &str = "kadmin";
    pub const ALL: [Self; 4] = [Self::Kadmin, Self::KadminCli, Self::KadminLocal, Self::Store];

    /// The keys this source's table may hold besides `source`, as its struct declares them.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Self::Kadmin => field_names::<RawKadmin>(),
            Self::KadminCli => field_names::<RawKadminCli>(),
            Self::KadminLocal => field_names::<RawKadminLocal>(),
            Self::Store => field_names::<RawStore>(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKadmin {
    pub admin_principal: String,
    pub admin_keytab: PathBuf,
    pub timeout_secs: Option<u64>,
    pub sessions: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKadminCli {
    pub kadmin_path: Option<PathBuf>,
    pub admin_principal: String,
    pub admin_keytab: PathBuf,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKadminLocal {
    pub kadmin_local_path: Option<PathBuf>,
    pub kdc_profile: Option<PathBuf>,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub store_dir: PathBuf,
}

/// `source` and every key any source takes, in declaration order.
pub(super) fn all_key_fields() -> &'static [&'static str] {
    static ALL: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = vec!["source"];
        for field in SourceKind::ALL.iter().flat_map(|source| source.fields()) {
            if !all.contains(field) {
                all.push(field);
            }
        }
        all
    })
}

fn known_key_fields<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<toml::Table, D::Error> {
    let table = toml::Table::deserialize(deserializer)?;
    match table.keys().find(|key| !all_key_fields().contains(&key.as_str())) {
        Some(unknown) => Err(serde::de::Error::unknown_field(unknown, all_key_fields())),
        None => Ok(table),
    }
}

/// The field names a derived `Deserialize` struct accepts: serde hands them to
/// `deserialize_struct`, where this probe records them (and then stops with an error).
pub(super) fn field_names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Deserializer, Visitor};
    use std::cell::Cell;

    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }

    struct Probe<'a>(&'a Cell<&'static [&'static str]>);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.set(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    let fields = Cell::new(&[][..]);
    let _ = T::deserialize(Probe(&fields));
    fields.get()
}
