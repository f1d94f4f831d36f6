//! SSO through a real OpenID Connect provider (django-oauth-toolkit, started once for this test
//! binary): the password grant to a working ticket, the refusals that must look like a wrong
//! directory password, and ID tokens that must not be believed (signed by a foreign key,
//! expired, issued to another client, replayed).

use ktbroker_tests::broker::{Broker, broker_text};
use ktbroker_tests::client::stderr;
use ktbroker_tests::idp::{IdentityProvider, IdpClient, IdpUser, approve_in_browser};
use ktbroker_tests::sandbox::Sandbox;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const USERS: &[IdpUser] = &[
    IdpUser {
        username: "alice",
        password: "alice-sso-pw",
        groups: &["hadoop-users"],
        amr: &["pwd"],
    },
    IdpUser {
        username: "bob",
        password: "bob-sso-pw",
        groups: &["hadoop-users"],
        amr: &["pwd", "otp"],
    },
    IdpUser {
        username: "carol",
        password: "carol-sso-pw",
        groups: &["staff"],
        amr: &["pwd"],
    },
];

const fn client(client_id: &'static str, hostile: Option<&'static str>) -> IdpClient {
    IdpClient {
        client_id,
        secret: "s3cret-of-the-broker",
        grant: "password",
        hostile,
    }
}

const DEVICE_CLIENT: IdpClient = IdpClient {
    client_id: "ktb-device",
    secret: "s3cret-of-the-device-client",
    grant: "device_code",
    hostile: None,
};

/// A public client (no secret): the broker sends only its client_id.
const PUBLIC_DEVICE_CLIENT: IdpClient = IdpClient {
    client_id: "ktb-public-device",
    secret: "",
    grant: "device_code",
    hostile: None,
};

const PASSWORD: &str = "password_grant = true";

/// Tenant name, the client it uses, extra `[oidc]` lines.
const TENANTS: &[(&str, IdpClient, &str)] = &[
    ("sso", client("ktb-password", None), PASSWORD),
    (
        "sso-otp",
        client("ktb-password", None),
        "password_grant = true\nrequired_amr = [\"otp\"]",
    ),
    ("sso-replay", client("ktb-replay", Some("replay")), PASSWORD),
    (
        "sso-foreign-key",
        client("ktb-foreign-key", Some("foreign-key")),
        PASSWORD,
    ),
    ("sso-expired", client("ktb-expired", Some("expired")), PASSWORD),
    (
        "sso-audience",
        client("ktb-audience", Some("foreign-audience")),
        PASSWORD,
    ),
    // Sign-in at the provider only (the device grant), tickets only: the key stays in the broker.
    ("sso-device", DEVICE_CLIENT, "device_wait_secs = 60"),
    ("sso-public", PUBLIC_DEVICE_CLIENT, ""),
];

struct Lab {
    sandbox: Sandbox,
    idp: IdentityProvider,
    broker: Broker,
}

static LAB: OnceLock<&'static Lab> = OnceLock::new();

/// The device-login tests one at a time: they count the device client's requests.
static DEVICE_CLIENT_USED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_device_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    DEVICE_CLIENT_USED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lab() -> &'static Lab {
    ktbroker_tests::shared::start_once(&LAB, "the SSO lab", start, stop_at_exit)
}

fn start() -> anyhow::Result<Lab> {
    let sandbox = Sandbox::start()?;
    let mut clients: Vec<IdpClient> = TENANTS.iter().map(|(_, c, _)| *c).collect();
    clients.dedup_by_key(|c| c.client_id);
    let idp = IdentityProvider::start(&sandbox.root.join("idp"), &sandbox.pki, USERS, &clients)?;
    let dir = sandbox.root.join("broker-sso");
    std::fs::create_dir_all(&dir)?;
    let mut tenants = String::new();
    for (name, client, lines) in TENANTS {
        let secret = dir.join(format!("{name}.secret"));
        tenants.push_str(&idp.tenant_text(name, &sandbox.realm, client, &secret, lines)?);
    }
    // Beside the directory: passwords checked at slapd, sign-ins at the provider.
    let beside = idp.tenant_text(
        "sso-beside",
        &sandbox.realm,
        &DEVICE_CLIENT,
        &dir.join("beside.secret"),
        "",
    )?;
    let oidc_table = &beside[beside.find("[tenants.sso-beside.oidc]").expect("an oidc table")
        ..beside.find("[tenants.sso-beside.keys]").expect("a keys table")];
    tenants.push_str(&ktbroker_tests::broker::tenant_text(
        "sso-beside",
        &sandbox.realm,
        &sandbox.directory,
    ));
    tenants.push_str(&format!("\n{oidc_table}"));
    let audit = dir.join("audit.log");
    let broker = Broker::launch(
        &dir,
        &sandbox.pki,
        &sandbox.directory.service_password,
        |port| broker_text(port, &sandbox.pki, &sandbox.realm, &audit, &tenants),
        &[],
    )?;
    Ok(Lab { sandbox, idp, broker })
}

