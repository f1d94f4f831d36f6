//! A real OpenID Connect provider: django-oauth-toolkit (tests/idp/ktbroker_idp.py, from the venv
//! `scripts/fetch-idp.sh` makes once), RS256 ID tokens with a groups claim, the password and the
//! device grants, over TLS with the test PKI's certificate. It starts in about 2 s.

use crate::daemon::{Daemon, free_port, run_checked, tcp_open, write_private};
use crate::pki::TestPki;
use crate::realm::{BROKER_ADMIN, Realm};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A person at the provider.
#[derive(Debug, Clone, Copy)]
pub struct IdpUser {
    pub username: &'static str,
    pub password: &'static str,
    pub groups: &'static [&'static str],
    /// Authentication methods the provider reports for them (RFC 8176), e.g. `["pwd", "otp"]`.
    pub amr: &'static [&'static str],
}

/// A client registration: the broker's, well-behaved or `hostile` (see ktbroker_idp.py).
#[derive(Debug, Clone, Copy)]
pub struct IdpClient {
    pub client_id: &'static str,
    pub secret: &'static str,
    /// `password` or `device_code`.
    pub grant: &'static str,
    pub hostile: Option<&'static str>,
}

pub struct IdentityProvider {
    pub issuer: String,
    pub port: u16,
    pub ca_cert: PathBuf,
    pub dir: PathBuf,
    config_file: PathBuf,
    daemon: Daemon,
}

impl IdentityProvider {
    pub fn start(dir: &Path, pki: &TestPki, users: &[IdpUser], clients: &[IdpClient]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let python = venv_python()?;
        let port = free_port();
        let config = serde_json::json!({
            "state_dir": dir,
            "host": "127.0.0.1",
            "port": port,
            "cert": pki.server_cert,
            "key": pki.server_key,
            "issuer_path": "/o",
            "users": users.iter().map(|u| serde_json::json!({
                "username": u.username, "password": u.password, "groups": u.groups,
                "email": format!("{}@example.com", u.username), "amr": u.amr,
            })).collect::<Vec<_>>(),
            "clients": clients.iter().map(|c| serde_json::json!({
                "client_id": c.client_id, "client_secret": c.secret, "grant": c.grant, "hostile": c.hostile,
            })).collect::<Vec<_>>(),
        });
        // It holds the client secrets and the people's passwords.
        let config_file = dir.join("idp.json");
        write_private(&config_file, serde_json::to_vec_pretty(&config)?)?;
        let daemon = spawn(&python, &config_file, dir, port)?;
        Ok(Self {
            issuer: format!("https://127.0.0.1:{port}/o"),
            port,
            ca_cert: pki.ca_cert.clone(),
            dir: dir.to_owned(),
            config_file,
            daemon,
        })
    }

    /// A key rotation: the provider stops, gets a new signing key (so a new key id), and serves
    /// again at the same address with the same people and clients.
    pub fn restart_with_a_new_key(&mut self) -> anyhow::Result<()> {
        self.daemon.stop()?;
        std::fs::remove_file(self.dir.join("oidc-signing-key.pem"))?;
        self.daemon = spawn(&venv_python()?, &self.config_file, &self.dir, self.port)?;
        Ok(())
    }

    /// A `[tenants.NAME]` table whose people come from this provider through `client` (its
    /// secret written to `secret_file`, 0600; none for a public client, whose secret is empty),
    /// with kadm5 keys from `realm`; `oidc_lines` add to its oidc table.
    pub fn tenant_text(
        &self,
        name: &str,
        realm: &Realm,
        client: &IdpClient,
        secret_file: &Path,
        oidc_lines: &str,
    ) -> anyhow::Result<String> {
        let secret_line = if client.secret.is_empty() {
            String::new()
        } else {
            write_private(secret_file, format!("{}\n", client.secret))?;
            format!("client_secret_file = \"{}\"", secret_file.display())
        };
        Ok(format!(
            r#"[tenants.{name}]
realm = "{realm_name}"

[tenants.{name}.oidc]
issuer = "{issuer}"
ca_file = "{ca}"
client_id = "{client_id}"
{secret_line}
groups = ["hadoop-users"]
scopes = ["openid", "profile", "email", "groups"]
{oidc_lines}

[tenants.{name}.keys]
admin_principal = "{BROKER_ADMIN}@{realm_name}"
admin_keytab = "{keytab}"
"#,
            realm_name = realm.realm,
            issuer = self.issuer,
            ca = self.ca_cert.display(),
            client_id = client.client_id,
            keytab = realm.broker_admin_keytab.display(),
        ))
    }

    /// The provider's request log (one line per HTTP request: method, path, status).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// How many requests `client_id` made to the token endpoint so far.
    pub fn token_requests(&self, client_id: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.join("token.log")).unwrap_or_default();
        log.lines().filter(|l| l.split(' ').nth(1) == Some(client_id)).count()
    }

    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.daemon.check_alive()
    }

    pub fn kill_now(&self) {
        self.daemon.kill_now();
    }
}

fn spawn(python: &Path, config_file: &Path, dir: &Path, port: u16) -> anyhow::Result<Daemon> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("idp/ktbroker_idp.py");
    let mut command = Command::new(python);
    command.arg(script).arg(config_file).env("PYTHONDONTWRITEBYTECODE", "1");
    let mut daemon = Daemon::spawn("the OIDC provider", &mut command, &dir.join("idp.out"))?;
    daemon.wait_ready(Duration::from_secs(60), || tcp_open(port))?;
    Ok(daemon)
}

/// The person's side of a device login, in a real headless Chromium (tests/idp/approve_device.py):
/// open `url`, sign in as `user` with `password`, enter `code`, and `action` it (`accept`, `deny`).
/// `Err` with the browser's complaint when a step did not show what it should.
pub fn approve_in_browser(
    pki: &TestPki,
    url: &str,
    code: &str,
    user: &str,
    password: &str,
    action: &str,
) -> anyhow::Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("idp/approve_device.py");
    let mut command = Command::new(venv_python()?);
    command
        .arg(script)
        .args([url, code, user])
        .arg(&pki.server_cert)
        .arg(action)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = crate::bench::run_fed(&mut command, Some(&format!("{password}\n")))?;
    anyhow::ensure!(
        out.status.success(),
        "the browser step failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The Python of the provider's venv (scripts/fetch-idp.sh builds it once, outside the repository).
fn venv_python() -> anyhow::Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-idp.sh");
    let out = run_checked(&mut Command::new(script))?;
    let python = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    anyhow::ensure!(python.exists(), "no python at {}", python.display());
    Ok(python)
}
