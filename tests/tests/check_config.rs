//! `ktbrokerd check-config` against the sandbox's real KDC, kadmind and slapd: the documented
//! check-then-reload works outside the unit (credentials from the unit's LoadCredential= lines),
//! and each thing that would make `run` fail, or users get "broker unavailable", is an error
//! before it does: a missing or mismatched certificate, a realm the krb5 profile does not know,
//! an admin keytab without the admin principal, an audit file that cannot be written, files the
//! service user cannot read; online, a refused service-account bind and an admin principal
//! without `e`; a warning for privileges beyond use and for a group no one can see.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ktbroker_tests::Sandbox;
use ktbroker_tests::client::stderr;
use ktbroker_tests::realm::BROKER_READER;
use ktbroker_tests::start_sandbox as sandbox;
use std::path::{Path, PathBuf};
use std::process::Output;

/// `check-config` of `config` with the sandbox's credentials directory and `args` after it.
fn check(sandbox: &Sandbox, config: &Path, args: &[&str]) -> Output {
    sandbox
        .broker
        .command_for(config)
        .arg("check-config")
        .args(args)
        .output()
        .unwrap()
}

/// The sandbox's broker.toml with `edit` applied, written to ROOT/NAME.toml.
fn variant(sandbox: &Sandbox, name: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(&sandbox.broker.config).unwrap();
    let path = sandbox.root.join(format!("{name}.toml"));
    let edited = edit(text.clone());
    assert_ne!(edited, text, "{name}: the edit changed nothing");
    std::fs::write(&path, edited).unwrap();
    path
}

/// Exit status 1 and an `error:` line for `key` that contains `needle`.
fn assert_error(out: &Output, key: &str, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("error: `{key}`")) && l.contains(needle)),
        "no error for {key} with {needle:?} in:\n{err}"
    );
}

fn assert_valid(out: &Output) -> String {
    let err = stderr(out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(": valid"), "{err}");
    assert!(!err.contains("error:"), "{err}");
    err
}

#[test]
fn outside_the_unit_the_credentials_come_from_its_load_credential_lines() {
    let sandbox = sandbox();
    let password = sandbox.broker.credentials.join("ldap-password");
    let unit = sandbox.root.join("ktbrokerd.service");
    std::fs::write(
        &unit,
        format!(
            "[Service]\nUser=root\nLoadCredential=ldap-password:{}\nLoadCredential=unused:/nonexistent\n",
            password.display()
        ),
    )
    .unwrap();
    let outside = |unit: &Path| {
        sandbox
            .broker
            .command()
            .env_remove("CREDENTIALS_DIRECTORY")
            .arg("check-config")
            .arg("--unit")
            .arg(unit)
            .output()
            .unwrap()
    };
    assert_valid(&outside(&unit));

    // A drop-in that resets the list: the credential the configuration names is not loaded.
    let drop_ins = sandbox.root.join("ktbrokerd.service.d");
    std::fs::create_dir_all(&drop_ins).unwrap();
    std::fs::write(drop_ins.join("reset.conf"), "[Service]\nLoadCredential=\n").unwrap();
    let reset = outside(&unit);
    assert_eq!(reset.status.code(), Some(1), "{}", stderr(&reset));
    assert!(
        stderr(&reset).contains("LoadCredential=ldap-password:PATH"),
        "{}",
        stderr(&reset)
    );

    // Under ProtectSystem=strict the audit file must be somewhere the unit lets the broker write.
    std::fs::write(drop_ins.join("reset.conf"), "[Service]\nProtectSystem=strict\n").unwrap();
    let read_only = outside(&unit);
    assert_error(
        &read_only,
        "audit.file",
        "is read-only for the service (ProtectSystem=strict",
    );
    std::fs::write(
        drop_ins.join("reset.conf"),
        format!(
            "[Service]\nProtectSystem=strict\nReadWritePaths={}\n",
            sandbox.root.display()
        ),
    )
    .unwrap();
    assert_valid(&outside(&unit));

    // --credentials-dir stands for the unit's directory.
    let explicit = sandbox
        .broker
        .command()
        .env_remove("CREDENTIALS_DIRECTORY")
        .arg("check-config")
        .arg("--credentials-dir")
        .arg(&sandbox.broker.credentials)
        .output()
        .unwrap();
    assert_valid(&explicit);
}

