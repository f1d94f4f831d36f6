//! A complete sandbox: test PKI, MIT realm, slapd directory with demo users, and ktbrokerd, all in
//! one temporary directory. Used by the end-to-end tests and by README command 1.
//!
//! Dropping it stops every daemon. If a daemon died on its own, or the test is failing, the
//! directory is kept and its path printed with the logs to read.

use crate::bins::project_binary;
use crate::broker::Broker;
use crate::directory::{Directory, DirectoryUser, PasswordScheme, PasswordState};
use crate::pki::TestPki;
use crate::realm::Realm;
use ktbroker_kinit::fetch::BrokerEndpoint;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A demo person: a directory account, and (unless `kerberos_password` is None) a principal.
#[derive(Debug, Clone)]
pub struct DemoUser {
    pub name: &'static str,
    pub directory_password: &'static str,
    /// The principal's own Kerberos password: a different password system, still valid afterwards.
    pub kerberos_password: Option<&'static str>,
    pub scheme: PasswordScheme,
    pub in_group: bool,
    /// Member (by memberUid) of the posixGroup `directory::POSIX_GROUP_DN`.
    pub in_posix_group: bool,
    /// What the directory's password policy says of the directory password.
    pub password_state: PasswordState,
}

/// alice and bob may log in ({SSHA} and {ARGON2} passwords); carol is not in the group; dave is in
/// the group but has no Kerberos principal; erin is in the group but an administrator reset her
/// directory password (she must change it first); frank's password has expired, and gina's too,
/// with grace logins left. Only bob is in the posixGroup.
pub const DEMO_USERS: &[DemoUser] = &[
    DemoUser {
        name: "alice",
        directory_password: "alicepw",
        kerberos_password: Some("alice-kdc-pw"),
        scheme: PasswordScheme::Ssha,
        in_group: true,
        in_posix_group: false,
        password_state: PasswordState::Current,
    },
    DemoUser {
        name: "bob",
        directory_password: "bobpw",
        kerberos_password: Some("bob-kdc-pw"),
        scheme: PasswordScheme::Argon2,
        in_group: true,
        in_posix_group: true,
        password_state: PasswordState::Current,
    },
    DemoUser {
        name: "carol",
        directory_password: "carolpw",
        kerberos_password: Some("carol-kdc-pw"),
        scheme: PasswordScheme::Ssha,
        in_group: false,
        in_posix_group: false,
        password_state: PasswordState::Current,
    },
    DemoUser {
        name: "dave",
        directory_password: "davepw",
        kerberos_password: None,
        scheme: PasswordScheme::Ssha,
        in_group: true,
        in_posix_group: false,
        password_state: PasswordState::Current,
    },
    DemoUser {
        name: "erin",
        directory_password: "erinpw",
        kerberos_password: Some("erin-kdc-pw"),
        scheme: PasswordScheme::Ssha,
        in_group: true,
        in_posix_group: false,
        password_state: PasswordState::ResetByAdmin,
    },
    DemoUser {
        name: "frank",
        directory_password: "frankpw",
        kerberos_password: Some("frank-kdc-pw"),
        scheme: PasswordScheme::Ssha,
        in_group: true,
        in_posix_group: false,
        password_state: PasswordState::Expired,
    },
    DemoUser {
        name: "gina",
        directory_password: "ginapw",
        kerberos_password: Some("gina-kdc-pw"),
        scheme: PasswordScheme::Ssha,
        in_group: true,
        in_posix_group: false,
        password_state: PasswordState::ExpiredWithGrace,
    },
];

pub struct Sandbox {
    dir: Option<tempfile::TempDir>,
    pub root: PathBuf,
    pub pki: TestPki,
    pub realm: Realm,
    pub directory: Directory,
    pub broker: Broker,
}

/// A sandbox for one test; a failure to start names the usual cause.
pub fn start_sandbox() -> Sandbox {
    Sandbox::start().expect("starting the sandbox (run scripts/install-deps.sh if a daemon is missing)")
}

