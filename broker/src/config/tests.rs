use super::*;
use directory::ldap_transport;
use std::os::unix::fs::PermissionsExt;

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
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pw");
    std::fs::write(&path, "s3cret\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = read_secret_file(&path, "tenants.x.directory.bind_password_file")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tenants.x.directory.bind_password_file") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secret = read_secret_file(&path, "k").unwrap();
    assert_eq!(secret.0.as_str(), "s3cret");
    assert_eq!(format!("{secret:?}"), "<redacted>");
}

/// A directory holding the secret files VALID refers to, all 0600.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in ["pw", "key.pem", "admin.keytab"] {
        std::fs::write(dir.path().join(file), "x").unwrap();
        std::fs::set_permissions(dir.path().join(file), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    dir
}

fn load(dir: &tempfile::TempDir, text: &str) -> Result<Config, ConfigError> {
    let path = dir.path().join("broker.toml");
    std::fs::write(&path, text).unwrap();
    Config::load_with_credentials(&path, None)
}

fn error(dir: &tempfile::TempDir, text: &str) -> String {
    load(dir, text).unwrap_err().to_string()
}

#[test]
fn unknown_keys_and_wrong_versions_are_refused() {
    let dir = fixture();
    assert!(matches!(
        load(&dir, &format!("{VALID}\nlisten_everywhere = true\n")),
        Err(ConfigError::Parse { .. })
    ));
    assert!(matches!(
        load(&dir, &VALID.replace("group_dn =", "gruop_dn =")),
        Err(ConfigError::Parse { .. })
    ));
    assert!(error(&dir, &VALID.replace("version = 1", "version = 2")).contains("`version`"));
    let config = load(&dir, VALID).unwrap();
    let corp = &config.tenants["corp"];
    assert_eq!(
        corp.directory().unwrap().servers[0].transport,
        LdapTransport::PlaintextLoopback
    );
    assert_eq!(
        corp.keys,
        KeysConfig::Kadmin {
            admin_principal: "ktbroker/admin@EXAMPLE.COM".into(),
            admin_keytab: dir.path().join("admin.keytab"),
            timeout: Duration::from_secs(10),
            sessions: crate::config::DEFAULT_KADM5_SESSIONS,
        }
    );
    assert_eq!(
        config.default_tenant.as_deref(),
        Some("corp"),
        "the only tenant is the default"
    );
    assert_eq!(config.max_concurrent_requests, 256);
    assert_eq!(config.request_timeout, Duration::from_secs(12));
    assert_eq!(config.connections, ConnectionLimits::default());
}

#[test]
fn connection_caps_are_checked_against_each_other() {
    let dir = fixture();
    let with = |keys: &str| VALID.replacen("[server]\n", &format!("[server]\n{keys}\n"), 1);
    let config = load(&dir, &with("max_connections = 100\nidle_timeout_secs = 5")).unwrap();
    assert_eq!(
        config.connections,
        ConnectionLimits {
            max_total: 100,
            max_per_source: 100,
            idle_timeout: Duration::from_secs(5),
        },
        "the per-source default never exceeds the total"
    );
    for (keys, key) in [
        (
            "max_connections = 10\nmax_connections_per_source = 11",
            "server.max_connections_per_source",
        ),
        ("max_connections = 0", "server.max_connections"),
        ("max_connections_per_source = 0", "server.max_connections_per_source"),
        ("idle_timeout_secs = 0", "server.idle_timeout_secs"),
    ] {
        let err = error(&dir, &with(keys));
        assert!(err.contains(key), "{keys}: {err}");
    }
}

