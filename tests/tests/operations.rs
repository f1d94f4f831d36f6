//! End-to-end tests of the broker's production features against the real daemons: tenants,
//! configuration reload, DN-template bind, the kadmin-local and store key sources, provisioning,
//! key rotation, host binding (CIDR and mTLS) and the directory's own lockout (ppolicy).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ktbroker_codes::RefusalCode;
use ktbroker_kinit::fetch::{ClientIdentity, fetch_keytab};
use ktbroker_proto::v1::{FetchKeytabRequest, RotateKeyRequest, keytab_broker_client::KeytabBrokerClient};
use ktbroker_tests::Sandbox;
use ktbroker_tests::broker::tenant_text;
use ktbroker_tests::client::{audit_reasons, block_on, key_list, raw_fetch, raw_request, refused, stderr};
use ktbroker_tests::directory::{
    Directory, DirectoryUser, GROUP_DN, PEOPLE, POSIX_GROUP_DN, PPOLICY_MAX_FAILURES, PasswordScheme, PasswordState,
    SERVICE_DN, USER_DN_TEMPLATE,
};
use ktbroker_tests::pki::ClientCert;
use ktbroker_tests::realm::{BROKER_ADMIN, Realm};
use ktbroker_tests::sandbox::run_with_password;
use ktbroker_tests::start_sandbox as sandbox;
use std::time::Duration;
use tonic::Code;

fn last_audit(audit_file: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(audit_file).unwrap();
    serde_json::from_str(text.lines().last().expect("an audit line")).unwrap()
}

/// The admin lines of the sandbox's tenant, replaced by the writer principal (adds, changes keys).
fn with_writer(config: String, sandbox: &Sandbox) -> String {
    sandbox.with_writer(config)
}

fn identity(cert: &ClientCert) -> ClientIdentity {
    ClientIdentity {
        cert_pem: std::fs::read(&cert.cert).unwrap(),
        key_pem: zeroize::Zeroizing::new(std::fs::read(&cert.key).unwrap()),
    }
}

/// What the broker logs (at debug) when a request reaches the directory: the sign that it is in
/// flight, instead of a guess at how long that takes.
use ktbroker_tests::broker::DIRECTORY_ASKED;

