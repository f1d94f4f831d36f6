//! End-to-end tests: real MIT KDC and kadmind, real slapd, real ktbrokerd, real ktbroker-kinit and
//! kinit. Each test gets its own sandbox (about 0.5 s to start), so they run in parallel.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ktbroker_codes::RefusalCode;
use ktbroker_keytab::Keytab;
use ktbroker_kinit::HelperError;
use ktbroker_kinit::fetch::fetch_keytab;
use ktbroker_proto::v1::{FetchKeytabRequest, keytab_broker_client::KeytabBrokerClient};
use ktbroker_tests::Sandbox;
use ktbroker_tests::client::{audit_reasons, block_on, key_list, raw_fetch, refused, stderr};
use ktbroker_tests::directory::Directory;
use ktbroker_tests::pki::TestPki;
use ktbroker_tests::sandbox::run_with_password;
use ktbroker_tests::start_sandbox as sandbox;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use tonic::Code;

/// The broker's default floor for refused authentications.
const FAILURE_FLOOR: Duration = Duration::from_millis(400);

#[test]
fn right_password_gives_a_tgt_and_changes_no_keys() {
    let sandbox = sandbox();
    let kvno_before = sandbox.realm.kvno("alice").unwrap();
    let ccache = sandbox.ccache("alice");

    let out = sandbox.login("alice", "alicepw", &ccache);
    assert!(out.status.success(), "ktbroker-kinit failed: {}", stderr(&out));
    let klist = sandbox.klist(&ccache).expect("a readable ccache");
    assert!(klist.contains("Default principal: alice@KRBTEST.COM"), "{klist}");
    assert!(klist.contains("krbtgt/KRBTEST.COM@KRBTEST.COM"), "{klist}");

    assert_eq!(
        sandbox.realm.kvno("alice").unwrap(),
        kvno_before,
        "fetching must not rotate keys"
    );
    assert!(
        sandbox
            .realm
            .kinit_with_password("alice", "alice-kdc-pw", &sandbox.ccache("alice-pw"))
            .unwrap(),
        "alice's own Kerberos password must still work"
    );

    // The header reports the KDC's real kvno and the keys' enctypes.
    let fetched = block_on(fetch_keytab(&sandbox.endpoint(), "alice", b"alicepw", None)).unwrap();
    assert_eq!(fetched.principal, "alice@KRBTEST.COM");
    assert_eq!(fetched.kvno, kvno_before);
    assert_eq!(fetched.enctypes, [18, 17]);
    assert_eq!(sandbox.realm.kvno("alice").unwrap(), kvno_before);

    let log = sandbox.broker.log_text();
    assert!(
        log.contains("audit record") && log.contains("granted"),
        "audit record missing:\n{log}"
    );
    assert!(!log.contains("alicepw"), "the password reached the broker's log");
}

#[test]
fn argon2_hashed_directory_password_works_too() {
    let sandbox = sandbox();
    let ccache = sandbox.ccache("bob");
    let out = sandbox.login("bob", "bobpw", &ccache);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        sandbox
            .klist(&ccache)
            .unwrap()
            .contains("Default principal: bob@KRBTEST.COM")
    );
}

#[test]
fn wrong_password_unknown_user_and_outsider_look_identical_and_get_no_keytab() {
    let sandbox = sandbox();
    let endpoint = sandbox.endpoint();
    let cases = [
        ("alice", "Wr0ng-Passw0rd"),
        ("zed", "Zed-Passw0rd"),
        ("carol", "carolpw"),
    ];
    for (user, password) in cases {
        let started = Instant::now();
        let answer = raw_fetch(&endpoint, user, password.as_bytes(), None);
        assert_eq!(answer, refused(RefusalCode::AuthFailed), "{user}");
        assert!(
            started.elapsed() >= FAILURE_FLOOR,
            "{user} answered before the failure floor"
        );
    }
    for (user, password) in cases {
        let ccache = sandbox.ccache(&format!("refused-{user}"));
        let out = sandbox.login(user, password, &ccache);
        assert_eq!(out.status.code(), Some(3), "{user}: {}", stderr(&out));
        assert!(stderr(&out).contains("authentication failed"));
        assert!(sandbox.klist(&ccache).is_none(), "{user} got a ccache");
    }
    // Internally the audit log tells them apart; no password appears in it.
    let log = sandbox.broker.log_text();
    for outcome in ["invalid_credentials", "unknown_user", "not_in_group"] {
        assert!(log.contains(outcome), "audit lacks {outcome}:\n{log}");
    }
    for (_, password) in cases {
        assert!(!log.contains(password), "a password reached the broker's log");
    }
}

#[test]
fn empty_password_is_refused_before_any_bind() {
    let sandbox = sandbox();
    let endpoint = sandbox.endpoint();
    let alice_dn = Directory::user_dn("alice");
    let before = sandbox.directory.bind_count(&alice_dn);
    for password in ["", "   ", "\t"] {
        assert_eq!(
            raw_fetch(&endpoint, "alice", password.as_bytes(), None),
            refused(RefusalCode::AuthFailed)
        );
    }
    // The client does not even send one: exit 8 [password].
    let out = sandbox.login("alice", "", &sandbox.ccache("empty"));
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));

    // A wrong password does reach the directory: proof that the bind counter sees binds.
    assert_eq!(
        raw_fetch(&endpoint, "alice", b"Wr0ng", None),
        refused(RefusalCode::AuthFailed)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while sandbox.directory.bind_count(&alice_dn) == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        sandbox.directory.bind_count(&alice_dn),
        before + 1,
        "exactly one bind: the wrong password's"
    );
}

#[test]
fn usernames_with_filter_or_dn_metacharacters_never_authenticate() {
    let sandbox = sandbox();
    let endpoint = sandbox.endpoint();
    let alice_dn = Directory::user_dn("alice");
    let before = sandbox.directory.bind_count(&alice_dn);
    for name in [
        "*",
        "alice*",
        "a*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice)(|(objectClass=*)",
        "\\",
        "alice\\",
        "alice\\2a",
        ",",
        "alice,ou=people",
        "=",
        "uid=alice",
        "alice\0",
        "\0",
        "alice\0x",
        "ALICE",
        " alice",
        "alice/admin",
        "alice@KRBTEST.COM",
    ] {
        let answer = raw_fetch(&endpoint, name, b"alicepw", None);
        assert_eq!(answer.messages, 0, "{name:?} got a keytab");
        let code = answer.status.as_ref().map(|s| s.0);
        assert!(
            matches!(code, Some(Code::InvalidArgument | Code::Unauthenticated)),
            "{name:?}: {answer:?}"
        );
    }
    assert_eq!(
        sandbox.directory.bind_count(&alice_dn),
        before,
        "no odd username may lead to a bind as alice"
    );
}

