//! ktbroker against a real Active Directory (Samba's AD DC): people found by sAMAccountName,
//! authorized through nested groups, every account state AD reports answered as the broker
//! promises, several directory servers with failover, and the principal taken from the entry.
//! The classic Kerberized-Hadoop layout: people in AD, a separate MIT realm for Hadoop.
//!
//! The DC listens on fixed ports, so it starts once for this whole test binary and is shared;
//! each test uses its own broker (its own audit file) against it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ktbroker_codes::RefusalCode;
use ktbroker_tests::active_directory::{AccountState, ActiveDirectory, AdPerson, BASE_DN, ENG, HADOOP_USERS, USERS_DN};
use ktbroker_tests::broker::Broker;
use ktbroker_tests::client::{audit_reasons, raw_fetch, refused, stderr};
use ktbroker_tests::pki::TestPki;
use ktbroker_tests::realm::Realm;
use ktbroker_tests::sandbox::run_with_password;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const PEOPLE: &[AdPerson] = &[
    ktbroker_tests::active_directory::ALICE,
    ktbroker_tests::active_directory::BOB,
    AdPerson {
        name: "carl",
        password: "C4rl-AD-pw!",
        state: AccountState::Disabled,
        groups: &["hadoop-users"],
    },
    // In a group that authorizes nothing.
    AdPerson {
        name: "dave",
        password: "D4ve-AD-pw!",
        state: AccountState::Normal,
        groups: &["contractors"],
    },
    AdPerson {
        name: "erin",
        password: "Er1n-AD-pw!",
        state: AccountState::LockedOut,
        groups: &["hadoop-users"],
    },
    AdPerson {
        name: "frank",
        password: "Fr4nk-AD-pw!",
        state: AccountState::PasswordExpired,
        groups: &["hadoop-users"],
    },
    AdPerson {
        name: "gina",
        password: "G1na-AD-pw!",
        state: AccountState::AccountExpired,
        groups: &["hadoop-users"],
    },
    AdPerson {
        name: "kim",
        password: "K1m-AD-pw!x",
        state: AccountState::NoLogonHours,
        groups: &["hadoop-users"],
    },
    AdPerson {
        name: "lee",
        password: "L3e-AD-pw!x",
        state: AccountState::OtherWorkstation,
        groups: &["hadoop-users"],
    },
    // For the password changes (bob and frank keep their states for the other tests).
    AdPerson {
        name: "hank",
        password: "H4nk-AD-pw!",
        state: AccountState::MustChange,
        groups: &["eng"],
    },
    // Through PAM (a local account exists for carol).
    AdPerson {
        name: "carol",
        password: "C4rol-AD-pw!",
        state: AccountState::MustChange,
        groups: &["hadoop-users"],
    },
    AdPerson {
        name: "ivy",
        password: "1vy-AD-pw!x",
        state: AccountState::PasswordExpired,
        groups: &["hadoop-users"],
    },
];

/// The DC, the MIT realm Hadoop trusts (every person has a principal there, with a Kerberos
/// password nobody uses) and the test PKI.
struct Site {
    root: PathBuf,
    pki: TestPki,
    ad: ActiveDirectory,
    realm: Realm,
}

static SITE: OnceLock<&'static Site> = OnceLock::new();

fn site() -> &'static Site {
    ktbroker_tests::shared::start_once(&SITE, "the shared AD DC and realm", start_site, stop_site)
}

fn start_site() -> anyhow::Result<Site> {
    let dir = tempfile::Builder::new().prefix("ktbroker-ad-").tempdir()?;
    let root = dir.path().to_owned();
    let pki = TestPki::create(&root.join("pki"), "ktbroker AD test CA")?;
    // The DC first (its RPC ports, 61000 up, are out of free_port's and the kernel's ranges).
    let ad = ActiveDirectory::start(&root.join("ad"), &pki, PEOPLE)?;
    let realm = Realm::start(&root.join("kdc"))?;
    for person in PEOPLE {
        realm.add_user(person.name, "kerberos-only-pw")?;
    }
    // Removed by stop_site at exit from here on (and by the TempDir if starting failed).
    let root = dir.keep();
    Ok(Site { root, pki, ad, realm })
}

