//! Ticket delivery (issue 18) against the real KDC, slapd and broker: the broker makes the AS
//! exchange itself and sends only the TGT and its session key (a KRB-CRED message); the
//! principal's long-term keys never reach the client.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ktbroker_codes::RefusalCode;
use ktbroker_tests::Sandbox;
use ktbroker_tests::client::{block_on, raw_fetch, refused, stderr};
use ktbroker_tests::sandbox::run_with_password;
use std::process::Command;
use std::time::Duration;

/// What one raw ticket-delivery call returns: the header's principal and every byte of the chunks.
fn raw_ticket(sandbox: &Sandbox, url: &str, user: &str, password: &str) -> (String, Vec<u8>) {
    use ktbroker_proto::v1::fetch_keytab_response::Part;
    use ktbroker_proto::v1::keytab_broker_client::KeytabBrokerClient;
    let mut endpoint = sandbox.endpoint();
    endpoint.url = url.to_owned();
    block_on(async {
        let channel = ktbroker_kinit::fetch::connect(&endpoint).await.unwrap();
        let request = ktbroker_proto::v1::FetchKeytabRequest {
            username: user.into(),
            password: password.as_bytes().to_vec(),
            delivery: ktbroker_proto::v1::Delivery::Ticket as i32,
            ..Default::default()
        };
        let mut stream = KeytabBrokerClient::new(channel)
            .fetch_keytab(request)
            .await
            .unwrap()
            .into_inner();
        let (mut principal, mut bytes) = (String::new(), Vec::new());
        while let Some(message) = stream.message().await.unwrap() {
            match message.part.unwrap() {
                Part::TicketHeader(header) => principal = header.principal,
                Part::Header(_) => panic!("a keytab header in a ticket delivery"),
                Part::DevicePrompt(_) => panic!("a sign-in prompt in a password login"),
                Part::Chunk(chunk) => bytes.extend_from_slice(&chunk),
                Part::Trailer(_) => {}
            }
        }
        (principal, bytes)
    })
}

/// alice's current keys, straight from the KDC's database (kadmin.local, keys unchanged).
fn keys_of(sandbox: &Sandbox, user: &str) -> Vec<Vec<u8>> {
    let file = sandbox.root.join(format!("{user}-reference.keytab"));
    sandbox
        .realm
        .kadmin_local(&format!("ktadd -norandkey -k {} {user}", file.display()))
        .unwrap();
    let keys = ktbroker_tests::client::key_list(&std::fs::read(&file).unwrap())
        .into_iter()
        .map(|(_, _, key)| key)
        .collect();
    std::fs::remove_file(&file).unwrap();
    keys
}

fn kinit(
    sandbox: &Sandbox,
    url: &str,
    user: &str,
    password: &str,
    ccache: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut command = sandbox.kinit_command_via(url, &sandbox.pki.ca_cert, user, ccache);
    command.args(extra);
    run_with_password(command, password)
}

#[test]
fn where_pre_authentication_is_required_a_login_takes_one_as_exchange_in_either_delivery() {
    let sandbox = ktbroker_tests::start_sandbox();
    sandbox.realm.kadmin_local("modprinc +requires_preauth alice").unwrap();
    let exchanges = || sandbox.realm.as_exchanges("alice");
    let after = |before| as_exchanges_since(&sandbox.realm, "alice", before);
    // The baseline, so that the count can fail: a password kinit asks twice.
    let before = exchanges();
    assert!(
        sandbox
            .realm
            .kinit_with_password("alice", "alice-kdc-pw", &sandbox.ccache("preauth-kinit"))
            .unwrap()
    );
    assert_eq!(after(before), (1, 1), "kinit: PREAUTH_REQUIRED, then the ticket");
    // With the keys at hand (the client's keytab, or the broker's for a ticket) the first
    // request already carries the encrypted timestamp.
    for delivery in ["keytab", "ticket"] {
        let before = exchanges();
        let out = kinit(
            &sandbox,
            &sandbox.broker.url,
            "alice",
            "alicepw",
            &sandbox.ccache(&format!("preauth-{delivery}")),
            &["--delivery", delivery],
        );
        assert!(out.status.success(), "{delivery}: {}", stderr(&out));
        assert_eq!(after(before), (0, 1), "{delivery} delivery: one AS exchange");
    }
}

/// `user`'s AS exchanges (PREAUTH_REQUIRED answers, tickets issued) since `before`. The KDC writes
/// its log line after it answers: waits up to 5 s for a new issue line.
fn as_exchanges_since(realm: &ktbroker_tests::realm::Realm, user: &str, before: (usize, usize)) -> (usize, usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while realm.as_exchanges(user).1 == before.1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let now = realm.as_exchanges(user);
    (now.0 - before.0, now.1 - before.1)
}

