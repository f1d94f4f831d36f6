//! `[tenants.NAME.oidc]`: an OpenID Connect identity provider as the tenant's identity source
//! (see `crate::oidc`). Checked here, at load, with the offending key named.

use super::{ConfigError, Paths, Secret, invalid, read_secret_file, secs_in};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOidc {
    /// The issuer identifier: discovery is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The CA bundle the provider's certificates must chain to (no system roots).
    pub ca_file: PathBuf,
    pub client_id: String,
    /// A confidential client's secret (client_secret_basic); without it, a public client.
    pub client_secret_file: Option<PathBuf>,
    pub audiences: Option<Vec<String>>,
    pub username_claim: Option<String>,
    pub username_domain: Option<String>,
    pub groups_claim: Option<String>,
    pub groups: Vec<String>,
    pub keytab_groups: Option<Vec<String>>,
    #[serde(default)]
    pub required_acr: Vec<String>,
    #[serde(default)]
    pub required_amr: Vec<String>,
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub password_grant: bool,
    pub device_grant: Option<bool>,
    pub device_wait_secs: Option<u64>,
    pub timeout_secs: Option<u64>,
    pub clock_skew_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    pub issuer: String,
    pub ca_file: PathBuf,
    pub ca_pem: Vec<u8>,
    pub client_id: String,
    pub client_secret_file: Option<PathBuf>,
    pub client_secret: Option<Secret>,
    /// An ID token's `aud` must hold one of these (by default the client id).
    pub audiences: Vec<String>,
    /// The claim that names the person (`preferred_username`, `upn`, `email`).
    pub username_claim: String,
    /// The claim's value must end in `@` and this; the rest is the username.
    pub username_domain: Option<String>,
    pub groups_claim: String,
    /// Membership of any one of these authorizes (as the groups claim writes them).
    pub groups: Vec<String>,
    /// Members of any of these may get keytabs where the tenant allows only tickets.
    pub keytab_groups: Vec<String>,
    /// The token's `acr` must be one of these (none: any).
    pub required_acr: Vec<String>,
    /// The token's `amr` must hold all of these (e.g. `otp`, `hwk`, `mfa`).
    pub required_amr: Vec<String>,
    pub scopes: Vec<String>,
    /// Password logins are checked at the token endpoint (resource-owner password grant).
    pub password_grant: bool,
    /// `--sso` logins sign in at the provider (device authorization grant, RFC 8628).
    pub device_grant: bool,
    /// How long a device login waits for the person (bounded by the provider's own expiry).
    pub device_wait: Duration,
    /// For all of one login's calls to the provider together.
    pub timeout: Duration,
    pub clock_skew: Duration,
}

pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "profile", "email"];

impl Paths<'_> {
    pub(super) fn oidc(self, tenant: &str, raw: RawOidc) -> Result<OidcConfig, ConfigError> {
        let key = |field: &str| format!("tenants.{tenant}.oidc.{field}");
        let issuer = raw.issuer.trim_end_matches('/').to_owned();
        match url::Url::parse(&issuer) {
            Ok(url) if url.scheme() == "https" && url.host().is_some() && url.query().is_none() => {}
            _ => return Err(invalid(key("issuer"), "must be an https:// URL without query")),
        }
        let ca_file = self.path(raw.ca_file);
        let ca_pem =
            std::fs::read(&ca_file).map_err(|e| invalid(key("ca_file"), format!("{}: {e}", ca_file.display())))?;
        if raw.client_id.is_empty() {
            return Err(invalid(key("client_id"), "must not be empty"));
        }
        let secret_key = key("client_secret_file");
        let client_secret_file = raw
            .client_secret_file
            .map(|path| self.secret(path, &secret_key))
            .transpose()?;
        let client_secret = client_secret_file
            .as_deref()
            .map(|path| read_secret_file(path, &secret_key))
            .transpose()?;
        let audiences = raw.audiences.unwrap_or_else(|| vec![raw.client_id.clone()]);
        if audiences.is_empty() {
            return Err(invalid(key("audiences"), "must name at least one audience"));
        }
        let scopes = raw
            .scopes
            .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect());
        if !scopes.iter().any(|s| s == "openid") {
            return Err(invalid(
                key("scopes"),
                "must include \"openid\" (else there is no ID token)",
            ));
        }
        if let Some(bad) = scopes.iter().find(|s| s.is_empty() || s.contains([' ', '"', '\\'])) {
            return Err(invalid(key("scopes"), format!("{bad:?} is not a scope token")));
        }
        if raw.groups.is_empty() || raw.groups.iter().any(String::is_empty) {
            return Err(invalid(key("groups"), "must name at least one group"));
        }
        let claim = |value: Option<String>, default: &str, field: &str| {
            let value = value.unwrap_or_else(|| default.to_owned());
            if value.is_empty() {
                return Err(invalid(key(field), "must not be empty"));
            }
            Ok(value)
        };
        let device_grant = raw.device_grant.unwrap_or(true);
        if !raw.password_grant && !device_grant {
            return Err(invalid(
                key("device_grant"),
                "and password_grant are both false: nobody could log in",
            ));
        }
        Ok(OidcConfig {
            issuer,
            ca_file,
            ca_pem,
            client_id: raw.client_id,
            client_secret_file,
            client_secret,
            audiences,
            username_claim: claim(raw.username_claim, "preferred_username", "username_claim")?,
            username_domain: raw.username_domain.filter(|d| !d.is_empty()),
            groups_claim: claim(raw.groups_claim, "groups", "groups_claim")?,
            groups: raw.groups,
            keytab_groups: raw.keytab_groups.unwrap_or_default(),
            required_acr: raw.required_acr,
            required_amr: raw.required_amr,
            scopes,
            password_grant: raw.password_grant,
            device_grant,
            device_wait: secs_in(raw.device_wait_secs, 300, 30..=900, &key("device_wait_secs"))?,
            timeout: secs_in(raw.timeout_secs, 10, 1..=120, &key("timeout_secs"))?,
            clock_skew: secs_in(raw.clock_skew_secs, 60, 0..=600, &key("clock_skew_secs"))?,
        })
    }
}

impl OidcConfig {
    /// A valid configuration for unit tests: `issuer`, `client_id`, group `hadoop-users`.
    #[cfg(test)]
    pub fn for_tests(issuer: &str, client_id: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            ca_file: PathBuf::from("/dev/null"),
            ca_pem: Vec::new(),
            client_id: client_id.to_owned(),
            client_secret_file: None,
            client_secret: None,
            audiences: vec![client_id.to_owned()],
            username_claim: "preferred_username".into(),
            username_domain: None,
            groups_claim: "groups".into(),
            groups: vec!["hadoop-users".into()],
            keytab_groups: Vec::new(),
            required_acr: Vec::new(),
            required_amr: Vec::new(),
            scopes: DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            password_grant: true,
            device_grant: true,
            device_wait: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            clock_skew: Duration::from_secs(60),
        }
    }
}