extern "C" fn stop_site() {
    // No panic may unwind out of an atexit handler.
    let _ = std::panic::catch_unwind(|| {
        if let Some(site) = SITE.get() {
            site.ad.kill_daemons();
            site.realm.kill_daemons();
            std::thread::sleep(Duration::from_millis(200));
            let _ = std::fs::remove_dir_all(&site.root);
        }
    });
}

/// A broker of its own for one test, on the AD tenant with `directory_lines`.
fn broker(name: &str, directory_lines: &str) -> Broker {
    broker_in(name, &site().realm, directory_lines)
}

/// Like [`broker`], for the MIT realm `realm`.
fn broker_in(name: &str, realm: &Realm, directory_lines: &str) -> Broker {
    let site = site();
    site.ad
        .broker(&site.root.join(name), &site.pki, realm, directory_lines)
        .unwrap()
}

fn url_line(site: &Site) -> String {
    format!("url = \"{}\"", site.ad.url)
}

fn endpoint(broker: &Broker) -> ktbroker_kinit::fetch::BrokerEndpoint {
    ktbroker_kinit::fetch::BrokerEndpoint {
        url: broker.url.clone(),
        ca_pem: std::fs::read(&site().pki.ca_cert).unwrap(),
        tls_server_name: None,
        client_identity: None,
        timeout: Duration::from_secs(20),
    }
}

/// `ktbroker-kinit USER` against `broker` with `password` on stdin, into `ccache`.
fn login(broker: &Broker, user: &str, password: &str, ccache: &Path) -> Output {
    login_in(broker, &site().realm, user, password, ccache)
}

fn login_in(broker: &Broker, realm: &Realm, user: &str, password: &str, ccache: &Path) -> Output {
    let site = site();
    let mut command = Command::new(ktbroker_tests::bins::project_binary("ktbroker-kinit"));
    command
        .args(["--broker", &broker.url, "--ca-file"])
        .arg(&site.pki.ca_cert)
        .arg("-c")
        .arg(format!("FILE:{}", ccache.display()))
        .arg(user)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KRB5_CONFIG", &realm.krb5_conf);
    run_with_password(command, password)
}

fn klist(ccache: &Path) -> Option<String> {
    klist_in(&site().realm, ccache)
}

