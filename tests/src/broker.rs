//! ktbrokerd as a real process: config written from the realm and directory it should use, a TLS
//! certificate from the test PKI, readiness by a gRPC health check over TLS.

use crate::bins::project_binary;
use crate::daemon::{Daemon, free_port, write_private};
use crate::directory::Directory;
use crate::pki::TestPki;
use crate::realm::{BROKER_ADMIN, Realm};
use crate::templates::render;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What ktbrokerd logs (debug) when a request's directory check begins: a request is in flight.
pub const DIRECTORY_ASKED: &str = "directory check started";

pub struct Broker {
    pub port: u16,
    pub url: String,
    pub config: PathBuf,
    pub log: PathBuf,
    /// The hash-chained JSON audit file.
    pub audit_file: PathBuf,
    /// The broker's $CREDENTIALS_DIRECTORY.
    pub credentials: PathBuf,
    daemon: Daemon,
}

impl Broker {
    /// A broker with the standard sandbox configuration (LDAPS, kadm5 key source, audit file).
    pub fn start(dir: &Path, pki: &TestPki, realm: &Realm, directory: &Directory) -> anyhow::Result<Self> {
        Self::start_with(dir, pki, realm, directory, |config| config)
    }

    /// A broker whose configuration is `edit` applied to the standard one (replace a line, append
    /// a table).
    pub fn start_with(
        dir: &Path,
        pki: &TestPki,
        realm: &Realm,
        directory: &Directory,
        edit: impl FnOnce(String) -> String,
    ) -> anyhow::Result<Self> {
        Self::start_with_env(dir, pki, realm, directory, edit, &[])
    }

    /// Like [`Self::start_with`], with extra environment variables (e.g. systemd's NOTIFY_SOCKET).
    pub fn start_with_env(
        dir: &Path,
        pki: &TestPki,
        realm: &Realm,
        directory: &Directory,
        edit: impl FnOnce(String) -> String,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let audit_file = dir.join("audit.log");
        let edit =
            |port: u16| -> anyhow::Result<String> { Ok(edit(config_text(port, pki, realm, directory, &audit_file)?)) };
        Self::launch(dir, pki, &directory.service_password, edit, env)
    }

