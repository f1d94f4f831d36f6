//! The effective configuration as TOML, for `ktbrokerd check-config`: every default filled in,
//! every path resolved, and secrets shown only as where they come from (marked with a comment),
//! never their contents. It is a valid configuration itself: loaded again, it is the same
//! configuration (tested).

use super::{Config, DirectoryConfig, GroupCheck, KeysConfig, LdapTransport, OidcConfig, TenantConfig, UserLookup};
use std::path::Path;
use toml::{Table, Value};

impl Config {
    /// The configuration as the daemon will run it, in the config file's own shape.
    pub fn effective_toml(&self) -> String {
        let mut root = Table::new();
        root.insert("version".into(), Value::Integer(1));
        if let Some(name) = &self.default_tenant {
            root.insert("default_tenant".into(), name.as_str().into());
        }
        let mut server = Table::new();
        server.insert("listen".into(), self.listen.to_string().into());
        server.insert("tls_cert".into(), path(&self.tls_cert));
        server.insert("tls_key".into(), redacted(&self.tls_key));
        if let Some(ca) = &self.client_ca {
            server.insert("client_ca_file".into(), path(ca));
        }
        server.insert(
            "max_concurrent_requests".into(),
            integer(self.max_concurrent_requests as u64),
        );
        server.insert("request_timeout_secs".into(), integer(self.request_timeout.as_secs()));
        server.insert("max_connections".into(), integer(self.connections.max_total as u64));
        server.insert(
            "max_connections_per_source".into(),
            integer(self.connections.max_per_source as u64),
        );
        server.insert(
            "idle_timeout_secs".into(),
            integer(self.connections.idle_timeout.as_secs()),
        );
        root.insert("server".into(), server.into());

        let mut kerberos = Table::new();
        if let Some(krb5) = &self.krb5_config {
            kerberos.insert("krb5_config".into(), path(krb5));
        }
        root.insert("kerberos".into(), kerberos.into());
        let mut auth = Table::new();
        auth.insert(
            "failure_delay_ms".into(),
            integer(self.failure_delay.as_millis() as u64),
        );
        root.insert("auth".into(), auth.into());
        let mut audit = Table::new();
        if let Some(file) = &self.audit_file {
            audit.insert("file".into(), path(file));
        }
        if let Some(key) = &self.audit_key_file {
            audit.insert("key_file".into(), redacted(key));
        }
        root.insert("audit".into(), audit.into());
        let mut limits = Table::new();
        limits.insert("max_failures".into(), integer(u64::from(self.limits.max_failures)));
        limits.insert(
            "max_source_failures".into(),
            integer(u64::from(self.limits.max_source_failures)),
        );
        limits.insert(
            "source_credit_per_user".into(),
            integer(u64::from(self.limits.source_credit_per_user)),
        );
        let trusted: Vec<String> = self
            .trusted_sources
            .iter()
            .filter_map(|rule| rule.cidr.map(|c| c.to_string()).or_else(|| rule.cert.clone()))
            .collect();
        limits.insert("trusted_sources".into(), strings(&trusted));
        limits.insert("window_secs".into(), integer(self.limits.window.as_secs()));
        limits.insert("lockout_secs".into(), integer(self.limits.lockout.as_secs()));
        root.insert("limits".into(), limits.into());
        let mut metrics = Table::new();
        if let Some(listen) = self.metrics_listen {
            metrics.insert("listen".into(), listen.to_string().into());
        }
        root.insert("metrics".into(), metrics.into());
        let mut admin = Table::new();
        admin.insert("identities".into(), strings(&self.admin_identities));
        root.insert("admin".into(), admin.into());

        let tenants: Table = self
            .tenants
            .iter()
            .map(|(name, tenant)| (name.clone(), Value::Table(tenant_table(tenant))))
            .collect();
        root.insert("tenants".into(), tenants.into());
        match toml::to_string_pretty(&root) {
            Ok(text) => mark_secret_files(&text),
            Err(e) => format!("# cannot render the configuration: {e}\n"),
        }
    }
}