impl Sandbox {
    /// Starts everything in a new directory under the system temp dir (about 1 s).
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("ktbroker-sandbox-").tempdir()?;
        let root = dir.path().to_owned();
        let pki = TestPki::create(&root.join("pki"), "ktbroker sandbox CA")?;
        let realm = Realm::start(&root.join("kdc"))?;
        for user in DEMO_USERS {
            if let Some(password) = user.kerberos_password {
                realm.add_user(user.name, password)?;
            }
        }
        let directory_users: Vec<DirectoryUser> = DEMO_USERS
            .iter()
            .map(|u| DirectoryUser {
                uid: u.name.into(),
                password: u.directory_password.into(),
                scheme: u.scheme,
                in_group: u.in_group,
                in_posix_group: u.in_posix_group,
                password_state: u.password_state,
            })
            .collect();
        let directory = Directory::start(&root.join("ldap"), &pki, &directory_users)?;
        let broker = Broker::start(&root.join("broker"), &pki, &realm, &directory)?;
        std::fs::create_dir_all(root.join("client"))?;
        Ok(Self {
            dir: Some(dir),
            root,
            pki,
            realm,
            directory,
            broker,
        })
    }

    pub fn principal(&self, user: &str) -> String {
        format!("{user}@{}", self.realm.realm)
    }

    /// A FILE ccache path in the sandbox's client directory.
    pub fn ccache(&self, name: &str) -> String {
        format!("FILE:{}", self.root.join("client").join(name).display())
    }

    /// How an in-process client reaches the broker.
    pub fn endpoint(&self) -> BrokerEndpoint {
        BrokerEndpoint {
            url: self.broker.url.clone(),
            ca_pem: std::fs::read(&self.pki.ca_cert).expect("reading the sandbox CA"),
            tls_server_name: None,
            client_identity: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// `ktbroker-kinit` for `user` into `ccache`, with only this realm in its environment.
    pub fn kinit_command(&self, user: &str, ccache: &str) -> Command {
        self.kinit_command_via(&self.broker.url, &self.pki.ca_cert, user, ccache)
    }

    /// Like [`Self::kinit_command`], against a chosen broker URL and CA file.
    pub fn kinit_command_via(&self, broker_url: &str, ca_file: &std::path::Path, user: &str, ccache: &str) -> Command {
        self.kinit_command_of(&project_binary("ktbroker-kinit"), broker_url, ca_file, user, ccache)
    }

    /// Like [`Self::kinit_command_via`] with another build of ktbroker-kinit (`program`).
    pub fn kinit_command_of(
        &self,
        program: &std::path::Path,
        broker_url: &str,
        ca_file: &std::path::Path,
        user: &str,
        ccache: &str,
    ) -> Command {
        let mut command = Command::new(program);
        command
            .args(["--broker", broker_url, "--ca-file"])
            .arg(ca_file)
            .args(["-c", ccache, user])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("KRB5_CONFIG", &self.realm.krb5_conf);
        command
    }

    /// Runs `ktbroker-kinit` with `password` on its stdin (a pipe, as scripts and PAM use it).
    pub fn login(&self, user: &str, password: &str, ccache: &str) -> Output {
        self.login_via(&self.broker.url, user, password, ccache)
    }

    /// Like [`Self::login`], against the broker at `broker_url`.
    pub fn login_via(&self, broker_url: &str, user: &str, password: &str, ccache: &str) -> Output {
        run_with_password(
            self.kinit_command_via(broker_url, &self.pki.ca_cert, user, ccache),
            password,
        )
    }

    /// `ktbroker-kinit status --json -c CCACHE` (principal, validity, times, delivery), with only
    /// this realm in its environment.
    pub fn status_json(&self, ccache: &str) -> serde_json::Value {
        let out = Command::new(project_binary("ktbroker-kinit"))
            .args(["status", "--json", "-c", ccache])
            .env("KRB5_CONFIG", &self.realm.krb5_conf)
            .output()
            .expect("running ktbroker-kinit status");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("no status for {ccache}: {}", String::from_utf8_lossy(&out.stderr)))
    }

    /// `klist -c CCACHE` output, or None if klist fails.
    pub fn klist(&self, ccache: &str) -> Option<String> {
        let out = self.realm.command("klist").args(["-c", ccache]).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `config` (a broker.toml) with the key source authenticating as the writing principal
    /// (`ktbroker/writer`: may create principals and randomize keys), for provisioning and rotation.
    pub fn with_writer(&self, config: String) -> String {
        use crate::realm::{BROKER_ADMIN, BROKER_WRITER};
        config
            .replace(
                &format!("admin_principal = \"{BROKER_ADMIN}@"),
                &format!("admin_principal = \"{BROKER_WRITER}@"),
            )
            .replace(
                &self.realm.broker_admin_keytab.display().to_string(),
                &self.realm.broker_writer_keytab.display().to_string(),
            )
    }

    /// `config` (a broker.toml) with a krb5 profile of its own (ROOT/krb5-NAME.conf) that sends
    /// the broker to kadmind at 127.0.0.1:`port` (a relay in front of the realm's kadmind).
    pub fn with_kadmind_at(&self, config: String, port: u16, name: &str) -> anyhow::Result<String> {
        let krb5_conf = self.root.join(format!("krb5-{name}.conf"));
        let direct = format!("admin_server = 127.0.0.1:{}", self.realm.kadmin_port);
        let profile = std::fs::read_to_string(&self.realm.krb5_conf)?;
        anyhow::ensure!(profile.contains(&direct), "no `{direct}` in {profile}");
        std::fs::write(
            &krb5_conf,
            profile.replace(&direct, &format!("admin_server = 127.0.0.1:{port}")),
        )?;
        Ok(config.replace(
            &format!("krb5_config = \"{}\"", self.realm.krb5_conf.display()),
            &format!("krb5_config = \"{}\"", krb5_conf.display()),
        ))
    }

    /// A second broker on this realm and directory, in `root/NAME`, whose configuration is `edit`
    /// applied to the standard one. Stopped when dropped.
    pub fn extra_broker(&self, name: &str, edit: impl FnOnce(String) -> String) -> anyhow::Result<Broker> {
        Broker::start_with(&self.root.join(name), &self.pki, &self.realm, &self.directory, edit)
    }

    /// A second broker whose key source is `kadmin-cli` (one kadmin process per request).
    pub fn kadmin_cli_broker(&self) -> anyhow::Result<Broker> {
        self.extra_broker("broker-cli", |c| {
            c.replace("source = \"kadmin\"", "source = \"kadmin-cli\"")
        })
    }

    /// A client.toml for this sandbox's broker and CA (what ktbroker-kinit, PAM and netdisk read).
    pub fn client_toml(&self) -> String {
        crate::templates::render(
            "client.toml.in",
            &[
                ("BROKER_URL", &self.broker.url),
                ("CA_FILE", &self.pki.ca_cert.display().to_string()),
            ],
        )
        .expect("templates/client.toml.in renders")
    }

    /// Fails if any daemon died.
    /// Stops every daemon at once (for a process-wide sandbox at exit; see [`crate::cluster`]).
    pub fn kill_daemons(&self) {
        self.broker.kill_daemons();
        self.directory.kill_daemons();
        self.realm.kill_daemons();
    }

    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.realm.check_alive()?;
        self.directory.check_alive()?;
        self.broker.check_alive()
    }

    /// What a person types in another terminal to log in against this sandbox.
    pub fn login_hint(&self) -> String {
        format!(
            "KRB5_CONFIG={krb5} {kinit} --broker {url} --ca-file {ca} -c {cc} alice\n\
             (password: alicepw; other demo users: bob/bobpw; carol is not authorized; dave has no principal)\n\
             KRB5_CONFIG={krb5} klist -c {cc}",
            krb5 = self.realm.krb5_conf.display(),
            kinit = project_binary("ktbroker-kinit").display(),
            url = self.broker.url,
            ca = self.pki.ca_cert.display(),
            cc = self.ccache("alice.ccache"),
        )
    }
}

/// Runs `command` (ktbroker-kinit, netdisk, the PAM driver) with `password` and a newline on its
/// stdin (a pipe, as scripts and PAM use it).
pub fn run_with_password(mut command: Command, password: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {:?}: {e}", command.get_program()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let _ = stdin.write_all(password.as_bytes());
    let _ = stdin.write_all(b"\n");
    drop(stdin);
    child.wait_with_output().expect("waiting for the command")
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let deaths: Vec<String> = [self.broker.stop(), self.directory.stop(), self.realm.stop()]
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        let failing = std::thread::panicking() || !deaths.is_empty();
        if failing && let Some(dir) = self.dir.take() {
            let kept = dir.keep();
            eprintln!(
                "ktbroker sandbox kept for inspection: {}\n  logs: kdc/*.log kdc/*.out ldap/slapd.log broker/ktbrokerd.log\n  \
                 re-run one test with: cargo test -p ktbroker-tests --test e2e -- --exact NAME --nocapture",
                kept.display()
            );
        }
        if !deaths.is_empty() && !std::thread::panicking() {
            panic!("a sandbox daemon died during the test:\n{}", deaths.join("\n"));
        }
    }
}
