//! A real OpenSSH sshd (Debian's openssh-server) on a loopback port, with its own host key and its
//! own PAM service, and logins into it with Debian's ssh client answered by sshpass.
//!
//! sshd reads `/etc/pam.d/<the basename of its argv[0]>`, so it runs through a symlink named after
//! the test's service. It runs in a private mount namespace over copies of /etc/pam.d,
//! /usr/share/pam-configs and /var/lib/pam: the service file, and for Debian's stack
//! `pam-auth-update --enable ktbroker` with the test's profile, change only the copies, never the
//! machine's PAM configuration.

use crate::daemon::{Daemon, free_port, run_checked, tail, tcp_open};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// How the client authenticates (and the only method the server offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// `PasswordAuthentication`: sshd calls pam_authenticate in its monitor process.
    Password,
    /// `KbdInteractiveAuthentication`: sshd calls pam_authenticate in a child process.
    KeyboardInteractive,
}

impl AuthMode {
    fn client_method(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::KeyboardInteractive => "keyboard-interactive",
        }
    }
}

/// The PAM stack sshd's service uses.
#[derive(Debug, Clone)]
pub enum Stack {
    /// This text as the whole service file.
    Service(String),
    /// Debian's own `/etc/pam.d/sshd` (common-auth, common-session, pam_loginuid, pam_env...),
    /// after `pam-auth-update --enable ktbroker` with this profile text.
    DebianWithProfile(String),
}

pub struct Sshd {
    pub port: u16,
    pub service: String,
    pub log: PathBuf,
    daemon: Daemon,
}

impl Sshd {
    /// Starts sshd in `dir` for `service` with `stack`, offering only `mode`. `session_env` is
    /// set in every session (sshd's SetEnv), e.g. KRB5_CONFIG for the sandbox realm.
    pub fn start(
        dir: &Path,
        service: &str,
        stack: &Stack,
        mode: AuthMode,
        session_env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        std::fs::create_dir_all("/run/sshd")?; // privilege separation directory
        let host_key = dir.join("hostkey");
        if !host_key.exists() {
            run_checked(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", ""])
                    .arg("-f")
                    .arg(&host_key),
            )?;
        }
        let port = free_port();
        let yes_no = |on: bool| if on { "yes" } else { "no" };
        let set_env: String = session_env.iter().map(|(k, v)| format!(" {k}={v}")).collect();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {dir}/sshd.pid\nUsePAM yes\n\
                 PasswordAuthentication {pw}\nKbdInteractiveAuthentication {kbd}\nPubkeyAuthentication no\n\
                 AuthorizedKeysFile none\nStrictModes no\nPermitRootLogin no\nPrintMotd no\nMaxAuthTries 3\n\
                 LoginGraceTime 60\nLogLevel VERBOSE\n{set_env}\n",
                key = host_key.display(),
                dir = dir.display(),
                pw = yes_no(mode == AuthMode::Password),
                kbd = yes_no(mode == AuthMode::KeyboardInteractive),
                set_env = if set_env.is_empty() {
                    String::new()
                } else {
                    format!("SetEnv{set_env}")
                },
            ),
        )?;
        let link = dir.join(service);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/usr/sbin/sshd", &link)?;
        let scratch = dir.join("pam-copies");
        let setup_stack = match stack {
            Stack::Service(text) => {
                std::fs::write(dir.join("service"), text)?;
                format!("cp {dir}/service /etc/pam.d/{service}", dir = dir.display())
            }
            Stack::DebianWithProfile(profile) => {
                std::fs::write(dir.join("profile"), profile)?;
                format!(
                    "cp {dir}/profile /usr/share/pam-configs/ktbroker\n\
                     DEBIAN_FRONTEND=noninteractive pam-auth-update --enable ktbroker\n\
                     cp /etc/pam.d/sshd /etc/pam.d/{service}",
                    dir = dir.display()
                )
            }
        };
        let script = format!(
            "set -e
             for d in /etc/pam.d /usr/share/pam-configs /var/lib/pam; do
               mkdir -p {t}$d; cp -a $d/. {t}$d/ 2>/dev/null || true; mount --bind {t}$d $d
             done
             {setup_stack}
             exec {link} -D -e -f {config}",
            t = scratch.display(),
            link = link.display(),
            config = config.display()
        );
        let log = dir.join("sshd.log");
        let mut command = Command::new("unshare");
        command.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
        let mut daemon = Daemon::spawn("sshd", &mut command, &log)?;
        daemon.wait_ready(Duration::from_secs(15), || tcp_open(port))?;
        Ok(Self {
            port,
            service: service.to_owned(),
            log,
            daemon,
        })
    }

    /// A login command: `ssh USER@127.0.0.1 COMMAND` with `mode` only, the password answered by
    /// sshpass (from its environment, never argv), and a deadline.
    pub fn login_command(&self, user: &str, password: &str, mode: AuthMode, command: &str) -> Command {
        let mut ssh = Command::new("timeout");
        ssh.args(["60", "sshpass", "-e", "ssh", "-F", "/dev/null", "-p"])
            .arg(self.port.to_string())
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "GSSAPIAuthentication=no",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
                "-o",
            ])
            .arg(format!("PreferredAuthentications={}", mode.client_method()))
            .arg(format!("{user}@127.0.0.1"))
            .arg(command)
            .env("SSHPASS", password)
            .stdin(Stdio::null());
        ssh
    }

    /// Logs in as `user`, runs `command` in the session, and logs out.
    pub fn login(&self, user: &str, password: &str, mode: AuthMode, command: &str) -> Output {
        self.login_command(user, password, mode, command)
            .output()
            .expect("running ssh through sshpass")
    }

    /// The end of sshd's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// Fails if sshd died.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.daemon.check_alive()
    }
}
