//! End-to-end tests of ktbroker-kinit as a person on a client host uses it: client.toml, several
//! brokers with failover, the password on a file descriptor, credential-cache ownership, and the
//! status / renew / logout subcommands. Real KDC, slapd and brokers, as everywhere.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ktbroker_tests::Sandbox;
use ktbroker_tests::bins::project_binary;
use ktbroker_tests::client::{audit_reasons, stderr};
use ktbroker_tests::sandbox::run_with_password;
use ktbroker_tests::start_sandbox as sandbox;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// `ktbroker-kinit ARGS` with only the sandbox realm in its environment and no client.toml of
/// this machine's.
fn helper(sandbox: &Sandbox, args: &[&str]) -> Command {
    let mut command = Command::new(project_binary("ktbroker-kinit"));
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KRB5_CONFIG", &sandbox.realm.krb5_conf);
    command
}

/// [`helper`] killed by coreutils' `timeout` after `limit` seconds: for tests of a hang, which
/// must fail rather than hang themselves when the hang comes back.
fn bounded_helper(sandbox: &Sandbox, limit_secs: u32, args: &[&str]) -> Command {
    let mut command = Command::new("timeout");
    command
        .args(["-k", "1", &limit_secs.to_string()])
        .arg(project_binary("ktbroker-kinit"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KRB5_CONFIG", &sandbox.realm.krb5_conf);
    command
}

/// `ktbroker-kinit --broker URL --ca-file CA -c CCACHE USER` (see [`helper`]).
fn login_command(sandbox: &Sandbox, url: &str, ccache: &str, user: &str) -> Command {
    let ca = sandbox.pki.ca_cert.display().to_string();
    helper(sandbox, &["--broker", url, "--ca-file", &ca, "-c", ccache, user])
}

/// Fails unless the command's stderr contains every needle (and shows it when not).
fn expect_stderr(out: &std::process::Output, needles: &[&str]) {
    let text = stderr(out);
    for needle in needles {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

/// SIGTERM to a child we started.
fn sigterm(child: &std::process::Child) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a child pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("signalling the child");
}

fn write_client_toml(sandbox: &Sandbox, name: &str, body: &str) -> String {
    let path = sandbox.root.join("client").join(name);
    std::fs::write(
        &path,
        format!("version = 1\nca_file = \"{}\"\n{body}", sandbox.pki.ca_cert.display()),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn brokers_are_tried_in_order_and_an_auth_failure_is_never_replayed() {
    let sandbox = sandbox();
    let dead_port = ktbroker_tests::daemon::free_port();
    // A broker whose directory cannot be reached answers UNAVAILABLE: also a reason to move on.
    let no_directory = sandbox
        .extra_broker("broker-no-directory", |c| {
            c.replace(&sandbox.directory.url, &format!("ldaps://127.0.0.1:{dead_port}/"))
        })
        .unwrap();
    let spare = sandbox.extra_broker("broker-spare", |c| c).unwrap();
    let config = write_client_toml(
        &sandbox,
        "failover.toml",
        &format!(
            "brokers = [\"https://127.0.0.1:{dead_port}\", \"{}\", \"{}\", \"{}\"]\nbroker_timeout_secs = 5\n",
            no_directory.url, sandbox.broker.url, spare.url
        ),
    );
    let ccache = sandbox.ccache("failover");
    let out = run_with_password(
        helper(&sandbox, &["--config", &config, "-c", &ccache, "alice"]),
        "alicepw",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(audit_reasons(&no_directory.audit_file), ["directory_unavailable"]);
    assert_eq!(audit_reasons(&sandbox.broker.audit_file), ["granted"]);
    assert!(audit_reasons(&spare.audit_file).is_empty(), "the spare was not needed");

    // A wrong password stops at the first broker that answers it: no spraying across replicas.
    let out = run_with_password(
        helper(
            &sandbox,
            &["--config", &config, "-c", &sandbox.ccache("wrong"), "alice"],
        ),
        "Wr0ng-Passw0rd",
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        audit_reasons(&sandbox.broker.audit_file),
        ["granted", "invalid_credentials"]
    );
    assert!(audit_reasons(&spare.audit_file).is_empty());
}

#[test]
fn client_toml_supplies_broker_ca_tenant_and_ccache_and_the_subcommands_use_it() {
    let sandbox = sandbox();
    let cache_dir = sandbox.root.join("client");
    let config = write_client_toml(
        &sandbox,
        "client.toml",
        &format!(
            "brokers = [\"{}\"]\ntenant = \"sandbox\"\nccache = \"FILE:{}/cc_{{uid}}\"\n",
            sandbox.broker.url,
            cache_dir.display()
        ),
    );
    let out = run_with_password(helper(&sandbox, &["--config", &config, "alice"]), "alicepw");
    assert!(out.status.success(), "{}", stderr(&out));
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let cache_file = cache_dir.join(format!("cc_{uid}"));
    let meta = std::fs::metadata(&cache_file).expect("the configured cache");
    assert_eq!(meta.mode() & 0o777, 0o600, "the cache is private");
    assert!(
        std::fs::read_to_string(&sandbox.broker.audit_file)
            .unwrap()
            .contains("\"tenant\":\"sandbox\""),
        "the tenant went to the broker"
    );

    let status = helper(&sandbox, &["status", "--config", &config, "--json"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
    let value: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(value["principal"], "alice@KRBTEST.COM");
    assert_eq!(value["valid"], true);
    let expires = value["expires"].as_i64().unwrap();
    let renew_till = value["renew_till"].as_i64().expect("a renewable ticket");
    assert!(renew_till > expires, "{value}");

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let renew = helper(&sandbox, &["renew", "--config", &config]).output().unwrap();
    assert!(renew.status.success(), "{}", stderr(&renew));
    let after: serde_json::Value = serde_json::from_slice(
        &helper(&sandbox, &["status", "--config", &config, "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        after["expires"].as_i64().unwrap() > expires,
        "renewal moved the expiry: {after}"
    );

    let logout = helper(&sandbox, &["logout", "--config", &config]).output().unwrap();
    assert!(logout.status.success(), "{}", stderr(&logout));
    assert!(!cache_file.exists(), "logout removed the cache");
    let status = helper(&sandbox, &["status", "--config", &config]).output().unwrap();
    assert_eq!(status.status.code(), Some(7), "{}", stderr(&status));
    let missing = helper(&sandbox, &["status", "--config", "/nonexistent/client.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2), "a named config file must exist");
}

/// `ktbroker-kinit status --json -c CCACHE` as root: the cache's ticket, or None without one.
fn ticket_expiry(sandbox: &Sandbox, ccache: &str) -> Option<i64> {
    let out = helper(sandbox, &["status", "--json", "-c", ccache]).output().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    value["expires"].as_i64()
}

#[test]
fn a_renewal_that_cannot_be_stored_leaves_the_old_ticket_in_place() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let sandbox = sandbox();
    // A cache file that `nobody` owns, in a directory only root may add files to: the renewed
    // ticket can be obtained, but not put in place, since the atomic replacement needs a new file.
    let dir = tempfile::Builder::new().prefix("ktbroker-renew-").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let krb5_conf = dir.path().join("krb5.conf");
    std::fs::copy(&sandbox.realm.krb5_conf, &krb5_conf).unwrap();
    std::fs::set_permissions(&krb5_conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cache_file = dir.path().join("cc");
    let ccache = format!("FILE:{}", cache_file.display());
    let out = run_with_password(sandbox.kinit_command("alice", &ccache), "alicepw");
    assert!(out.status.success(), "{}", stderr(&out));
    const NOBODY: u32 = 65534;
    std::os::unix::fs::chown(&cache_file, Some(NOBODY), Some(NOBODY)).unwrap();
    let before = ticket_expiry(&sandbox, &ccache).expect("a ticket");
    let renew_as_nobody = || {
        let mut command = helper(&sandbox, &["renew", "-c", &ccache]);
        command.env("KRB5_CONFIG", &krb5_conf).uid(NOBODY).gid(NOBODY);
        command.output().unwrap()
    };

    std::thread::sleep(std::time::Duration::from_millis(1100)); // ticket times are whole seconds
    let failed = renew_as_nobody();
    assert_eq!(failed.status.code(), Some(7), "{}", stderr(&failed));
    expect_stderr(&failed, &["storing the renewed ticket"]);
    assert_eq!(
        ticket_expiry(&sandbox, &ccache),
        Some(before),
        "the old ticket is still there, whole"
    );

    // The same renewal succeeds once the directory lets the new file be made: it was the store.
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let renewed = renew_as_nobody();
    assert!(renewed.status.success(), "{}", stderr(&renewed));
    assert!(ticket_expiry(&sandbox, &ccache).expect("a ticket") > before);
}

#[test]
fn the_password_can_come_from_a_file_descriptor() {
    let sandbox = sandbox();
    let ccache = sandbox.ccache("fd");
    // The test uses a shell to set up fd 3; the helper itself never runs one.
    let script = format!(
        "exec 3<<<alicepw; exec {} --broker {} --ca-file {} -c {} --password-fd 3 alice </dev/null",
        project_binary("ktbroker-kinit").display(),
        sandbox.broker.url,
        sandbox.pki.ca_cert.display(),
        ccache
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KRB5_CONFIG", &sandbox.realm.krb5_conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(sandbox.klist(&ccache).unwrap().contains("alice@KRBTEST.COM"));
    let closed = helper(&sandbox, &["--broker", &sandbox.broker.url, "--ca-file"])
        .arg(&sandbox.pki.ca_cert)
        .args(["--password-fd", "7", "alice"])
        .output()
        .unwrap();
    assert_eq!(closed.status.code(), Some(8), "{}", stderr(&closed));
}

#[test]
fn a_cache_that_is_not_ours_is_never_overwritten() {
    let sandbox = sandbox();
    let client = sandbox.root.join("client");
    let foreign = client.join("foreign-cache");
    std::fs::write(&foreign, "someone else's tickets").unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let target = client.join("target");
    std::fs::write(&target, "precious").unwrap();
    let link = client.join("planted-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for path in [&foreign, &link] {
        let ccache = format!("FILE:{}", path.display());
        let out = sandbox.login("alice", "alicepw", &ccache);
        assert_eq!(out.status.code(), Some(9), "{}: {}", path.display(), stderr(&out));
    }
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "someone else's tickets");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    assert!(
        audit_reasons(&sandbox.broker.audit_file).is_empty(),
        "refused before the password was sent"
    );
}

#[test]
fn keep_renewed_renews_before_expiry_and_ends_cleanly_on_sigterm() {
    let sandbox = sandbox();
    // Six-second tickets, renewable for two minutes: half-life renewal every ~3 s.
    let short = sandbox.root.join("client").join("short-tickets.krb5.conf");
    let text = std::fs::read_to_string(&sandbox.realm.krb5_conf).unwrap();
    std::fs::write(
        &short,
        text.replacen(
            "[libdefaults]\n",
            "[libdefaults]\n    ticket_lifetime = 6s\n    renew_lifetime = 120s\n",
            1,
        ),
    )
    .unwrap();
    let ccache = sandbox.ccache("renewed");
    let with_short = |args: &[&str]| {
        let mut command = helper(&sandbox, args);
        command.env("KRB5_CONFIG", &short);
        command
    };
    let mut login = with_short(&["--broker", &sandbox.broker.url, "--ca-file"]);
    login.arg(&sandbox.pki.ca_cert).args(["-c", &ccache, "alice"]);
    let out = run_with_password(login, "alicepw");
    assert!(out.status.success(), "{}", stderr(&out));
    let status = |ccache: &str| -> serde_json::Value {
        serde_json::from_slice(&with_short(&["status", "--json", "-c", ccache]).output().unwrap().stdout).unwrap()
    };
    let first = status(&ccache);
    let first_expiry = first["expires"].as_i64().unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    assert!(first_expiry - now() <= 6, "a short ticket: {first}");

    let mut keeper = with_short(&["renew", "--keep-renewed", "-c", &ccache]);
    let keeper = keeper.stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Once the first ticket's end has passed, the cache must hold a renewed, valid one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let later = loop {
        let later = status(&ccache);
        if now() > first_expiry && later["expires"].as_i64().unwrap_or(0) > first_expiry {
            break later;
        }
        assert!(std::time::Instant::now() < deadline, "never renewed: {later}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        later["valid"], true,
        "still valid after the first ticket's end: {later}"
    );

    sigterm(&keeper);
    let out = keeper.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("ticket renewed"), "{}", stderr(&out));
}

#[test]
fn doctor_reports_each_check_and_names_what_is_wrong() {
    let sandbox = sandbox();
    let config = write_client_toml(
        &sandbox,
        "doctor.toml",
        &format!("brokers = [\"{}\"]\n", sandbox.broker.url),
    );
    let healthy = helper(&sandbox, &["doctor", "--config", &config]).output().unwrap();
    let report = String::from_utf8_lossy(&healthy.stdout).into_owned();
    assert!(healthy.status.success(), "{report}{}", stderr(&healthy));
    for line in [
        "ok    config:",
        &format!("ok    broker {}: TLS trusted, serving", sandbox.broker.url),
        "ok    kdc: the KDC of KRBTEST.COM answers",
        "ok    ccache:",
    ] {
        assert!(report.contains(line), "missing {line:?} in:\n{report}");
    }

    // Another CA, and a krb5.conf whose KDC port is dead: both named, with hints.
    let rogue = ktbroker_tests::pki::TestPki::create(&sandbox.root.join("rogue-pki"), "rogue CA").unwrap();
    let dead = sandbox.root.join("client").join("dead-kdc.conf");
    let text = std::fs::read_to_string(&sandbox.realm.krb5_conf).unwrap();
    std::fs::write(
        &dead,
        text.replace(
            &format!("kdc = 127.0.0.1:{}", sandbox.realm.kdc_port),
            &format!("kdc = 127.0.0.1:{}", ktbroker_tests::daemon::free_port()),
        ),
    )
    .unwrap();
    // In German: the findings are named by rustls' and libkrb5's error codes, not their words.
    let mut sick = helper(&sandbox, &["doctor", "--config", &config, "--ca-file"]);
    sick.arg(&rogue.ca_cert)
        .env("KRB5_CONFIG", &dead)
        .env("LC_ALL", "C.UTF-8")
        .env("LANGUAGE", "de");
    let out = sick.output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(5), "the first failure's exit code:\n{report}");
    assert!(
        report.contains("FAIL  broker") && report.contains("[tls-trust]"),
        "{report}"
    );
    assert!(report.contains("FAIL  kdc: [kdc-unreachable]"), "{report}");
    assert!(report.contains("hint: the KDC does not answer"), "{report}");
}

#[test]
fn dir_and_keyring_caches_work_like_file_caches() {
    let sandbox = sandbox();
    let collection = sandbox.root.join("client").join("dir-collection");
    std::fs::create_dir(&collection).unwrap();
    std::fs::set_permissions(&collection, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let keyring = format!("KEYRING:session:ktbroker-test-{}", std::process::id());
    let caches = [format!("DIR:{}", collection.display()), keyring];
    // Both deliveries: a keytab (the AS exchange here), and a ticket the broker sent.
    for (ccache, delivery) in caches
        .iter()
        .flat_map(|c| [(c.clone(), "keytab"), (c.clone(), "ticket")])
    {
        let mut login = sandbox.kinit_command("alice", &ccache);
        login.args(["--delivery", delivery]);
        let out = run_with_password(login, "alicepw");
        assert!(out.status.success(), "{ccache} {delivery}: {}", stderr(&out));
        let status = helper(&sandbox, &["status", "--json", "-c", &ccache]).output().unwrap();
        assert!(status.status.success(), "{ccache}: {}", stderr(&status));
        let value: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_eq!(value["principal"], "alice@KRBTEST.COM", "{ccache}");
        assert!(
            sandbox.klist(&ccache).unwrap().contains("krbtgt/KRBTEST.COM"),
            "{ccache}"
        );
        let logout = helper(&sandbox, &["logout", "-c", &ccache]).output().unwrap();
        assert!(logout.status.success(), "{ccache}: {}", stderr(&logout));
        let gone = helper(&sandbox, &["status", "-c", &ccache]).output().unwrap();
        assert_eq!(gone.status.code(), Some(7), "{ccache}: {}", stderr(&gone));
    }
}

/// Where Heimdal's kcm listens and MIT's KCM client looks: a fixed, system-wide path (kcm 7.8
/// ignores --socket-path), so at most one of these tests may run on a machine at a time.
const KCM_SOCKET: &str = "/var/run/.heim_org.h5l.kcm-socket";

#[test]
fn kcm_caches_work_through_a_real_kcm_daemon() {
    let sandbox = sandbox();
    let client = sandbox.root.join("client");
    let listening = || std::os::unix::net::UnixStream::connect(KCM_SOCKET).is_ok();
    // Our own daemon, unless one already serves this machine.
    let _kcm = if listening() {
        None
    } else {
        let _ = std::fs::remove_file(KCM_SOCKET); // a stale socket of a killed run
        let kcm_config = client.join("kcm.conf");
        std::fs::write(&kcm_config, "").unwrap();
        let mut command = Command::new("/usr/sbin/kcm");
        command.arg("-c").arg(&kcm_config);
        let mut kcm = ktbroker_tests::daemon::Daemon::spawn("kcm", &mut command, &client.join("kcm.log")).unwrap();
        kcm.wait_ready(std::time::Duration::from_secs(10), listening).unwrap();
        Some(kcm)
    };
    let run = |args: &[&str], password: Option<&str>| {
        let command = helper(&sandbox, args);
        match password {
            Some(password) => run_with_password(command, password),
            None => {
                let mut command = command;
                command.output().unwrap()
            }
        }
    };
    let ca = sandbox.pki.ca_cert.display().to_string();
    let out = run(
        &["--broker", &sandbox.broker.url, "--ca-file", &ca, "-c", "KCM:", "alice"],
        Some("alicepw"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let status = run(&["status", "--json", "-c", "KCM:"], None);
    assert!(status.status.success(), "{}", stderr(&status));
    let value: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(value["principal"], "alice@KRBTEST.COM");
    assert!(value["cache"].as_str().unwrap().starts_with("KCM:"), "{value}");
    let logout = run(&["logout", "-c", "KCM:"], None);
    assert!(logout.status.success(), "{}", stderr(&logout));
    assert_eq!(run(&["status", "-c", "KCM:"], None).status.code(), Some(7));
    // A delivered ticket goes into KCM the same way.
    let out = run(
        &[
            "--broker",
            &sandbox.broker.url,
            "--ca-file",
            &ca,
            "-c",
            "KCM:",
            "--delivery",
            "ticket",
            "alice",
        ],
        Some("alicepw"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let status = run(&["status", "--json", "-c", "KCM:"], None);
    let value: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(value["principal"], "alice@KRBTEST.COM", "{value}");
    assert_eq!(value["valid"], true, "{value}");
    assert!(run(&["logout", "-c", "KCM:"], None).status.success());
}

#[test]
fn without_a_broker_list_srv_records_name_the_brokers_in_priority_order() {
    let sandbox = sandbox();
    let client = sandbox.root.join("client");
    let dead_port = ktbroker_tests::daemon::free_port();
    // A real DNS server (dnsmasq) answering only for example.test: the preferred record points at
    // nothing, the next at the sandbox's broker.
    let mut dns = ktbroker_tests::dns::Dns::start(
        &client.join("dns"),
        &[
            format!("_ktbroker._tcp.example.test,localhost,{dead_port},10,5"),
            format!("_ktbroker._tcp.example.test,localhost,{},20,5", sandbox.broker.port),
        ],
    )
    .unwrap();
    let dns_port = dns.port;
    let config = write_client_toml(
        &sandbox,
        "srv.toml",
        &format!("srv_domain = \"example.test\"\ndns_server = \"127.0.0.1:{dns_port}\"\nbroker_timeout_secs = 5\n"),
    );
    let out = run_with_password(
        helper(&sandbox, &["--config", &config, "-c", &sandbox.ccache("srv"), "alice"]),
        "alicepw",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(audit_reasons(&sandbox.broker.audit_file), ["granted"]);
    assert!(
        dns.was_asked("_ktbroker._tcp.example.test"),
        "the helper asked the DNS server"
    );
    let doctor = helper(&sandbox, &["doctor", "--config", &config]).output().unwrap();
    let report = String::from_utf8_lossy(&doctor.stdout).into_owned();
    assert!(
        report.contains(&format!(
            "ok    brokers: 2 to try, in order: https://localhost:{dead_port} https://localhost:{}",
            sandbox.broker.port
        )),
        "{report}"
    );
    dns.check_alive().unwrap();
}

#[test]
fn without_c_the_cache_is_krb5ccname_else_krb5_confs_default() {
    let sandbox = sandbox();
    let client = sandbox.root.join("client");
    let login = |krb5_conf: &Path, krb5ccname: Option<&str>| {
        let mut command = helper(&sandbox, &["--broker", &sandbox.broker.url, "--ca-file"]);
        command
            .arg(&sandbox.pki.ca_cert)
            .arg("alice")
            .env("KRB5_CONFIG", krb5_conf);
        if let Some(name) = krb5ccname {
            command.env("KRB5CCNAME", name);
        }
        run_with_password(command, "alicepw")
    };
    let from_env = client.join("from-env");
    let out = login(&sandbox.realm.krb5_conf, Some(&format!("FILE:{}", from_env.display())));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(from_env.exists(), "KRB5CCNAME was used");

    let configured = client.join("from-krb5-conf");
    let krb5_conf = client.join("default-ccache.krb5.conf");
    let text = std::fs::read_to_string(&sandbox.realm.krb5_conf).unwrap();
    std::fs::write(
        &krb5_conf,
        text.replacen(
            "[libdefaults]\n",
            &format!(
                "[libdefaults]\n    default_ccache_name = FILE:{}\n",
                configured.display()
            ),
            1,
        ),
    )
    .unwrap();
    let out = login(&krb5_conf, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(configured.exists(), "krb5.conf's default_ccache_name was used");
}

#[test]
fn keep_renewed_backs_off_while_the_kdc_is_unreachable_and_still_stops_on_sigterm() {
    let sandbox = sandbox();
    let client = sandbox.root.join("client");
    let text = std::fs::read_to_string(&sandbox.realm.krb5_conf).unwrap();
    let short = text.replacen(
        "[libdefaults]\n",
        "[libdefaults]\n    ticket_lifetime = 4s\n    renew_lifetime = 120s\n",
        1,
    );
    let short_conf = client.join("short.krb5.conf");
    std::fs::write(&short_conf, &short).unwrap();
    let dead_conf = client.join("short-dead-kdc.krb5.conf");
    std::fs::write(
        &dead_conf,
        short.replace(
            &format!("kdc = 127.0.0.1:{}", sandbox.realm.kdc_port),
            &format!("kdc = 127.0.0.1:{}", ktbroker_tests::daemon::free_port()),
        ),
    )
    .unwrap();
    let ccache = sandbox.ccache("backoff");
    let mut login = helper(&sandbox, &["--broker", &sandbox.broker.url, "--ca-file"]);
    login
        .arg(&sandbox.pki.ca_cert)
        .args(["-c", &ccache, "alice"])
        .env("KRB5_CONFIG", &short_conf);
    let out = run_with_password(login, "alicepw");
    assert!(out.status.success(), "{}", stderr(&out));

    let mut keeper = helper(&sandbox, &["renew", "--keep-renewed", "-c", &ccache]);
    let mut keeper = keeper
        .env("KRB5_CONFIG", &dead_conf)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read what it says until the first failed renewal has been reported, then stop it.
    let mut said = String::new();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(keeper.stderr.take().unwrap()));
    while !said.contains("retrying in") {
        let line = lines.next().expect("the keeper reports the failed renewal").unwrap();
        said.push_str(&line);
        said.push('\n');
    }
    sigterm(&keeper);
    let status = keeper.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{said}");
    assert!(
        said.contains("renewal failed") && said.contains("retrying in 5s"),
        "{said}"
    );
}

#[test]
fn the_helper_holds_no_core_dump_while_it_waits_for_the_password() {
    let sandbox = sandbox();
    let mut command = sandbox.kinit_command("alice", &sandbox.ccache("core"));
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Core dumps are off from the start of a login, before the password or any key is read.
    let limits_file = format!("/proc/{}/limits", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let limits = loop {
        let limits = std::fs::read_to_string(&limits_file).unwrap_or_default();
        let core = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .unwrap_or("")
            .to_owned();
        // Soft limit 0 is a common default anyway; the hard limit at 0 is the helper's doing.
        if core.split_whitespace().nth(5) == Some("0") || std::time::Instant::now() > deadline {
            break core;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(limits.split_whitespace().nth(4), Some("0"), "{limits}");
    assert_eq!(limits.split_whitespace().nth(5), Some("0"), "hard limit too: {limits}");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"alicepw\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_principal_without_an_allowed_key_gets_its_own_code_and_hint() {
    let sandbox = sandbox();
    let broker = sandbox
        .extra_broker("broker-camellia", |c| {
            c.replacen(
                "[tenants.sandbox]\n",
                "[tenants.sandbox]\nenctypes = [\"camellia256-cts-cmac\"]\n",
                1,
            )
        })
        .unwrap();
    let out = sandbox.login_via(&broker.url, "alice", "alicepw", &sandbox.ccache("camellia"));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    expect_stderr(&out, &["[no-usable-enctype]", "hint: your principal has no AES key"]);
}

/// Waits until the terminal of the helper that `script` (the child) runs has echo turned off.
fn wait_for_echo_off(script: &std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", script.id())).unwrap_or_default();
        let echo_off = children.split_whitespace().any(|pid| {
            std::fs::File::open(format!("/proc/{pid}/fd/0"))
                .ok()
                .and_then(|tty| rustix::termios::tcgetattr(&tty).ok())
                .is_some_and(|termios| !termios.local_modes.contains(rustix::termios::LocalModes::ECHO))
        });
        if echo_off {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "echo never went off");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn on_a_terminal_the_password_is_prompted_for_and_never_echoed() {
    let sandbox = sandbox();
    let ccache = sandbox.ccache("tty");
    // script(1) gives the helper a pseudo-terminal; its transcript is what the person would see.
    let helper_line = format!(
        "{} --broker {} --ca-file {} -c {} alice",
        project_binary("ktbroker-kinit").display(),
        sandbox.broker.url,
        sandbox.pki.ca_cert.display(),
        ccache
    );
    let mut child = Command::new("script")
        .args(["-qec", &helper_line, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KRB5_CONFIG", &sandbox.realm.krb5_conf)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Type only once the prompt is up (echo is off by then): read the transcript as it comes.
    let transcript = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let transcript = transcript.clone();
        let mut stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 256];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                transcript.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !String::from_utf8_lossy(&transcript.lock().unwrap()).contains("Password for alice: ") {
        assert!(std::time::Instant::now() < deadline, "no prompt");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // rpassword prints the prompt, then turns echo off: type only once the terminal says so.
    wait_for_echo_off(&child);
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"alicepw\n").unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    reader.join().unwrap();
    let transcript = String::from_utf8_lossy(&transcript.lock().unwrap()).into_owned();
    assert!(out.status.success(), "{transcript}{}", stderr(&out));
    assert!(transcript.contains("Password for alice: "), "{transcript}");
    assert!(!transcript.contains("alicepw"), "the password was echoed: {transcript}");
    assert!(sandbox.klist(&ccache).unwrap().contains("alice@KRBTEST.COM"));
}

#[test]
fn doctor_names_a_skewed_clock() {
    let sandbox = sandbox();
    let config = write_client_toml(
        &sandbox,
        "skew.toml",
        &format!("brokers = [\"{}\"]\n", sandbox.broker.url),
    );
    // The helper believes it is an hour later than it is (libfaketime), the broker does not.
    let mut skewed = helper(&sandbox, &["doctor", "--config", &config]);
    skewed
        .env("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
        .env("FAKETIME", "+1h");
    let out = skewed.output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(7), "{report}{}", stderr(&out));
    assert!(
        report.contains("[clock-skew]") && report.contains(" s off the broker's"),
        "{report}"
    );
    assert!(report.contains("hint: this host's clock is off"), "{report}");
}

/// A broker whose directory never answers (its LDAP goes through a relay that has gone dark), in
/// front of a relay of its own: a request to it stays in flight until the test cuts or darkens it.
struct StuckBroker {
    broker: ktbroker_tests::broker::Broker,
    front: ktbroker_tests::proxy::DarkeningRelay,
    _directory: ktbroker_tests::proxy::DarkeningRelay,
}

impl StuckBroker {
    fn start(sandbox: &Sandbox, name: &str) -> Self {
        let directory = ktbroker_tests::proxy::DarkeningRelay::start(sandbox.directory.port).unwrap();
        directory.go_dark();
        let broker = sandbox
            .extra_broker(name, |c| {
                c.replace(
                    &sandbox.directory.url,
                    &format!("ldaps://127.0.0.1:{}/", directory.port),
                )
            })
            .unwrap();
        let port: u16 = broker
            .url
            .rsplit_once(':')
            .unwrap()
            .1
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let front = ktbroker_tests::proxy::DarkeningRelay::start(port).unwrap();
        Self {
            broker,
            front,
            _directory: directory,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.front.port)
    }
}

#[test]
fn a_frozen_silent_cut_off_or_withholding_broker_costs_its_timeout_and_the_next_one_logs_in() {
    let sandbox = sandbox();
    let frozen = sandbox.extra_broker("broker-frozen", |c| c).unwrap();
    frozen.pause().unwrap();
    // Accepts TCP (the kernel's backlog does) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("https://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let cut = StuckBroker::start(&sandbox, "broker-cut");
    let withheld = StuckBroker::start(&sandbox, "broker-withheld");

    let login_through_first = |name: &str, first: &str, during: &dyn Fn()| {
        let config = write_client_toml(
            &sandbox,
            &format!("{name}.toml"),
            &format!(
                "brokers = [\"{first}\", \"{}\"]\nbroker_timeout_secs = 3\n",
                sandbox.broker.url
            ),
        );
        let command = bounded_helper(
            &sandbox,
            30,
            &["--config", &config, "-c", &sandbox.ccache(name), "alice"],
        );
        let started = std::time::Instant::now();
        let login = std::thread::spawn(move || run_with_password(command, "alicepw"));
        during();
        let out = login.join().unwrap();
        let took = started.elapsed();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        eprintln!("{name}: logged in through the second broker after {took:?}");
        // The first broker's 3 s, then the login itself (well under a second here).
        assert!(took < std::time::Duration::from_secs(6), "{name}: {took:?}");
    };
    login_through_first("frozen", &frozen.url, &|| {});
    login_through_first("silent", &silent_url, &|| {});
    login_through_first("cut", &cut.url(), &|| {
        cut.broker
            .wait_for_log(ktbroker_tests::broker::DIRECTORY_ASKED, 1)
            .unwrap();
        assert!(cut.front.cut_open_connections() >= 1);
    });
    login_through_first("withheld", &withheld.url(), &|| {
        withheld
            .broker
            .wait_for_log(ktbroker_tests::broker::DIRECTORY_ASKED, 1)
            .unwrap();
        withheld.front.darken_open_connections();
    });
    assert_eq!(
        audit_reasons(&sandbox.broker.audit_file),
        ["granted"; 4],
        "every login ended at the second broker"
    );
    frozen.resume().unwrap();
}

/// A keytab of one made-up AES256 key for `name@KRBTEST.COM`.
fn made_up_keytab(name: &str) -> Vec<u8> {
    use ktbroker_keytab::{Entry, Key, Keytab, Principal};
    let keytab = Keytab {
        entries: vec![Entry {
            principal: Principal::new(vec![name.to_owned()], "KRBTEST.COM"),
            timestamp: 0,
            kvno: 1,
            key: Key {
                enctype: 18,
                contents: zeroize::Zeroizing::new(vec![7; 32]),
            },
        }],
    };
    keytab.encode().unwrap().to_vec()
}

#[test]
fn a_malformed_answer_is_a_protocol_error_and_yields_no_ticket() {
    use ktbroker_proto::v1::{KeytabHeader, KeytabTrailer, fetch_keytab_response::Part};
    use ktbroker_tests::standin::{StandIn, well_formed};
    let sandbox = sandbox();
    let keytab = made_up_keytab("alice");
    let good = well_formed("alice@KRBTEST.COM", &keytab, 16);
    let (header, chunks, trailer) = (&good[0], &good[1..good.len() - 1], &good[good.len() - 1]);
    let with_header = |total_size: u64| {
        Part::Header(KeytabHeader {
            principal: "alice@KRBTEST.COM".into(),
            kvno: 1,
            enctypes: vec![18],
            total_size,
        })
    };
    let join = |parts: &[&[Part]]| parts.concat();
    let (h, t) = (std::slice::from_ref(header), std::slice::from_ref(trailer));
    let cases: Vec<(&str, Vec<Part>)> = vec![
        (
            "chunks before the header",
            join(&[chunks, &[header.clone(), trailer.clone()]]),
        ),
        ("a second header", join(&[h, &good])),
        ("a size of zero", join(&[&[with_header(0)], chunks, t])),
        (
            "a size past the limit",
            join(&[&[with_header(ktbroker_codes::MAX_KEYTAB_SIZE + 1)], chunks, t]),
        ),
        (
            "a chunk past the announced size",
            join(&[&[with_header(keytab.len() as u64 - 1)], chunks, t]),
        ),
        ("fewer bytes than announced", join(&[h, &chunks[..chunks.len() - 1], t])),
        (
            "a wrong SHA-256",
            join(&[h, chunks, &[Part::Trailer(KeytabTrailer { sha256: vec![0; 32] })]]),
        ),
        ("no trailer", join(&[h, chunks])),
        (
            "another principal's keys",
            well_formed("alice@KRBTEST.COM", &made_up_keytab("bob"), 16),
        ),
    ];
    // The client check each case meets, in order.
    let checks = [
        "did not start with a header",
        "a second header",
        "keytab size 0 is out of bounds",
        "is out of bounds",
        "more keytab bytes than the header announced",
        "fewer keytab bytes than the header announced",
        "SHA-256 of the keytab does not match",
        "ended before the trailer",
        "keys of another principal",
    ];
    assert_eq!(checks.len(), cases.len());
    let ca = sandbox.pki.ca_cert.display().to_string();
    for (n, (what, parts)) in cases.into_iter().enumerate() {
        let standin = StandIn::start(&sandbox.pki, parts).unwrap();
        let ccache = sandbox.ccache(&format!("malformed-{n}"));
        let out = run_with_password(
            helper(
                &sandbox,
                &["--broker", &standin.url, "--ca-file", &ca, "-c", &ccache, "alice"],
            ),
            "alicepw",
        );
        assert_eq!(out.status.code(), Some(6), "{what}: {}", stderr(&out));
        expect_stderr(&out, &["[protocol]", checks[n]]);
        assert_eq!(standin.asked(), 1, "{what}");
        assert!(sandbox.klist(&ccache).is_none(), "{what}: no ticket");
    }
}

#[test]
fn when_every_broker_is_busy_the_login_waits_its_turn_instead_of_failing() {
    let sandbox = sandbox();
    let one_at_a_time = sandbox
        .extra_broker("broker-one-slot", |c| {
            c.replacen("[server]\n", "[server]\nmax_concurrent_requests = 1\n", 1)
        })
        .unwrap();
    let config = write_client_toml(
        &sandbox,
        "busy.toml",
        &format!("brokers = [\"{}\"]\nbroker_timeout_secs = 10\n", one_at_a_time.url),
    );
    // The one slot is taken by a login that waits on the frozen directory.
    sandbox.directory.pause().unwrap();
    let first = {
        let command = bounded_helper(
            &sandbox,
            30,
            &["--config", &config, "-c", &sandbox.ccache("first"), "bob"],
        );
        std::thread::spawn(move || run_with_password(command, "bobpw"))
    };
    one_at_a_time
        .wait_for_log(ktbroker_tests::broker::DIRECTORY_ASKED, 1)
        .unwrap();
    let second = {
        let command = bounded_helper(
            &sandbox,
            30,
            &["--config", &config, "-c", &sandbox.ccache("second"), "alice"],
        );
        std::thread::spawn(move || run_with_password(command, "alicepw"))
    };
    // alice is turned away (busy) at least once, then the directory comes back.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !audit_reasons(&one_at_a_time.audit_file).iter().any(|r| r == "busy") {
        assert!(std::time::Instant::now() < deadline, "alice was never turned away");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sandbox.directory.resume().unwrap();
    let first = first.join().unwrap();
    assert!(first.status.success(), "bob: {}", stderr(&first));
    let second = second.join().unwrap();
    assert!(second.status.success(), "alice: {}", stderr(&second));
    let reasons = audit_reasons(&one_at_a_time.audit_file);
    assert_eq!(reasons.iter().filter(|r| *r == "granted").count(), 2, "{reasons:?}");
    assert!(reasons.iter().filter(|r| *r == "busy").count() >= 1, "{reasons:?}");
}

#[test]
fn a_frozen_kdc_costs_the_kdc_timeout_and_not_a_second_more() {
    let sandbox = sandbox();
    let config = write_client_toml(
        &sandbox,
        "kdc-timeout.toml",
        &format!("brokers = [\"{}\"]\nkdc_timeout_secs = 2\n", sandbox.broker.url),
    );
    sandbox.realm.pause_kdc().unwrap();
    let started = std::time::Instant::now();
    let out = run_with_password(
        bounded_helper(
            &sandbox,
            60,
            &["--config", &config, "-c", &sandbox.ccache("frozen-kdc"), "alice"],
        ),
        "alicepw",
    );
    let took = started.elapsed();
    sandbox.realm.resume_kdc().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    expect_stderr(&out, &["[kdc-unreachable]", "within 2s"]);
    eprintln!("frozen KDC: the helper gave up after {took:?} (kdc_timeout_secs = 2)");
    // The broker's part (well under a second) and the 2 s; before, libkrb5's own retries held the
    // exit up (27 s with a 5 s timeout).
    assert!(took < std::time::Duration::from_secs(4), "{took:?}");
}

#[test]
fn an_empty_password_is_refused_by_the_client_and_never_sent() {
    let sandbox = sandbox();
    let out = run_with_password(
        login_command(&sandbox, &sandbox.broker.url, &sandbox.ccache("empty"), "alice"),
        "",
    );
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    expect_stderr(&out, &["[password]", "empty"]);
    assert!(
        audit_reasons(&sandbox.broker.audit_file).is_empty(),
        "nothing reached the broker"
    );
}

#[test]
fn common_options_may_come_before_the_subcommand() {
    let sandbox = sandbox();
    let config = write_client_toml(
        &sandbox,
        "order.toml",
        &format!("brokers = [\"{}\"]\n", sandbox.broker.url),
    );
    let ccache = sandbox.ccache("order");
    let out = run_with_password(
        helper(&sandbox, &["--config", &config, "-c", &ccache, "alice"]),
        "alicepw",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Before, `--config F status` logged in a user named "status".
    for args in [
        ["--config", config.as_str(), "-c", ccache.as_str(), "status"],
        ["status", "--config", config.as_str(), "-c", ccache.as_str()],
    ] {
        let out = helper(&sandbox, &args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("alice@KRBTEST.COM"), "{args:?}: {text}");
        // Local date-time and the time left, not epoch seconds (--json keeps those).
        assert!(
            text.contains(" 2026 (in ") || text.contains(" (in "),
            "{args:?}: {text}"
        );
        assert!(
            text.contains("renew till:") && !text.contains("expires:    1"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn tickets_are_renewable_and_lifetimes_come_from_client_toml_on_a_host_whose_krb5_conf_is_silent() {
    let sandbox = sandbox();
    // The sandbox's krb5.conf names no ticket_lifetime or renew_lifetime (as many hosts' don't).
    let profile = std::fs::read_to_string(&sandbox.realm.krb5_conf).unwrap();
    assert!(!profile.contains("renew_lifetime") && !profile.contains("ticket_lifetime"));
    let status = |ccache: &str| -> serde_json::Value {
        let out = helper(&sandbox, &["status", "--json", "-c", ccache]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let login = |name: &str, body: &str| {
        let config = write_client_toml(
            &sandbox,
            &format!("{name}.toml"),
            &format!("brokers = [\"{}\"]\n{body}", sandbox.broker.url),
        );
        let ccache = sandbox.ccache(name);
        let out = run_with_password(
            helper(&sandbox, &["--config", &config, "-c", &ccache, "alice"]),
            "alicepw",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        (config, ccache)
    };

    // By default: renewable for the default 7 days (the KDC allows 7d), so renew works.
    let (config, ccache) = login("renewable", "");
    let before = status(&ccache);
    let (expires, renew_till) = (
        before["expires"].as_i64().unwrap(),
        before["renew_till"].as_i64().unwrap(),
    );
    assert!(renew_till >= expires + 6 * 24 * 3600, "{before}");
    let out = helper(&sandbox, &["--config", &config, "-c", &ccache, "renew"])
        .output()
        .unwrap();
    assert!(out.status.success(), "renew: {}", stderr(&out));

    // client.toml's lifetimes are asked for explicitly.
    let (_, ccache) = login("short", "ticket_lifetime = \"1h\"\nrenew_lifetime = \"2h\"\n");
    let short = status(&ccache);
    let now = ktbroker_kinit::unix_now();
    let (expires, renew_till) = (
        short["expires"].as_i64().unwrap(),
        short["renew_till"].as_i64().unwrap(),
    );
    assert!((expires - now - 3600).abs() < 120, "{short}");
    assert!((renew_till - now - 7200).abs() < 120, "{short}");
}

#[test]
fn run_uses_a_cached_ticket_only_if_it_is_the_users_and_has_enough_left() {
    let sandbox = sandbox();
    let config = write_client_toml(
        &sandbox,
        "run.toml",
        &format!("brokers = [\"{}\"]\nticket_lifetime = \"1h\"\n", sandbox.broker.url),
    );
    let ccache = sandbox.ccache("run");
    let run = |user: &str, extra: &[&str], password: &str| {
        let mut args = vec!["run", "--config", &config, "-c", &ccache];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[user, "--", "true"]);
        run_with_password(helper(&sandbox, &args), password)
    };
    let principal = || {
        let out = helper(&sandbox, &["status", "--json", "-c", &ccache]).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["principal"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let out = run("bob", &[], "bobpw");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(principal(), "bob@KRBTEST.COM");
    // bob's ticket is not alice's: she logs in, and the cache is hers afterwards.
    let out = run("alice", &[], "alicepw");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(principal(), "alice@KRBTEST.COM");
    assert_eq!(audit_reasons(&sandbox.broker.audit_file), ["granted", "granted"]);
    // Her 1 h ticket serves a command that needs 30 min (an empty password would fail a login)...
    let out = run("alice", &["--min-lifetime", "30m"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(audit_reasons(&sandbox.broker.audit_file).len(), 2, "no login");
    // ...but not one that needs more than it has left (the default: 2 h).
    let out = run("alice", &[], "");
    assert_eq!(out.status.code(), Some(8), "a login was needed: {}", stderr(&out));
    let out = run("alice", &["--min-lifetime", "2h"], "alicepw");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(audit_reasons(&sandbox.broker.audit_file).len(), 3);
}

#[test]
fn an_unreadable_kerberos_profile_is_a_configuration_error_naming_it() {
    let sandbox = sandbox();
    let broken = sandbox.root.join("client").join("broken-krb5.conf");
    std::fs::write(&broken, "[libdefaults\n    default_realm = KRBTEST.COM\n").unwrap();
    let mut command = login_command(&sandbox, &sandbox.broker.url, &sandbox.ccache("broken"), "alice");
    command.env("KRB5_CONFIG", &broken);
    let out = run_with_password(command, "alicepw");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    expect_stderr(&out, &["[config]", &broken.display().to_string()]);
    assert!(!stderr(&out).contains("bug"), "{}", stderr(&out));
    assert!(audit_reasons(&sandbox.broker.audit_file).is_empty(), "nothing was sent");
}

#[test]
fn temporaries_a_killed_login_stranded_beside_the_cache_are_swept_by_the_next_one() {
    let sandbox = sandbox();
    let dir = sandbox.root.join("client");
    let ccache = format!("FILE:{}", dir.join("swept").display());
    // What libkrb5 writes before renaming over the cache, left by logins killed at that moment.
    let file = |name: &str, age: &str, owner: Option<u32>| {
        let path = dir.join(name);
        std::fs::write(&path, b"a stranded ticket").unwrap();
        let touched = Command::new("touch").args(["-d", age]).arg(&path).status().unwrap();
        assert!(touched.success());
        if let Some(uid) = owner {
            std::os::unix::fs::chown(&path, Some(uid), None).unwrap();
        }
        path
    };
    let stranded = file("swept.AbC123", "2 hours ago", None);
    let in_progress = file("swept.Xy9876", "now", None);
    let not_that_shape = file("swept.keep", "2 hours ago", None);
    let someone_elses = file("swept.Old456", "2 hours ago", Some(65534));
    let another_cache = file("sweptx.Qw1234", "2 hours ago", None);
    let out = run_with_password(
        login_command(&sandbox, &sandbox.broker.url, &ccache, "alice"),
        "alicepw",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stranded.exists(), "the stranded temporary is gone");
    for kept in [&in_progress, &not_that_shape, &someone_elses, &another_cache] {
        assert!(kept.exists(), "{} was kept", kept.display());
    }
}

#[test]
fn a_realm_the_hosts_krb5_conf_does_not_know_is_named_before_the_password_is_sent() {
    let sandbox = sandbox();
    let profile = std::fs::read_to_string(&sandbox.realm.krb5_conf).unwrap();
    let kdc_line = format!("kdc = 127.0.0.1:{}", sandbox.realm.kdc_port);
    assert!(profile.contains(&kdc_line) && profile.contains("dns_lookup_kdc = false"));
    let without = sandbox.root.join("client").join("no-realm-krb5.conf");
    std::fs::write(&without, profile.replace(&kdc_line, "")).unwrap();
    let mut command = login_command(&sandbox, &sandbox.broker.url, &sandbox.ccache("no-realm"), "alice");
    command.env("KRB5_CONFIG", &without);
    let out = run_with_password(command, "alicepw");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    expect_stderr(&out, &["[config]", "KRBTEST.COM", &without.display().to_string()]);
    assert!(
        audit_reasons(&sandbox.broker.audit_file).is_empty(),
        "the password was not sent"
    );
}

#[test]
fn doctor_and_a_broker_killed_mid_login_are_bounded_too() {
    let sandbox = sandbox();
    // doctor against a frozen broker: the broker check costs its timeout, then doctor goes on.
    let frozen = sandbox.extra_broker("broker-frozen-doctor", |c| c).unwrap();
    frozen.pause().unwrap();
    let config = write_client_toml(
        &sandbox,
        "doctor-frozen.toml",
        &format!("brokers = [\"{}\"]\nbroker_timeout_secs = 2\n", frozen.url),
    );
    let started = std::time::Instant::now();
    let out = bounded_helper(&sandbox, 30, &["doctor", "--config", &config])
        .output()
        .unwrap();
    let took = started.elapsed();
    frozen.resume().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(5), "{report}{}", stderr(&out));
    assert!(
        report.contains("[broker-unreachable]") && report.contains("within 2s"),
        "{report}"
    );
    assert!(report.contains("kdc"), "doctor went on to the KDC check: {report}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");

    // A broker killed (SIGKILL) while the login is in flight: the next one logs the person in.
    let mut doomed = StuckBroker::start(&sandbox, "broker-killed");
    let config = write_client_toml(
        &sandbox,
        "killed.toml",
        &format!(
            "brokers = [\"{}\", \"{}\"]\nbroker_timeout_secs = 10\n",
            doomed.broker.url, sandbox.broker.url
        ),
    );
    let command = bounded_helper(
        &sandbox,
        30,
        &["--config", &config, "-c", &sandbox.ccache("killed"), "alice"],
    );
    let login = std::thread::spawn(move || run_with_password(command, "alicepw"));
    doomed
        .broker
        .wait_for_log(ktbroker_tests::broker::DIRECTORY_ASKED, 1)
        .unwrap();
    let _ = doomed.broker.stop(); // SIGKILL
    let out = login.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(audit_reasons(&sandbox.broker.audit_file), ["granted"]);
}

#[test]
fn a_client_killed_at_any_point_strands_nothing_the_next_login_does_not_sweep() {
    let sandbox = sandbox();
    let dir = sandbox.root.join("client").join("kills");
    std::fs::create_dir_all(&dir).unwrap();
    let ccache = format!("FILE:{}", dir.join("cc").display());
    // Kill logins at spread-out moments: before, during and after the broker call and the KDC
    // exchange (a login takes a few tens of milliseconds here).
    for n in 0..30u64 {
        let mut child = login_command(&sandbox, &sandbox.broker.url, &ccache, "alice")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"alicepw\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(n * 3));
        let _ = child.kill();
        let _ = child.wait();
    }
    // Nothing but the cache and libkrb5's NAME.XXXXXX temporaries can be there: no keytab, ever.
    let leftovers: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "cc")
        .collect();
    for path in &leftovers {
        let name = path.file_name().unwrap().to_str().unwrap();
        let suffix = name.strip_prefix("cc.").unwrap_or_default();
        assert!(
            suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_alphanumeric()),
            "an unexpected leftover: {name}"
        );
        let aged = Command::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(path)
            .status()
            .unwrap();
        assert!(aged.success());
    }
    eprintln!("30 killed logins stranded {} temporaries", leftovers.len());
    let out = run_with_password(
        login_command(&sandbox, &sandbox.broker.url, &ccache, "alice"),
        "alicepw",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let after: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(after, ["cc"], "only the cache is left");
}
