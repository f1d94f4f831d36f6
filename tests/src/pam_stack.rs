//! A PAM stack of pam_ktbroker.so for a sandbox: a PAM config directory (read through
//! `pam_start_confdir` by ktbroker-pam-driver, so nothing goes to /etc/pam.d), the client.toml the
//! module's helper reads, and the module's own directory for the tickets between auth and session
//! (`ccache_dir=`), so that each user of the stack sees only its own. The PAM tests and
//! bench/login-latency share it. The module runs the helper as the user: the local accounts must
//! exist ([`crate::accounts::local_users`]).

use crate::Sandbox;
use crate::bins::{project_binary, tool_binary};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug)]
pub struct PamStack {
    pub confdir: PathBuf,
    pub client_toml: PathBuf,
    pub pending_dir: PathBuf,
    krb5_conf: PathBuf,
}

impl PamStack {
    /// Creates the directories and client.toml under the sandbox's root.
    pub fn create(sandbox: &Sandbox) -> std::io::Result<Self> {
        let confdir = sandbox.root.join("pam.d");
        std::fs::create_dir_all(&confdir)?;
        let client_toml = sandbox.root.join("client").join("client.toml");
        std::fs::write(&client_toml, sandbox.client_toml())?;
        // Like /tmp: every user may create files, nobody may remove another's.
        let pending_dir = sandbox.root.join("pending");
        std::fs::create_dir_all(&pending_dir)?;
        std::fs::set_permissions(&pending_dir, std::fs::Permissions::from_mode(0o1777))?;
        Ok(Self {
            confdir,
            client_toml,
            pending_dir,
            krb5_conf: sandbox.realm.krb5_conf.clone(),
        })
    }

    /// The module's line arguments: our helper, the sandbox realm, client.toml, 5 s.
    pub fn module_args(&self, extra: &str) -> String {
        format!(
            "helper={} krb5_config={} config={} ccache_dir={} timeout=5 {extra}",
            project_binary("ktbroker-kinit").display(),
            self.krb5_conf.display(),
            self.client_toml.display(),
            self.pending_dir.display()
        )
    }

    /// Writes service `name`: our module for auth and session (after `auth_before`, lines of
    /// other modules), pam_permit for account. Returns the name.
    pub fn service(&self, name: &str, extra: &str, auth_before: &str) -> std::io::Result<String> {
        let module = project_binary("libpam_ktbroker.so");
        let args = self.module_args(extra);
        std::fs::write(
            self.confdir.join(name),
            format!(
                "{auth_before}auth required {m} {args}\naccount required pam_permit.so\nsession required {m} {args}\n",
                m = module.display()
            ),
        )?;
        Ok(name.to_owned())
    }

    /// ktbroker-pam-driver on `service` for `user`, running `ops` (stdin is the caller's to set).
    pub fn driver(&self, service: &str, user: &str, ops: &[&str]) -> Command {
        let mut command = Command::new(tool_binary("ktbroker-pam-driver"));
        command
            .arg(&self.confdir)
            .args([service, user])
            .args(ops)
            .env("KRB5_CONFIG", &self.krb5_conf);
        command
    }
}
