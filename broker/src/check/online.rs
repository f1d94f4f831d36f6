//! `check-config --online`: the broker's peers answer as `run` will need them to. Per tenant:
//! every directory server takes a TLS connection and the service account's bind and shows it the
//! user base and the configured groups (or the identity provider serves its discovery document
//! and signing keys); the realm's KDC answers; kadmind takes the admin
//! principal's keytab, and its ACL grants what the configuration uses (`e` always, `a` with
//! provisioning, `c` when admins may rotate keys, `i` for kadmin-cli's rotation) on a principal
//! shaped like the served ones, and nothing beyond that without a warning.

use super::Report;
use crate::config::{Config, KeysConfig, OidcConfig, TenantConfig};
use crate::directory::LdapDirectory;
use crate::kadm5::{Kadm5Session, Privilege};
use std::collections::BTreeSet;
use std::time::Duration;

/// Every tenant's directory, KDC and kadmind. Blocking kadm5 and KDC calls run on their own
/// threads under the tenant's key-source timeout, so a frozen peer fails the check instead of
/// hanging it.
pub async fn online(config: &Config) -> Report {
    let mut report = Report::default();
    for (name, tenant) in &config.tenants {
        check_directory(&mut report, name, tenant).await;
        if let Some(oidc) = tenant.provider() {
            check_identity_provider(&mut report, name, oidc).await;
        }
        let timeout = key_source_timeout(&tenant.keys);
        let realm = tenant.realm.clone();
        let kdc = blocking(timeout, move || {
            ktbroker_krb5::Context::new()
                .and_then(|context| context.probe_kdc(&realm))
                .map_err(|e| e.to_string())
        })
        .await;
        if let Err(why) = kdc {
            report.error(
                &format!("tenants.{name}.realm"),
                format!("the KDC of {}: {why}", tenant.realm),
            );
        }
        check_kadmind(&mut report, name, tenant, config, timeout).await;
    }
    report
}

/// The provider's discovery document and keys, fetched as a login would fetch them.
async fn check_identity_provider(report: &mut Report, name: &str, oidc: &OidcConfig) {
    let key = format!("tenants.{name}.oidc.issuer");
    let http = match crate::oidc::http::Https::new(&oidc.ca_pem, oidc.timeout / 2) {
        Ok(http) => http,
        Err(e) => return report.error(&format!("tenants.{name}.oidc.ca_file"), e),
    };
    let provider = crate::oidc::provider::Provider::new(&oidc.issuer, http);
    let deadline = tokio::time::Instant::now() + oidc.timeout;
    if let Err(e) = provider.keys(None, deadline).await {
        report.error(&key, e.to_string());
    }
}

async fn check_directory(report: &mut Report, name: &str, tenant: &TenantConfig) {
    let key = format!("tenants.{name}.directory");
    let Some(directory_config) = tenant.directory() else {
        return;
    };
    let mut directory_config = directory_config.clone();
    if let Err(why) = crate::directory::discover(&mut directory_config).await {
        return report.error(
            &format!("{key}.srv_domain"),
            format!("finding the directory servers: {why}"),
        );
    }
    let directory = match LdapDirectory::new(directory_config) {
        Ok(directory) => directory,
        Err(e) => return report.error(&key, e.to_string()),
    };
    for probe in directory.probe_servers().await {
        if let Err(e) = probe.outcome {
            report.error(&key, format!("{}: {e}", probe.url));
        }
        for group in probe.missing_groups {
            report.warning(
                &format!("{key}.groups"),
                format!(
                    "{}: {group} is not visible to the service account (no one gets in through it)",
                    probe.url
                ),
            );
        }
    }
}

fn key_source_timeout(keys: &KeysConfig) -> Duration {
    match keys {
        KeysConfig::Kadmin { timeout, .. }
        | KeysConfig::KadminCli { timeout, .. }
        | KeysConfig::KadminLocal { timeout, .. } => *timeout,
        KeysConfig::Store { .. } => ktbroker_codes::timeouts::KEY_SOURCE,
    }
}