#[test]
fn principal_overrides_outside_policy_are_refused() {
    let sandbox = sandbox();
    let endpoint = sandbox.endpoint();
    for principal in [
        "krbtgt/KRBTEST.COM",
        "krbtgt/KRBTEST.COM@KRBTEST.COM",
        "kadmin/admin",
        "kadmin/admin@KRBTEST.COM",
        "alice/admin",
        "alice/admin@KRBTEST.COM",
        "alice@OTHER.REALM",
        "bob@KRBTEST.COM",
        "K/M@KRBTEST.COM",
        "host/localhost@KRBTEST.COM",
    ] {
        let answer = raw_fetch(&endpoint, "alice", b"alicepw", Some(principal));
        assert_eq!(answer, refused(RefusalCode::PrincipalNotAllowed), "{principal}");
    }
    let own = raw_fetch(&endpoint, "alice", b"alicepw", Some("alice@KRBTEST.COM"));
    assert_eq!(own.status, None, "alice may ask for her own principal");
    assert!(own.keytab_bytes > 0);

    let mut command = sandbox.kinit_command("alice", &sandbox.ccache("x"));
    command.arg("--principal").arg("krbtgt/KRBTEST.COM");
    let out = run_with_password(command, "alicepw");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

#[test]
fn authorized_user_without_a_principal_gets_not_found() {
    let sandbox = sandbox();
    let answer = raw_fetch(&sandbox.endpoint(), "dave", b"davepw", None);
    assert_eq!(answer, refused(RefusalCode::NoPrincipal));
    assert!(sandbox.broker.log_text().contains("no_principal"));
}

#[test]
fn clients_without_tls_or_without_trust_get_no_connection() {
    let sandbox = sandbox();

    // Plaintext HTTP/2 to the TLS port: the request fails, nothing comes back.
    let plaintext = block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", sandbox.broker.port))
            .unwrap()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .connect()
            .await?;
        let request = FetchKeytabRequest {
            username: "alice".into(),
            password: b"alicepw".to_vec(),
            principal: None,
            tenant: None,
            new_password: None,
            delivery: 0,
        };
        KeytabBrokerClient::new(channel)
            .fetch_keytab(request)
            .await
            .map(drop)
            .map_err(|s| anyhow::anyhow!("{s}"))
    });
    assert!(plaintext.is_err(), "a plaintext client got an answer");

    // A client that trusts another CA refuses the broker's certificate.
    let rogue = TestPki::create(&sandbox.root.join("rogue-pki"), "some other CA").unwrap();
    let mut endpoint = sandbox.endpoint();
    endpoint.ca_pem = std::fs::read(&rogue.ca_cert).unwrap();
    let result = block_on(fetch_keytab(&endpoint, "alice", b"alicepw", None));
    assert!(matches!(result, Err(HelperError::UntrustedBroker(_))), "{result:?}");

    // The helper says so, with the "unreachable" exit code, and leaves no ccache.
    let ccache = sandbox.ccache("untrusted");
    let out = run_with_password(
        sandbox.kinit_command_via(&sandbox.broker.url, &rogue.ca_cert, "alice", &ccache),
        "alicepw",
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("[tls-trust]") && stderr(&out).contains("hint: the broker's certificate"),
        "{}",
        stderr(&out)
    );
    let http_url = format!("http://127.0.0.1:{}", sandbox.broker.port);
    let http = run_with_password(
        sandbox.kinit_command_via(&http_url, &sandbox.pki.ca_cert, "alice", &ccache),
        "alicepw",
    );
    assert_eq!(http.status.code(), Some(5), "{}", stderr(&http));
    assert!(sandbox.klist(&ccache).is_none());
}

#[test]
fn an_unreachable_kdc_fails_the_login_with_its_own_exit_code_and_leaves_no_cache() {
    let sandbox = sandbox();
    // The client's krb5.conf names a KDC port nothing listens on (TCP only: refused at once).
    let dead = sandbox.root.join("client").join("dead-kdc.krb5.conf");
    let text = std::fs::read_to_string(&sandbox.realm.krb5_conf).unwrap();
    let dead_port = ktbroker_tests::daemon::free_port();
    std::fs::write(
        &dead,
        text.replace(
            &format!("kdc = 127.0.0.1:{}", sandbox.realm.kdc_port),
            &format!("kdc = 127.0.0.1:{dead_port}"),
        ),
    )
    .unwrap();
    // In English and in German (krb5-locales): the verdict comes from the krb5_error_code, so
    // MIT's translated message changes nothing but what the person reads.
    for (n, language) in ["C", "de"].into_iter().enumerate() {
        let ccache = sandbox.ccache(&format!("dead-kdc-{n}"));
        let mut command = sandbox.kinit_command("alice", &ccache);
        command
            .env("KRB5_CONFIG", &dead)
            .env("LC_ALL", "C.UTF-8")
            .env("LANGUAGE", language);
        let out = ktbroker_tests::sandbox::run_with_password(command, "alicepw");
        assert_eq!(out.status.code(), Some(7), "{language}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("getting the ticket from the KDC failed")
                && stderr(&out).contains("[kdc-unreachable]"),
            "{language}: {}",
            stderr(&out)
        );
        assert_eq!(
            stderr(&out).contains("Cannot contact any KDC"),
            language == "C",
            "MIT's message is in the person's language: {}",
            stderr(&out)
        );
        assert!(sandbox.klist(&ccache).is_none(), "no ticket was stored");
    }
    // The broker did serve the keytab (the failure is the KDC's), and audited it.
    assert!(
        std::fs::read_to_string(&sandbox.broker.audit_file)
            .unwrap()
            .contains("\"reason\":\"granted\"")
    );
}

