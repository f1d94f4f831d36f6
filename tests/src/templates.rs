//! The configuration templates in `templates/`, shared by the sandbox (this harness) and the
//! compose demo (docker/render.sh renders the same files in its containers). `{{NAME}}` is
//! replaced by a value; names are replaced in the order given, each everywhere. A template name
//! left unreplaced, or a value no template line asked for, is an error: the two renderers must
//! agree, and `templates_render_the_same_in_rust_and_in_the_containers_shell` checks they do.

use anyhow::{bail, ensure};

/// Every template, by file name.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("krb5.conf.in", include_str!("../../templates/krb5.conf.in")),
    ("kdc.conf.in", include_str!("../../templates/kdc.conf.in")),
    ("kadm5.acl.in", include_str!("../../templates/kadm5.acl.in")),
    ("slapd.conf.in", include_str!("../../templates/slapd.conf.in")),
    ("directory.ldif.in", include_str!("../../templates/directory.ldif.in")),
    ("person.ldif.in", include_str!("../../templates/person.ldif.in")),
    ("groups.ldif.in", include_str!("../../templates/groups.ldif.in")),
    ("broker.toml.in", include_str!("../../templates/broker.toml.in")),
    ("tenant.toml.in", include_str!("../../templates/tenant.toml.in")),
    ("client.toml.in", include_str!("../../templates/client.toml.in")),
    ("core-site.xml.in", include_str!("../../templates/core-site.xml.in")),
    ("hdfs-site.xml.in", include_str!("../../templates/hdfs-site.xml.in")),
    ("hadoop-jvm.args.in", include_str!("../../templates/hadoop-jvm.args.in")),
    (
        "hadoop-log4j.properties.in",
        include_str!("../../templates/hadoop-log4j.properties.in"),
    ),
    ("netdisk.toml.in", include_str!("../../templates/netdisk.toml.in")),
];

/// `templates/NAME` with every `{{KEY}}` of `values` replaced.
pub fn render(name: &str, values: &[(&str, &str)]) -> anyhow::Result<String> {
    let Some((_, template)) = TEMPLATES.iter().find(|(n, _)| *n == name) else {
        bail!("no template {name}");
    };
    let mut text = (*template).to_owned();
    for (key, value) in values {
        let marker = format!("{{{{{key}}}}}");
        ensure!(text.contains(&marker), "template {name} has no {marker}");
        text = text.replace(&marker, value);
    }
    if let Some(left) = unreplaced(&text) {
        bail!("template {name}: {left} was given no value");
    }
    Ok(text)
}

