//! The example configurations the packages install as conffiles are valid for the programs that
//! read them: what an admin starts from must not fail `check-config` for a reason of ours.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    std::fs::read_to_string(path).unwrap()
}

fn write_private(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn the_example_broker_toml_validates_with_the_units_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    let credentials = dir.path().join("credentials");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&credentials).unwrap();
    // The files the example names under /etc/ktbroker, here in a temp dir; the secrets as the
    // unit's LoadCredential= names them.
    std::fs::write(etc.join("ldap-ca.pem"), "not parsed at load\n").unwrap();
    for name in ["tls-key", "ldap-password", "admin-keytab"] {
        write_private(&credentials.join(name), "x\n");
    }
    let text = example("broker.toml").replace("/etc/ktbroker/", &format!("{}/", etc.display()));
    let config_path = etc.join("broker.toml");
    std::fs::write(&config_path, text).unwrap();

    let config = ktbroker_broker::config::Config::load_with_credentials(&config_path, Some(&credentials))
        .unwrap_or_else(|e| panic!("the example broker.toml does not validate: {e}"));
    assert_eq!(config.listen.to_string(), "0.0.0.0:8443");
    assert!(config.tenants.contains_key("corp"));
    assert_eq!(
        config.audit_file.as_deref(),
        Some(Path::new("/var/log/ktbroker/audit.jsonl")),
        "the audit file is where the unit's LogsDirectory= makes it writable"
    );

    // Every credential the example names is one the unit loads.
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/ktbrokerd.service")).unwrap();
    for name in example("broker.toml")
        .split("\"credential:")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
    {
        assert!(
            unit.contains(&format!("LoadCredential={name}:")),
            "{name} is not loaded by the unit"
        );
    }
}

#[test]
fn the_example_client_toml_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.toml");
    std::fs::write(&path, example("client.toml")).unwrap();
    let config = ktbroker_kinit::config::ClientConfig::load(&path, true)
        .unwrap_or_else(|e| panic!("the example client.toml does not load: {e}"));
    assert_eq!(config.brokers.len(), 2);
    assert_eq!(config.ca_file.as_deref(), Some(Path::new("/etc/ktbroker/ca.pem")));
}

#[test]
fn the_example_netdisk_toml_loads_and_changes_no_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netdisk.toml");
    std::fs::write(&path, example("netdisk.toml")).unwrap();
    let config = ktbroker_netdisk::config::NetdiskConfig::load(&path, true)
        .unwrap_or_else(|e| panic!("the example netdisk.toml does not load: {e}"));
    // Installed as /etc/ktbroker/netdisk.toml, it must not send netdisk anywhere by itself.
    assert_eq!(config, ktbroker_netdisk::config::NetdiskConfig::default());
    // Every commented-out setting is one netdisk takes.
    let uncommented: String = example("netdisk.toml")
        .lines()
        .map(|l| l.strip_prefix("# ").filter(|l| l.contains(" = ")).unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, uncommented).unwrap();
    let config = ktbroker_netdisk::config::NetdiskConfig::load(&path, true)
        .unwrap_or_else(|e| panic!("the example's settings, uncommented, do not load: {e}"));
    assert_eq!(config.cluster_hosts.len(), 2);
}