/// A KDC that takes no encrypted timestamp, only SPAKE: the client's lean context (no SPAKE
/// module) cannot answer it, so the client tries again with every module, and the login works.
#[test]
fn where_the_kdc_takes_only_spake_a_login_works_in_either_delivery() {
    let mut sandbox = ktbroker_tests::start_sandbox();
    let mut kdc_conf = std::fs::read_to_string(&sandbox.realm.kdc_conf).unwrap();
    kdc_conf.push_str(
        "[libdefaults]\n    spake_preauth_groups = edwards25519\n\
         [plugins]\n    kdcpreauth = {\n        disable = encrypted_timestamp\n    }\n",
    );
    std::fs::write(&sandbox.realm.kdc_conf, kdc_conf).unwrap();
    sandbox.realm.restart_kdc().unwrap();
    sandbox.realm.kadmin_local("modprinc +requires_preauth alice").unwrap();
    let exchanges = || sandbox.realm.as_exchanges("alice");
    // The KDC logs SPAKE's challenge round ("More preauthentication data is required").
    let spake_rounds = || {
        std::fs::read_to_string(sandbox.realm.dir.join("kdc.log"))
            .unwrap_or_default()
            .matches("preauth (spake) verify failure: More preauthentication data")
            .count()
    };
    for delivery in ["keytab", "ticket"] {
        let before = exchanges();
        let spake_before = spake_rounds();
        let out = kinit(
            &sandbox,
            &sandbox.broker.url,
            "alice",
            "alicepw",
            &sandbox.ccache(&format!("spake-{delivery}")),
            &["--delivery", delivery],
        );
        assert!(out.status.success(), "{delivery}: {}", stderr(&out));
        let (asked, issued) = as_exchanges_since(&sandbox.realm, "alice", before);
        assert_eq!(issued, 1, "{delivery}: one ticket");
        assert!(
            asked >= 1,
            "{delivery}: the KDC asked for SPAKE ({asked} PREAUTH_REQUIRED)"
        );
        assert_eq!(spake_rounds() - spake_before, 1, "{delivery}: the ticket came by SPAKE");
    }
}