/// The privileges the tenant's configuration makes the broker use.
pub fn privileges_used(tenant: &TenantConfig, config: &Config) -> BTreeSet<Privilege> {
    let mut used = BTreeSet::from([Privilege::Extract]);
    if tenant.policy.provision {
        used.insert(Privilege::Add);
    }
    let rotates = !config.admin_identities.is_empty();
    if rotates {
        used.insert(Privilege::ChangePassword);
        // kadmin-cli reads the new kvno with getprinc.
        if matches!(tenant.keys, KeysConfig::KadminCli { .. }) {
            used.insert(Privilege::Inquire);
        }
    }
    used
}

async fn check_kadmind(report: &mut Report, name: &str, tenant: &TenantConfig, config: &Config, timeout: Duration) {
    let (admin, keytab) = match &tenant.keys {
        KeysConfig::Kadmin {
            admin_principal,
            admin_keytab,
            ..
        }
        | KeysConfig::KadminCli {
            admin_principal,
            admin_keytab,
            ..
        } => (admin_principal.clone(), admin_keytab.clone()),
        KeysConfig::KadminLocal { .. } | KeysConfig::Store { .. } => return,
    };
    let key = format!("tenants.{name}.keys.admin_principal");
    let Some(target) = probe_target(tenant) else {
        return report.error(&key, "no principal from the principal template to probe kadmind's ACL");
    };
    let realm = tenant.realm.clone();
    let granted = blocking(timeout, move || {
        let mut session =
            Kadm5Session::open(&admin, &keytab, &realm).map_err(|e| format!("kadm5 session as {admin}: {e}"))?;
        let mut granted = BTreeSet::new();
        for privilege in Privilege::ALL {
            let has = session
                .has_privilege(privilege, &target)
                .map_err(|e| format!("asking kadmind about '{}': {e}", privilege.letter()))?;
            if has {
                granted.insert(privilege);
            }
        }
        Ok(granted)
    })
    .await;
    let granted = match granted {
        Ok(granted) => granted,
        Err(why) => return report.error(&key, why),
    };
    let used = privileges_used(tenant, config);
    let letters = |set: &mut dyn Iterator<Item = &Privilege>| -> String { set.map(|p| p.letter()).collect() };
    let missing = letters(&mut used.difference(&granted));
    if !missing.is_empty() {
        report.error(
            &key,
            format!(
                "kadmind's ACL does not grant '{missing}' on principals like {} (kadm5.acl; the \
                 configuration uses '{}')",
                probe_shape(tenant),
                letters(&mut used.iter())
            ),
        );
    }
    let beyond = letters(&mut granted.difference(&used));
    if !beyond.is_empty() {
        report.warning(
            &key,
            format!(
                "kadmind's ACL also grants '{beyond}' on principals like {}, which this \
                 configuration never uses: narrow the kadm5.acl line",
                probe_shape(tenant)
            ),
        );
    }
}

/// A principal shaped like the ones the tenant serves that surely does not exist.
fn probe_target(tenant: &TenantConfig) -> Option<String> {
    use ring::rand::SecureRandom;
    let mut random = [0u8; 12];
    ring::rand::SystemRandom::new().fill(&mut random).ok()?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let user = crate::policy::validate_username(&format!("ktbroker-check-{hex}")).ok()?;
    tenant.policy.principals.principal_for(&user, None).ok()
}

fn probe_shape(tenant: &TenantConfig) -> String {
    crate::policy::validate_username("user")
        .ok()
        .and_then(|user| tenant.policy.principals.principal_for(&user, None).ok())
        .unwrap_or_else(|| tenant.realm.clone())
}

/// Runs `work` on a thread of its own; gives up waiting after `timeout` (the thread is left to
/// end with the process).
async fn blocking<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (send, receive) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = send.send(work());
    });
    match tokio::time::timeout(timeout, receive).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err("the check's thread ended without an answer".into()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}