fn klist_in(realm: &Realm, ccache: &Path) -> Option<String> {
    let out = realm
        .command("klist")
        .arg("-c")
        .arg(format!("FILE:{}", ccache.display()))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn last_reason(broker: &Broker) -> String {
    audit_reasons(&broker.audit_file).pop().unwrap_or_default()
}

#[test]
fn the_fixture_is_what_ad_itself_says() {
    let ad = &site().ad;
    // What AD answers each person's bind with the right password (its data codes).
    for (name, code) in [
        ("bob", "data 773"),
        ("carl", "data 533"),
        ("erin", "data 775"),
        ("frank", "data 532"),
        ("gina", "data 701"),
        ("kim", "data 530"),
        ("lee", "data 531"),
    ] {
        let password = PEOPLE.iter().find(|p| p.name == name).unwrap().password;
        let answer = ad.bind_as(name, password).unwrap();
        assert!(
            answer.as_deref().is_some_and(|a| a.contains(code)),
            "{name}: {answer:?}"
        );
    }
    assert_eq!(ad.bind_as("alice", "Al1ce-AD-pw!").unwrap(), None);
    // alice is only in eng; eng is in hadoop-users: plain memberOf shows no hadoop-users.
    let alice = ad
        .search_as_admin(&ActiveDirectory::dn("alice"), &["memberOf"])
        .unwrap();
    assert!(alice.contains(ENG) && !alice.contains(HADOOP_USERS), "{alice}");
    let eng = ad.search_as_admin(ENG, &["memberOf"]).unwrap();
    assert!(eng.contains(HADOOP_USERS), "{eng}");
    assert!(USERS_DN.ends_with(BASE_DN));
}

#[test]
fn a_person_in_a_nested_group_logs_in_with_the_ad_password_and_keys_stay_unchanged() {
    let site = site();
    let broker = broker("broker-login", &url_line(site));
    let principal = format!("alice@{}", site.realm.realm);
    let kvno = site.realm.kvno(&principal).unwrap();
    let ccache = site.root.join("alice.ccache");
    let started = Instant::now();
    let out = login(&broker, "alice", "Al1ce-AD-pw!", &ccache);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = klist(&ccache).expect("a ticket in alice's cache");
    assert!(
        listing.contains(&format!("Default principal: {principal}")),
        "{listing}"
    );
    assert_eq!(
        site.realm.kvno(&principal).unwrap(),
        kvno,
        "keys are read, never changed"
    );
    assert_eq!(audit_reasons(&broker.audit_file), ["granted"]);
    eprintln!("alice's login against AD took {took:?}");
}

#[test]
fn every_account_state_answers_like_a_wrong_password_except_after_the_right_one() {
    let site = site();
    let broker = broker("broker-states", &url_line(site));
    let endpoint = endpoint(&broker);
    let auth_failed = refused(RefusalCode::AuthFailed);
    let change = refused(RefusalCode::PasswordChangeRequired);
    for (user, password, answer, reason) in [
        ("alice", "Wr0ng-pw!", &auth_failed, "invalid_credentials"),
        ("zed", "Wr0ng-pw!", &auth_failed, "unknown_user"),
        ("dave", "D4ve-AD-pw!", &auth_failed, "not_in_group"),
        ("carl", "C4rl-AD-pw!", &auth_failed, "account_disabled"),
        ("gina", "G1na-AD-pw!", &auth_failed, "account_expired"),
        ("erin", "Er1n-AD-pw!", &auth_failed, "account_locked"),
        ("kim", "K1m-AD-pw!x", &auth_failed, "logon_restricted"),
        ("lee", "L3e-AD-pw!x", &auth_failed, "logon_restricted"),
        // Told only to the one who knows the password.
        ("bob", "B0b-AD-pw!x", &change, "password_must_change"),
        ("frank", "Fr4nk-AD-pw!", &change, "password_expired"),
        ("bob", "Wr0ng-pw!", &auth_failed, "invalid_credentials"),
        ("frank", "Wr0ng-pw!", &auth_failed, "invalid_credentials"),
    ] {
        let started = Instant::now();
        assert_eq!(&raw_fetch(&endpoint, user, password.as_bytes(), None), answer, "{user}");
        let took = started.elapsed();
        assert_eq!(last_reason(&broker), reason, "{user}");
        // Every authentication failure keeps the floor: none answers sooner than another.
        if answer == &auth_failed {
            assert!(took >= Duration::from_millis(400), "{user}: {took:?}");
        }
    }
    // What the helper tells the person whose password must change.
    let ccache = site.root.join("bob.ccache");
    let out = login(&broker, "bob", "B0b-AD-pw!x", &ccache);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(stderr(&out).contains("[password-change-required]"), "{}", stderr(&out));
    assert!(klist(&ccache).is_none());
}

#[test]
fn a_dead_or_frozen_first_server_fails_over_to_the_next() {
    use ktbroker_tests::proxy::DarkeningRelay;
    let site = site();
    let dead = ktbroker_tests::daemon::free_port();
    // A relay to the real DC that has gone dark: connects succeed, then nothing answers, as
    // from a frozen server. TLS verifies against 127.0.0.1 whichever port it comes through.
    let frozen = DarkeningRelay::start(636).unwrap();
    frozen.go_dark();
    let urls = format!(
        "urls = [\"ldaps://127.0.0.1:{dead}/\", \"ldaps://127.0.0.1:{}/\", \"{}\"]",
        frozen.port, site.ad.url
    );
    let broker = broker("broker-failover", &urls);
    let endpoint = endpoint(&broker);
    let mut took = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(raw_fetch(&endpoint, "alice", b"Al1ce-AD-pw!", None).status, None);
        took.push(started.elapsed());
    }
    // The first login waits out the frozen server's share of the 5 s directory timeout; the
    // next ones skip both failed servers.
    assert!(took[0] < Duration::from_secs(5), "{took:?}");
    assert!(
        took[1] < Duration::from_secs(1) && took[2] < Duration::from_secs(1),
        "{took:?}"
    );
    assert_eq!(audit_reasons(&broker.audit_file), ["granted"; 3]);
    let log = broker.log_text();
    assert!(log.contains("directory server failed"), "{log}");
    eprintln!("logins with a dead and a frozen server first: {took:?}");
}