    /// A broker in `dir` whose configuration is `config(port)`; the directory's service password
    /// is the credential `ldap-password`, the audit file `dir/audit.log`.
    pub fn launch(
        dir: &Path,
        pki: &TestPki,
        service_password: &str,
        config_for_port: impl FnOnce(u16) -> anyhow::Result<String>,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port();
        // Secrets reach the broker as systemd credentials would: a private directory named by
        // $CREDENTIALS_DIRECTORY, referenced as `credential:NAME` in the config.
        let credentials = dir.join("credentials");
        std::fs::create_dir_all(&credentials)?;
        std::fs::set_permissions(&credentials, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        write_private(&credentials.join("ldap-password"), format!("{service_password}\n"))?;
        let config = dir.join("broker.toml");
        let audit_file = dir.join("audit.log");
        std::fs::write(&config, config_for_port(port)?)?;

        let log = dir.join("ktbrokerd.log");
        let mut command = ktbrokerd_command(&config, &credentials);
        command.envs(env.iter().map(|(k, v)| (*k, v)));
        let mut daemon = Daemon::spawn("ktbrokerd", &mut command, &log)?;
        let url = format!("https://127.0.0.1:{port}");
        let ca = std::fs::read(&pki.ca_cert)?;
        daemon.wait_ready(Duration::from_secs(20), || health_serving(&url, &ca))?;
        Ok(Self {
            port,
            url,
            config,
            log,
            audit_file,
            credentials,
            daemon,
        })
    }

    /// `ktbrokerd --config CONFIG` with the environment the running broker has; add a subcommand.
    /// SIGSTOP: the broker stops answering, its connections and listener stay open (a wedged
    /// process, not a dead one).
    pub fn pause(&self) -> anyhow::Result<()> {
        self.daemon.signal(rustix::process::Signal::STOP)
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) -> anyhow::Result<()> {
        self.daemon.signal(rustix::process::Signal::CONT)
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    pub fn command(&self) -> Command {
        self.command_for(&self.config)
    }

    /// Like [`Self::command`] with another config file.
    pub fn command_for(&self, config: &Path) -> Command {
        ktbrokerd_command(config, &self.credentials)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.daemon.check_alive()
    }

    /// SIGHUP: the broker re-reads its TLS certificate.
    pub fn reload(&self) -> anyhow::Result<()> {
        self.daemon.signal(rustix::process::Signal::HUP)
    }

    /// Waits until the broker's log contains `text` `count` times (or fails after 10 s).
    pub fn wait_for_log(&self, text: &str, count: usize) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.log_text().matches(text).count() < count {
            anyhow::ensure!(std::time::Instant::now() < deadline, "ktbrokerd never logged {text:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// SIGTERM, then the exit status (the broker should finish in-flight requests and exit 0).
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.daemon.terminate(Duration::from_secs(20))
    }

    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.daemon.stop()
    }

    pub fn kill_daemons(&self) {
        self.daemon.kill_now();
    }
}

/// The sandbox's one tenant.
pub const TENANT: &str = "sandbox";

/// templates/broker.toml.in with the sandbox's one tenant.
fn config_text(
    port: u16,
    pki: &TestPki,
    realm: &Realm,
    directory: &Directory,
    audit_file: &Path,
) -> anyhow::Result<String> {
    broker_text(port, pki, realm, audit_file, &tenant_text(TENANT, realm, directory))
}

/// templates/broker.toml.in with the given `[tenants.*]` tables.
pub fn broker_text(
    port: u16,
    pki: &TestPki,
    realm: &Realm,
    audit_file: &Path,
    tenants: &str,
) -> anyhow::Result<String> {
    render(
        "broker.toml.in",
        &[
            ("LISTEN", &format!("127.0.0.1:{port}")),
            ("TLS_CERT", &pki.server_cert.display().to_string()),
            ("TLS_KEY", &pki.server_key.display().to_string()),
            ("AUDIT_FILE", &audit_file.display().to_string()),
            ("KRB5_CONFIG", &realm.krb5_conf.display().to_string()),
            ("TENANTS", tenants),
        ],
    )
}

/// A `[tenants.NAME]` table for `realm` and `directory` (templates/tenant.toml.in: search-then-bind
/// over LDAPS, kadm5 keys).
pub fn tenant_text(name: &str, realm: &Realm, directory: &Directory) -> String {
    render(
        "tenant.toml.in",
        &[
            ("TENANT", name),
            ("REALM", &realm.realm),
            ("LDAP_URL", &directory.url),
            ("LDAP_CA", &directory.ca_cert.display().to_string()),
            ("BROKER_ADMIN", &format!("{BROKER_ADMIN}@{}", realm.realm)),
            ("ADMIN_KEYTAB", &realm.broker_admin_keytab.display().to_string()),
        ],
    )
    .expect("templates/tenant.toml.in renders")
}

fn ktbrokerd_command(config: &Path, credentials: &Path) -> Command {
    let mut command = Command::new(project_binary("ktbrokerd"));
    command
        .arg("--config")
        .arg(config)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CREDENTIALS_DIRECTORY", credentials)
        .env("KTBROKER_LOG", "info,ktbroker=debug")
        // Every test broker runs where MIT's tools would speak German (krb5-locales): nothing the
        // broker decides may rest on their English, and the kadmin it runs must be given C.
        .env("LC_ALL", "C.UTF-8")
        .env("LANGUAGE", "de");
    command
}

/// True when the broker answers `grpc.health.v1` with SERVING over TLS verified against `ca_pem`.
pub fn health_serving(url: &str, ca_pem: &[u8]) -> bool {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let endpoint = ktbroker_kinit::fetch::BrokerEndpoint {
            url: url.to_owned(),
            ca_pem: ca_pem.to_vec(),
            tls_server_name: None,
            client_identity: None,
            timeout: Duration::from_secs(2),
        };
        let Ok(channel) = ktbroker_kinit::fetch::connect(&endpoint).await else {
            return false;
        };
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest { service: String::new() })
            .await;
        answer.is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
    })
}