#[test]
fn two_tenants_reach_only_their_own_directory_and_realm() {
    let sandbox = sandbox();
    // A second tenant: its own realm (LAB.TEST, its own KDC) and its own directory (its own slapd).
    let lab_realm = Realm::start_named(&sandbox.root.join("kdc-lab"), "LAB.TEST").unwrap();
    lab_realm.add_user("lena", "lena-kdc-pw").unwrap();
    let lena = DirectoryUser {
        uid: "lena".into(),
        password: "lenapw".into(),
        scheme: PasswordScheme::Ssha,
        in_group: true,
        in_posix_group: false,
        password_state: PasswordState::Current,
    };
    let lab_directory = Directory::start(&sandbox.root.join("ldap-lab"), &sandbox.pki, &[lena]).unwrap();
    let both = sandbox.root.join("both-realms.krb5.conf");
    Realm::combined_krb5_conf(&both, &[&sandbox.realm, &lab_realm]).unwrap();
    let broker = sandbox
        .extra_broker("broker-tenants", |c| {
            let c = c.replace(&sandbox.realm.krb5_conf.display().to_string(), &both.display().to_string());
            let lab = tenant_text("lab", &lab_realm, &lab_directory)
                .replacen("realm = \"LAB.TEST\"", "realm = \"LAB.TEST\"\nprincipal = \"{user}/netdisk@{realm}\"\nallow_principals = [\"*/netdisk@LAB.TEST\"]", 1);
            format!("default_tenant = \"sandbox\"\n{c}\n{lab}")
        })
        .unwrap();
    lab_realm.kadmin_local("addprinc -randkey lena/netdisk").unwrap();
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();

    // lena through her tenant: the lab realm's key for the lab template's principal, with kinit
    // into the lab realm working from it.
    let fetched = block_on(fetch_keytab(&endpoint, "lena@lab", b"lenapw", None)).unwrap();
    assert_eq!(fetched.principal, "lena/netdisk@LAB.TEST");
    assert_eq!(fetched.kvno, lab_realm.kvno("lena/netdisk").unwrap());
    let ccache = sandbox.ccache("lena");
    let mut command = sandbox.kinit_command_via(&broker.url, &sandbox.pki.ca_cert, "lena@lab", &ccache);
    command.env("KRB5_CONFIG", &both);
    let out = run_with_password(command, "lenapw");
    assert!(out.status.success(), "lena's login: {}", stderr(&out));

    // The other tenant's users do not exist here, and nothing of theirs is touched.
    let alice_binds = sandbox.directory.bind_count(&Directory::user_dn("alice"));
    let lena_binds = lab_directory.bind_count(&Directory::user_dn("lena"));
    let mut alice_in_lab = FetchKeytabRequest {
        username: "alice".into(),
        password: b"alicepw".to_vec(),
        principal: None,
        tenant: Some("lab".into()),
        new_password: None,
        delivery: 0,
    };
    assert_eq!(
        raw_request(&endpoint, alice_in_lab.clone()),
        refused(RefusalCode::AuthFailed)
    );
    assert_eq!(
        raw_fetch(&endpoint, "lena", b"lenapw", None),
        refused(RefusalCode::AuthFailed)
    );
    assert_eq!(sandbox.directory.bind_count(&Directory::user_dn("alice")), alice_binds);
    assert_eq!(lab_directory.bind_count(&Directory::user_dn("lena")), lena_binds);
    // No principal of another realm, even one the tenant's user names itself.
    alice_in_lab.tenant = None;
    alice_in_lab.principal = Some("alice/netdisk@LAB.TEST".into());
    assert_eq!(
        raw_request(&endpoint, alice_in_lab),
        refused(RefusalCode::PrincipalNotAllowed)
    );
    assert_eq!(
        raw_fetch(&endpoint, "lena@nowhere", b"lenapw", None),
        refused(RefusalCode::UnknownTenant)
    );
    // The default tenant still serves its own users.
    let alice = block_on(fetch_keytab(&endpoint, "alice", b"alicepw", None)).unwrap();
    assert_eq!(alice.principal, "alice@KRBTEST.COM");
    let tenants: Vec<String> = std::fs::read_to_string(&broker.audit_file)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["tenant"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(tenants, ["lab", "lab", "lab", "sandbox", "sandbox", "-", "sandbox"]);
}

#[test]
fn sighup_reloads_the_configuration_without_dropping_a_request_in_flight() {
    let mut sandbox = sandbox();
    // A request in flight: slapd is frozen, so the login waits inside the broker.
    sandbox.directory.pause().unwrap();
    let asked = sandbox.broker.log_text().matches(DIRECTORY_ASKED).count();
    let in_flight = {
        let command = sandbox.kinit_command("alice", &sandbox.ccache("in-flight"));
        std::thread::spawn(move || run_with_password(command, "alicepw"))
    };
    sandbox.broker.wait_for_log(DIRECTORY_ASKED, asked + 1).unwrap();
    // The new configuration authorizes the posixGroup (bob only) instead of the groupOfNames.
    let config = std::fs::read_to_string(&sandbox.broker.config).unwrap();
    let posix = config.replace(
        &format!("group_dn = \"{GROUP_DN}\""),
        &format!("group_dn = \"{POSIX_GROUP_DN}\""),
    );
    std::fs::write(&sandbox.broker.config, &posix).unwrap();
    sandbox.broker.reload().unwrap();
    sandbox
        .broker
        .wait_for_log("configuration and certificate reloaded", 1)
        .unwrap();
    sandbox.directory.resume().unwrap();
    let out = in_flight.join().unwrap();
    assert!(
        out.status.success(),
        "the request that started before the reload finishes under the old rules: {}",
        stderr(&out)
    );
    let alice = sandbox.login("alice", "alicepw", &sandbox.ccache("alice-after"));
    assert_eq!(alice.status.code(), Some(3), "alice is not in the posixGroup");
    let bob = sandbox.login("bob", "bobpw", &sandbox.ccache("bob-after"));
    assert!(bob.status.success(), "{}", stderr(&bob));

    // A bad configuration is refused as a whole; the running one keeps serving.
    std::fs::write(
        &sandbox.broker.config,
        posix.replace("timeout_secs = 5", "timeout_secs = 0"),
    )
    .unwrap();
    sandbox.broker.reload().unwrap();
    sandbox.broker.wait_for_log("new configuration refused", 1).unwrap();
    assert!(
        sandbox
            .broker
            .log_text()
            .contains("tenants.sandbox.directory.timeout_secs"),
        "the refusal names the key"
    );
    let bob = sandbox.login("bob", "bobpw", &sandbox.ccache("bob-still"));
    assert!(bob.status.success(), "{}", stderr(&bob));
    let alice = sandbox.login("alice", "alicepw", &sandbox.ccache("alice-still"));
    assert_eq!(alice.status.code(), Some(3));
    sandbox.check_alive().unwrap();
}

#[test]
fn dn_template_bind_needs_no_service_account() {
    let sandbox = sandbox();
    let broker = sandbox
        .extra_broker("broker-template", |c| {
            c.replace(&format!("bind_dn = \"{SERVICE_DN}\"\n"), "")
                .replace("bind_password_file = \"credential:ldap-password\"\n", "")
                .replace(
                    &format!("user_base = \"{PEOPLE}\"\n"),
                    &format!("user_dn_template = \"{USER_DN_TEMPLATE}\"\n"),
                )
        })
        .unwrap();
    let service_binds = sandbox.directory.bind_count(SERVICE_DN);
    let out = sandbox.login_via(&broker.url, "alice", "alicepw", &sandbox.ccache("template"));
    assert!(out.status.success(), "{}", stderr(&out));
    for (user, password) in [("carol", "carolpw"), ("zed", "x"), ("alice", "wrong")] {
        let out = sandbox.login_via(&broker.url, user, password, &sandbox.ccache("template-no"));
        assert_eq!(out.status.code(), Some(3), "{user}: {}", stderr(&out));
    }
    assert_eq!(
        audit_reasons(&broker.audit_file),
        ["granted", "not_in_group", "invalid_credentials", "invalid_credentials"],
        "an unknown user is a failed bind in this mode"
    );
    assert_eq!(
        sandbox.directory.bind_count(SERVICE_DN),
        service_binds,
        "no service-account bind"
    );
    assert_eq!(sandbox.directory.bind_count("uid=zed,ou=people,dc=example,dc=com"), 1);
}

#[test]
fn kadmin_local_and_store_sources_serve_the_kdcs_keys() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = sandbox();
    let reference = block_on(fetch_keytab(&sandbox.endpoint(), "alice", b"alicepw", None)).unwrap();
    let admin_lines = format!(
        "admin_principal = \"{BROKER_ADMIN}@KRBTEST.COM\"\nadmin_keytab = \"{}\"\n",
        sandbox.realm.broker_admin_keytab.display()
    );
    let local = sandbox
        .extra_broker("broker-local", |c| {
            let c = c
                .replace("source = \"kadmin\"\n", "source = \"kadmin-local\"\n")
                .replace(
                    &admin_lines,
                    &format!("kdc_profile = \"{}\"\n", sandbox.realm.kdc_conf.display()),
                )
                .replacen("[tenants.sandbox]\n", "[tenants.sandbox]\nprovision = true\n", 1);
            with_admin(c, &sandbox)
        })
        .unwrap();

    let store = sandbox.root.join("keytab-store");
    std::fs::create_dir(&store).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
    let alice_file = store.join("alice@KRBTEST.COM.keytab");
    sandbox
        .realm
        .kadmin_local(&format!("ktadd -norandkey -k {} alice", alice_file.display()))
        .unwrap();
    std::fs::set_permissions(&alice_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let stored = sandbox
        .extra_broker("broker-store", |c| {
            c.replace("source = \"kadmin\"\n", "source = \"store\"\n")
                .replace(&admin_lines, &format!("store_dir = \"{}\"\n", store.display()))
                .replace("timeout_secs = 10\n", "")
        })
        .unwrap();

    for broker in [&local, &stored] {
        let mut endpoint = sandbox.endpoint();
        endpoint.url = broker.url.clone();
        let fetched = block_on(fetch_keytab(&endpoint, "alice", b"alicepw", None)).unwrap();
        assert_eq!(key_list(&fetched.bytes), key_list(&reference.bytes), "{}", broker.url);
        let out = sandbox.login_via(&broker.url, "alice", "alicepw", &sandbox.ccache("source"));
        assert!(out.status.success(), "{}", stderr(&out));
        // bob has a principal in the KDC but no file in the store.
        let bob = raw_fetch(&endpoint, "bob", b"bobpw", None);
        if broker.url == stored.url {
            assert_eq!(bob, refused(RefusalCode::NoPrincipal));
        } else {
            assert_eq!(bob.status, None);
        }
    }
    // kadmin.local also provisions (dave has no principal yet) and rotates.
    let out = sandbox.login_via(&local.url, "dave", "davepw", &sandbox.ccache("dave-local"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        sandbox
            .realm
            .kadmin_local("getprinc dave")
            .unwrap()
            .contains("REQUIRES_PRE_AUTH")
    );
    let admin = sandbox.pki.client("ops-admin").unwrap();
    let before = sandbox.realm.kvno("bob").unwrap();
    assert_eq!(
        rotate_via(&sandbox, &local.url, Some(&admin), "bob@KRBTEST.COM"),
        Ok(before + 1)
    );
    assert_eq!(sandbox.realm.kvno("bob").unwrap(), before + 1);
    // A store file others can read is never served.
    std::fs::set_permissions(&alice_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut endpoint = sandbox.endpoint();
    endpoint.url = stored.url.clone();
    assert_eq!(
        raw_fetch(&endpoint, "alice", b"alicepw", None),
        refused(RefusalCode::KeysUnavailable)
    );
}

#[test]
fn first_login_provisioning_creates_a_preauth_principal_once() {
    let sandbox = sandbox();
    let broker = sandbox
        .extra_broker("broker-provision", |c| {
            with_writer(c, &sandbox).replacen("[tenants.sandbox]\n", "[tenants.sandbox]\nprovision = true\n", 1)
        })
        .unwrap();
    assert!(
        sandbox.realm.kadmin_local("getprinc dave").is_err(),
        "dave starts without a principal"
    );
    let out = sandbox.login_via(&broker.url, "dave", "davepw", &sandbox.ccache("dave"));
    assert!(out.status.success(), "{}", stderr(&out));
    let info = sandbox.realm.kadmin_local("getprinc dave").unwrap();
    assert!(info.contains("REQUIRES_PRE_AUTH"), "{info}");
    let kvno = sandbox.realm.kvno("dave").unwrap();
    let again = sandbox.login_via(&broker.url, "dave", "davepw", &sandbox.ccache("dave-2"));
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        sandbox.realm.kvno("dave").unwrap(),
        kvno,
        "the second login reads, never rotates"
    );
    assert_eq!(audit_reasons(&broker.audit_file), ["provisioned", "granted"]);
    // Without provisioning (the sandbox's own broker) a missing principal stays missing.
    sandbox.realm.kadmin_local("delprinc -force dave").unwrap();
    let out = sandbox.login("dave", "davepw", &sandbox.ccache("dave-3"));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(sandbox.realm.kadmin_local("getprinc dave").is_err());
}

/// Calls RotateKey on the broker at `url`, with `who`'s client certificate if given.
fn rotate_via(
    sandbox: &Sandbox,
    url: &str,
    who: Option<&ClientCert>,
    principal: &str,
) -> Result<u32, (Code, Option<RefusalCode>)> {
    let mut endpoint = sandbox.endpoint();
    endpoint.url = url.to_owned();
    endpoint.client_identity = who.map(identity);
    block_on(async {
        let channel = ktbroker_kinit::fetch::connect(&endpoint).await.unwrap();
        KeytabBrokerClient::new(channel)
            .rotate_key(RotateKeyRequest {
                tenant: None,
                principal: principal.into(),
            })
            .await
            .map(|r| r.into_inner().kvno)
            .map_err(|s| (s.code(), ktbroker_proto::refusal::code_of(&s)))
    })
}

/// Config edit: ask clients for certificates from the sandbox CA and make `ops-admin` an admin.
fn with_admin(config: String, sandbox: &Sandbox) -> String {
    let config = config.replacen(
        "[server]\n",
        &format!("[server]\nclient_ca_file = \"{}\"\n", sandbox.pki.ca_cert.display()),
        1,
    );
    format!("{config}\n[admin]\nidentities = [\"ops-admin\"]\n")
}

#[test]
fn rotate_key_is_for_admin_certificates_only_and_is_audited() {
    let sandbox = sandbox();
    let admin = sandbox.pki.client("ops-admin").unwrap();
    let edge = sandbox.pki.client("edge1.example.com").unwrap();
    let broker = sandbox
        .extra_broker("broker-rotate", |c| with_admin(with_writer(c, &sandbox), &sandbox))
        .unwrap();
    let rotate = |who: Option<&ClientCert>, principal: &str| rotate_via(&sandbox, &broker.url, who, principal);
    let before = sandbox.realm.kvno("alice").unwrap();
    let not_admin = (Code::PermissionDenied, Some(RefusalCode::NotAdmin));
    assert_eq!(rotate(None, "alice@KRBTEST.COM"), Err(not_admin));
    assert_eq!(rotate(Some(&edge), "alice@KRBTEST.COM"), Err(not_admin));
    assert_eq!(
        rotate(Some(&admin), "krbtgt/KRBTEST.COM@KRBTEST.COM"),
        Err((Code::PermissionDenied, Some(RefusalCode::PrincipalNotAllowed)))
    );
    assert_eq!(
        sandbox.realm.kvno("alice").unwrap(),
        before,
        "refused calls change nothing"
    );

    assert_eq!(rotate(Some(&admin), "alice@KRBTEST.COM"), Ok(before + 1));
    assert_eq!(sandbox.realm.kvno("alice").unwrap(), before + 1);
    let record = last_audit(&broker.audit_file);
    assert_eq!(record["reason"], "rotated");
    assert_eq!(record["kvno"], before + 1);
    assert_eq!(record["username"], "ops-admin");
    assert_eq!(record["client_cert"], "CN=ops-admin");
    // The next login is served the new key and works.
    let out = sandbox.login_via(&broker.url, "alice", "alicepw", &sandbox.ccache("rotated"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("key version {}", before + 1)),
        "{}",
        stderr(&out)
    );
}

#[test]
fn host_rules_admit_registered_hosts_only() {
    let sandbox = sandbox();
    let edge = sandbox.pki.client("edge1.example.com").unwrap();
    let other = sandbox.pki.client("laptop.example.com").unwrap();
    let broker = sandbox
        .extra_broker("broker-hosts", |c| {
            c.replacen(
                "[server]\n",
                &format!("[server]\nclient_ca_file = \"{}\"\n", sandbox.pki.ca_cert.display()),
                1,
            ) + "\n[[tenants.sandbox.clients]]\ncidr = \"10.0.0.0/8\"\n\n[[tenants.sandbox.clients]]\ncidr = \"127.0.0.0/8\"\ncert = \"edge1.example.com\"\n"
        })
        .unwrap();
    let login = |cert: Option<&ClientCert>, ccache: &str| {
        let mut command =
            sandbox.kinit_command_via(&broker.url, &sandbox.pki.ca_cert, "alice", &sandbox.ccache(ccache));
        if let Some(cert) = cert {
            command
                .arg("--client-cert")
                .arg(&cert.cert)
                .arg("--client-key")
                .arg(&cert.key);
        }
        run_with_password(command, "alicepw")
    };
    let alice_binds = sandbox.directory.bind_count(&Directory::user_dn("alice"));
    let anonymous = login(None, "no-cert");
    assert_eq!(anonymous.status.code(), Some(4), "{}", stderr(&anonymous));
    assert!(
        stderr(&anonymous).contains("[host-not-registered]"),
        "{}",
        stderr(&anonymous)
    );
    let wrong_host = login(Some(&other), "other-cert");
    assert_eq!(wrong_host.status.code(), Some(4), "{}", stderr(&wrong_host));
    assert_eq!(
        sandbox.directory.bind_count(&Directory::user_dn("alice")),
        alice_binds,
        "unregistered hosts never reach the directory"
    );
    let registered = login(Some(&edge), "edge-cert");
    assert!(registered.status.success(), "{}", stderr(&registered));
    let audit = std::fs::read_to_string(&broker.audit_file).unwrap();
    let records: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["reason"].as_str().unwrap().to_owned(),
                r["client_cert"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("host_not_allowed".to_owned(), "-".to_owned()),
            ("host_not_allowed".to_owned(), "CN=laptop.example.com".to_owned()),
            ("granted".to_owned(), "CN=edge1.example.com".to_owned()),
        ]
    );
    // The sandbox's own broker asks for no certificate and has no rules: any host.
    let out = sandbox.login("alice", "alicepw", &sandbox.ccache("open"));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_account_the_directory_locked_gets_the_ordinary_refusal() {
    let sandbox = sandbox();
    sandbox.directory.fail_binds("bob", PPOLICY_MAX_FAILURES).unwrap();
    let out = sandbox.login("bob", "bobpw", &sandbox.ccache("bob-locked"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("authentication failed"), "{}", stderr(&out));
    assert_eq!(last_audit(&sandbox.broker.audit_file)["reason"], "account_locked");
    // Others are unaffected.
    let alice = sandbox.login("alice", "alicepw", &sandbox.ccache("alice-open"));
    assert!(alice.status.success(), "{}", stderr(&alice));
}

#[test]
fn a_hung_directory_meets_the_ldap_timeout_the_request_deadline_and_the_concurrency_limit() {
    let sandbox = sandbox();
    let ldap_timeout = sandbox
        .extra_broker("broker-ldap-timeout", |c| {
            c.replace("timeout_secs = 5", "timeout_secs = 1")
        })
        .unwrap();
    let deadline = sandbox
        .extra_broker("broker-deadline", |c| {
            c.replacen(
                "[server]\n",
                "[server]\nrequest_timeout_secs = 1\nmax_concurrent_requests = 1\n",
                1,
            )
        })
        .unwrap();
    let endpoint_of = |url: &str| {
        let mut endpoint = sandbox.endpoint();
        endpoint.url = url.to_owned();
        endpoint
    };
    sandbox.directory.pause().unwrap();

    let started = std::time::Instant::now();
    assert_eq!(
        raw_fetch(&endpoint_of(&ldap_timeout.url), "alice", b"alicepw", None),
        refused(RefusalCode::DirectoryUnavailable)
    );
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "{:?}",
        started.elapsed()
    );

    let slow = {
        let endpoint = endpoint_of(&deadline.url);
        std::thread::spawn(move || raw_fetch(&endpoint, "alice", b"alicepw", None))
    };
    deadline.wait_for_log(DIRECTORY_ASKED, 1).unwrap(); // the one slot is taken now
    assert_eq!(
        raw_fetch(&endpoint_of(&deadline.url), "bob", b"bobpw", None),
        refused(RefusalCode::Busy),
        "the one slot is taken"
    );
    assert_eq!(slow.join().unwrap(), refused(RefusalCode::DeadlineExceeded));
    sandbox.directory.resume().unwrap();
    assert_eq!(audit_reasons(&ldap_timeout.audit_file), ["directory_unavailable"]);
    assert_eq!(audit_reasons(&deadline.audit_file), ["busy", "deadline_exceeded"]);
    // With the directory back, the same broker serves again.
    let fetched = block_on(fetch_keytab(&endpoint_of(&deadline.url), "alice", b"alicepw", None)).unwrap();
    assert_eq!(fetched.principal, "alice@KRBTEST.COM");
}

#[test]
fn oversized_passwords_and_messages_are_refused_before_any_work() {
    let mut sandbox = sandbox();
    let alice_binds = sandbox.directory.bind_count(&Directory::user_dn("alice"));
    let long_password = vec![b'a'; 1025];
    assert_eq!(
        raw_fetch(&sandbox.endpoint(), "alice", &long_password, None),
        refused(RefusalCode::AuthFailed)
    );
    assert_eq!(last_audit(&sandbox.broker.audit_file)["reason"], "password_too_long");
    let huge_name = "a".repeat(16 * 1024);
    let answer = raw_fetch(&sandbox.endpoint(), &huge_name, b"alicepw", None);
    assert_eq!(answer.messages, 0);
    assert!(
        matches!(&answer.status, Some((Code::OutOfRange | Code::ResourceExhausted, _))),
        "{answer:?}"
    );
    assert_eq!(sandbox.directory.bind_count(&Directory::user_dn("alice")), alice_binds);
    sandbox.check_alive().unwrap();
}

/// Reads datagrams from a stand-in for systemd's notify socket until `wanted` arrives (10 s).
fn wait_for_state(socket: &std::os::unix::net::UnixDatagram, seen: &mut Vec<String>, wanted: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut buffer = [0u8; 512];
    while !seen.iter().any(|m| m.lines().any(|l| l == wanted)) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {wanted} within 10 s; got {seen:?}"
        );
        if let Ok(n) = socket.recv(&mut buffer) {
            seen.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
    }
}

#[test]
fn the_broker_speaks_the_systemd_notify_protocol() {
    let sandbox = sandbox();
    let dir = sandbox.root.join("systemd");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let env = [
        ("NOTIFY_SOCKET", path.display().to_string()),
        ("WATCHDOG_USEC", "400000".to_owned()),
    ];
    let mut broker = ktbroker_tests::broker::Broker::start_with_env(
        &sandbox.root.join("broker-notify"),
        &sandbox.pki,
        &sandbox.realm,
        &sandbox.directory,
        |c| c,
        &env,
    )
    .unwrap();
    let mut seen = Vec::new();
    // READY=1 comes once it listens (start_with_env returned only after a health check passed).
    wait_for_state(&socket, &mut seen, "READY=1");
    assert!(seen[0].contains("STATUS=listening on 127.0.0.1:"), "{seen:?}");
    // The watchdog pings at half of WATCHDOG_USEC.
    wait_for_state(&socket, &mut seen, "WATCHDOG=1");
    // SIGHUP: RELOADING=1 with a monotonic timestamp, then READY=1 again.
    seen.clear();
    broker.reload().unwrap();
    wait_for_state(&socket, &mut seen, "RELOADING=1");
    let reloading = seen.iter().find(|m| m.contains("RELOADING=1")).unwrap();
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    wait_for_state(&socket, &mut seen, "READY=1");
    // SIGTERM: STOPPING=1, then a clean exit.
    let exit = broker.terminate().unwrap();
    wait_for_state(&socket, &mut seen, "STOPPING=1");
    assert!(exit.success(), "{exit}");
}

#[test]
fn connections_that_never_speak_are_closed_and_do_not_hold_up_a_stop() {
    let mut sandbox = sandbox();
    let endpoint = sandbox.endpoint();
    // A client that completes TLS and then says nothing is shown the door after the preface
    // deadline (5 s) instead of being kept for ever.
    let mut silent = ktbroker_tests::client::silent_tls(&endpoint);
    silent.sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let started = std::time::Instant::now();
    // The server speaks first (its SETTINGS frame): read past that to the end of the connection.
    let mut buffer = [0u8; 512];
    let read = loop {
        match std::io::Read::read(&mut silent, &mut buffer) {
            Ok(n) if n > 0 => continue,
            other => break other,
        }
    };
    let closed_after = started.elapsed();
    assert!(
        !matches!(&read, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "still open after {closed_after:?}: {read:?}"
    );
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // Logins go on while such connections are held.
    let _held = ktbroker_tests::client::silent_tls(&endpoint);
    let out = sandbox.login("alice", "alicepw", &sandbox.ccache("beside-silent"));
    assert!(out.status.success(), "{}", stderr(&out));

    // SIGTERM with a silent connection and an idle HTTP/2 connection held: the broker stops at
    // once for the idle one and within the preface deadline for the silent one.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _idle = runtime
        .block_on(ktbroker_kinit::fetch::connect(&endpoint))
        .expect("an HTTP/2 connection to the broker");
    let _silent = ktbroker_tests::client::silent_tls(&endpoint);
    let stopping = std::time::Instant::now();
    let status = sandbox
        .broker
        .terminate()
        .expect("the broker stops while connections are held");
    assert!(status.success(), "{status:?}");
    // Well inside the unit's TimeoutStopSec=45s (the silent connection is closed after 5 s).
    assert!(stopping.elapsed() < Duration::from_secs(30), "{:?}", stopping.elapsed());
}

/// A tmpfs of `size` mounted on `dir` for one test; unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(mounted.success(), "mount tmpfs on {}", dir.display());
        Self(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_audit_disk_refuses_grants_and_logins_come_back_with_the_space() {
    let sandbox = sandbox();
    let disk = sandbox.root.join("small-audit");
    let _disk = SmallDisk::mount(&disk, "64k");
    let audit = disk.join("audit.jsonl");
    let broker = sandbox
        .extra_broker("broker-small-audit", |c| {
            c.lines()
                .map(|l| {
                    if l.starts_with("file = ") {
                        format!("file = \"{}\"", audit.display())
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap();
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    assert_eq!(raw_fetch(&endpoint, "alice", b"alicepw", None).status, None);
    // Fill the disk to the last byte.
    let filler = disk.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
    while std::io::Write::write_all(&mut file, &chunk[..1]).is_ok() {}
    drop(file);
    // The audit file's last page still has room for a few lines; then no grant without its audit
    // record: refused, and the broker says why.
    let mut granted = 1;
    loop {
        let answer = raw_fetch(&endpoint, "alice", b"alicepw", None);
        if answer == refused(RefusalCode::AuditUnavailable) {
            break;
        }
        assert_eq!(answer.status, None, "{answer:?}");
        granted += 1;
        assert!(granted < 40, "the audit never filled the disk");
    }
    broker.wait_for_log("cannot write the audit file", 1).unwrap();
    // Space returns: logins work again by themselves, and the file is one unbroken chain holding
    // exactly the grants that happened.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(raw_fetch(&endpoint, "alice", b"alicepw", None).status, None);
    assert_eq!(audit_reasons(&audit), vec!["granted"; granted + 1]);
    let verified = broker.command().args(["audit-verify"]).arg(&audit).output().unwrap();
    assert!(verified.status.success(), "{}", stderr(&verified));
}

#[test]
fn a_password_the_directory_wants_changed_never_yields_keys() {
    let sandbox = sandbox();
    // erin's password was reset by an administrator (ppolicy pwdReset, pwdMustChange): slapd
    // accepts it, but only to change it. frank's has expired (no grace logins: slapd refuses the
    // bind with passwordExpired); gina's has expired with grace logins left (slapd lets her bind,
    // with graceAuthNsRemaining). All three have a Kerberos principal, so only the check stops them.
    let gina = sandbox.directory.ppolicy_bind("gina", "ginapw").unwrap();
    assert!(gina.contains("grace"), "gina's fixture: {gina}");
    let frank = sandbox.directory.ppolicy_bind("frank", "frankpw").unwrap();
    assert!(
        frank.contains("(49)") && frank.contains("expired"),
        "frank's fixture: {frank}"
    );
    for (user, reason, code, name, exit) in [
        (
            "erin",
            "password_must_change",
            RefusalCode::PasswordChangeRequired,
            "password-change-required",
            10,
        ),
        // No bind to change it on: slapd refuses frank's bind outright.
        (
            "frank",
            "password_expired",
            RefusalCode::PasswordChangeElsewhere,
            "password-change-elsewhere",
            4,
        ),
        (
            "gina",
            "password_expired",
            RefusalCode::PasswordChangeRequired,
            "password-change-required",
            10,
        ),
    ] {
        let password = format!("{user}pw");
        assert_eq!(
            raw_fetch(&sandbox.endpoint(), user, password.as_bytes(), None),
            refused(code),
            "{user}"
        );
        assert_eq!(last_audit(&sandbox.broker.audit_file)["reason"], reason, "{user}");
        // A wrong password still gets the one answer for every failure: nothing to learn from it.
        assert_eq!(
            raw_fetch(&sandbox.endpoint(), user, b"Wr0ng", None),
            refused(RefusalCode::AuthFailed),
            "{user}"
        );
        assert_eq!(last_audit(&sandbox.broker.audit_file)["reason"], "invalid_credentials");
        // Only the old password on stdin: no new one to change to, so no ticket.
        let ccache = sandbox.ccache(user);
        let out = sandbox.login(user, &password, &ccache);
        assert_eq!(out.status.code(), Some(exit), "{user}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("[{name}]")) && stderr(&out).contains("hint: your directory password"),
            "{user}: {}",
            stderr(&out)
        );
        assert!(sandbox.klist(&ccache).is_none(), "{user}");
    }
}

#[test]
fn a_reset_or_grace_password_is_changed_at_login_by_password_modify_and_the_login_completes() {
    let sandbox = sandbox();
    for user in ["erin", "gina"] {
        let old = format!("{user}pw");
        let principal = sandbox.principal(user);
        let kvno = sandbox.realm.kvno(&principal).unwrap();
        // slapd's rules (pwdMinLength 8): refused in plain words, and nothing changes.
        let ccache = sandbox.ccache(&format!("{user}-change"));
        let input = format!("{old}\nshort\nshort");
        let out = sandbox.login(user, &input, &ccache);
        assert_eq!(out.status.code(), Some(4), "{user}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("[new-password-rejected]") && stderr(&out).contains("too short"),
            "{user}: {}",
            stderr(&out)
        );
        assert_eq!(
            last_audit(&sandbox.broker.audit_file)["reason"],
            "new_password_rejected"
        );
        // Two different new passwords: refused before anything is sent.
        let out = sandbox.login(user, &format!("{old}\nN3w-{user}-pw\nN3w-other-pw"), &ccache);
        assert_eq!(out.status.code(), Some(8), "{user}: {}", stderr(&out));
        assert!(stderr(&out).contains("differ"), "{}", stderr(&out));
        // Then a good one: changed in the directory, the login goes on with it.
        let new = format!("N3w-{user}-pw");
        let out = sandbox.login(user, &format!("{old}\n{new}\n{new}"), &ccache);
        assert!(out.status.success(), "{user}: {}", stderr(&out));
        assert!(stderr(&out).contains("password was changed"), "{}", stderr(&out));
        assert!(sandbox.klist(&ccache).unwrap().contains(&principal));
        assert_eq!(last_audit(&sandbox.broker.audit_file)["reason"], "password_changed");
        assert_eq!(last_audit(&sandbox.broker.audit_file)["outcome"], "granted");
        assert_eq!(
            sandbox.realm.kvno(&principal).unwrap(),
            kvno,
            "Kerberos keys are not changed"
        );
        // The directory itself now takes the new password and no longer the old one.
        let now = sandbox.directory.ppolicy_bind(user, &new).unwrap();
        assert!(
            !now.contains("(49)") && !now.contains("grace") && !now.contains("reset"),
            "{user}: {now}"
        );
        assert!(sandbox.directory.ppolicy_bind(user, &old).unwrap().contains("(49)"));
        // And the next login is an ordinary one.
        let out = sandbox.login(user, &new, &sandbox.ccache(&format!("{user}-after")));
        assert!(out.status.success(), "{user}: {}", stderr(&out));
        assert_eq!(last_audit(&sandbox.broker.audit_file)["reason"], "granted");
    }
}

#[test]
fn a_client_holding_connections_gets_its_cap_and_loses_them_when_idle() {
    use ktbroker_tests::client::{closed_within, idle_h2_from, metric, scrape_metrics};
    let sandbox = sandbox();
    let metrics_port = ktbroker_tests::daemon::free_port();
    let broker = sandbox
        .extra_broker("broker-capped", |c| {
            c.replace(
                "[server]\n",
                "[server]\nmax_connections = 24\nmax_connections_per_source = 16\nidle_timeout_secs = 3\n",
            ) + &format!("\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n")
        })
        .unwrap();
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    let open_now = || metric(&scrape_metrics(metrics_port), "ktbroker_connections_open").unwrap_or(0.0);

    // One hostile source opens all it can: it keeps its 16, the rest are closed before TLS.
    let hostile: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut held: Vec<_> = (0..40).filter_map(|_| idle_h2_from(&endpoint, hostile).ok()).collect();
    assert_eq!(held.len(), 16);
    let opened = std::time::Instant::now();

    // A person logging in from another address meanwhile is served.
    let login_started = std::time::Instant::now();
    let out = sandbox.login_via(&broker.url, "alice", "alicepw", &sandbox.ccache("beside-hostile"));
    assert!(out.status.success(), "{}", stderr(&out));
    eprintln!("login beside 16 held connections: {:?}", login_started.elapsed());

    // A second source fills the total (24); its ninth connection is refused.
    let wait_until = std::time::Instant::now() + Duration::from_secs(5);
    while open_now() > 16.0 && std::time::Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let second: std::net::IpAddr = "127.0.0.3".parse().unwrap();
    held.extend((0..12).filter_map(|_| idle_h2_from(&endpoint, second).ok()));
    assert_eq!(held.len(), 24);
    let body = scrape_metrics(metrics_port);
    assert_eq!(metric(&body, "ktbroker_connections_open"), Some(24.0), "{body}");
    for (cap, count) in [("max_connections_per_source", 24.0), ("max_connections", 4.0)] {
        let name = format!("ktbroker_connections_refused_total{{cap=\"{cap}\"}}");
        assert_eq!(metric(&body, &name), Some(count), "{name} in:\n{body}");
    }

    // Every held connection is closed within the idle timeout (3 s) of its last use.
    for connection in &mut held {
        let left = (opened + Duration::from_secs(3) + Duration::from_secs(5))
            .saturating_duration_since(std::time::Instant::now());
        assert!(
            closed_within(connection, left),
            "still open {:?} after it idled",
            opened.elapsed()
        );
    }
    let body = scrape_metrics(metrics_port);
    assert_eq!(metric(&body, "ktbroker_connections_open"), Some(0.0), "{body}");
    assert_eq!(
        metric(&body, "ktbroker_connections_closed_total{reason=\"idle\"}"),
        Some(24.0),
        "{body}"
    );
    // And the broker serves again.
    let out = sandbox.login_via(&broker.url, "alice", "alicepw", &sandbox.ccache("after-hostile"));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn under_a_frozen_directory_every_concurrent_login_gets_its_refusal_within_the_directory_timeout() {
    let sandbox = sandbox();
    let broker = sandbox
        .extra_broker("broker-outage", |c| c.replace("timeout_secs = 5", "timeout_secs = 2"))
        .unwrap();
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    // Two logins open the four pooled service connections, which the freeze then leaves hanging.
    for _ in 0..2 {
        assert_eq!(raw_fetch(&endpoint, "alice", b"alicepw", None).status, None);
    }
    sandbox.directory.pause().unwrap();
    let answers: Vec<_> = (0..20)
        .map(|_| {
            let endpoint = endpoint.clone();
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                let answer = raw_fetch(&endpoint, "alice", b"alicepw", None);
                (answer, started.elapsed())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    sandbox.directory.resume().unwrap();
    let slowest = answers.iter().map(|(_, took)| *took).max().unwrap();
    eprintln!("20 logins under a frozen directory: slowest answer after {slowest:?}");
    for (answer, took) in &answers {
        assert_eq!(*answer, refused(RefusalCode::DirectoryUnavailable));
        // The directory timeout (2 s) for the whole check, plus the trip; no queueing behind a
        // reconnect (before, a slot's lock was held across it: 4-10 s).
        assert!(*took < Duration::from_millis(3500), "answered after {took:?}");
    }
    assert_eq!(raw_fetch(&endpoint, "alice", b"alicepw", None).status, None);
}

/// A broker (in ROOT/`name`) whose krb5 profile sends it to kadmind through `port` (a relay), its
/// key source's `timeout_secs = 10` line replaced by `keys`.
fn broker_reaching_kadmind_via(
    sandbox: &ktbroker_tests::Sandbox,
    port: u16,
    name: &str,
    keys: &str,
) -> ktbroker_tests::broker::Broker {
    let config = |c: String| {
        sandbox
            .with_kadmind_at(c.replace("timeout_secs = 10", keys), port, name)
            .unwrap()
    };
    sandbox.extra_broker(name, config).unwrap()
}

#[test]
fn a_kadm5_call_hung_on_a_dark_connection_holds_up_only_its_own_request() {
    let sandbox = sandbox();
    let relay = ktbroker_tests::proxy::DarkeningRelay::start(sandbox.realm.kadmin_port).unwrap();
    let broker = broker_reaching_kadmind_via(&sandbox, relay.port, "broker-dark-kadmind", "timeout_secs = 2");
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    assert_eq!(raw_fetch(&endpoint, "alice", b"alicepw", None).status, None);

    // The admin session's connection goes dark (a firewall dropped its state): the next call on
    // it hangs inside libkadm5 until its RPC timeout, far past the request's deadline.
    assert!(relay.darken_open_connections() >= 1);
    let started = std::time::Instant::now();
    assert_eq!(
        raw_fetch(&endpoint, "alice", b"alicepw", None),
        refused(RefusalCode::KeysUnavailable)
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // The hung call still holds its session; the next requests open a fresh one and are served.
    for user in ["bob", "alice"] {
        let password = format!("{user}pw");
        let answer = raw_fetch(&endpoint, user, password.as_bytes(), None);
        assert_eq!(answer.status, None, "{user}: {answer:?}");
    }
    assert_eq!(
        audit_reasons(&broker.audit_file),
        ["granted", "key_source_failed", "granted", "granted"]
    );
}

#[test]
fn a_busy_broker_queues_kadm5_calls_for_its_few_admin_sessions_instead_of_opening_more() {
    let sandbox = sandbox();
    let relay = ktbroker_tests::proxy::DarkeningRelay::start(sandbox.realm.kadmin_port).unwrap();
    let broker = broker_reaching_kadmind_via(
        &sandbox,
        relay.port,
        "broker-two-sessions",
        "timeout_secs = 10\nsessions = 2",
    );
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    // 3 rounds of 12 logins at once: far more calls than sessions.
    for _ in 0..3 {
        let answers: Vec<_> = (0..12)
            .map(|n| {
                let endpoint = endpoint.clone();
                std::thread::spawn(move || {
                    let (user, password) = if n % 2 == 0 {
                        ("alice", "alicepw")
                    } else {
                        ("bob", "bobpw")
                    };
                    raw_fetch(&endpoint, user, password.as_bytes(), None)
                })
            })
            .collect();
        for answer in answers {
            let answer = answer.join().unwrap();
            assert_eq!(answer.status, None, "{answer:?}");
        }
    }
    assert_eq!(audit_reasons(&broker.audit_file).len(), 36);
    // Each admin session is one connection to kadmind: never more than the two configured.
    let opened = relay.accepted();
    assert!((1..=2).contains(&opened), "{opened} connections to kadmind");
}

/// A password no other process or file has: 24 random bytes, hex.
fn unique_password() -> String {
    let mut bytes = [0u8; 24];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn after_fifty_logins_the_broker_keeps_almost_no_copy_of_a_password_or_key() {
    let sandbox = sandbox();
    let password = unique_password();
    sandbox.realm.add_user("zed", "zed-kdc-pw").unwrap();
    let zed = DirectoryUser {
        uid: "zed".into(),
        password: password.clone(),
        scheme: PasswordScheme::Ssha,
        in_group: true,
        in_posix_group: false,
        password_state: PasswordState::Current,
    };
    let directory = Directory::start(&sandbox.root.join("ldap-zed"), &sandbox.pki, &[zed]).unwrap();
    // Started like any test broker: without GLIBC_TUNABLES, which it sets for itself.
    let broker = ktbroker_tests::broker::Broker::start(
        &sandbox.root.join("broker-zed"),
        &sandbox.pki,
        &sandbox.realm,
        &directory,
    )
    .unwrap();
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    let mut keys = Vec::new();
    for _ in 0..50 {
        let fetched = block_on(fetch_keytab(&endpoint, "zed", password.as_bytes(), None)).unwrap();
        keys = key_list(&fetched.bytes).into_iter().map(|(_, _, key)| key).collect();
    }
    assert!(keys.len() >= 2, "{keys:?}");
    let mut needles: Vec<&[u8]> = vec![password.as_bytes()];
    needles.extend(keys.iter().map(Vec::as_slice));
    let copies = ktbroker_tests::memscan::count_copies(broker.pid(), &needles).unwrap();
    eprintln!(
        "after 50 logins the broker holds: password {} copies, keys {:?}",
        copies[0],
        &copies[1..]
    );
    // Before the broker had glibc wipe freed memory: 27 copies of the password, 8 and 9 of the keys.
    assert!(copies.iter().all(|&n| n <= 1), "copies left: {copies:?}");
    assert!(
        broker.log_text().contains("freed heap memory is overwritten"),
        "the broker re-executed itself with the wiping tunables"
    );
    // And under its own name, as ps, top and pkill show it.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", broker.pid())).unwrap();
    assert_eq!(comm.trim(), "ktbrokerd", "the re-executed broker's process name");
}