extern "C" fn stop_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(lab) = LAB.get() {
            lab.idp.kill_now();
            lab.broker.kill_daemons();
            lab.sandbox.kill_daemons();
        }
    });
}

impl Lab {
    /// `ktbroker-kinit USER@TENANT` with `password`: its exit code and stderr.
    fn login(&self, user: &str, tenant: &str, password: &str, ccache: &str) -> (Option<i32>, String) {
        let login = format!("{user}@{tenant}");
        let out = self
            .sandbox
            .login_via(&self.broker.url, &login, password, &self.sandbox.ccache(ccache));
        (out.status.code(), stderr(&out))
    }

    /// The last audit record of `user` in `tenant`.
    fn audit(&self, tenant: &str, user: &str) -> serde_json::Value {
        std::fs::read_to_string(&self.broker.audit_file)
            .expect("the broker's audit file")
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("an audit line is JSON"))
            .rfind(|r| r["tenant"] == tenant && r["username"].as_str().is_some_and(|u| u.starts_with(user)))
            .unwrap_or_else(|| panic!("no audit record of {user} in {tenant}"))
    }

    fn broker_log(&self) -> String {
        std::fs::read_to_string(&self.broker.log).expect("the broker's log")
    }

    /// `ktbroker-kinit --sso` for the device tenant, and the address and code it showed.
    fn start_sso(&self, ccache: &str, delivery: &str) -> SsoLogin {
        self.start_sso_in("sso-device", ccache, delivery)
    }

    /// `ktbroker-kinit --sso` for `tenant`.
    fn start_sso_in(&self, tenant: &str, ccache: &str, delivery: &str) -> SsoLogin {
        let mut command: Command = self.sandbox.kinit_command_via(
            &self.broker.url,
            &self.sandbox.pki.ca_cert,
            "ignored",
            &self.sandbox.ccache(ccache),
        );
        command.args(["--sso", "--tenant", tenant, "--delivery", delivery]);
        SsoLogin::start(command)
    }
}

impl SsoLogin {
    /// Runs `command` (a login with --sso) and reads the address and code it shows.
    fn start(mut command: Command) -> Self {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("starting the --sso login");
        let seen = lines_of(child.stderr.take().expect("its stderr"));
        let (line, shown) = wait_for_line(&seen, "ktbroker-kinit: sign-in ");
        let prompt = line["ktbroker-kinit: sign-in ".len()..].to_owned();
        let field = |name: &str| {
            prompt
                .split(' ')
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {prompt:?}"))
                .to_owned()
        };
        SsoLogin {
            url: field("url"),
            code: field("code"),
            shown,
            rest: seen,
            child,
        }
    }
}

/// The lines `stream` carries, as they come (read on a thread of their own).
fn lines_of(stream: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    seen
}

/// The first line of `seen` that starts with `start` (within 20 s between lines), and every line
/// up to and with it.
fn wait_for_line(seen: &std::sync::mpsc::Receiver<String>, start: &str) -> (String, Vec<String>) {
    let mut shown = Vec::new();
    loop {
        let line = seen
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no line starting {start:?}; so far: {shown:?}"));
        shown.push(line.clone());
        if line.starts_with(start) {
            return (line, shown);
        }
    }
}

/// The address and the code from the PAM module's prompt ("To log in, open URL in a browser and
/// enter the code CODE. ...").
fn prompt_fields(text: &str) -> (String, String) {
    let after = |marker: &str, ends: &[char]| {
        text.split(marker)
            .nth(1)
            .and_then(|rest| rest.split(ends).next())
            .unwrap_or_else(|| panic!("no {marker:?} in {text:?}"))
            .to_owned()
    };
    (after("open ", &[' ']), after("the code ", &['.', '\r', '\n']))
}