#[test]
fn credential_paths_resolve_in_the_credentials_directory() {
    let base = Path::new("/etc/ktbroker");
    let creds = Path::new("/run/credentials/ktbrokerd.service");
    let resolve = |raw: &str, dir: Option<&Path>| secret_path(PathBuf::from(raw), base, dir.into(), "server.tls_key");
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
fn credential_paths_resolve_to_the_units_sources() {
    let base = Path::new("/etc/ktbroker");
    let sources = BTreeMap::from([("tls-key".to_owned(), PathBuf::from("/etc/ktbroker/tls.key"))]);
    let resolve = |raw: &str| {
        secret_path(
            PathBuf::from(raw),
            base,
            Credentials::Sources(&sources),
            "server.tls_key",
        )
    };
    assert_eq!(
        resolve("credential:tls-key").unwrap(),
        PathBuf::from("/etc/ktbroker/tls.key")
    );
    let err = resolve("credential:admin-keytab").unwrap_err().to_string();
    assert!(
        err.contains("server.tls_key") && err.contains("LoadCredential=admin-keytab:"),
        "{err}"
    );
}

#[test]
fn every_secret_file_must_be_private() {
    let dir = fixture();
    assert!(load(&dir, VALID).is_ok());
    for (file, key) in [
        ("key.pem", "server.tls_key"),
        ("admin.keytab", "tenants.corp.keys.admin_keytab"),
        ("pw", "tenants.corp.directory.bind_password_file"),
    ] {
        std::fs::set_permissions(dir.path().join(file), std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = error(&dir, VALID);
        assert!(err.contains(key), "{err}");
        std::fs::set_permissions(dir.path().join(file), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn errors_name_the_tenant_key() {
    let dir = fixture();
    for (from, to, key) in [
        ("realm = \"EXAMPLE.COM\"", "realm = \"EX AMPLE\"", "tenants.corp.realm"),
        (
            "url = \"ldap://127.0.0.1:389\"",
            "url = \"ldap://10.1.1.1:389\"",
            "tenants.corp.directory.allow_plaintext_loopback",
        ),
        ("source = \"kadmin\"", "source = \"ldap\"", "tenants.corp.keys.source"),
        (
            "source = \"kadmin\"",
            "source = \"store\"",
            "tenants.corp.keys.admin_principal",
        ),
        (
            "timeout_secs = 10",
            "timeout_secs = 0",
            "tenants.corp.keys.timeout_secs",
        ),
        (
            "[tenants.corp.directory]",
            "principal = \"{user}/netdisk@{realm}\"\n[tenants.corp.directory]",
            "tenants.corp.principal",
        ),
        (
            "[tenants.corp.directory]",
            "enctypes = [\"rc4-hmac\"]\n[tenants.corp.directory]",
            "tenants.corp.enctypes",
        ),
        (
            "[tenants.corp.directory]",
            "[[tenants.corp.clients]]\ncidr = \"10.0.0.1/8\"\n[tenants.corp.directory]",
            "tenants.corp.clients.cidr",
        ),
        (
            "[tenants.corp.directory]",
            "[[tenants.corp.clients]]\ncert = \"edge1\"\n[tenants.corp.directory]",
            "tenants.corp.clients",
        ),
        (
            "[tenants.corp]",
            "default_tenant = \"other\"\n[tenants.corp]",
            "default_tenant",
        ),
        (
            "[server]",
            "[admin]\nidentities = [\"ops\"]\n[server]",
            "admin.identities",
        ),
        (
            "user_base = \"ou=people,dc=example,dc=com\"",
            "user_base = \"ou=people,dc=example,dc=com\"\nuser_dn_template = \"uid={user},dc=x\"",
            "tenants.corp.directory.user_dn_template",
        ),
        (
            "user_base = \"ou=people,dc=example,dc=com\"",
            "",
            "tenants.corp.directory.bind_dn",
        ),
        (
            "group_dn = \"cn=hadoop",
            "service_connections = 0\ngroup_dn = \"cn=hadoop",
            "tenants.corp.directory.service_connections",
        ),
        (
            "timeout_secs = 10",
            "timeout_secs = 10\nsessions = 0",
            "tenants.corp.keys.sessions",
        ),
        (
            "timeout_secs = 10",
            "timeout_secs = 10\nsessions = 65",
            "tenants.corp.keys.sessions",
        ),
    ] {
        let text = VALID.replacen(from, to, 1);
        assert_ne!(text, VALID, "{from} not found");
        let err = error(&dir, &text);
        assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
    }
}

#[test]
fn several_tenants_and_each_key_source() {
    let dir = fixture();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
    let text = format!(
        r#"{VALID}
[tenants.lab]
realm = "LAB.TEST"
principal = "{{user}}/netdisk@{{realm}}"
allow_principals = ["*/netdisk@LAB.TEST"]
provision = true
[[tenants.lab.clients]]
cidr = "10.0.0.0/8"
[tenants.lab.directory]
url = "ldaps://lab.example.com"
ca_file = "pw"
user_dn_template = "uid={{user}},ou=lab,dc=example,dc=com"
group_dn = "cn=lab,dc=example,dc=com"
[tenants.lab.keys]
source = "store"
store_dir = "store"
"#
    );
    assert_eq!(
        load(&dir, &text).unwrap().default_tenant,
        None,
        "two tenants, none named default"
    );
    let config = load(
        &dir,
        &text.replacen("[server]", "default_tenant = \"corp\"\n[server]", 1),
    )
    .unwrap();
    let lab = &config.tenants["lab"];
    assert_eq!(lab.keys, KeysConfig::Store { dir: store.clone() });
    assert!(matches!(lab.directory().unwrap().lookup, UserLookup::Template { .. }));
    assert_eq!(lab.policy.clients.len(), 1);
    assert!(lab.policy.provision);
    for (source, extra) in [
        ("kadmin-local", "kdc_profile = \"/etc/krb5kdc/kdc.conf\""),
        (
            "kadmin-cli",
            "admin_principal = \"a@LAB.TEST\"\nadmin_keytab = \"admin.keytab\"",
        ),
    ] {
        let variant = text
            .replacen("[server]", "default_tenant = \"corp\"\n[server]", 1)
            .replace(
                "source = \"store\"\nstore_dir = \"store\"",
                &format!("source = \"{source}\"\n{extra}"),
            );
        let config = load(&dir, &variant).unwrap();
        assert_eq!(config.tenants["lab"].keys.source_name(), source);
    }
    // A store directory others can read is refused.
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = error(
        &dir,
        &text.replacen("[server]", "default_tenant = \"corp\"\n[server]", 1),
    );
    assert!(err.contains("tenants.lab.keys.store_dir"), "{err}");
}

#[test]
fn without_a_default_several_tenants_need_one_named() {
    let dir = fixture();
    let corp = &VALID[VALID.find("[tenants.corp]").unwrap()..];
    let two = format!("{VALID}\n{}", corp.replace("corp", "lab"));
    let config = load(&dir, &two).unwrap();
    assert_eq!(config.default_tenant, None);
    assert_eq!(config.tenants.len(), 2);
}

#[test]
fn effective_config_is_toml_with_defaults_and_no_secret_contents() {
    let dir = fixture();
    std::fs::write(dir.path().join("pw"), "hunter2-ldap\n").unwrap();
    let config = load(&dir, VALID).unwrap();
    let text = config.effective_toml();
    let parsed: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(parsed["server"]["request_timeout_secs"].as_integer(), Some(12));
    assert_eq!(parsed["tenants"]["corp"]["principal"].as_str(), Some("{user}@{realm}"));
    assert_eq!(
        parsed["tenants"]["corp"]["enctypes"].as_array().unwrap()[0].as_str(),
        Some("aes256-cts-hmac-sha1-96")
    );
    assert!(text.contains("(contents redacted)"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn the_effective_configuration_loads_back_as_the_same_configuration() {
    let dir = fixture();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Every shape a tenant can take: search and template lookup, StartTLS, LDAPS and plaintext
    // loopback, client rules, and each key source.
    let sources = [
        "source = \"store\"\nstore_dir = \"store\"",
        "source = \"kadmin-local\"\nkdc_profile = \"/etc/krb5kdc/kdc.conf\"",
        "source = \"kadmin-cli\"\nadmin_principal = \"a@LAB.TEST\"\nadmin_keytab = \"admin.keytab\"\ntimeout_secs = 7",
    ];
    for (n, keys) in sources.iter().enumerate() {
        let text = format!(
            r#"{VALID}
[tenants.lab{n}]
realm = "LAB.TEST"
principal = "{{user}}/netdisk@{{realm}}"
allow_principals = ["*/netdisk@LAB.TEST"]
enctypes = ["aes128-cts-hmac-sha1-96"]
provision = true
[[tenants.lab{n}.clients]]
cidr = "10.0.0.0/8"
[[tenants.lab{n}.clients]]
cert = "edge1.example.com"
[tenants.lab{n}.directory]
url = "ldap://lab.example.com"
starttls = true
ca_file = "pw"
user_dn_template = "uid={{user}},ou=lab,dc=example,dc=com"
group_dn = "cn=lab,dc=example,dc=com"
[tenants.lab{n}.keys]
{keys}
[tenants.ad{n}]
realm = "AD.TEST"
[tenants.ad{n}.directory]
schema = "active-directory"
urls = ["ldaps://dc1.ad.example.com", "ldaps://dc2.ad.example.com:3269/"]
ca_file = "pw"
bind_dn = "cn=svc,dc=ad"
bind_password_file = "pw"
user_base = "dc=ad"
principal_attribute = "userPrincipalName"
groups = ["cn=g,dc=ad", "cn=h,dc=ad"]
[tenants.ad{n}.keys]
admin_principal = "ktbroker/admin@AD.TEST"
admin_keytab = "admin.keytab"
[metrics]
listen = "127.0.0.1:9464"
[audit]
file = "audit.log"
[admin]
identities = ["ops"]
[limits]
max_source_failures = 70
source_credit_per_user = 3
trusted_sources = ["10.0.0.0/8", "edge9.example.com"]
"#
        )
        .replacen("[server]", "default_tenant = \"corp\"\n[server]", 1)
        .replacen(
            "tls_key = \"key.pem\"",
            "tls_key = \"key.pem\"\nclient_ca_file = \"pw\"",
            1,
        );
        let config = load(&dir, &text).unwrap();
        let effective = config.effective_toml();
        std::fs::write(dir.path().join("effective.toml"), &effective).unwrap();
        let again = Config::load_with_credentials(&dir.path().join("effective.toml"), None)
            .unwrap_or_else(|e| panic!("{e}\n{effective}"));
        assert_eq!(again.tenants, config.tenants, "{effective}");
        assert_eq!(again.effective_toml(), effective);
        assert!(effective.contains("starttls = true"), "{effective}");
        assert!(effective.contains("allow_plaintext_loopback = true"), "{effective}");
    }
}

const VALID: &str = r#"version = 1
[server]
listen = "127.0.0.1:0"
tls_cert = "cert.pem"
tls_key = "key.pem"

[tenants.corp]
realm = "EXAMPLE.COM"
[tenants.corp.directory]
url = "ldap://127.0.0.1:389"
allow_plaintext_loopback = true
bind_dn = "cn=svc,dc=example,dc=com"
bind_password_file = "pw"
user_base = "ou=people,dc=example,dc=com"
group_dn = "cn=hadoop,dc=example,dc=com"
[tenants.corp.keys]
source = "kadmin"
admin_principal = "ktbroker/admin@EXAMPLE.COM"
admin_keytab = "admin.keytab"
timeout_secs = 10
"#;

/// The README's broker.toml listing.
fn readme_broker_example() -> &'static str {
    include_str!("../../../README.md")
        .split("```toml\n")
        .skip(1)
        .map(|block| &block[..block.find("```").unwrap()])
        .find(|block| block.contains("[tenants."))
        .expect("the README's broker configuration example")
}

#[test]
fn the_readme_example_has_the_shape_the_broker_reads() {
    let raw: RawConfig = toml::from_str(readme_broker_example()).expect("the README example parses strictly");
    assert_eq!(raw.tenants.len(), 1);
    assert_eq!(raw.default_tenant.as_deref(), Some("corp"));
}

/// Every key the configuration parser accepts, as dotted paths (tenants as `tenants.*`), read from
/// the `Raw*` structs themselves.
fn accepted_keys() -> std::collections::BTreeSet<String> {
    use raw::*;
    let mut keys = std::collections::BTreeSet::new();
    let mut add = |prefix: &str, fields: &[&str]| {
        for field in fields {
            keys.insert(if prefix.is_empty() {
                field.to_string()
            } else {
                format!("{prefix}.{field}")
            });
        }
    };
    add("", field_names::<RawConfig>());
    add("server", field_names::<RawServer>());
    add("kerberos", field_names::<RawKerberos>());
    add("auth", field_names::<RawAuth>());
    add("audit", field_names::<RawAudit>());
    add("limits", field_names::<RawLimits>());
    add("metrics", field_names::<RawMetrics>());
    add("admin", field_names::<RawAdmin>());
    add("tenants.*", field_names::<RawTenant>());
    add("tenants.*.clients", field_names::<RawClientRule>());
    add("tenants.*.directory", field_names::<RawDirectory>());
    add("tenants.*.oidc", field_names::<super::oidc::RawOidc>());
    add("tenants.*.keys", all_key_fields());
    keys
}

/// The keys the README's broker.toml listing names: set, or mentioned as `key = ` in a comment.
fn readme_keys() -> std::collections::BTreeSet<String> {
    let example = readme_broker_example();
    let mut keys = std::collections::BTreeSet::new();
    let mut table = String::new();
    for line in example.lines() {
        let header = line.split('#').next().unwrap().trim();
        if let Some(name) = header.strip_prefix('[').map(|h| h.trim_matches(['[', ']'])) {
            table = name
                .split('.')
                .enumerate()
                .map(|(n, part)| {
                    if n == 1 && name.starts_with("tenants.") {
                        "*"
                    } else {
                        part
                    }
                })
                .collect::<Vec<_>>()
                .join(".");
            let mut prefix = String::new();
            for part in table.split('.') {
                prefix = if prefix.is_empty() {
                    part.to_owned()
                } else {
                    format!("{prefix}.{part}")
                };
                if prefix != "tenants.*" {
                    keys.insert(prefix.clone());
                }
            }
            continue;
        }
        // `key = ` wherever it stands: at the start of the line, or named in its comment.
        for (at, _) in line.match_indices(" = ") {
            let name_start = line[..at]
                .rfind(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .map_or(0, |i| i + 1);
            let key = &line[name_start..at];
            let before = line[..name_start].chars().next_back();
            if !key.is_empty() && before.is_none_or(|c| matches!(c, ' ' | '#' | ';')) {
                keys.insert(if table.is_empty() {
                    key.to_owned()
                } else {
                    format!("{table}.{key}")
                });
            }
        }
    }
    keys
}

#[test]
fn the_readme_listing_names_every_key_the_parser_accepts_and_no_other() {
    let accepted = accepted_keys();
    let listed = readme_keys();
    let unlisted: Vec<_> = accepted.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&accepted).collect();
    assert!(
        unlisted.is_empty() && unknown.is_empty(),
        "not in the README: {unlisted:?}; not accepted: {unknown:?}"
    );
}

#[test]
fn the_failure_delay_has_a_floor() {
    let dir = fixture();
    for (delay, ok) in [
        ("0", false),
        ("199", false),
        ("200", true),
        ("400", true),
        ("10001", false),
    ] {
        let text = VALID.replacen(
            "[tenants.corp]",
            &format!("[auth]\nfailure_delay_ms = {delay}\n[tenants.corp]"),
            1,
        );
        match load(&dir, &text) {
            Ok(config) => assert!(ok && config.failure_delay.as_millis().to_string() == delay, "{delay}"),
            Err(e) => assert!(!ok && e.to_string().contains("auth.failure_delay_ms"), "{delay}: {e}"),
        }
    }
}

/// VALID with its `[tenants.corp.directory]` lines changed: `(old, new)` replacements.
fn directory_with(changes: &[(&str, &str)]) -> String {
    let mut text = VALID.to_owned();
    for (old, new) in changes {
        assert!(text.contains(old), "{old}");
        text = text.replacen(old, new, 1);
    }
    text
}

const GROUP_LINE: &str = "group_dn = \"cn=hadoop,dc=example,dc=com\"";

#[test]
fn schema_profiles_give_their_filter_and_group_check() {
    let dir = fixture();
    let directory = |text: &str| load(&dir, text).unwrap().tenants["corp"].directory().unwrap().clone();
    let rfc2307 = directory(VALID);
    assert_eq!(rfc2307.schema, Schema::Rfc2307);
    assert_eq!(rfc2307.user_filter, "(&(objectClass=posixAccount)(uid={user}))");
    assert_eq!(rfc2307.group_check, GroupCheck::GroupEntries);
    assert_eq!(rfc2307.groups, ["cn=hadoop,dc=example,dc=com"]);
    assert_eq!(rfc2307.principal_attribute, None);

    let ad = directory(&directory_with(&[(
        GROUP_LINE,
        &format!("schema = \"active-directory\"\n{GROUP_LINE}"),
    )]));
    assert_eq!(
        ad.user_filter,
        "(&(objectCategory=person)(objectClass=user)(sAMAccountName={user}))"
    );
    assert_eq!(ad.group_check, GroupCheck::InChain);
    let flat = directory(&directory_with(&[(
        GROUP_LINE,
        &format!("schema = \"active-directory\"\nnested_groups = false\n{GROUP_LINE}"),
    )]));
    assert_eq!(flat.group_check, GroupCheck::MemberOf);

    let by_mail = directory(&directory_with(&[(
        GROUP_LINE,
        &format!("login_attribute = \"mail\"\n{GROUP_LINE}"),
    )]));
    assert_eq!(by_mail.user_filter, "(&(objectClass=posixAccount)(mail={user}))");

    let nested = directory(&directory_with(&[(
        GROUP_LINE,
        &format!(
            "nested_groups = true\ngroups = [\"cn=ops, dc=example,dc=com\", \"CN=hadoop,dc=example,dc=com\"]\n{GROUP_LINE}"
        ),
    )]));
    assert_eq!(
        nested.group_check,
        GroupCheck::Recursive {
            base: "dc=example,dc=com".into(),
            depth: 8
        }
    );
    // group_dn and groups together, the same DN once.
    assert_eq!(
        nested.groups,
        ["cn=hadoop,dc=example,dc=com", "cn=ops, dc=example,dc=com"]
    );
}

#[test]
fn directory_servers_may_come_from_dns() {
    let dir = fixture();
    let text = directory_with(&[(
        "url = \"ldap://127.0.0.1:389\"\nallow_plaintext_loopback = true",
        "srv_domain = \"corp.example.com.\"\ndns_server = \"127.0.0.1:5353\"",
    )])
    .replace(
        "[tenants.corp.directory]\n",
        "[tenants.corp.directory]\nca_file = \"pw\"\n",
    );
    let config = load(&dir, &text).unwrap();
    let directory = config.tenants["corp"].directory().unwrap();
    let discovery = directory.discovery.clone().unwrap();
    assert_eq!(discovery.domain, "corp.example.com");
    assert!(
        directory.servers.is_empty(),
        "looked up when the broker starts, not when it loads"
    );
    assert_eq!(
        discovery.server("dc1.corp.example.com", 389).url,
        "ldaps://dc1.corp.example.com:636/"
    );
    let starttls = SrvDiscovery {
        starttls: true,
        ..discovery
    };
    let server = starttls.server("dc1.corp.example.com", 389);
    assert_eq!(
        (server.url.as_str(), server.transport),
        ("ldap://dc1.corp.example.com:389/", LdapTransport::StartTls)
    );
    // What check-config prints loads back as the same.
    let effective = config.effective_toml();
    std::fs::write(dir.path().join("effective.toml"), &effective).unwrap();
    let again = Config::load_with_credentials(&dir.path().join("effective.toml"), None).unwrap();
    assert_eq!(again.tenants, config.tenants, "{effective}");
}

#[test]
fn several_servers_are_kept_in_order() {
    let dir = fixture();
    let text = directory_with(&[(
        "url = \"ldap://127.0.0.1:389\"",
        "urls = [\"ldap://127.0.0.1:389\", \"ldap://[::1]:1389/\"]",
    )]);
    let servers = load(&dir, &text).unwrap().tenants["corp"]
        .directory()
        .unwrap()
        .servers
        .clone();
    let urls: Vec<&str> = servers.iter().map(|s| s.url.as_str()).collect();
    assert_eq!(urls, ["ldap://127.0.0.1:389", "ldap://[::1]:1389/"]);
    assert!(servers.iter().all(|s| s.transport == LdapTransport::PlaintextLoopback));
}

#[test]
fn bad_directory_settings_name_their_key() {
    let dir = fixture();
    let url = "url = \"ldap://127.0.0.1:389\"";
    for (changes, key, problem) in [
        (vec![(url, "")], "directory.url", "is required"),
        (vec![(url, "urls = []")], "directory.urls", "at least one"),
        (
            vec![(url, "url = \"ldap://127.0.0.1:389\"\nsrv_domain = \"corp.test\"")],
            "directory.srv_domain",
            "excludes url",
        ),
        (
            vec![(url, "srv_domain = \"corp\"")],
            "directory.srv_domain",
            "not a DNS domain",
        ),
        (
            vec![(url, "srv_domain = \"corp.test\"\ndns_server = \"localhost\"")],
            "directory.dns_server",
            "not an address",
        ),
        (
            vec![(url, "url = \"ldap://127.0.0.1:389\"\ndns_server = \"127.0.0.1:53\"")],
            "directory.dns_server",
            "only with srv_domain",
        ),
        (
            vec![(url, "srv_domain = \"corp.test\"")],
            "directory.allow_plaintext_loopback",
            "srv_domain",
        ),
        (
            vec![(url, "urls = [\"ldap://127.0.0.1:389\", \"ldap://127.0.0.1:389\"]")],
            "directory.urls",
            "twice",
        ),
        (
            vec![(url, "urls = [\"ldap://127.0.0.1:389\", \"ldap://10.1.1.1/\"]")],
            "directory.allow_plaintext_loopback",
            "loopback",
        ),
        (
            vec![(
                url,
                "url = \"ldap://127.0.0.1:389\"\nurls = [\"ldap://127.0.0.1:1389\"]",
            )],
            "directory.urls",
            "excludes url",
        ),
        (
            vec![(GROUP_LINE, "user_filter = \"(uid=alice)\"")],
            "directory.user_filter",
            "{user}",
        ),
        (
            vec![(
                GROUP_LINE,
                "user_filter = \"(uid={user})(cn=x)\"\ngroup_dn = \"cn=g,dc=x\"",
            )],
            "directory.user_filter",
            "one parenthesized",
        ),
        (
            vec![(GROUP_LINE, "user_filter = \"(&(uid={user})\"\ngroup_dn = \"cn=g,dc=x\"")],
            "directory.user_filter",
            "without its ')'",
        ),
        (
            vec![(
                GROUP_LINE,
                "user_filter = \"(|(uid={user})(cn={login}))\"\ngroup_dn = \"cn=g,dc=x\"",
            )],
            "directory.user_filter",
            "only {user}",
        ),
        (
            vec![(
                GROUP_LINE,
                "user_filter = \"(uid={user})\"\nlogin_attribute = \"uid\"\ngroup_dn = \"cn=g,dc=x\"",
            )],
            "directory.login_attribute",
            "excludes user_filter",
        ),
        (
            vec![(GROUP_LINE, "login_attribute = \"uid)(x\"\ngroup_dn = \"cn=g,dc=x\"")],
            "directory.login_attribute",
            "not an attribute",
        ),
        (
            vec![(GROUP_LINE, "principal_attribute = \"\"\ngroup_dn = \"cn=g,dc=x\"")],
            "directory.principal_attribute",
            "not an attribute",
        ),
        (vec![(GROUP_LINE, "")], "directory.groups", "at least one"),
        (
            vec![(GROUP_LINE, "groups = [\"hadoop\"]")],
            "directory.groups",
            "not a group DN",
        ),
        (
            vec![(GROUP_LINE, "group_depth = 3\ngroup_dn = \"cn=g,dc=x\"")],
            "directory.group_depth",
            "nested_groups = true",
        ),
        (
            vec![(
                GROUP_LINE,
                "nested_groups = true\ngroup_depth = 0\ngroup_dn = \"cn=g,dc=x\"",
            )],
            "directory.group_depth",
            "between 1 and 32",
        ),
        (
            vec![(
                GROUP_LINE,
                "schema = \"active-directory\"\ngroup_base = \"dc=x\"\ngroup_dn = \"cn=g,dc=x\"",
            )],
            "directory.group_base",
            "rfc2307",
        ),
    ] {
        let message = error(&dir, &directory_with(&changes));
        assert!(
            message.contains(&format!("tenants.corp.{key}")) && message.contains(problem),
            "{changes:?}: {message}"
        );
    }
    let template = directory_with(&[(
        "bind_dn = \"cn=svc,dc=example,dc=com\"\nbind_password_file = \"pw\"\nuser_base = \"ou=people,dc=example,dc=com\"",
        "user_dn_template = \"uid={user},ou=people,dc=example,dc=com\"\nschema = \"active-directory\"",
    )]);
    let message = error(&dir, &template);
    assert!(
        message.contains("directory.user_dn_template") && message.contains("service account"),
        "{message}"
    );
    let unknown_schema = directory_with(&[(GROUP_LINE, "schema = \"novell\"\ngroup_dn = \"cn=g,dc=x\"")]);
    assert!(matches!(load(&dir, &unknown_schema), Err(ConfigError::Parse { .. })));
}

#[test]
fn written_filters_attribute_names_domains_and_group_bases_are_taken_when_well_formed() {
    let dir = fixture();
    let directory = |lines: &str| {
        let text = directory_with(&[(GROUP_LINE, &format!("{lines}\n{GROUP_LINE}"))]);
        load(&dir, &text).map(|c| c.tenants["corp"].directory().unwrap().clone())
    };
    let upn = "(&(objectClass=user)(userPrincipalName={user}@corp.example.com))";
    assert_eq!(directory(&format!("user_filter = \"{upn}\"")).unwrap().user_filter, upn);
    for name in ["krbPrincipalName", "x-custom-1", "1.3.6.1.4.1.5322.21.2.1"] {
        let found = directory(&format!("principal_attribute = \"{name}\"")).unwrap();
        assert_eq!(found.principal_attribute.as_deref(), Some(name));
    }
    for name in ["1krb", "1..3", "1.3.", "krb name", "krb;binary"] {
        assert!(
            directory(&format!("principal_attribute = \"{name}\"")).is_err(),
            "{name}"
        );
    }
    let based =
        directory("nested_groups = true\ngroup_base = \"ou=all-groups,dc=example,dc=com\"\ngroup_depth = 3").unwrap();
    assert_eq!(
        based.group_check,
        GroupCheck::Recursive {
            base: "ou=all-groups,dc=example,dc=com".into(),
            depth: 3
        }
    );
    let message = directory("nested_groups = true\ngroup_base = \"groups\"")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("directory.group_base") && message.contains("a DN"),
        "{message}"
    );
    // SRV domains: DNS labels, hyphens allowed, none empty.
    let srv = |domain: &str| {
        let text = directory_with(&[(
            "url = \"ldap://127.0.0.1:389\"\nallow_plaintext_loopback = true",
            &format!("srv_domain = \"{domain}\"\nca_file = \"pw\""),
        )]);
        load(&dir, &text).map(|c| c.tenants["corp"].directory().unwrap().discovery.clone().unwrap().domain)
    };
    assert_eq!(srv("my-corp.example.com").unwrap(), "my-corp.example.com");
    for bad in ["corp..test", "corp.te_st", "corp test.x"] {
        assert!(srv(bad).is_err(), "{bad}");
    }
}

/// VALID with its directory replaced by an identity provider (`ca.pem` and `client.secret` in the
/// fixture).
fn oidc_config(dir: &tempfile::TempDir, oidc_lines: &str) -> String {
    std::fs::write(dir.path().join("ca.pem"), "not read as PEM here").unwrap();
    std::fs::write(dir.path().join("client.secret"), "s3cret\n").unwrap();
    std::fs::set_permissions(dir.path().join("client.secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let start = VALID.find("[tenants.corp.directory]").unwrap();
    let end = VALID.find("[tenants.corp.keys]").unwrap();
    format!(
        "{}[tenants.corp.oidc]\n{oidc_lines}\n{}",
        &VALID[..start],
        &VALID[end..]
    )
}

const OIDC_LINES: &str = r#"issuer = "https://idp.example.com/realms/corp/"
ca_file = "ca.pem"
client_id = "ktbroker"
client_secret_file = "client.secret"
groups = ["hadoop-users"]
password_grant = true"#;

#[test]
fn an_identity_provider_can_be_a_tenants_identity_source_with_safe_defaults() {
    let dir = fixture();
    let config = load(&dir, &oidc_config(&dir, OIDC_LINES)).unwrap();
    let tenant = &config.tenants["corp"];
    assert!(tenant.directory().is_none());
    let IdentityConfig::Oidc(oidc) = &tenant.identity else {
        panic!("not oidc")
    };
    assert_eq!(
        oidc.issuer, "https://idp.example.com/realms/corp",
        "the trailing slash is dropped"
    );
    assert_eq!(oidc.audiences, ["ktbroker"], "the client id by default");
    assert_eq!(oidc.username_claim, "preferred_username");
    assert_eq!(oidc.scopes, ["openid", "profile", "email"]);
    assert_eq!(oidc.client_secret.as_ref().unwrap().0.as_str(), "s3cret");
    assert_eq!(oidc.clock_skew, Duration::from_secs(60));
    // The effective configuration names the secret's file, not its contents, and loads again.
    let effective = config.effective_toml();
    assert!(!effective.contains("s3cret"), "{effective}");
    std::fs::write(dir.path().join("effective.toml"), &effective).unwrap();
    let again = Config::load_with_credentials(&dir.path().join("effective.toml"), None).unwrap();
    assert_eq!(again.tenants, config.tenants, "{effective}");
}

#[test]
fn identity_provider_settings_that_cannot_work_safely_are_refused_by_name() {
    let dir = fixture();
    let cases = [
        ("issuer = \"http://idp.example.com\"", "tenants.corp.oidc.issuer"),
        ("issuer = \"https://idp.example.com/?x=1\"", "tenants.corp.oidc.issuer"),
        ("scopes = [\"profile\"]", "tenants.corp.oidc.scopes"),
        ("scopes = [\"openid\", \"a b\"]", "tenants.corp.oidc.scopes"),
        ("groups = []", "tenants.corp.oidc.groups"),
        (
            "password_grant = false\ndevice_grant = false",
            "tenants.corp.oidc.device_grant",
        ),
        ("device_wait_secs = 5", "tenants.corp.oidc.device_wait_secs"),
        ("audiences = []", "tenants.corp.oidc.audiences"),
        ("username_claim = \"\"", "tenants.corp.oidc.username_claim"),
        ("clock_skew_secs = 3600", "tenants.corp.oidc.clock_skew_secs"),
        ("ca_file = \"missing.pem\"", "tenants.corp.oidc.ca_file"),
        ("unknown_key = 1", "unknown_key"),
    ];
    for (line, key) in cases {
        let field = line.split(' ').next().unwrap();
        let lines: String = OIDC_LINES
            .lines()
            .filter(|l| !l.starts_with(&format!("{field} ")))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = error(&dir, &oidc_config(&dir, &format!("{lines}{line}")));
        assert!(err.contains(key), "{line}: {err}");
    }
    // The client secret is a secret file: private, or refused.
    std::fs::write(dir.path().join("open.secret"), "s3cret").unwrap();
    std::fs::set_permissions(dir.path().join("open.secret"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = OIDC_LINES.replace("client.secret", "open.secret");
    assert!(error(&dir, &oidc_config(&dir, &open)).contains("client_secret_file"));
}

#[test]
fn beside_a_directory_the_provider_takes_sign_ins_only_and_some_source_is_required() {
    let dir = fixture();
    let directory_table =
        &VALID[VALID.find("[tenants.corp.directory]").unwrap()..VALID.find("[tenants.corp.keys]").unwrap()];
    let both = |oidc_lines: &str| {
        oidc_config(&dir, oidc_lines).replace("[tenants.corp.keys]", &format!("{directory_table}[tenants.corp.keys]"))
    };
    assert!(error(&dir, &both(OIDC_LINES)).contains("tenants.corp.oidc.password_grant"));
    let sign_ins_only = OIDC_LINES.replace("password_grant = true", "password_grant = false");
    let no_sign_ins = format!("{sign_ins_only}\ndevice_grant = false");
    assert!(error(&dir, &both(&no_sign_ins)).contains("device_grant"));
    let config = load(&dir, &both(&sign_ins_only)).unwrap();
    let tenant = &config.tenants["corp"];
    assert!(tenant.directory().is_some() && tenant.provider().is_some());
    let effective = config.effective_toml();
    std::fs::write(dir.path().join("effective.toml"), &effective).unwrap();
    let again = Config::load_with_credentials(&dir.path().join("effective.toml"), None).unwrap();
    assert_eq!(again.tenants, config.tenants, "{effective}");
    let neither = oidc_config(&dir, OIDC_LINES).replace(&format!("[tenants.corp.oidc]\n{OIDC_LINES}\n"), "");
    assert!(error(&dir, &neither).contains("needs an identity source"));
}