/// The first `{{NAME}}` (capitals, digits, `_`) still in `text`.
pub fn unreplaced(text: &str) -> Option<String> {
    text.match_indices("{{").find_map(|(start, _)| {
        let rest = &text[start + 2..];
        let end = rest.find("}}")?;
        let name = &rest[..end];
        (!name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .then(|| format!("{{{{{name}}}}}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_an_unused_value_is_an_error() {
        let client = [("BROKER_URL", "https://b:1"), ("CA_FILE", "/ca.pem")];
        let text = render("client.toml.in", &client).unwrap();
        assert!(
            text.contains("brokers = [\"https://b:1\"]\nca_file = \"/ca.pem\"\n"),
            "{text}"
        );
        let error = render("client.toml.in", &client[..1]).unwrap_err().to_string();
        assert!(error.contains("{{CA_FILE}} was given no value"), "{error}");
        let error = render("client.toml.in", &[client[0], client[1], ("REALM", "X")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("has no {{REALM}}"), "{error}");
        assert_eq!(unreplaced("a {{B_2}} c"), Some("{{B_2}}".into()));
        assert_eq!(unreplaced("krb5 { } and {{lower}}"), None);
    }

    /// Sample values for every template: awkward on purpose (spaces, `&`, `\\`, `/`, several
    /// lines).
    fn samples(name: &str) -> Vec<(&'static str, &'static str)> {
        let path = "/srv/a dir/x&y\\z";
        match name {
            "krb5.conf.in" => vec![
                ("REALM", "DEMO.TEST"),
                ("KDC", "kdc:88"),
                ("KADMIN", "kdc:749"),
                ("HOST", "kdc"),
            ],
            "kdc.conf.in" => vec![
                ("KDC_LISTEN", "0.0.0.0:88"),
                ("REALM", "DEMO.TEST"),
                ("DB_DIR", path),
                ("KADMIN_LISTEN", "0.0.0.0:749"),
                ("KPASSWD_LISTEN", "0.0.0.0:464"),
            ],
            "kadm5.acl.in" => vec![("BROKER_ADMIN", "ktbroker/admin@DEMO.TEST"), ("REALM", "DEMO.TEST")],
            "slapd.conf.in" => vec![
                ("DATA_DIR", path),
                ("CA", "/p/ca.pem"),
                ("CERT", "/p/s.pem"),
                ("KEY", "/p/s.key"),
            ],
            "directory.ldif.in" => vec![("PPOLICY_MAX_FAILURES", "6"), ("SERVICE_PASSWORD_HASH", "{SSHA}ab+/=")],
            "person.ldif.in" => vec![
                ("UID", "alice"),
                ("UID_NUMBER", "10001"),
                ("PASSWORD_HASH", "{ARGON2}$a$b"),
            ],
            "groups.ldif.in" => vec![
                ("MEMBER_LINES", "member: uid=a,ou=people\nmember: uid=b,ou=people"),
                ("MEMBER_UID_LINES", ""),
            ],
            "broker.toml.in" => vec![
                ("LISTEN", "0.0.0.0:8443"),
                ("TLS_CERT", path),
                ("TLS_KEY", "credential:tls-key"),
                ("AUDIT_FILE", "/var/log/ktbroker/audit.jsonl"),
                ("KRB5_CONFIG", "/etc/krb5.conf"),
                (
                    "TENANTS",
                    "[tenants.a]\nrealm = \"A\"\n\n[tenants.b]\nrealm = \"{{B}}\"",
                ),
            ],
            "tenant.toml.in" => vec![
                ("TENANT", "demo"),
                ("REALM", "DEMO.TEST"),
                ("LDAP_URL", "ldaps://ldap/"),
                ("LDAP_CA", "/p/ca.pem"),
                ("BROKER_ADMIN", "ktbroker/admin@DEMO.TEST"),
                ("ADMIN_KEYTAB", "credential:admin-keytab"),
            ],
            "client.toml.in" => vec![("BROKER_URL", "https://broker:8443"), ("CA_FILE", path)],
            "core-site.xml.in" => vec![("HOST", "hdfs"), ("RPC_PORT", "8020"), ("REALM_REGEX", "DEMO\\.TEST")],
            "hdfs-site.xml.in" => vec![
                ("DATA_DIR", path),
                ("BLOCK_SIZE", "1048576"),
                ("HOST", "hdfs"),
                ("RPC_PORT", "8020"),
                ("HTTP_PORT", "50070"),
                ("SECONDARY_PORT", "50090"),
                ("DATANODE_BIND", "0.0.0.0"),
                ("DATA_PORT", "50010"),
                ("DATA_HTTP_PORT", "50075"),
                ("DATA_IPC_PORT", "50020"),
                ("REALM", "DEMO.TEST"),
                ("KEYTAB", "/secrets/hdfs/hdfs.keytab"),
            ],
            "hadoop-jvm.args.in" => vec![
                ("KRB5_CONF", "/config/krb5.conf"),
                ("LOG_DIR", path),
                ("CONF_DIR", "/c"),
                ("JARS", "/opt/jars"),
            ],
            "hadoop-log4j.properties.in" => vec![],
            "netdisk.toml.in" => vec![("HOST", "hdfs"), ("RPC_PORT", "8020"), ("HTTP_PORT", "50070")],
            other => panic!("no samples for {other}"),
        }
    }

    #[test]
    fn templates_render_the_same_in_rust_and_in_the_containers_shell() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (name, _) in TEMPLATES {
            let values = samples(name);
            let rust = render(name, &values);
            let out = std::process::Command::new("sh")
                .arg(root.join("docker/render.sh"))
                .arg(root.join("templates").join(name))
                .args(values.iter().map(|(k, v)| format!("{k}={v}")))
                .output()
                .unwrap();
            match rust {
                Ok(text) => {
                    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
                    assert_eq!(String::from_utf8(out.stdout).unwrap(), text, "{name}");
                }
                // Both refuse a value that smuggles in a name nobody replaces.
                Err(e) => {
                    assert_eq!(
                        out.status.code(),
                        Some(2),
                        "{name}: the shell accepted what Rust refused: {e}"
                    );
                    assert!(String::from_utf8_lossy(&out.stderr).contains("{{B}}"), "{name}");
                }
            }
        }
    }

    #[test]
    fn the_templates_use_the_directory_layout_the_harness_names() {
        use crate::directory::{GROUP_DN, PEOPLE, POSIX_GROUP_DN, SERVICE_DN, SUFFIX};
        let text = |name: &str| TEMPLATES.iter().find(|(n, _)| *n == name).unwrap().1;
        for dn in [SERVICE_DN, PEOPLE, GROUP_DN] {
            assert!(text("tenant.toml.in").contains(dn), "tenant.toml.in lacks {dn}");
        }
        for dn in [SUFFIX, SERVICE_DN, POSIX_GROUP_DN, GROUP_DN] {
            let all = format!(
                "{}{}{}",
                text("slapd.conf.in"),
                text("directory.ldif.in"),
                text("groups.ldif.in")
            );
            assert!(all.contains(dn), "the directory templates lack {dn}");
        }
    }
}