struct SsoLogin {
    url: String,
    code: String,
    /// What ktbroker-kinit printed up to the prompt, and what it prints after.
    shown: Vec<String>,
    rest: std::sync::mpsc::Receiver<String>,
    child: Child,
}

impl SsoLogin {
    /// The person's side, in the browser: sign in as `user` and `action` the request.
    fn approve(&self, lab: &Lab, user: &str, password: &str, action: &str) {
        approve_in_browser(&lab.sandbox.pki, &self.url, &self.code, user, password, action)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Ends it (it may go on after the login, e.g. netdisk to the cluster).
    fn finish_or_kill(mut self) -> Option<std::process::ExitStatus> {
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    /// Its exit code (within 30 s) and everything it printed.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for ktbroker-kinit") {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "ktbroker-kinit --sso still running"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        self.shown.extend(self.rest.try_iter());
        (status.code(), self.shown.join("\n"))
    }
}

#[test]
fn a_password_the_identity_provider_accepts_gets_a_ticket_and_the_directory_password_does_not() {
    let lab = lab();
    let (code, err) = lab.login("alice", "sso", "alice-sso-pw", "sso-alice");
    assert_eq!(code, Some(0), "{err}");
    let klist = lab.sandbox.klist(&lab.sandbox.ccache("sso-alice")).unwrap();
    assert!(klist.contains(&lab.sandbox.principal("alice")), "{klist}");
    let record = lab.audit("sso", "alice");
    assert_eq!(record["reason"], "granted", "{record}");
    assert_eq!(record["identity"], "oidc", "{record}");
    // The provider checked it: the broker called its token endpoint.
    assert!(
        lab.idp.access_log().contains("POST /o/token/"),
        "{}",
        lab.idp.access_log()
    );
    // The LDAP password of the same person is not this tenant's password.
    let (code, _) = lab.login("alice", "sso", "alicepw", "sso-alice-ldap");
    assert_eq!(code, Some(3));
    assert_eq!(lab.audit("sso", "alice")["reason"], "invalid_credentials");
}

#[test]
fn a_wrong_password_an_unknown_person_and_a_person_outside_the_groups_look_alike() {
    let lab = lab();
    let mut answers = Vec::new();
    for (user, password, reason) in [
        ("bob", "not-bobs-password", "invalid_credentials"),
        ("nobody", "whatever-pw", "invalid_credentials"),
        ("carol", "carol-sso-pw", "not_in_group"),
    ] {
        let (code, err) = lab.login(user, "sso", password, &format!("sso-refused-{user}"));
        assert_eq!(lab.audit("sso", user)["reason"], reason, "{user}: {err}");
        // The caller's answer tells none of them apart.
        answers.push((code, err.replace(user, "USER")));
    }
    assert_eq!(answers[0].0, Some(3), "{answers:?}");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert!(answers[0].1.contains("[auth-failed]"), "{answers:?}");
}

#[test]
fn id_tokens_that_do_not_verify_are_refused_and_say_why_in_the_log_only() {
    let lab = lab();
    for (tenant, why) in [
        ("sso-foreign-key", "the signature does not verify"),
        ("sso-expired", "expired"),
        ("sso-audience", "holds no accepted audience"),
    ] {
        let (code, err) = lab.login("alice", tenant, "alice-sso-pw", tenant);
        assert_eq!(code, Some(3), "{tenant}: {err}");
        assert!(err.contains("[auth-failed]") && !err.contains(why), "{tenant}: {err}");
        assert_eq!(lab.audit(tenant, "alice")["reason"], "token_rejected", "{tenant}");
        assert!(
            lab.sandbox.klist(&lab.sandbox.ccache(tenant)).is_none(),
            "{tenant}: no ticket"
        );
        let log = lab.broker_log();
        assert!(
            log.lines()
                .any(|l| l.contains("identity provider token rejected") && l.contains(why)),
            "{tenant}: {why:?} not in the broker's log"
        );
    }
    // Nothing the provider sent is in the log: no token, no password.
    let log = lab.broker_log();
    assert!(
        !log.contains("eyJ") && !log.contains("alice-sso-pw"),
        "a token or password in the log"
    );
}

#[test]
fn an_id_token_the_broker_accepted_once_is_refused_the_second_time() {
    let lab = lab();
    let (first, err) = lab.login("alice", "sso-replay", "alice-sso-pw", "replay-1");
    assert_eq!(first, Some(0), "{err}");
    // The provider answers the next grant with the very same response.
    let (second, err) = lab.login("alice", "sso-replay", "alice-sso-pw", "replay-2");
    assert_eq!(second, Some(3), "{err}");
    assert_eq!(lab.audit("sso-replay", "alice")["reason"], "token_rejected");
    assert!(lab.broker_log().contains("replayed"));
}

#[test]
fn a_tenant_can_require_a_second_factor_in_the_token() {
    let lab = lab();
    let (code, err) = lab.login("alice", "sso-otp", "alice-sso-pw", "otp-alice");
    assert_eq!(code, Some(3), "alice authenticated with a password only: {err}");
    assert_eq!(lab.audit("sso-otp", "alice")["reason"], "auth_context_insufficient");
    let (code, err) = lab.login("bob", "sso-otp", "bob-sso-pw", "otp-bob");
    assert_eq!(code, Some(0), "bob's token says otp: {err}");
    assert_eq!(lab.audit("sso-otp", "bob")["identity"], "oidc");
}

#[test]
fn a_person_signs_in_at_the_provider_in_a_browser_and_gets_a_ticket_without_a_password_here() {
    let lab = lab();
    let _one = one_device_test_at_a_time();
    let login = lab.start_sso("device-alice", "ticket");
    assert!(login.url.starts_with(&lab.idp.issuer), "{}", login.url);
    // The address with the code in it, where the provider offers one.
    let complete = format!("Or open {}/device/?user_code={}", lab.idp.issuer, login.code);
    assert!(login.shown.contains(&complete), "{:?}", login.shown);
    assert!(
        login
            .shown
            .iter()
            .any(|l| l.contains("open") && l.contains(&login.code)),
        "{:?}",
        login.shown
    );
    login.approve(lab, "alice", "alice-sso-pw", "accept");
    let (code, shown) = login.finish();
    assert_eq!(code, Some(0), "{shown}");
    let klist = lab.sandbox.klist(&lab.sandbox.ccache("device-alice")).unwrap();
    assert!(klist.contains(&lab.sandbox.principal("alice")), "{klist}");
    let record = lab.audit("sso-device", "alice");
    assert_eq!(record["reason"], "granted", "{record}");
    assert_eq!(record["delivery"], "ticket", "{record}");
    assert_eq!(record["identity"], "oidc", "{record}");
    // A password login to this tenant is refused before any password is checked.
    let (code, err) = lab.login("alice", "sso-device", "alice-sso-pw", "device-password");
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("[sso-only]"), "{err}");
}

