//! `ktbrokerd check-config`: whether a configuration that parses would also work, found before
//! `run` (or a reload) meets it. Offline: every file it names exists and the service user may
//! use it, secrets are private, the TLS certificate matches its key and is in date, CA bundles
//! parse, admin keytabs hold the admin principal, each realm is in the krb5 profile, the audit
//! file can be written. Online (`--online`, see [`online`]): the directory, the KDC and kadmind
//! answer as the broker will ask them, and the admin principal has the privileges it needs.

pub mod access;
mod certs;
pub mod online;
pub mod unit;

use crate::config::{Config, KeysConfig, UserLookup};
use access::{Denied, Need, ServiceUser};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use unit::ServiceUnit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One thing found, under the configuration key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: `{}`: {}", self.key, self.message)
    }
}

/// Everything found, in the order it was found.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        self.push(Severity::Error, key, message.into());
    }

    pub fn warning(&mut self, key: &str, message: impl Into<String>) {
        self.push(Severity::Warning, key, message.into());
    }

    fn push(&mut self, severity: Severity, key: &str, message: String) {
        self.findings.push(Finding {
            severity,
            key: key.to_owned(),
            message,
        });
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == severity).count()
    }

    pub fn extend(&mut self, other: Report) {
        self.findings.extend(other.findings);
    }
}

/// Where the configuration will run: as which user, under which unit, and which of its paths
/// systemd reads (as root) and hands over as credentials.
#[derive(Debug, Default)]
pub struct Setting {
    /// `None`: the user database has no such account (reported once, by the caller).
    pub user: Option<ServiceUser>,
    pub unit: Option<ServiceUnit>,
    /// Credential files, or the credentials directory, as resolved for this check.
    pub credentials: Vec<PathBuf>,
}

impl Setting {
    fn is_credential(&self, path: &Path) -> bool {
        self.credentials.iter().any(|c| path.starts_with(c))
    }

    /// The service user may do `need` with `path` (a credential is systemd's to read).
    fn check_access(&self, report: &mut Report, key: &str, path: &Path, need: Need) {
        if !path.exists() {
            return report.error(key, format!("{} does not exist", path.display()));
        }
        if self.is_credential(path) {
            return;
        }
        let Some(user) = &self.user else { return };
        match user.may(path, need) {
            Ok(()) => {}
            Err(Denied::No(why)) => report.error(key, why),
            Err(Denied::Unknown(why)) => report.warning(key, why),
        }
    }
}

/// The checks that need no network. `config` has loaded, so its syntax, values and the
/// privacy of its secret files are already known good.
pub fn offline(config: &Config, setting: &Setting, now: SystemTime) -> Report {
    let mut report = Report::default();
    let r = &mut report;
    setting.check_access(r, "server.tls_cert", &config.tls_cert, Need::Read);
    setting.check_access(r, "server.tls_key", &config.tls_key, Need::Read);
    if config.tls_cert.exists() && config.tls_key.exists() {
        certs::check_server_certificate(r, &config.tls_cert, &config.tls_key, now);
    }
    if let Some(ca) = &config.client_ca {
        setting.check_access(r, "server.client_ca_file", ca, Need::Read);
        if ca.exists() {
            certs::check_ca_bundle(r, "server.client_ca_file", ca, now);
        }
    }
    if let Some(profile) = &config.krb5_config {
        setting.check_access(r, "kerberos.krb5_config", profile, Need::Read);
    }
    if let Some(key) = &config.audit_key_file {
        setting.check_access(r, "audit.key_file", key, Need::Read);
    }
    if let Some(audit) = &config.audit_file {
        check_audit_file(r, setting, audit);
    }
    check_realms(r, config);
    for (name, tenant) in &config.tenants {
        let key = |field: &str| format!("tenants.{name}.{field}");
        if let Some(directory) = tenant.directory() {
            if let Some(ca) = &directory.ca_file {
                setting.check_access(r, &key("directory.ca_file"), ca, Need::Read);
                if ca.exists() {
                    certs::check_ca_bundle(r, &key("directory.ca_file"), ca, now);
                }
            }
            if let UserLookup::Search { bind_password_file, .. } = &directory.lookup {
                setting.check_access(r, &key("directory.bind_password_file"), bind_password_file, Need::Read);
            }
        }
        if let Some(oidc) = tenant.provider() {
            setting.check_access(r, &key("oidc.ca_file"), &oidc.ca_file, Need::Read);
            certs::check_ca_bundle(r, &key("oidc.ca_file"), &oidc.ca_file, now);
            if let Some(secret) = &oidc.client_secret_file {
                setting.check_access(r, &key("oidc.client_secret_file"), secret, Need::Read);
            }
        }
        match &tenant.keys {
            KeysConfig::Kadmin {
                admin_principal,
                admin_keytab,
                ..
            } => check_admin_keytab(
                r,
                setting,
                &key("keys.admin_keytab"),
                admin_keytab,
                admin_principal,
                &tenant.realm,
            ),
            KeysConfig::KadminCli {
                kadmin_path,
                admin_principal,
                admin_keytab,
                ..
            } => {
                setting.check_access(r, &key("keys.kadmin_path"), kadmin_path, Need::Execute);
                check_admin_keytab(
                    r,
                    setting,
                    &key("keys.admin_keytab"),
                    admin_keytab,
                    admin_principal,
                    &tenant.realm,
                );
            }
            KeysConfig::KadminLocal {
                kadmin_local_path,
                kdc_profile,
                ..
            } => {
                setting.check_access(r, &key("keys.kadmin_local_path"), kadmin_local_path, Need::Execute);
                if let Some(profile) = kdc_profile {
                    setting.check_access(r, &key("keys.kdc_profile"), profile, Need::Read);
                }
            }
            KeysConfig::Store { dir } => {
                setting.check_access(r, &key("keys.store_dir"), dir, Need::ReadDirectory);
            }
        }
    }
    report
}