#[test]
fn what_run_would_refuse_is_an_error_before_it_does() {
    let sandbox = sandbox();
    assert_valid(&check(&sandbox, &sandbox.broker.config, &[]));
    let cert = sandbox.pki.server_cert.display().to_string();

    let missing = variant(&sandbox, "missing-cert", |c| {
        c.replace(&cert, "/nonexistent/server.pem")
    });
    assert_error(&check(&sandbox, &missing, &[]), "server.tls_cert", "does not exist");

    // The CA's certificate with the server's key: they do not match.
    let ca = sandbox.pki.ca_cert.display().to_string();
    let mismatched = variant(&sandbox, "mismatched-cert", |c| c.replace(&cert, &ca));
    assert_error(&check(&sandbox, &mismatched, &[]), "server.tls_key", "");

    // The sandbox's krb5.conf has no DNS lookups, so an unknown realm has no KDC at all.
    let realm = variant(&sandbox, "unknown-realm", |c| {
        c.replace("realm = \"KRBTEST.COM\"", "realm = \"NOPE.TEST\"")
    });
    assert_error(
        &check(&sandbox, &realm, &[]),
        "tenants.sandbox.realm",
        "is not in [realms]",
    );

    let stranger = variant(&sandbox, "wrong-admin", |c| {
        c.replace("ktbroker/admin@KRBTEST.COM", "ktbroker/nobody@KRBTEST.COM")
    });
    assert_error(
        &check(&sandbox, &stranger, &[]),
        "tenants.sandbox.keys.admin_keytab",
        "has no key for ktbroker/nobody@KRBTEST.COM",
    );

    let audit = sandbox.broker.audit_file.display().to_string();
    let nowhere = variant(&sandbox, "audit-nowhere", |c| {
        c.replace(&audit, "/nonexistent/ktbroker/audit.jsonl")
    });
    assert_error(
        &check(&sandbox, &nowhere, &[]),
        "audit.file",
        "/nonexistent/ktbroker does not exist",
    );

    // The sandbox's files are root's and 0600: another service user may not read the key.
    let other = check(&sandbox, &sandbox.broker.config, &["--user", "nobody"]);
    assert_error(&other, "server.tls_key", "nobody may not read");
    assert_error(&other, "tenants.sandbox.keys.admin_keytab", "nobody may not read");
}

#[test]
fn online_it_asks_the_directory_the_kdc_and_kadmind_as_run_will() {
    let sandbox = sandbox();
    let clean = assert_valid(&check(&sandbox, &sandbox.broker.config, &["--online"]));
    assert!(
        clean.contains("checked online") && !clean.contains("warning:"),
        "{clean}"
    );

    // The service account's password is wrong.
    let wrong = sandbox.root.join("wrong-credentials");
    std::fs::create_dir_all(&wrong).unwrap();
    ktbroker_tests::daemon::write_private(&wrong.join("ldap-password"), "not-the-password\n").unwrap();
    let refused = check(
        &sandbox,
        &sandbox.broker.config,
        &["--online", "--credentials-dir", wrong.to_str().unwrap()],
    );
    assert_error(&refused, "tenants.sandbox.directory", "service account's bind");

    // An admin principal kadm5.acl lets inquire but not extract: every login would fail.
    let reader_keytab = sandbox
        .realm
        .admin_keytab_for(&format!("{BROKER_READER}@KRBTEST.COM"))
        .unwrap();
    let reader = variant(&sandbox, "reader-admin", |c| {
        c.replace("ktbroker/admin@KRBTEST.COM", &format!("{BROKER_READER}@KRBTEST.COM"))
            .replace(
                &sandbox.realm.broker_admin_keytab.display().to_string(),
                &reader_keytab.display().to_string(),
            )
    });
    let no_e = check(&sandbox, &reader, &["--online"]);
    assert_error(&no_e, "tenants.sandbox.keys.admin_principal", "does not grant 'e'");
    assert!(stderr(&no_e).contains("also grants 'i'"), "{}", stderr(&no_e));

    // The writer may add and change keys, which a broker without provisioning never does. The
    // add probe creates nothing.
    let writer = variant(&sandbox, "writer-admin", |c| sandbox.with_writer(c));
    let broad = assert_valid(&check(&sandbox, &writer, &["--online"]));
    assert!(
        broad.contains("warning: `tenants.sandbox.keys.admin_principal`: kadmind's ACL also grants 'ac'"),
        "{broad}"
    );
    let probes = sandbox.realm.kadmin_local("listprincs ktbroker-check*").unwrap();
    assert!(
        !probes.contains("ktbroker-check"),
        "a probe created a principal: {probes}"
    );
    // With provisioning, `a` is used: only `c` is beyond.
    let provisioning = variant(&sandbox, "writer-provisioning", |c| {
        c.replace(
            "[tenants.sandbox.directory]",
            "provision = true\n\n[tenants.sandbox.directory]",
        )
    });
    let provisioning_text = sandbox.with_writer(std::fs::read_to_string(&provisioning).unwrap());
    std::fs::write(&provisioning, provisioning_text).unwrap();
    let narrower = assert_valid(&check(&sandbox, &provisioning, &["--online"]));
    assert!(narrower.contains("also grants 'c'"), "{narrower}");

    // A group DN with a typo authorizes no one: a warning.
    let typo = variant(&sandbox, "group-typo", |c| {
        c.replace("cn=hadoop-users,", "cn=hadoop-userz,")
    });
    let warned = assert_valid(&check(&sandbox, &typo, &["--online"]));
    assert!(
        warned.contains("cn=hadoop-userz,ou=groups,dc=example,dc=com is not visible"),
        "{warned}"
    );
}