#[test]
fn a_sign_in_refused_at_the_provider_or_by_its_groups_gets_nothing() {
    let lab = lab();
    let _one = one_device_test_at_a_time();
    // carol signs in, but is not in hadoop-users.
    let login = lab.start_sso("device-carol", "ticket");
    login.approve(lab, "carol", "carol-sso-pw", "accept");
    let (code, shown) = login.finish();
    assert_eq!(code, Some(3), "{shown}");
    assert!(shown.contains("[auth-failed]"), "{shown}");
    assert_eq!(lab.audit("sso-device", "carol")["reason"], "not_in_group");
    // bob refuses the request at the provider.
    let login = lab.start_sso("device-bob", "ticket");
    login.approve(lab, "bob", "bob-sso-pw", "deny");
    let (code, shown) = login.finish();
    assert_eq!(code, Some(3), "{shown}");
    let denied = std::fs::read_to_string(&lab.broker.audit_file).unwrap();
    assert!(denied.contains("\"reason\":\"sso_denied\""), "{denied}");
    assert!(lab.sandbox.klist(&lab.sandbox.ccache("device-bob")).is_none());
}

#[test]
fn hanging_up_at_the_terminal_ends_the_brokers_wait_for_the_provider() {
    let lab = lab();
    let _one = one_device_test_at_a_time();
    let mut login = lab.start_sso("device-cancelled", "ticket");
    let polls = || lab.idp.token_requests(DEVICE_CLIENT.client_id);
    std::thread::sleep(Duration::from_millis(2500));
    let polling = polls();
    login.child.kill().unwrap();
    let _ = login.child.wait();
    std::thread::sleep(Duration::from_millis(1500));
    let after_hang_up = polls();
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(polls(), after_hang_up, "the broker went on polling after the hang-up");
    assert!(polling > 0, "the broker never polled while the person was signing in");
    let audit = std::fs::read_to_string(&lab.broker.audit_file).unwrap();
    let cancelled = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["tenant"] == "sso-device" && r["cancelled"] == true)
        .count();
    assert!(cancelled >= 1, "{audit}");
}