fn tenant_table(tenant: &TenantConfig) -> Table {
    let mut t = Table::new();
    let policy = &tenant.policy;
    t.insert("realm".into(), tenant.realm.as_str().into());
    t.insert("principal".into(), policy.principals.template().into());
    t.insert("allow_principals".into(), strings(policy.principals.grants()));
    let names: Vec<String> = policy
        .enctypes
        .iter()
        .map(|e| crate::policy::enctype_name(*e))
        .collect();
    t.insert("enctypes".into(), strings(&names));
    t.insert("provision".into(), policy.provision.into());
    t.insert("deliveries".into(), strings(&policy.deliveries.names()));
    let seconds = |d: Option<std::time::Duration>| d.map(|d| format!("{}s", d.as_secs()));
    if let Some(lifetime) = seconds(policy.ticket.lifetimes.ticket) {
        t.insert("ticket_lifetime".into(), lifetime.into());
    }
    if let Some(lifetime) = seconds(policy.ticket.lifetimes.renewable) {
        t.insert("renew_lifetime".into(), lifetime.into());
    }
    if let Some(forwardable) = policy.ticket.forwardable {
        t.insert("forwardable".into(), forwardable.into());
    }
    let clients: Vec<Value> = policy
        .clients
        .iter()
        .map(|rule| {
            let mut r = Table::new();
            if let Some(cidr) = rule.cidr {
                r.insert("cidr".into(), cidr.to_string().into());
            }
            if let Some(cert) = &rule.cert {
                r.insert("cert".into(), cert.as_str().into());
            }
            Value::Table(r)
        })
        .collect();
    t.insert("clients".into(), Value::Array(clients));

    if let Some(d) = tenant.directory() {
        t.insert("directory".into(), directory_table(d).into());
    }
    if let Some(o) = tenant.provider() {
        t.insert("oidc".into(), oidc_table(o).into());
    }

    let mut keys = Table::new();
    keys.insert("source".into(), tenant.keys.source_name().into());
    match &tenant.keys {
        KeysConfig::Kadmin {
            admin_principal,
            admin_keytab,
            timeout,
            sessions,
        } => {
            keys.insert("admin_principal".into(), admin_principal.as_str().into());
            keys.insert("admin_keytab".into(), redacted(admin_keytab));
            keys.insert("timeout_secs".into(), integer(timeout.as_secs()));
            keys.insert("sessions".into(), integer(*sessions as u64));
        }
        KeysConfig::KadminCli {
            kadmin_path,
            admin_principal,
            admin_keytab,
            timeout,
        } => {
            keys.insert("kadmin_path".into(), path(kadmin_path));
            keys.insert("admin_principal".into(), admin_principal.as_str().into());
            keys.insert("admin_keytab".into(), redacted(admin_keytab));
            keys.insert("timeout_secs".into(), integer(timeout.as_secs()));
        }
        KeysConfig::KadminLocal {
            kadmin_local_path,
            kdc_profile,
            timeout,
        } => {
            keys.insert("kadmin_local_path".into(), path(kadmin_local_path));
            if let Some(profile) = kdc_profile {
                keys.insert("kdc_profile".into(), path(profile));
            }
            keys.insert("timeout_secs".into(), integer(timeout.as_secs()));
        }
        KeysConfig::Store { dir } => {
            keys.insert("store_dir".into(), path(dir));
        }
    }
    t.insert("keys".into(), keys.into());
    t
}

fn path(p: &Path) -> Value {
    p.display().to_string().into()
}

/// A secret file: where it is (marked by [`mark_secret_files`]), never what it holds.
fn redacted(p: &Path) -> Value {
    path(p)
}

/// The keys whose value is a file holding a secret.
const SECRET_FILE_KEYS: [&str; 5] = [
    "tls_key",
    "bind_password_file",
    "admin_keytab",
    "key_file",
    "client_secret_file",
];

/// Appends `# contents redacted` to each line that names a secret file, so a reader sees that
/// only the path is shown (TOML comments keep the text a valid configuration).
fn mark_secret_files(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    for line in text.lines() {
        out.push_str(line);
        if line
            .split_once(" = ")
            .is_some_and(|(key, _)| SECRET_FILE_KEYS.contains(&key.trim()))
        {
            out.push_str("  # (contents redacted)");
        }
        out.push('\n');
    }
    out
}

fn integer(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.clone())).collect())
}