#[test]
fn a_ticket_login_holds_a_working_tgt_and_no_key_crosses_the_wire() {
    let sandbox = ktbroker_tests::start_sandbox();
    sandbox.realm.kadmin_local("addprinc -randkey host/localhost").unwrap();
    let principal = sandbox.principal("alice");
    let kvno = sandbox.realm.kvno(&principal).unwrap();

    // What the client receives holds none of alice's long-term keys.
    let keys = keys_of(&sandbox, "alice");
    assert!(!keys.is_empty());
    let (named, message) = raw_ticket(&sandbox, &sandbox.broker.url, "alice", "alicepw");
    assert_eq!(named, principal);
    assert!(message.len() > 100, "a KRB-CRED message: {} bytes", message.len());
    for key in &keys {
        assert!(
            !message.windows(key.len()).any(|w| w == key.as_slice()),
            "a long-term key of alice's is in the delivery"
        );
    }

    // ktbroker-kinit stores it; the ticket gets a service ticket; the keys did not change.
    let ccache = sandbox.ccache("ticket-delivery");
    let out = kinit(
        &sandbox,
        &sandbox.broker.url,
        "alice",
        "alicepw",
        &ccache,
        &["--delivery", "ticket"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("no key on this host"), "{}", stderr(&out));
    let listing = sandbox.klist(&ccache).unwrap();
    assert!(
        listing.contains(&format!("Default principal: {principal}")),
        "{listing}"
    );
    let kvno_out = sandbox
        .realm
        .command("kvno")
        .args(["-c", &ccache, &format!("host/localhost@{}", sandbox.realm.realm)])
        .output()
        .unwrap();
    assert!(kvno_out.status.success(), "{}", stderr(&kvno_out));
    assert_eq!(sandbox.realm.kvno(&principal).unwrap(), kvno, "keys unchanged");
    let status = sandbox.status_json(&ccache);
    assert_eq!(status["delivery"], "ticket", "{status}");
    assert_eq!(status["valid"], true, "{status}");
    assert!(status["renew_till"].as_i64().unwrap_or(0) > 0, "renewable: {status}");

    // A keytab login says so too; the audit records each delivery.
    let keytab_cache = sandbox.ccache("keytab-delivery");
    let out = kinit(&sandbox, &sandbox.broker.url, "alice", "alicepw", &keytab_cache, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sandbox.status_json(&keytab_cache)["delivery"], "keytab");
    let audit = std::fs::read_to_string(&sandbox.broker.audit_file).unwrap();
    assert!(audit.contains("\"delivery\":\"ticket\""), "{audit}");
    assert!(audit.contains("\"delivery\":\"keytab\""), "{audit}");
}

#[test]
fn a_ticket_only_tenant_refuses_keytabs_and_its_tickets_renew_without_the_broker() {
    let sandbox = ktbroker_tests::start_sandbox();
    let broker = sandbox
        .extra_broker("broker-ticket-only", |c| {
            c.replacen(
                "[tenants.sandbox]\n",
                "[tenants.sandbox]\ndeliveries = [\"ticket\"]\nticket_lifetime = \"30s\"\nrenew_lifetime = \"1h\"\nforwardable = true\n",
                1,
            )
        })
        .unwrap();
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    // A keytab (what an older client asks for) is refused with its own code, before the password.
    assert_eq!(
        raw_fetch(&endpoint, "alice", b"alicepw", None),
        refused(RefusalCode::DeliveryNotAllowed)
    );
    let out = kinit(
        &sandbox,
        &broker.url,
        "alice",
        "alicepw",
        &sandbox.ccache("refused"),
        &[],
    );
    assert_eq!(out.status.code(), Some(4), "refused by policy: {}", stderr(&out));
    assert!(
        stderr(&out).contains("[delivery-not-allowed]") && stderr(&out).contains("KTB-113"),
        "{}",
        stderr(&out)
    );
    let reasons = ktbroker_tests::client::audit_reasons(&broker.audit_file);
    // The raw request is audited; the helper read ServerInfo first and sent no password at all.
    assert_eq!(reasons, ["delivery_not_allowed"], "{reasons:?}");
    // ServerInfo says what the tenant offers.
    let offered = block_on(async {
        let channel = ktbroker_kinit::fetch::connect(&endpoint).await.unwrap();
        ktbroker_proto::v1::keytab_broker_client::KeytabBrokerClient::new(channel)
            .server_info(ktbroker_proto::v1::ServerInfoRequest { tenant: None })
            .await
            .unwrap()
            .into_inner()
            .deliveries
    });
    assert_eq!(offered, [ktbroker_proto::v1::Delivery::Ticket as i32]);

    // A ticket, with the tenant's lifetimes; renewed with the broker gone.
    let ccache = sandbox.ccache("ticket-only");
    let out = kinit(
        &sandbox,
        &broker.url,
        "alice",
        "alicepw",
        &ccache,
        &["--delivery", "ticket"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Forwardable as the tenant says (Hadoop jobs that delegate need it), and bound to no address.
    let flags = sandbox
        .realm
        .command("klist")
        .args(["-f", "-a", "-c", &ccache])
        .output()
        .unwrap();
    let flags = String::from_utf8_lossy(&flags.stdout).into_owned();
    let tgt_flags = flags
        .lines()
        .skip_while(|l| !l.contains("krbtgt/"))
        .find_map(|l| l.split_once("Flags: ").map(|(_, f)| f.trim()))
        .unwrap_or_else(|| panic!("{flags}"));
    assert!(tgt_flags.contains('F'), "forwardable: {flags}");
    assert!(flags.contains("Addresses: (none)"), "address-less: {flags}");
    let before = sandbox.status_json(&ccache);
    let lifetime = before["expires"].as_i64().unwrap() - ktbroker_kinit::unix_now();
    assert!(lifetime <= 30, "the tenant's ticket_lifetime: {before}");
    drop(broker);
    std::thread::sleep(Duration::from_millis(1100));
    let out = Command::new(ktbroker_tests::bins::project_binary("ktbroker-kinit"))
        .args(["renew", "-c", &ccache])
        .env("KRB5_CONFIG", &sandbox.realm.krb5_conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let after = sandbox.status_json(&ccache);
    assert!(
        after["expires"].as_i64() > before["expires"].as_i64(),
        "{before} -> {after}"
    );
    assert_eq!(after["valid"], true);
}

/// Logs alice in through the library in a process of its own and counts, while it still runs,
/// the copies of her long-term keys and of her principal's name in its memory.
fn residue_after_login(sandbox: &Sandbox, delivery: &str, keys: &[Vec<u8>]) -> (Vec<usize>, usize) {
    use std::io::{BufRead, Write};
    let mut child = Command::new(ktbroker_tests::bins::tool_binary("ktbroker-login-and-wait"))
        .arg(&sandbox.broker.url)
        .arg(&sandbox.pki.ca_cert)
        .args(["alice", &sandbox.ccache(&format!("residue-{delivery}")), delivery])
        .env("KRB5_CONFIG", &sandbox.realm.krb5_conf)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"alicepw\n").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("ready"), "the login failed: {line:?}");
    let principal = sandbox.principal("alice");
    let mut needles: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    needles.push(principal.as_bytes());
    let copies = ktbroker_tests::memscan::count_copies(child.id(), &needles).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    (copies[..keys.len()].to_vec(), copies[keys.len()])
}

#[test]
fn after_a_ticket_login_the_client_process_holds_no_copy_of_the_long_term_keys() {
    let sandbox = ktbroker_tests::start_sandbox();
    let keys = keys_of(&sandbox, "alice");
    let (ticket_keys, ticket_names) = residue_after_login(&sandbox, "ticket", &keys);
    let (keytab_keys, keytab_names) = residue_after_login(&sandbox, "keytab", &keys);
    eprintln!("copies of alice's keys: ticket delivery {ticket_keys:?}, keytab delivery {keytab_keys:?}");
    // The scan sees the process: the principal's name is in its memory either way.
    assert!(ticket_names >= 1 && keytab_names >= 1, "{ticket_names} {keytab_names}");
    assert!(
        ticket_keys.iter().all(|&n| n == 0),
        "a key reached the client: {ticket_keys:?}"
    );
}

#[test]
fn a_provisioned_principals_random_key_is_never_revealed_under_ticket_delivery() {
    let sandbox = ktbroker_tests::start_sandbox();
    // Provisioning needs the key source's writing principal.
    let broker = sandbox
        .extra_broker("broker-provision-tickets", |c| {
            sandbox.with_writer(c).replacen(
                "[tenants.sandbox]\n",
                "[tenants.sandbox]\nprovision = true\ndeliveries = [\"ticket\"]\n",
                1,
            )
        })
        .unwrap();
    assert!(
        sandbox.realm.kadmin_local("getprinc dave").is_err(),
        "dave starts without a principal"
    );
    // A keytab request is refused before anything is created.
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    assert_eq!(
        raw_fetch(&endpoint, "dave", b"davepw", None),
        refused(RefusalCode::DeliveryNotAllowed)
    );
    assert!(sandbox.realm.kadmin_local("getprinc dave").is_err());
    // The first login creates the principal with a random key, and dave gets only a ticket.
    let (named, message) = raw_ticket(&sandbox, &broker.url, "dave", "davepw");
    assert_eq!(named, sandbox.principal("dave"));
    let info = sandbox.realm.kadmin_local("getprinc dave").unwrap();
    assert!(info.contains("REQUIRES_PRE_AUTH"), "{info}");
    let keys = keys_of(&sandbox, "dave");
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(
            !message.windows(key.len()).any(|w| w == key.as_slice()),
            "the provisioned key is in the delivery"
        );
    }
    let ccache = sandbox.ccache("dave-ticket");
    let out = kinit(
        &sandbox,
        &broker.url,
        "dave",
        "davepw",
        &ccache,
        &["--delivery", "ticket"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sandbox.status_json(&ccache)["delivery"], "ticket");
    assert_eq!(
        ktbroker_tests::client::audit_reasons(&broker.audit_file),
        ["delivery_not_allowed", "provisioned", "granted"]
    );
}

#[test]
fn members_of_a_keytab_group_get_keytabs_where_everyone_else_gets_tickets() {
    let sandbox = ktbroker_tests::start_sandbox();
    // Tickets for everyone; keytabs also for the unattended jobs' group (only bob is in it).
    let broker = sandbox
        .extra_broker("broker-keytab-group", |c| {
            c.replacen(
                "[tenants.sandbox]\n",
                "[tenants.sandbox]\ndeliveries = [\"ticket\"]\n",
                1,
            )
            .replacen(
                "[tenants.sandbox.directory]\n",
                "[tenants.sandbox.directory]\nkeytab_groups = [\"cn=hadoop-posix,ou=groups,dc=example,dc=com\"]\n",
                1,
            )
        })
        .unwrap();
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    // A wrong password stays a wrong password: the delivery is decided only after the right one.
    assert_eq!(
        raw_fetch(&endpoint, "alice", b"Wr0ng-Passw0rd", None),
        refused(RefusalCode::AuthFailed)
    );
    assert_eq!(
        raw_fetch(&endpoint, "alice", b"alicepw", None),
        refused(RefusalCode::DeliveryNotAllowed)
    );
    let bob = sandbox.ccache("bob-keytab-group");
    let out = kinit(&sandbox, &broker.url, "bob", "bobpw", &bob, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sandbox.status_json(&bob)["delivery"], "keytab");
    let alice = sandbox.ccache("alice-ticket-group");
    let out = kinit(
        &sandbox,
        &broker.url,
        "alice",
        "alicepw",
        &alice,
        &["--delivery", "ticket"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        ktbroker_tests::client::audit_reasons(&broker.audit_file),
        ["invalid_credentials", "delivery_not_allowed", "granted", "granted"]
    );
}