#[test]
fn the_pam_module_shows_the_sign_in_in_a_prompt_and_the_session_gets_the_ticket() {
    let lab = lab();
    let _one = one_device_test_at_a_time();
    ktbroker_tests::accounts::local_users();
    let stack = ktbroker_tests::pam_stack::PamStack::create(&lab.sandbox).unwrap();
    std::fs::write(
        &stack.client_toml,
        format!(
            "version = 1\nbrokers = [\"{}\"]\nca_file = \"{}\"\ntenant = \"sso-device\"\ndelivery = \"ticket\"\n",
            lab.broker.url,
            lab.sandbox.pki.ca_cert.display()
        ),
    )
    .unwrap();
    let service = stack.service("sso-login", "sso sso_wait=60", "").unwrap();
    let mut driver = stack
        .driver(
            &service,
            "alice",
            &["authenticate", "setcred", "open_session", "klist", "close_session"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = lines_of(driver.stderr.take().unwrap());
    // The prompt: "To log in, open URL in a browser and enter the code CODE." (then Enter).
    let (prompt, seen) = wait_for_line(&said, "pam prompt: To log in, open ");
    let (url, code) = prompt_fields(&prompt);
    // Enter at once: the module then waits for the helper, which waits for the sign-in.
    use std::io::Write;
    driver.stdin.take().unwrap().write_all(b"\n").unwrap();
    approve_in_browser(&lab.sandbox.pki, &url, &code, "alice", "alice-sso-pw", "accept").unwrap();
    let out = driver.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rest: Vec<String> = said.try_iter().collect();
    assert!(stdout.contains("authenticate rc=0"), "{stdout}\n{seen:?}\n{rest:?}");
    assert!(stdout.contains("open_session rc=0"), "{stdout}");
    assert!(stdout.contains("prompts=1"), "one prompt, no password asked: {stdout}");
    // The session's cache held alice's ticket (klist of KRB5CCNAME before close_session).
    assert!(stdout.contains("KRB5CCNAME=FILE:"), "{stdout}");
    assert!(stdout.contains(&lab.sandbox.principal("alice")), "{stdout}");
    assert_eq!(lab.audit("sso-device", "alice")["reason"], "granted");
}

#[test]
fn a_keyboard_interactive_ssh_login_signs_in_at_the_provider_and_the_session_has_the_ticket() {
    use ktbroker_tests::sshd::{AuthMode, Sshd, Stack};
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    let lab = lab();
    let _one = one_device_test_at_a_time();
    ktbroker_tests::accounts::local_users();
    let dir = lab.sandbox.root.join("ssh-sso");
    let (pending, caches) = (dir.join("pending"), dir.join("caches"));
    for d in [&pending, &caches] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
    let client_toml = dir.join("client.toml");
    std::fs::write(
        &client_toml,
        format!(
            "version = 1\nbrokers = [\"{}\"]\nca_file = \"{}\"\ntenant = \"sso-device\"\ndelivery = \"ticket\"\n",
            lab.broker.url,
            lab.sandbox.pki.ca_cert.display()
        ),
    )
    .unwrap();
    let module = ktbroker_tests::bins::project_binary("libpam_ktbroker.so");
    let args = format!(
        "helper={} krb5_config={} config={} ccache_dir={} ccache=FILE:{}/krb5cc_%u_XXXXXX sessions_dir={} timeout=10",
        ktbroker_tests::bins::project_binary("ktbroker-kinit").display(),
        lab.sandbox.realm.krb5_conf.display(),
        client_toml.display(),
        pending.display(),
        caches.display(),
        dir.join("sessions").display()
    );
    let stack = Stack::Service(format!(
        "auth required {m} {args} sso sso_wait=60\naccount required pam_permit.so\nsession required {m} {args}\n",
        m = module.display()
    ));
    let krb5 = lab.sandbox.realm.krb5_conf.display().to_string();
    let sshd = Sshd::start(
        &dir.join("sshd"),
        "ktbroker-sso-sshd",
        &stack,
        AuthMode::KeyboardInteractive,
        &[("KRB5_CONFIG", &krb5)],
    )
    .unwrap();
    // ssh on a terminal of its own (script(1)): it shows the prompt there and reads Enter there.
    let ssh = format!(
        "ssh -F /dev/null -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o GSSAPIAuthentication=no -o PubkeyAuthentication=no -o PreferredAuthentications=keyboard-interactive \
         -o ConnectTimeout=10 -o LogLevel=ERROR alice@127.0.0.1 'klist; echo SESSION_DONE'",
        sshd.port
    );
    let mut child = Command::new("timeout")
        .args(["90", "script", "-qfec", &ssh, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (chunks, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || chunks.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = String::new();
    while !shown.contains("signed in:") {
        let chunk = output
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no sign-in prompt over ssh: {shown:?}\nsshd:\n{}", sshd.log_tail()));
        shown.push_str(&String::from_utf8_lossy(&chunk));
    }
    let (url, code) = prompt_fields(&shown);
    approve_in_browser(&lab.sandbox.pki, &url, &code, "alice", "alice-sso-pw", "accept").unwrap();
    child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !shown.contains("SESSION_DONE") && std::time::Instant::now() < deadline {
        if let Ok(chunk) = output.recv_timeout(Duration::from_secs(1)) {
            shown.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        shown.contains(&format!("Default principal: {}", lab.sandbox.principal("alice"))),
        "{shown}\nsshd:\n{}",
        sshd.log_tail()
    );
}

#[test]
fn a_rotated_signing_key_is_fetched_when_a_token_names_it() {
    let lab = lab();
    // A provider and a broker of this test's own: the provider is restarted with a new key.
    let dir = lab.sandbox.root.join("rotation");
    let rotating = client("ktb-rotating", None);
    let mut idp = IdentityProvider::start(&dir.join("idp"), &lab.sandbox.pki, USERS, &[rotating]).unwrap();
    let tenant = idp
        .tenant_text("rotating", &lab.sandbox.realm, &rotating, &dir.join("secret"), PASSWORD)
        .unwrap();
    let audit = dir.join("broker").join("audit.log");
    let broker = Broker::launch(
        &dir.join("broker"),
        &lab.sandbox.pki,
        "unused",
        |port| broker_text(port, &lab.sandbox.pki, &lab.sandbox.realm, &audit, &tenant),
        &[],
    )
    .unwrap();
    let login = |name: &str| {
        let out = lab
            .sandbox
            .login_via(&broker.url, "alice@rotating", "alice-sso-pw", &lab.sandbox.ccache(name));
        (out.status.code(), stderr(&out))
    };
    let jwks_fetches = |idp: &IdentityProvider| idp.access_log().matches("GET /o/.well-known/jwks.json").count();
    let (code, err) = login("rotation-1");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(jwks_fetches(&idp), 1);
    idp.restart_with_a_new_key().unwrap();
    // The broker's cached keys lack the new key id; past the refetch interval it fetches them.
    std::thread::sleep(ktbroker_broker::oidc::provider::KEY_REFETCH_INTERVAL + Duration::from_millis(500));
    let (code, err) = login("rotation-2");
    assert_eq!(
        code,
        Some(0),
        "{err}\n{}",
        std::fs::read_to_string(&broker.log).unwrap()
    );
    assert_eq!(jwks_fetches(&idp), 2, "fetched again for the new key, once");
    // Known now: the next login uses the cache.
    let (code, err) = login("rotation-3");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(jwks_fetches(&idp), 2);
}

#[test]
fn beside_the_directory_passwords_go_to_the_directory_and_sign_ins_to_the_provider() {
    let lab = lab();
    let _one = one_device_test_at_a_time();
    // The directory password (slapd's), not the provider's.
    let (code, err) = lab.login("alice", "sso-beside", "alicepw", "beside-password");
    assert_eq!(code, Some(0), "{err}");
    let record = lab.audit("sso-beside", "alice");
    assert_eq!(
        (record["reason"].as_str(), record["identity"].as_str()),
        (Some("granted"), Some("directory"))
    );
    let (code, _) = lab.login("alice", "sso-beside", "alice-sso-pw", "beside-provider-password");
    assert_eq!(code, Some(3), "the provider's password is not the directory's");
    // A sign-in at the provider, for the same tenant.
    let login = lab.start_sso_in("sso-beside", "beside-sso", "keytab");
    login.approve(lab, "alice", "alice-sso-pw", "accept");
    let (code, shown) = login.finish();
    assert_eq!(code, Some(0), "{shown}");
    let record = lab.audit("sso-beside", "alice");
    assert_eq!(
        (record["reason"].as_str(), record["identity"].as_str()),
        (Some("granted"), Some("oidc"))
    );
    let klist = lab.sandbox.klist(&lab.sandbox.ccache("beside-sso")).unwrap();
    assert!(klist.contains(&lab.sandbox.principal("alice")), "{klist}");
}

#[test]
fn netdisk_signs_in_at_the_provider_when_it_needs_a_ticket() {
    let lab = lab();
    let _one = one_device_test_at_a_time();
    // Something that takes connections where the NameNode would be: netdisk checks that one
    // answers before it logs in; what it does with HDFS afterwards is not this test's concern.
    let namenode = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = namenode.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in namenode.incoming().map_while(Result::ok) {
            held.push(stream);
        }
    });
    let dir = lab.sandbox.root.join("netdisk-sso");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("netdisk.toml"),
        format!("version = 1\nnamenode = \"hdfs://127.0.0.1:{port}\"\ntimeout_secs = 5\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("client.toml"),
        format!(
            "version = 1\nbrokers = [\"{}\"]\nca_file = \"{}\"\ntenant = \"sso-device\"\n",
            lab.broker.url,
            lab.sandbox.pki.ca_cert.display()
        ),
    )
    .unwrap();
    let ccache = lab.sandbox.ccache("netdisk-sso");
    let mut command = Command::new(ktbroker_tests::bins::project_binary("netdisk"));
    command
        .arg("--config")
        .arg(dir.join("netdisk.toml"))
        .arg("--client-config")
        .arg(dir.join("client.toml"))
        .args([
            "-c",
            &ccache,
            "--user",
            "alice",
            "--transport",
            "native",
            "--sso",
            "ls",
            "/",
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KRB5_CONFIG", &lab.sandbox.realm.krb5_conf);
    let login = SsoLogin::start(command);
    login.approve(lab, "alice", "alice-sso-pw", "accept");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ticket = loop {
        if let Some(klist) = lab.sandbox.klist(&ccache) {
            break klist;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ticket after the sign-in: {:?}",
            login.shown
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(ticket.contains(&lab.sandbox.principal("alice")), "{ticket}");
    let record = lab.audit("sso-device", "alice");
    assert_eq!(
        (record["reason"].as_str(), record["identity"].as_str()),
        (Some("granted"), Some("oidc"))
    );
    let _ = login.finish_or_kill();
}

#[test]
fn check_config_online_reaches_the_identity_provider_and_names_it_when_it_cannot() {
    let lab = lab();
    let check = |config: &std::path::Path| {
        let out = lab
            .broker
            .command_for(config)
            .args(["check-config", "--online"])
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = check(&lab.broker.config);
    assert_eq!(code, Some(0), "{text}");
    // An issuer with nothing behind it: the tenant's issuer key is named.
    let text = std::fs::read_to_string(&lab.broker.config).unwrap();
    let dead = format!("https://127.0.0.1:{}/o", ktbroker_tests::daemon::free_port());
    let broken = lab.sandbox.root.join("broker-sso").join("dead-issuer.toml");
    std::fs::write(&broken, text.replacen(&lab.idp.issuer, &dead, 1)).unwrap();
    let (code, text) = check(&broken);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("error") && l.contains("tenants.sso.oidc.issuer")),
        "{text}"
    );
}

#[test]
fn a_public_client_without_a_secret_signs_people_in_too() {
    let lab = lab();
    let _one = one_device_test_at_a_time();
    let config = std::fs::read_to_string(&lab.broker.config).unwrap();
    let public = &config[config.find("[tenants.sso-public.oidc]").unwrap()..];
    let public = &public[..public.find("[tenants.sso-public.keys]").unwrap()];
    assert!(!public.contains("client_secret_file"), "{public}");
    let login = lab.start_sso_in("sso-public", "public-bob", "ticket");
    login.approve(lab, "bob", "bob-sso-pw", "accept");
    let (code, shown) = login.finish();
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(lab.audit("sso-public", "bob")["reason"], "granted");
}