#[test]
fn keytab_bytes_reach_no_file_and_the_password_no_log_after_100_logins() {
    // Any file holding the keytab must have been written after this point; older files (a build
    // tree under /tmp, say) need not be read. One second of slack for coarse mtimes.
    let since = SystemTime::now() - Duration::from_secs(1);
    let sandbox = sandbox();
    // The exact keytab the broker hands out, fetched into memory only.
    let fetched = block_on(fetch_keytab(&sandbox.endpoint(), "alice", b"alicepw", None)).unwrap();
    let keytab = Keytab::parse(&fetched.bytes).unwrap();
    let mut secrets: Vec<Vec<u8>> = keytab.entries.iter().map(|e| e.key.contents.to_vec()).collect();
    secrets.push(fetched.bytes.to_vec());
    assert!(secrets.iter().all(|s| s.len() >= 16));

    let ccache = sandbox.ccache("scan");
    for n in 0..100 {
        let out = sandbox.login("alice", "alicepw", &ccache);
        assert!(out.status.success(), "login {n}: {}", stderr(&out));
    }

    let mut roots = vec![
        sandbox.root.clone(),
        PathBuf::from("/tmp"),
        PathBuf::from("/var/tmp"),
        PathBuf::from("/run"),
        std::env::temp_dir(),
    ];
    roots.extend(std::env::var_os("HOME").map(PathBuf::from));
    let hits = files_containing(&roots, &secrets, since);
    assert!(hits.is_empty(), "keytab bytes found on disk after 100 logins: {hits:?}");
    // No log of the run (broker, directory, KDC, all under the sandbox) holds the password.
    let hits = files_containing(std::slice::from_ref(&sandbox.root), &[b"alicepw".to_vec()], since);
    assert!(hits.is_empty(), "the password is in {hits:?}");

    // The scan can fail: a planted copy of one key is found.
    let planted = sandbox.root.join("client").join("planted");
    std::fs::write(&planted, [b"xx".as_slice(), &secrets[0], b"yy"].concat()).unwrap();
    assert_eq!(
        files_containing(std::slice::from_ref(&sandbox.root), &secrets, since),
        vec![planted.clone()]
    );
    std::fs::remove_file(planted).unwrap();
}

/// Regular files modified since `since` (symlinks not followed, files over 64 MiB skipped) that
/// contain any of the secrets.
fn files_containing(roots: &[PathBuf], secrets: &[Vec<u8>], since: SystemTime) -> Vec<PathBuf> {
    fn walk(path: &Path, secrets: &[Vec<u8>], since: SystemTime, hits: &mut Vec<PathBuf>) {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), secrets, since, hits);
            }
            return;
        }
        let recent = meta.modified().is_ok_and(|modified| modified >= since);
        if !meta.is_file() || !recent || meta.len() > 64 << 20 || hits.iter().any(|h| h == path) {
            return;
        }
        let Ok(bytes) = std::fs::read(path) else { return };
        if secrets
            .iter()
            .any(|s| bytes.windows(s.len()).any(|w| w == s.as_slice()))
        {
            hits.push(path.to_owned());
        }
    }
    let mut hits = Vec::new();
    for root in roots {
        walk(root, secrets, since, &mut hits);
    }
    hits
}

/// (kvno, enctype, key bytes) of every entry, for comparing keytabs from different sources.
#[test]
fn kadm5_library_and_kadmin_cli_sources_serve_the_same_keys() {
    let sandbox = sandbox();
    let cli = sandbox.kadmin_cli_broker().unwrap();
    let mut cli_endpoint = sandbox.endpoint();
    cli_endpoint.url = cli.url.clone();
    let via_library = block_on(fetch_keytab(&sandbox.endpoint(), "alice", b"alicepw", None)).unwrap();
    let via_cli = block_on(fetch_keytab(&cli_endpoint, "alice", b"alicepw", None)).unwrap();
    assert_eq!(via_library.kvno, via_cli.kvno);
    assert_eq!(key_list(&via_library.bytes), key_list(&via_cli.bytes));
    assert!(sandbox.broker.log_text().contains("kadm5 admin session open"));
}

#[test]
fn admin_session_is_re_established_after_kadmind_restarts() {
    let mut sandbox = sandbox();
    let first = sandbox.login("alice", "alicepw", &sandbox.ccache("before"));
    assert!(first.status.success(), "{}", stderr(&first));
    sandbox.realm.restart_kadmind().unwrap();
    let second = sandbox.login("alice", "alicepw", &sandbox.ccache("after"));
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        sandbox.broker.log_text().contains("retrying on a fresh admin session"),
        "the broker should have noticed the broken session:\n{}",
        sandbox.broker.log_text()
    );
}

#[test]
fn only_the_current_kvno_is_served_after_a_rekey_that_keeps_old_keys() {
    let sandbox = sandbox();
    sandbox.realm.kadmin_local("cpw -randkey -keepold alice").unwrap();
    let kvno = sandbox.realm.kvno("alice").unwrap();
    assert_eq!(kvno, 2);
    let fetched = block_on(fetch_keytab(&sandbox.endpoint(), "alice", b"alicepw", None)).unwrap();
    assert_eq!(fetched.kvno, kvno);
    let keys = key_list(&fetched.bytes);
    assert_eq!(keys.iter().map(|k| (k.0, k.1)).collect::<Vec<_>>(), [(2, 18), (2, 17)]);
    let out = sandbox.login("alice", "alicepw", &sandbox.ccache("rekeyed"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        sandbox.realm.kvno("alice").unwrap(),
        kvno,
        "fetching must not rotate keys"
    );
}

#[test]
fn every_attempt_is_audited_in_a_verifiable_hash_chain() {
    let sandbox = sandbox();
    let endpoint = sandbox.endpoint();
    let out = sandbox.login("alice", "alicepw", &sandbox.ccache("audited"));
    assert!(out.status.success(), "{}", stderr(&out));
    raw_fetch(&endpoint, "alice", b"Wr0ng-Passw0rd", None);
    raw_fetch(&endpoint, "zed", b"Zed-Passw0rd", None);
    raw_fetch(&endpoint, "al*ce", b"alicepw", None);

    let text = std::fs::read_to_string(&sandbox.broker.audit_file).unwrap();
    let records: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["outcome"].as_str().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("granted", "granted"),
            ("refused", "invalid_credentials"),
            ("refused", "unknown_user"),
            ("refused", "invalid_username")
        ]
    );
    assert_eq!(records[0]["principal"], "alice@KRBTEST.COM");
    assert_eq!(records[0]["kvno"], 1);
    assert!(records[0]["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    for secret in ["alicepw", "Wr0ng-Passw0rd", "Zed-Passw0rd"] {
        assert!(!text.contains(secret), "a password reached the audit file");
    }

    let ktbrokerd = ktbroker_tests::bins::project_binary("ktbrokerd");
    let verify = |file: &Path| {
        std::process::Command::new(&ktbrokerd)
            .arg("audit-verify")
            .arg(file)
            .output()
            .unwrap()
    };
    let intact = verify(&sandbox.broker.audit_file);
    assert!(intact.status.success(), "{}", stderr(&intact));
    assert!(String::from_utf8_lossy(&intact.stdout).contains("4 lines, chain intact"));

    let tampered = sandbox.root.join("audit-tampered.log");
    std::fs::write(&tampered, text.replacen("\"zed\"", "\"bob\"", 1)).unwrap();
    let broken = verify(&tampered);
    assert_eq!(broken.status.code(), Some(1));
    assert!(stderr(&broken).contains("line 4"), "{}", stderr(&broken));
}