/// The broker appends to the audit file: it must exist writable, or its directory must be
/// writable (or be made by systemd at start), and the unit's sandbox must let it write there.
fn check_audit_file(report: &mut Report, setting: &Setting, audit: &Path) {
    const KEY: &str = "audit.file";
    let dir = audit.parent().unwrap_or(Path::new("/"));
    if let Some(unit) = &setting.unit
        && !unit.may_write(audit)
    {
        report.error(
            KEY,
            format!(
                "{} is read-only for the service (ProtectSystem=strict in {}); put it under a \
                 LogsDirectory= or add ReadWritePaths={}",
                audit.display(),
                unit.files.first().map_or_else(String::new, |f| f.display().to_string()),
                dir.display()
            ),
        );
        return;
    }
    if audit.exists() {
        return setting.check_access(report, KEY, audit, Need::Write);
    }
    if !dir.exists() {
        if setting.unit.as_ref().is_some_and(|u| u.creates(dir)) {
            return; // made by systemd for the service at start
        }
        return report.error(KEY, format!("{} does not exist", dir.display()));
    }
    setting.check_access(report, KEY, dir, Need::Write);
}

/// Each tenant's realm must be known to the krb5 profile: its KDCs listed, or found in DNS.
fn check_realms(report: &mut Report, config: &Config) {
    let context = match ktbroker_krb5::Context::new() {
        Ok(context) => context,
        Err(e) => return report.error("kerberos.krb5_config", format!("libkrb5 cannot read it: {e}")),
    };
    let profile = krb5_profile_name(config);
    for (name, tenant) in &config.tenants {
        let key = format!("tenants.{name}.realm");
        let realm = &tenant.realm;
        let listed = context.realm_relation(realm, "kdc");
        let knows = context.knows_kdcs_of(realm);
        match (listed, knows) {
            (Ok(Some(_)), _) => {}
            (Ok(None), Ok(true)) => report.warning(
                &key,
                format!("{realm} has no [realms] entry in {profile}: its KDCs must come from DNS SRV records"),
            ),
            (Ok(None), Ok(false)) => report.error(
                &key,
                format!("{realm} is not in [realms] of {profile} and DNS lookups are off: no KDC to ask"),
            ),
            (Err(e), _) | (_, Err(e)) => report.error(&key, format!("reading {profile}: {e}")),
        }
    }
}

fn krb5_profile_name(config: &Config) -> String {
    config
        .krb5_config
        .as_ref()
        .map(|p| p.display().to_string())
        .or_else(|| std::env::var("KRB5_CONFIG").ok())
        .unwrap_or_else(|| "/etc/krb5.conf".to_owned())
}

/// The service user may read the admin keytab, which must hold a key for the admin principal, or
/// kadmind never sees the broker.
fn check_admin_keytab(report: &mut Report, setting: &Setting, key: &str, keytab: &Path, admin: &str, realm: &str) {
    setting.check_access(report, key, keytab, Need::Read);
    if !keytab.exists() {
        return;
    }
    let wanted = qualified(admin, realm);
    let entries =
        ktbroker_krb5::Context::new().and_then(|context| context.keytab_entries(&format!("FILE:{}", keytab.display())));
    match entries {
        Ok(entries) if entries.iter().any(|e| e.principal == wanted) => {}
        Ok(entries) => {
            let mut held: Vec<&str> = entries.iter().map(|e| e.principal.as_str()).collect();
            held.dedup();
            report.error(
                key,
                format!(
                    "{} has no key for {wanted} (it holds: {})",
                    keytab.display(),
                    held.join(", ")
                ),
            );
        }
        Err(e) => report.error(key, format!("{} is not a readable keytab: {e}", keytab.display())),
    }
}

/// `name` with `@realm` unless it names a realm already.
fn qualified(name: &str, realm: &str) -> String {
    if name.contains('@') {
        name.to_owned()
    } else {
        format!("{name}@{realm}")
    }
}