#[test]
fn the_principal_can_come_from_the_entry_and_is_still_checked() {
    let site = site();
    let lines = format!("{}\nprincipal_attribute = \"userPrincipalName\"", url_line(site));
    // AD's UPN is alice@ad.corp.test: in a tenant whose MIT realm is KRBTEST.COM that is a
    // foreign principal, refused after the password.
    let broker_elsewhere = broker("broker-upn-foreign", &lines);
    assert_eq!(
        raw_fetch(&endpoint(&broker_elsewhere), "alice", b"Al1ce-AD-pw!", None),
        refused(RefusalCode::PrincipalNotAllowed)
    );
    assert_eq!(last_reason(&broker_elsewhere), "principal_not_allowed");
    // In a realm named like the AD domain it is alice's own (the suffix's case aside).
    let realm = Realm::start_named(&site.root.join("kdc-upn"), "AD.CORP.TEST").unwrap();
    realm.add_user("alice", "kerberos-only-pw").unwrap();
    let broker = broker_in("broker-upn", &realm, &lines);
    let ccache = site.root.join("alice-upn.ccache");
    let out = login_in(&broker, &realm, "alice", "Al1ce-AD-pw!", &ccache);
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = klist_in(&realm, &ccache).expect("a ticket");
    assert!(listing.contains("Default principal: alice@AD.CORP.TEST"), "{listing}");
    // The caller cannot pick another principal than the entry names.
    assert_eq!(
        raw_fetch(&endpoint(&broker), "alice", b"Al1ce-AD-pw!", Some("bob@AD.CORP.TEST")),
        refused(RefusalCode::PrincipalNotAllowed)
    );
}

#[test]
fn a_password_ad_wants_changed_is_changed_at_login_with_ads_rules_in_plain_words() {
    let site = site();
    let broker = broker("broker-change", &url_line(site));
    for (user, old) in [("hank", "H4nk-AD-pw!"), ("ivy", "1vy-AD-pw!x")] {
        let principal = format!("{user}@{}", site.realm.realm);
        let kvno = site.realm.kvno(&principal).unwrap();
        let ccache = site.root.join(format!("{user}.ccache"));
        // Too short, too simple, the old one again: AD refuses each, the rules are named, and
        // the password stays what it was.
        for bad in ["Sh0rt!", "alllowercaseletters", old] {
            let out = login(&broker, user, &format!("{old}\n{bad}\n{bad}"), &ccache);
            assert_eq!(out.status.code(), Some(4), "{user} {bad}: {}", stderr(&out));
            let said = stderr(&out);
            assert!(
                said.contains("[new-password-rejected]") && said.contains("at least 7 characters"),
                "{user} {bad}: {said}"
            );
            assert_eq!(last_reason(&broker), "new_password_rejected");
        }
        assert!(
            site.ad
                .bind_as(user, old)
                .unwrap()
                .is_some_and(|a| a.contains("data 773") || a.contains("data 532"))
        );
        // A wrong old password with a good new one: like any wrong password.
        let new = format!("N3w-{user}-AD-pw!");
        let out = login(&broker, user, &format!("Wr0ng-old-pw!\n{new}\n{new}"), &ccache);
        assert_eq!(out.status.code(), Some(3), "{user}: {}", stderr(&out));
        // The change: AD takes it, the login completes with the new password, keys unchanged.
        let out = login(&broker, user, &format!("{old}\n{new}\n{new}"), &ccache);
        assert!(out.status.success(), "{user}: {}", stderr(&out));
        assert!(klist(&ccache).unwrap().contains(&principal));
        assert_eq!(last_reason(&broker), "password_changed");
        assert_eq!(
            site.realm.kvno(&principal).unwrap(),
            kvno,
            "Kerberos keys are not changed"
        );
        assert_eq!(
            site.ad.bind_as(user, &new).unwrap(),
            None,
            "{user} binds with the new password"
        );
        assert!(site.ad.bind_as(user, old).unwrap().is_some());
        let out = login(&broker, user, &new, &site.root.join(format!("{user}-after.ccache")));
        assert!(out.status.success(), "{user}: {}", stderr(&out));
        assert_eq!(last_reason(&broker), "granted");
    }
}