fn directory_table(d: &DirectoryConfig) -> Table {
    let mut directory = Table::new();
    directory.insert("schema".into(), d.schema.name().into());
    match &d.discovery {
        Some(discovery) => {
            directory.insert("srv_domain".into(), discovery.domain.as_str().into());
            if let Some(server) = discovery.dns_server {
                directory.insert("dns_server".into(), server.to_string().into());
            }
        }
        None => {
            let urls: Vec<String> = d.servers.iter().map(|s| s.url.clone()).collect();
            directory.insert("urls".into(), strings(&urls));
        }
    }
    let transports = |t: LdapTransport| d.servers.iter().any(|s| s.transport == t);
    let starttls = d
        .discovery
        .as_ref()
        .map_or(transports(LdapTransport::StartTls), |s| s.starttls);
    directory.insert("starttls".into(), starttls.into());
    directory.insert(
        "allow_plaintext_loopback".into(),
        transports(LdapTransport::PlaintextLoopback).into(),
    );
    if let Some(ca) = &d.ca_file {
        directory.insert("ca_file".into(), path(ca));
    }
    match &d.lookup {
        UserLookup::Search {
            bind_dn,
            bind_password_file,
            user_base,
            ..
        } => {
            directory.insert("bind_dn".into(), bind_dn.as_str().into());
            directory.insert("bind_password_file".into(), redacted(bind_password_file));
            directory.insert("user_base".into(), user_base.as_str().into());
            directory.insert("user_filter".into(), d.user_filter.as_str().into());
            directory.insert("service_connections".into(), integer(d.service_connections as u64));
        }
        UserLookup::Template { template } => {
            directory.insert("user_dn_template".into(), template.as_str().into());
        }
    }
    directory.insert("user_bind_connections".into(), integer(d.user_bind_connections as u64));
    if let Some(attribute) = &d.principal_attribute {
        directory.insert("principal_attribute".into(), attribute.as_str().into());
    }
    directory.insert("groups".into(), strings(&d.groups));
    if !d.keytab_groups.is_empty() {
        directory.insert("keytab_groups".into(), strings(&d.keytab_groups));
    }
    let nested = matches!(d.group_check, GroupCheck::InChain | GroupCheck::Recursive { .. });
    directory.insert("nested_groups".into(), nested.into());
    if let GroupCheck::Recursive { base, depth } = &d.group_check {
        directory.insert("group_base".into(), base.as_str().into());
        directory.insert("group_depth".into(), integer(u64::from(*depth)));
    }
    directory.insert("timeout_secs".into(), integer(d.timeout.as_secs()));
    directory
}

fn oidc_table(o: &OidcConfig) -> Table {
    let mut oidc = Table::new();
    oidc.insert("issuer".into(), o.issuer.as_str().into());
    oidc.insert("ca_file".into(), path(&o.ca_file));
    oidc.insert("client_id".into(), o.client_id.as_str().into());
    if let Some(secret) = &o.client_secret_file {
        oidc.insert("client_secret_file".into(), redacted(secret));
    }
    oidc.insert("audiences".into(), strings(&o.audiences));
    oidc.insert("username_claim".into(), o.username_claim.as_str().into());
    if let Some(domain) = &o.username_domain {
        oidc.insert("username_domain".into(), domain.as_str().into());
    }
    oidc.insert("groups_claim".into(), o.groups_claim.as_str().into());
    oidc.insert("groups".into(), strings(&o.groups));
    if !o.keytab_groups.is_empty() {
        oidc.insert("keytab_groups".into(), strings(&o.keytab_groups));
    }
    oidc.insert("required_acr".into(), strings(&o.required_acr));
    oidc.insert("required_amr".into(), strings(&o.required_amr));
    oidc.insert("scopes".into(), strings(&o.scopes));
    oidc.insert("password_grant".into(), o.password_grant.into());
    oidc.insert("device_grant".into(), o.device_grant.into());
    oidc.insert("device_wait_secs".into(), integer(o.device_wait.as_secs()));
    oidc.insert("timeout_secs".into(), integer(o.timeout.as_secs()));
    oidc.insert("clock_skew_secs".into(), integer(o.clock_skew.as_secs()));
    oidc
}