#[test]
fn check_config_validates_and_redacts_secrets() {
    let sandbox = sandbox();
    // The broker the sandbox runs logs without colour escapes (its stderr is a file).
    assert!(
        !sandbox.broker.log_text().contains('\u{1b}'),
        "colour escapes in the log"
    );
    let check = |config: &Path| sandbox.broker.command_for(config).arg("check-config").output().unwrap();
    let good = check(&sandbox.broker.config);
    assert!(good.status.success(), "{}", stderr(&good));
    let printed = String::from_utf8_lossy(&good.stdout);
    // The effective configuration is TOML again, defaults filled in, secret files by path only.
    let effective: toml::Table = toml::from_str(&printed).expect("check-config prints TOML");
    let tenant = &effective["tenants"]["sandbox"];
    assert_eq!(tenant["realm"].as_str(), Some("KRBTEST.COM"));
    assert_eq!(tenant["principal"].as_str(), Some("{user}@{realm}"));
    assert_eq!(effective["server"]["max_concurrent_requests"].as_integer(), Some(256));
    // Secret files appear as their path, on a line marked as redacted; never their contents.
    let password_file = tenant["directory"]["bind_password_file"].as_str().unwrap();
    assert!(std::path::Path::new(password_file).is_file(), "{printed}");
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with("bind_password_file = ") && l.ends_with("# (contents redacted)")),
        "{printed}"
    );
    assert!(
        !printed.contains(&sandbox.directory.service_password),
        "the service password was printed"
    );
    // And it is a configuration itself: checked again, it prints the same.
    let effective_file = sandbox.root.join("effective.toml");
    std::fs::write(&effective_file, printed.as_bytes()).unwrap();
    let again = check(&effective_file);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout), printed);

    let bad_config = sandbox.root.join("bad.toml");
    let text = std::fs::read_to_string(&sandbox.broker.config).unwrap();
    std::fs::write(&bad_config, text.replace("timeout_secs = 5", "timeout_secs = 0")).unwrap();
    let bad = check(&bad_config);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("`tenants.sandbox.directory.timeout_secs`"),
        "{}",
        stderr(&bad)
    );
    // Not on a terminal: no colour escapes. With --log-format json: one JSON object a line.
    assert!(!stderr(&bad).contains('\u{1b}'), "{:?}", stderr(&bad));
    let json = sandbox
        .broker
        .command_for(&bad_config)
        .args(["--log-format", "json", "check-config"])
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(1));
    let events: Vec<serde_json::Value> = stderr(&json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(
        events.iter().any(|e| e["level"] == "ERROR"
            && e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("timeout_secs"))),
        "{events:?}"
    );

    // The service password is a systemd credential: without $CREDENTIALS_DIRECTORY it is refused
    // by name, and a credential readable by others is refused too.
    let without = sandbox
        .broker
        .command()
        .env_remove("CREDENTIALS_DIRECTORY")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(without.status.code(), Some(1));
    assert!(
        stderr(&without).contains("CREDENTIALS_DIRECTORY"),
        "{}",
        stderr(&without)
    );
    let credential = sandbox.broker.credentials.join("ldap-password");
    std::fs::set_permissions(&credential, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let exposed = check(&sandbox.broker.config);
    assert_eq!(exposed.status.code(), Some(1));
    assert!(
        stderr(&exposed).contains("tenants.sandbox.directory.bind_password_file"),
        "{}",
        stderr(&exposed)
    );
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let mut sandbox = sandbox();
    let endpoint = sandbox.endpoint();
    let checks_done = |log: &str| log.matches("directory check done").count();
    let before = checks_done(&sandbox.broker.log_text());
    // A wrong password: the broker answers only after the 400 ms failure floor, so the request is
    // still in flight when the directory check is logged.
    let in_flight = std::thread::spawn(move || raw_fetch(&endpoint, "alice", b"Wr0ng-Passw0rd", None));
    let deadline = Instant::now() + Duration::from_secs(10);
    while checks_done(&sandbox.broker.log_text()) == before {
        assert!(Instant::now() < deadline, "the request never reached the directory");
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = sandbox.broker.terminate().unwrap();
    assert_eq!(
        in_flight.join().unwrap(),
        refused(RefusalCode::AuthFailed),
        "the in-flight request must get its real answer"
    );
    assert!(status.success(), "ktbrokerd exited with {status}");
    let log = sandbox.broker.log_text();
    assert!(
        log.contains("shutting down") && log.contains("ktbrokerd stopped"),
        "{log}"
    );
    // Nothing listens any more.
    assert!(!ktbroker_tests::daemon::tcp_open(sandbox.broker.port));
}

#[test]
fn repeated_failures_lock_the_user_without_reaching_the_directory() {
    let sandbox = sandbox();
    let limits = "\n[limits]\nmax_failures = 3\nlockout_secs = 1\n";
    let broker = sandbox.extra_broker("broker-locking", |c| c + limits).unwrap();
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    let bob_dn = Directory::user_dn("bob");
    for _ in 0..3 {
        assert_eq!(
            raw_fetch(&endpoint, "bob", b"Wr0ng-Passw0rd", None),
            refused(RefusalCode::AuthFailed)
        );
    }
    let binds = sandbox.directory.bind_count(&bob_dn);
    assert_eq!(binds, 3);
    // Locked: even the right password gets the ordinary refusal, and slapd sees no bind.
    assert_eq!(
        raw_fetch(&endpoint, "bob", b"bobpw", None),
        refused(RefusalCode::AuthFailed)
    );
    assert_eq!(sandbox.directory.bind_count(&bob_dn), binds);
    let audit = std::fs::read_to_string(&broker.audit_file).unwrap();
    assert!(
        audit.lines().last().unwrap().contains("\"reason\":\"user_locked\""),
        "{audit}"
    );
    // After the 1 s lockout of bob (this source's own limit, 50, is far off) the right password
    // works again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = raw_fetch(&endpoint, "bob", b"bobpw", None);
        if answer.status.is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "the lockout never ended: {answer:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn service_connection_pool_is_reused_and_reopened_after_the_directory_restarts() {
    let mut sandbox = sandbox();
    let broker = sandbox
        .extra_broker("broker-pool", |c| {
            c.replace("group_dn =", "service_connections = 2\ngroup_dn =")
        })
        .unwrap();
    let service_binds = |sandbox: &Sandbox| sandbox.directory.bind_count(ktbroker_tests::directory::SERVICE_DN);
    for n in 0..3 {
        let out = sandbox.login_via(&broker.url, "alice", "alicepw", &sandbox.ccache(&format!("pool-{n}")));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(
        service_binds(&sandbox),
        2,
        "three logins (six service searches) bind each of the two pooled connections once"
    );
    sandbox.directory.restart().unwrap();
    let out = sandbox.login_via(&broker.url, "alice", "alicepw", &sandbox.ccache("after-restart"));
    assert!(
        out.status.success(),
        "login after a directory restart: {}",
        stderr(&out)
    );
    assert_eq!(
        service_binds(&sandbox),
        4,
        "both pooled connections were opened again, once each"
    );
}

#[test]
fn users_bind_on_one_reused_connection_and_each_bind_decides_for_itself() {
    let mut sandbox = sandbox();
    let broker = sandbox
        .extra_broker("broker-user-pool", |c| {
            c.replace(
                "group_dn =",
                "service_connections = 1\nuser_bind_connections = 1\ngroup_dn =",
            )
        })
        .unwrap();
    let accepted = |sandbox: &Sandbox| sandbox.directory.accepted_connections();
    let before = accepted(&sandbox);
    let login = |sandbox: &Sandbox, user: &str, password: &str, n: usize| {
        let out = sandbox.login_via(&broker.url, user, password, &sandbox.ccache(&format!("user-pool-{n}")));
        out.status.code()
    };
    // A refused bind between accepted ones, on the connection the last user left bound: each
    // answer is that bind's own (the connection's earlier identity never lets anyone in).
    let attempts = [
        ("alice", "alicepw", Some(0)),
        ("bob", "wrong", Some(3)),
        ("bob", "bobpw", Some(0)),
        ("alice", "bobpw", Some(3)),
        ("carol", "carolpw", Some(3)),
        ("alice", "alicepw", Some(0)),
    ];
    for (n, (user, password, expected)) in attempts.into_iter().enumerate() {
        assert_eq!(login(&sandbox, user, password, n), expected, "{user} with {password}");
    }
    assert_eq!(
        accepted(&sandbox) - before,
        2,
        "six logins: one service connection and one connection for all the users' binds"
    );
    let alice = sandbox.directory.bind_connections(&Directory::user_dn("alice"));
    let bob = sandbox.directory.bind_connections(&Directory::user_dn("bob"));
    assert_eq!(alice.len(), 3);
    assert!(
        alice.iter().chain(&bob).all(|conn| *conn == alice[0]),
        "alice's {alice:?} and bob's {bob:?} binds share one connection"
    );
    assert_eq!(
        audit_reasons(&broker.audit_file),
        [
            "granted",
            "invalid_credentials",
            "granted",
            "invalid_credentials",
            "not_in_group",
            "granted"
        ]
    );

    // The directory restarts: the idle connection is dead, and the next login opens a new one.
    sandbox.directory.restart().unwrap();
    let before = accepted(&sandbox);
    assert_eq!(login(&sandbox, "alice", "alicepw", 10), Some(0), "after the restart");
    assert_eq!(
        accepted(&sandbox) - before,
        2,
        "the service and the user connection, anew"
    );
}

#[test]
fn only_allowed_enctypes_are_served_and_broken_ones_cannot_be_allowed() {
    let sandbox = sandbox();
    let aes128_only = "[tenants.sandbox]\nenctypes = [\"aes128-cts-hmac-sha1-96\"]\n";
    let broker = sandbox
        .extra_broker("broker-aes128", |c| c.replacen("[tenants.sandbox]\n", aes128_only, 1))
        .unwrap();
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    let fetched = block_on(fetch_keytab(&endpoint, "alice", b"alicepw", None)).unwrap();
    assert_eq!(fetched.enctypes, [17]);
    assert_eq!(key_list(&fetched.bytes).iter().map(|k| k.1).collect::<Vec<_>>(), [17]);
    let ccache = sandbox.ccache("aes128");
    let out = sandbox.login_via(&broker.url, "alice", "alicepw", &ccache);
    assert!(
        out.status.success(),
        "kinit with an aes128-only keytab: {}",
        stderr(&out)
    );
    assert!(
        sandbox
            .klist(&ccache)
            .unwrap()
            .contains("Default principal: alice@KRBTEST.COM")
    );

    let rc4 = sandbox.root.join("rc4.toml");
    let text = std::fs::read_to_string(&sandbox.broker.config).unwrap();
    std::fs::write(
        &rc4,
        text.replacen(
            "[tenants.sandbox]\n",
            "[tenants.sandbox]\nenctypes = [\"aes256-cts-hmac-sha1-96\", \"rc4-hmac\"]\n",
            1,
        ),
    )
    .unwrap();
    let check = sandbox.broker.command_for(&rc4).arg("check-config").output().unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stderr(&check).contains("tenants.sandbox.enctypes") && stderr(&check).contains("never served"),
        "{}",
        stderr(&check)
    );
}

#[test]
fn starttls_works_and_plaintext_ldap_needs_an_explicit_loopback_opt_in() {
    let sandbox = sandbox();
    let ldaps_line = format!("url = \"{}\"", sandbox.directory.url);
    let starttls_line = format!("url = \"{}\"\nstarttls = true", sandbox.directory.starttls_url);
    let broker = sandbox
        .extra_broker("broker-starttls", |c| c.replace(&ldaps_line, &starttls_line))
        .unwrap();
    let out = sandbox.login_via(&broker.url, "alice", "alicepw", &sandbox.ccache("starttls"));
    assert!(out.status.success(), "login over StartTLS: {}", stderr(&out));
    let slapd_log = std::fs::read_to_string(&sandbox.directory.log).unwrap();
    assert!(
        slapd_log.contains("EXT oid=1.3.6.1.4.1.1466.20037"),
        "slapd saw no StartTLS request"
    );

    // ldap:// without StartTLS is refused at load time unless explicitly allowed on loopback.
    let plain = sandbox.root.join("plain.toml");
    let text = std::fs::read_to_string(&sandbox.broker.config).unwrap();
    let plain_line = format!("url = \"{}\"", sandbox.directory.starttls_url);
    std::fs::write(&plain, text.replace(&ldaps_line, &plain_line)).unwrap();
    let check = sandbox.broker.command_for(&plain).arg("check-config").output().unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert!(stderr(&check).contains("directory.url"), "{}", stderr(&check));
    let opted_in = format!("{plain_line}\nallow_plaintext_loopback = true");
    std::fs::write(&plain, text.replace(&ldaps_line, &opted_in)).unwrap();
    let check = sandbox.broker.command_for(&plain).arg("check-config").output().unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
}

#[test]
fn membership_of_a_posix_group_by_member_uid_authorizes() {
    let sandbox = sandbox();
    let group_line = format!("group_dn = \"{}\"", ktbroker_tests::directory::GROUP_DN);
    let posix_line = format!("group_dn = \"{}\"", ktbroker_tests::directory::POSIX_GROUP_DN);
    let broker = sandbox
        .extra_broker("broker-posix", |c| c.replace(&group_line, &posix_line))
        .unwrap();
    let bob = sandbox.login_via(&broker.url, "bob", "bobpw", &sandbox.ccache("posix-bob"));
    assert!(
        bob.status.success(),
        "bob is a memberUid of the posixGroup: {}",
        stderr(&bob)
    );
    let alice = sandbox.login_via(&broker.url, "alice", "alicepw", &sandbox.ccache("posix-alice"));
    assert_eq!(
        alice.status.code(),
        Some(3),
        "alice is not in the posixGroup: {}",
        stderr(&alice)
    );
    assert!(
        std::fs::read_to_string(&broker.audit_file)
            .unwrap()
            .contains("\"reason\":\"not_in_group\"")
    );
}

#[test]
fn nested_groups_authorize_only_when_asked_for_within_the_depth_and_survive_loops() {
    let sandbox = sandbox();
    let group_line = format!("group_dn = \"{}\"", ktbroker_tests::directory::GROUP_DN);
    let posix_line = format!("group_dn = \"{}\"", ktbroker_tests::directory::POSIX_GROUP_DN);
    // carol is only in platform, which is in hadoop-users.
    let carol = |broker: &ktbroker_tests::broker::Broker, name: &str| {
        let out = sandbox.login_via(&broker.url, "carol", "carolpw", &sandbox.ccache(name));
        let reason = std::fs::read_to_string(&broker.audit_file)
            .unwrap()
            .lines()
            .last()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"].clone())
            .unwrap();
        (out.status.code(), reason.as_str().unwrap().to_owned())
    };
    let refused = (Some(3), "not_in_group".to_owned());
    assert_eq!(
        carol(&sandbox.broker, "direct"),
        refused,
        "direct membership by default"
    );
    let broker = |name: &str, lines: &str, group: &str| {
        sandbox
            .extra_broker(name, |c| c.replace(&group_line, &format!("{lines}\n{group}")))
            .unwrap()
    };
    let nested = broker("broker-nested", "nested_groups = true", &group_line);
    assert_eq!(carol(&nested, "nested"), (Some(0), "granted".to_owned()));
    // Two levels up is beyond a depth of one.
    let shallow = broker("broker-shallow", "nested_groups = true\ngroup_depth = 1", &group_line);
    assert_eq!(carol(&shallow, "shallow"), refused);
    // Up from carol: platform and loop-a, then hadoop-users and loop-b, then loop-a again: none
    // is the posixGroup, and the walk ends instead of going round.
    let looped = broker("broker-looped", "nested_groups = true", &posix_line);
    let started = Instant::now();
    assert_eq!(carol(&looped, "looped"), refused);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // Without a service account the same walk runs on carol's own connection.
    let template = format!(
        "user_dn_template = \"{}\"\nnested_groups = true",
        ktbroker_tests::directory::USER_DN_TEMPLATE
    );
    let own = sandbox
        .extra_broker("broker-nested-template", |c| {
            c.lines()
                .filter(|l| {
                    !l.starts_with("bind_dn") && !l.starts_with("bind_password_file") && !l.starts_with("user_base")
                })
                .collect::<Vec<_>>()
                .join("\n")
                .replace(&group_line, &format!("{template}\n{group_line}"))
        })
        .unwrap();
    assert_eq!(carol(&own, "nested-template"), (Some(0), "granted".to_owned()));
}

#[test]
fn directory_servers_can_come_from_dns_srv_records_in_their_order() {
    let sandbox = sandbox();
    let dead = ktbroker_tests::daemon::free_port();
    let starttls_port = sandbox
        .directory
        .starttls_url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/');
    // A real DNS server: the preferred record names a port nobody listens on, the next the
    // sandbox's slapd (StartTLS; the certificate names localhost).
    let dns = ktbroker_tests::dns::Dns::start(
        &sandbox.root.join("dns"),
        &[
            format!("_ldap._tcp.corp.test,localhost,{dead},0,100"),
            format!("_ldap._tcp.corp.test,localhost,{starttls_port},10,100"),
        ],
    )
    .unwrap();
    let url_line = format!("url = \"{}\"", sandbox.directory.url);
    let discovered = format!(
        "srv_domain = \"corp.test\"\ndns_server = \"127.0.0.1:{}\"\nstarttls = true",
        dns.port
    );
    let broker = sandbox
        .extra_broker("broker-srv", |c| c.replace(&url_line, &discovered))
        .unwrap();
    let out = sandbox.login_via(&broker.url, "alice", "alicepw", &sandbox.ccache("srv-directory"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dns.was_asked("_ldap._tcp.corp.test"), "the broker asked the DNS server");
    let log = broker.log_text();
    assert!(
        log.contains("directory servers from DNS SRV")
            && log.contains(&format!("ldap://localhost:{dead}/"))
            && log.contains(&format!("ldap://localhost:{starttls_port}/")),
        "{log}"
    );
    // In their order: the preferred (dead) one was tried first.
    assert!(log.contains("directory connect failed"), "{log}");
    // A domain with no such records: the broker does not start, and says why.
    let check = sandbox
        .broker
        .command_for(&broker.config)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(check.status.success(), "check-config needs no DNS: {}", stderr(&check));
    let nowhere = discovered.replace("corp.test", "nowhere.test");
    let failed = sandbox.extra_broker("broker-srv-nowhere", |c| c.replace(&url_line, &nowhere));
    let message = format!("{:#}", failed.err().expect("no servers: no broker"));
    assert!(message.contains("_ldap._tcp.nowhere.test"), "{message}");
}

#[test]
fn metrics_count_outcomes_and_time_each_part_on_their_own_listener() {
    let sandbox = sandbox();
    let metrics_port = ktbroker_tests::daemon::free_port();
    let table = format!("\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n");
    let broker = sandbox.extra_broker("broker-metrics", |c| c + &table).unwrap();
    let out = sandbox.login_via(&broker.url, "alice", "alicepw", &sandbox.ccache("metrics"));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut ticket_login =
        sandbox.kinit_command_via(&broker.url, &sandbox.pki.ca_cert, "bob", &sandbox.ccache("metrics-t"));
    ticket_login.args(["--delivery", "ticket"]);
    let out = ktbroker_tests::sandbox::run_with_password(ticket_login, "bobpw");
    assert!(out.status.success(), "{}", stderr(&out));
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    raw_fetch(&endpoint, "alice", b"Wr0ng-Passw0rd", None);
    raw_fetch(&endpoint, "no-such-user", b"Wr0ng-Passw0rd", None);

    let body = ktbroker_tests::client::scrape_metrics(metrics_port);
    for line in [
        "ktbroker_requests_total{tenant=\"sandbox\",outcome=\"granted\",code=\"none\"} 2",
        "ktbroker_requests_total{tenant=\"sandbox\",outcome=\"refused\",code=\"KTB-101\"} 2",
        "ktbroker_request_duration_seconds_count{outcome=\"granted\"} 2",
        "ktbroker_directory_duration_seconds_count 4",
        "ktbroker_key_source_duration_seconds_count 2",
        "ktbroker_deliveries_total{tenant=\"sandbox\",delivery=\"keytab\"} 1",
        "ktbroker_deliveries_total{tenant=\"sandbox\",delivery=\"ticket\"} 1",
    ] {
        assert!(body.lines().any(|l| l == line), "missing {line:?} in:\n{body}");
    }
    assert!(
        !body.contains("alice") && !body.contains("Wr0ng"),
        "metrics must not name users or passwords"
    );
    // A wrong password and an unknown user count as one and the same: no reason label.
    assert!(
        !body.contains("invalid_credentials") && !body.contains("unknown_user") && !body.contains("reason="),
        "{body}"
    );
}

#[test]
fn sighup_reloads_the_tls_certificate_and_keeps_the_old_one_if_the_new_one_is_broken() {
    let sandbox = sandbox();
    let old_ca = std::fs::read(&sandbox.pki.ca_cert).unwrap();
    let rotated = TestPki::create(&sandbox.root.join("rotated-pki"), "rotated CA").unwrap();
    let new_ca = std::fs::read(&rotated.ca_cert).unwrap();
    let serving_for = |ca: &[u8]| ktbroker_tests::broker::health_serving(&sandbox.broker.url, ca);
    assert!(serving_for(&old_ca) && !serving_for(&new_ca));

    // A broken certificate file: refused on SIGHUP, the old certificate keeps serving.
    let good_cert = std::fs::read(&sandbox.pki.server_cert).unwrap();
    std::fs::write(&sandbox.pki.server_cert, "not a certificate").unwrap();
    sandbox.broker.reload().unwrap();
    sandbox.broker.wait_for_log("new configuration refused", 1).unwrap();
    assert!(serving_for(&old_ca), "the old certificate must keep serving");
    std::fs::write(&sandbox.pki.server_cert, good_cert).unwrap();

    // A certificate from another CA: after SIGHUP new connections see it, with no restart.
    std::fs::copy(&rotated.server_cert, &sandbox.pki.server_cert).unwrap();
    std::fs::copy(&rotated.server_key, &sandbox.pki.server_key).unwrap();
    sandbox.broker.reload().unwrap();
    sandbox
        .broker
        .wait_for_log("configuration and certificate reloaded", 1)
        .unwrap();
    assert!(serving_for(&new_ca) && !serving_for(&old_ca));
    let mut endpoint = sandbox.endpoint();
    endpoint.ca_pem = new_ca;
    let fetched = block_on(fetch_keytab(&endpoint, "alice", b"alicepw", None)).unwrap();
    assert_eq!(fetched.principal, "alice@KRBTEST.COM");
}

#[test]
fn a_client_that_hangs_up_before_the_failure_floor_is_audited_once_with_the_real_reason() {
    let sandbox = sandbox();
    let endpoint = sandbox.endpoint();
    let checks_done = || sandbox.broker.log_text().matches("directory check done").count();
    let audit_records = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&sandbox.broker.audit_file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let before = audit_records().len();
    for (user, password) in [("alice", "Wr0ng-Passw0rd"), ("no-such-user", "whatever")] {
        let checked = checks_done();
        block_on(async {
            let channel = ktbroker_kinit::fetch::connect(&endpoint).await.unwrap();
            let mut client = KeytabBrokerClient::new(channel);
            let call = client.fetch_keytab(FetchKeytabRequest {
                username: user.into(),
                password: password.as_bytes().to_vec(),
                principal: None,
                tenant: None,
                new_password: None,
                delivery: 0,
            });
            tokio::pin!(call);
            // Wait for the broker's verdict (its directory check is done), then hang up: the
            // answer itself would come only after the 400 ms floor.
            let deadline = Instant::now() + Duration::from_secs(10);
            while checks_done() == checked {
                tokio::select! {
                    answer = &mut call => panic!("{user}: answered before the floor (ok: {})", answer.is_ok()),
                    () = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
                assert!(
                    Instant::now() < deadline,
                    "{user}: the request never reached the directory"
                );
            }
        }); // the call is dropped here: the client resets the stream
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while audit_records().len() < before + 2 {
        assert!(Instant::now() < deadline, "the abandoned attempts were not audited");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A third, complete attempt afterwards: every earlier record is written by then, once each.
    assert_eq!(
        raw_fetch(&endpoint, "bob", b"Wr0ng", None),
        refused(RefusalCode::AuthFailed)
    );
    let records = audit_records();
    let seen: Vec<(&str, &str, bool)> = records[before..]
        .iter()
        .map(|r| {
            (
                r["username"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
                r["cancelled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("alice", "invalid_credentials", true),
            ("no-such-user", "unknown_user", true),
            ("bob", "invalid_credentials", false)
        ]
    );
}

#[test]
fn a_shared_login_host_is_limited_apart_from_its_users_and_a_trusted_one_not_at_all() {
    let sandbox = sandbox();
    let limits = |trusted: &str| {
        format!(
            "\n[limits]\nmax_failures = 2\nmax_source_failures = 3\nsource_credit_per_user = 0\nlockout_secs = 600\n{trusted}"
        )
    };
    let counted = sandbox.extra_broker("broker-shared-host", |c| c + &limits("")).unwrap();
    let trusted = sandbox
        .extra_broker("broker-trusted-host", |c| {
            c + &limits("trusted_sources = [\"127.0.0.0/8\"]\n")
        })
        .unwrap();
    for (broker, host_locks) in [(&counted, true), (&trusted, false)] {
        let mut endpoint = sandbox.endpoint();
        endpoint.url = broker.url.clone();
        // alice mistypes twice: alice is locked (right password or not), on any host.
        for _ in 0..2 {
            assert_eq!(
                raw_fetch(&endpoint, "alice", b"typo", None),
                refused(RefusalCode::AuthFailed)
            );
        }
        assert_eq!(
            raw_fetch(&endpoint, "alice", b"alicepw", None),
            refused(RefusalCode::AuthFailed)
        );
        // bob from the same host, with his right password: not affected by alice's typos.
        assert_eq!(
            raw_fetch(&endpoint, "bob", b"bobpw", None).status,
            None,
            "{}",
            broker.url
        );
        // One more failure makes three from this host: an untrusted host is now locked for
        // everyone, a trusted one is not.
        assert_eq!(
            raw_fetch(&endpoint, "bob", b"typo", None),
            refused(RefusalCode::AuthFailed)
        );
        let bob = raw_fetch(&endpoint, "bob", b"bobpw", None);
        if host_locks {
            assert_eq!(bob, refused(RefusalCode::AuthFailed), "the host is locked");
        } else {
            assert_eq!(bob.status, None, "a trusted host is never locked as a source");
        }
        let reasons = ktbroker_tests::client::audit_reasons(&broker.audit_file);
        assert_eq!(reasons[2], "user_locked", "{reasons:?}");
        assert_eq!(
            reasons.last().unwrap(),
            if host_locks { "source_locked" } else { "granted" }
        );
    }
}

/// Each person who logged in from a host raises its limit by one (the default credit), however
/// often they log in: two people give a base of 2 a limit of 4.
#[test]
fn the_people_who_logged_in_from_a_host_raise_its_limit_however_often_they_log_in() {
    let sandbox = sandbox();
    let broker = sandbox
        .extra_broker("broker-vouched-host", |c| {
            c + "\n[limits]\nmax_failures = 5\nmax_source_failures = 2\nlockout_secs = 600\n"
        })
        .unwrap();
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    for (user, password) in [
        ("alice", "alicepw"),
        ("bob", "bobpw"),
        ("alice", "alicepw"),
        ("alice", "alicepw"),
    ] {
        assert_eq!(
            raw_fetch(&endpoint, user, password.as_bytes(), None).status,
            None,
            "{user}"
        );
    }
    for typist in ["x1", "x2", "x3"] {
        assert_eq!(
            raw_fetch(&endpoint, typist, b"typo", None),
            refused(RefusalCode::AuthFailed)
        );
    }
    assert_eq!(
        raw_fetch(&endpoint, "bob", b"bobpw", None).status,
        None,
        "three failures are below the vouched limit of 4"
    );
    assert_eq!(
        raw_fetch(&endpoint, "x4", b"typo", None),
        refused(RefusalCode::AuthFailed)
    );
    assert_eq!(
        raw_fetch(&endpoint, "alice", b"alicepw", None),
        refused(RefusalCode::AuthFailed),
        "the fourth failure locks the host"
    );
    let reasons = ktbroker_tests::client::audit_reasons(&broker.audit_file);
    assert_eq!(reasons.last().unwrap(), "source_locked", "{reasons:?}");
}

#[test]
fn a_keyed_audit_chain_and_the_logged_head_catch_what_a_plain_chain_cannot() {
    let sandbox = sandbox();
    let key = sandbox.broker.credentials.join("audit-key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // `[audit] key_file` may name a credential (check-config of the sandbox's own configuration).
    let config = std::fs::read_to_string(&sandbox.broker.config).unwrap();
    let keyed_config = sandbox.root.join("keyed-broker.toml");
    std::fs::write(
        &keyed_config,
        config.replacen("[audit]\n", "[audit]\nkey_file = \"credential:audit-key\"\n", 1),
    )
    .unwrap();
    let check = sandbox
        .broker
        .command_for(&keyed_config)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("key_file = "),
        "printed by path"
    );
    let audit = sandbox.root.join("keyed-audit.jsonl");
    let broker = sandbox
        .extra_broker("broker-keyed-audit", |c| {
            c.lines()
                .map(|l| {
                    if l.starts_with("file = ") {
                        format!("file = \"{}\"\nkey_file = \"{}\"", audit.display(), key.display())
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap();
    let out = sandbox.login_via(&broker.url, "alice", "alicepw", &sandbox.ccache("keyed"));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut broker = broker;
    broker.terminate().unwrap();
    // At stop the broker logged the chain's head: a copy outside the file.
    let log = broker.log_text();
    let head = log
        .lines()
        .filter(|l| l.contains("audit chain head"))
        .filter_map(|l| l.split("head=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .next_back()
        .expect("the head logged at stop")
        .to_owned();
    let verify = |file: &Path, extra: &[&str]| {
        sandbox
            .broker
            .command()
            .arg("audit-verify")
            .arg(file)
            .args(extra)
            .output()
            .unwrap()
    };
    let key_arg = key.display().to_string();
    let good = verify(
        &audit,
        &[
            "--key",
            &key_arg,
            "--expect-head",
            &head,
            "--expect-anchor",
            &"0".repeat(64),
        ],
    );
    assert!(good.status.success(), "{}", stderr(&good));
    // Recomputing the chain after an edit fools the plain check, not the keyed one.
    let text = std::fs::read_to_string(&audit).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    value["username"] = serde_json::json!("mallory");
    let forged = sandbox.root.join("forged.jsonl");
    std::fs::write(&forged, format!("{}\n", serde_json::to_string(&value).unwrap())).unwrap();
    assert!(
        verify(&forged, &[]).status.success(),
        "a one-line plain chain cannot tell"
    );
    let caught = verify(&forged, &["--key", &key_arg]);
    assert_eq!(caught.status.code(), Some(1));
    // (the forger cannot make a mac: this one is misplaced by the re-serialisation, or wrong)
    assert!(
        stderr(&caught).contains("not intact") && stderr(&caught).contains("mac"),
        "{}",
        stderr(&caught)
    );
    // Cutting the file short loses the logged head.
    std::fs::write(&forged, "").unwrap();
    let cut = verify(&forged, &["--expect-head", &head]);
    assert_eq!(cut.status.code(), Some(1));
    assert!(stderr(&cut).contains("expected head"), "{}", stderr(&cut));
}