/// Drives pam_ktbroker.so (auth then session) for a local user against `broker`, answering the
/// conversation's prompts with the lines of `input`: the driver's output.
fn pam_login(broker: &Broker, name: &str, user: &str, input: &str) -> Output {
    use ktbroker_tests::bins::{project_binary, tool_binary};
    let site = site();
    let dir = site.root.join(name);
    let confdir = dir.join("pam.d");
    let pending = dir.join("pending");
    std::fs::create_dir_all(&confdir).unwrap();
    std::fs::create_dir_all(&pending).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pending, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let client_toml = dir.join("client.toml");
    let client = ktbroker_tests::templates::render(
        "client.toml.in",
        &[
            ("BROKER_URL", broker.url.as_str()),
            ("CA_FILE", &site.pki.ca_cert.display().to_string()),
        ],
    )
    .unwrap();
    std::fs::write(&client_toml, client).unwrap();
    let module = project_binary("libpam_ktbroker.so");
    let args = format!(
        "helper={} krb5_config={} config={} ccache_dir={} timeout=10",
        project_binary("ktbroker-kinit").display(),
        site.realm.krb5_conf.display(),
        client_toml.display(),
        pending.display()
    );
    std::fs::write(
        confdir.join("ktbroker-ad"),
        format!(
            "auth required {m} {args}\naccount required pam_permit.so\nsession required {m} {args}\n",
            m = module.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(tool_binary("ktbroker-pam-driver"));
    command
        .arg(&confdir)
        .args([
            "ktbroker-ad",
            user,
            "authenticate",
            "setcred",
            "open_session",
            "klist",
            "close_session",
        ])
        .env("KRB5_CONFIG", &site.realm.krb5_conf);
    run_with_password(command, input)
}

#[test]
fn pam_logs_in_against_ad_and_changes_a_password_through_the_conversation() {
    ktbroker_tests::accounts::local_users();
    let site = site();
    let broker = broker("broker-pam", &url_line(site));
    let out = pam_login(&broker, "pam-alice", "alice", "Al1ce-AD-pw!");

    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        said.contains("authenticate rc=0") && said.contains("open_session rc=0"),
        "{said}"
    );
    assert!(
        said.contains(&format!("Default principal: alice@{}", site.realm.realm)),
        "{said}"
    );
    // carol must change hers at next logon: asked twice, a too-simple one refused with AD's rules,
    // the next accepted; the session then has her ticket.
    let input = "C4rol-AD-pw!\nsimplesimple\nsimplesimple\nN3w-C4rol-pw!\nN3w-C4rol-pw!";
    let out = pam_login(&broker, "pam-carol", "carol", input);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        said.contains("authenticate rc=0") && said.contains("open_session rc=0"),
        "{said}"
    );
    assert!(said.contains("pam message: the new password was refused"), "{said}");
    assert!(said.contains("at least 7 characters"), "{said}");
    assert!(
        said.contains(&format!("Default principal: carol@{}", site.realm.realm)),
        "{said}"
    );
    assert_eq!(site.ad.bind_as("carol", "N3w-C4rol-pw!").unwrap(), None);
    // Once the module has a new password its helper changes it at once: one request per try.
    let reasons = audit_reasons(&broker.audit_file);
    assert_eq!(
        reasons,
        [
            "granted",
            "password_must_change",
            "new_password_rejected",
            "password_changed"
        ]
    );
}
