//! A throwaway OpenLDAP slapd (mdb backend) on an LDAPS loopback port, with demo users whose
//! passwords are stored as {SSHA} and {ARGON2}, an authorized group, and a service account for
//! the broker's searches. slapd runs in the foreground with `-d stats`, so its log records every
//! BIND (the tests count them).

use crate::daemon::{Daemon, free_port, run_checked};
use crate::pki::TestPki;
use crate::templates::render;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const SUFFIX: &str = "dc=example,dc=com";
pub const PEOPLE: &str = "ou=people,dc=example,dc=com";
pub const GROUP_DN: &str = "cn=hadoop-users,ou=groups,dc=example,dc=com";
/// A posixGroup (membership by `memberUid`) holding the users marked `in_posix_group`.
pub const POSIX_GROUP_DN: &str = "cn=hadoop-posix,ou=groups,dc=example,dc=com";
pub const SERVICE_DN: &str = "cn=ktbroker,ou=services,dc=example,dc=com";
/// The default password policy (ppolicy overlay): this many failed binds lock an account.
pub const PPOLICY_MAX_FAILURES: usize = 6;
/// `uid={user},ou=people,...`: the DN template that matches this directory's layout.
pub const USER_DN_TEMPLATE: &str = "uid={user},ou=people,dc=example,dc=com";

/// How a user's directory password is hashed in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PasswordScheme {
    Ssha,
    Argon2,
}

/// A person in the directory.
#[derive(Debug, Clone)]
pub struct DirectoryUser {
    pub uid: String,
    pub password: String,
    pub scheme: PasswordScheme,
    pub in_group: bool,
    pub in_posix_group: bool,
    /// What the directory's password policy says of the password.
    pub password_state: PasswordState,
}

/// A password's state under the directory's password policy (ppolicy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordState {
    Current,
    /// `pwdReset: TRUE`: an administrator set it; the directory accepts it only to change it.
    ResetByAdmin,
    /// Past its maximum age, no grace logins (`cn=expiring`): binds fail with `passwordExpired`.
    Expired,
    /// Past its maximum age with grace logins left (`cn=expiring-grace`): binds succeed with a
    /// `graceAuthNsRemaining` warning.
    ExpiredWithGrace,
}

impl PasswordState {
    /// The operational attributes slapadd loads for this state, as restoring them from a backup.
    fn ldif_lines(self) -> &'static str {
        match self {
            Self::Current => "",
            Self::ResetByAdmin => "pwdReset: TRUE\n",
            Self::Expired => {
                "pwdPolicySubentry: cn=expiring,ou=policies,dc=example,dc=com\npwdChangedTime: 20200101000000Z\n"
            }
            Self::ExpiredWithGrace => {
                "pwdPolicySubentry: cn=expiring-grace,ou=policies,dc=example,dc=com\npwdChangedTime: 20200101000000Z\n"
            }
        }
    }
}

pub struct Directory {
    dir: PathBuf,
    /// `ldaps://127.0.0.1:PORT/`
    pub url: String,
    /// `ldap://127.0.0.1:PORT/`, for StartTLS (and for plaintext only where a test opts in).
    pub starttls_url: String,
    pub port: u16,
    pub ca_cert: PathBuf,
    pub log: PathBuf,
    pub service_password: String,
    slapd: Daemon,
}

impl Directory {
    pub fn start(dir: &Path, pki: &TestPki, users: &[DirectoryUser]) -> anyhow::Result<Self> {
        Self::start_edited(dir, pki, users, Ok, |ldif| ldif)
    }

    /// A directory as a site has it before ktbroker: no service account for the broker, and a
    /// directory manager (`cn=admin,dc=example,dc=com`) who binds with `admin_password` to add one
    /// (the admin guide's runbook; see scripts/test-admin-guide.sh).
    pub fn start_without_service_account(
        dir: &Path,
        pki: &TestPki,
        users: &[DirectoryUser],
        admin_password: &str,
    ) -> anyhow::Result<Self> {
        let hash = hash_password(admin_password, PasswordScheme::Ssha)?;
        Self::start_edited(
            dir,
            pki,
            users,
            |conf| {
                let rootdn = "rootdn      \"cn=admin,dc=example,dc=com\"\n";
                anyhow::ensure!(conf.contains(rootdn), "no rootdn line in slapd.conf");
                Ok(conf.replacen(rootdn, &format!("{rootdn}rootpw      {hash}\n"), 1))
            },
            |ldif| {
                ldif.split("\n\n")
                    .filter(|entry| !entry.trim_start().starts_with(&format!("dn: {SERVICE_DN}")))
                    .collect::<Vec<_>>()
                    .join("\n\n")
            },
        )
    }

    fn start_edited(
        dir: &Path,
        pki: &TestPki,
        users: &[DirectoryUser],
        edit_conf: impl FnOnce(String) -> anyhow::Result<String>,
        edit_ldif: impl FnOnce(String) -> String,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("db"))?;
        let port = free_port();
        let conf = dir.join("slapd.conf");
        std::fs::write(&conf, edit_conf(slapd_conf(dir, pki)?)?)?;
        let service_password = "ktbroker-service-pw".to_owned();
        std::fs::write(dir.join("data.ldif"), edit_ldif(data_ldif(users, &service_password)?))?;
        run_checked(
            slap_command("slapadd", dir)
                .arg("-f")
                .arg(&conf)
                .args(["-b", SUFFIX, "-q", "-l"])
                .arg(dir.join("data.ldif")),
        )?;

        let url = format!("ldaps://127.0.0.1:{port}/");
        let starttls_url = format!("ldap://127.0.0.1:{}/", free_port());
        let log = dir.join("slapd.log");
        let slapd = start_slapd(dir, &url, &starttls_url, &pki.ca_cert, &log)?;
        Ok(Self {
            dir: dir.to_owned(),
            url,
            starttls_url,
            port,
            ca_cert: pki.ca_cert.clone(),
            log,
            service_password,
            slapd,
        })
    }

    /// Kills slapd and starts it again on the same port and database: every open connection to
    /// the directory breaks, as in a directory restart or failover.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.slapd.stop()?;
        self.slapd = start_slapd(&self.dir, &self.url, &self.starttls_url, &self.ca_cert, &self.log)?;
        Ok(())
    }

    /// SIGSTOP: slapd stops answering (connections stay open), as a hung directory would.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.slapd.signal(rustix::process::Signal::STOP)
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) -> anyhow::Result<()> {
        self.slapd.signal(rustix::process::Signal::CONT)
    }

    /// What the directory itself says to a bind as `uid` with `password` and the password policy
    /// control (ldapwhoami -e ppolicy): its output, for checking a fixture's state.
    pub fn ppolicy_bind(&self, uid: &str, password: &str) -> anyhow::Result<String> {
        let out = Command::new("ldapwhoami")
            .env("LDAPTLS_CACERT", &self.ca_cert)
            .env("LDAPTLS_REQCERT", "demand")
            .env("LC_ALL", "C")
            .args([
                "-x",
                "-e",
                "ppolicy",
                "-H",
                &self.url,
                "-D",
                &Directory::user_dn(uid),
                "-w",
                password,
            ])
            .output()?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Fails `uid`'s password at the directory itself (ldapwhoami, not through the broker) `n` times.
    pub fn fail_binds(&self, uid: &str, n: usize) -> anyhow::Result<()> {
        for _ in 0..n {
            let status = Command::new("ldapwhoami")
                .env("LDAPTLS_CACERT", &self.ca_cert)
                .env("LDAPTLS_REQCERT", "demand")
                .args([
                    "-x",
                    "-H",
                    &self.url,
                    "-D",
                    &Directory::user_dn(uid),
                    "-w",
                    "not-the-password",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()?;
            anyhow::ensure!(!status.success(), "a wrong password bound");
        }
        Ok(())
    }

    pub fn user_dn(uid: &str) -> String {
        format!("uid={uid},{PEOPLE}")
    }

    /// How many bind requests slapd has logged for `dn` so far. (A successful bind logs a second
    /// `BIND dn=... mech=SIMPLE` line; only the request line, with `method=`, is counted.)
    pub fn bind_count(&self, dn: &str) -> usize {
        let needle = format!("BIND dn=\"{dn}\" method=");
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
    }

    /// slapd's connection numbers (`conn=N`) of the bind requests logged for `dn`, in order.
    pub fn bind_connections(&self, dn: &str) -> Vec<u64> {
        let needle = format!("BIND dn=\"{dn}\" method=");
        self.log_lines(&needle)
            .iter()
            .filter_map(|l| connection_number(l))
            .collect()
    }

    /// How many connections slapd has accepted so far.
    pub fn accepted_connections(&self) -> usize {
        self.log_lines(" ACCEPT from ").len()
    }

    fn log_lines(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.slapd.check_alive()
    }

    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.slapd.stop()
    }

    pub fn kill_daemons(&self) {
        self.slapd.kill_now();
    }
}

/// N of the `conn=N` in a slapd log line.
fn connection_number(line: &str) -> Option<u64> {
    let rest = &line[line.find("conn=")? + "conn=".len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Starts slapd in the foreground (`-d stats` logs every operation) and waits until an LDAPS
/// search of the root DSE, verified against `ca`, succeeds.
fn start_slapd(dir: &Path, url: &str, starttls_url: &str, ca: &Path, log: &Path) -> anyhow::Result<Daemon> {
    let mut command = slap_command("slapd", dir);
    let listeners = format!("{url} {starttls_url}");
    command
        .arg("-f")
        .arg(dir.join("slapd.conf"))
        .args(["-h", &listeners, "-d", "stats"]);
    let mut slapd = Daemon::spawn("slapd", &mut command, log)?;
    slapd.wait_ready(Duration::from_secs(15), || {
        Command::new("ldapsearch")
            .env("LDAPTLS_CACERT", ca)
            .env("LDAPTLS_REQCERT", "demand")
            .args(["-x", "-H", url, "-b", "", "-s", "base", "-LLL", "namingContexts"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })?;
    Ok(slapd)
}

fn slap_command(program: &str, dir: &Path) -> Command {
    let mut command = Command::new(program);
    command.env("LDAPCONF", dir.join("no-ldap.conf"));
    command
}

fn slapd_conf(dir: &Path, pki: &TestPki) -> anyhow::Result<String> {
    render(
        "slapd.conf.in",
        &[
            ("DATA_DIR", &dir.display().to_string()),
            ("CA", &pki.ca_cert.display().to_string()),
            ("CERT", &pki.server_cert.display().to_string()),
            ("KEY", &pki.server_key.display().to_string()),
        ],
    )
}

/// Hashes a password the way the directory stores it, with OpenLDAP's own slappasswd.
fn hash_password(password: &str, scheme: PasswordScheme) -> anyhow::Result<String> {
    let mut command = Command::new("slappasswd");
    if let PasswordScheme::Argon2 = scheme {
        command.args([
            "-o",
            "module-path=/usr/lib/ldap",
            "-o",
            "module-load=argon2",
            "-h",
            "{ARGON2}",
        ]);
    }
    command.args(["-s", password]);
    let out = run_checked(&mut command)?;
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// The directory's contents from templates/{directory,person,groups}.ldif.in.
fn data_ldif(users: &[DirectoryUser], service_password: &str) -> anyhow::Result<String> {
    let mut ldif = render(
        "directory.ldif.in",
        &[
            ("PPOLICY_MAX_FAILURES", &PPOLICY_MAX_FAILURES.to_string()),
            (
                "SERVICE_PASSWORD_HASH",
                &hash_password(service_password, PasswordScheme::Ssha)?,
            ),
        ],
    )?;
    // One slappasswd per distinct password: a benchmark's thousands of users share a few.
    let mut hashes = std::collections::HashMap::new();
    for (n, user) in users.iter().enumerate() {
        let hash = match hashes.entry((user.password.as_str(), user.scheme)) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(new) => new.insert(hash_password(&user.password, user.scheme)?),
        };
        let person = render(
            "person.ldif.in",
            &[
                ("UID", &user.uid),
                ("UID_NUMBER", &(10001 + n).to_string()),
                ("PASSWORD_HASH", hash),
            ],
        )?;
        ldif.push_str(person.trim_end());
        ldif.push('\n');
        ldif.push_str(user.password_state.ldif_lines());
        ldif.push('\n');
    }
    let lines = |select: fn(&DirectoryUser) -> Option<String>| -> String {
        users.iter().filter_map(select).collect::<Vec<_>>().join("\n")
    };
    ldif.push_str(&render(
        "groups.ldif.in",
        &[
            (
                "MEMBER_LINES",
                &lines(|u| u.in_group.then(|| format!("member: {}", Directory::user_dn(&u.uid)))),
            ),
            (
                "MEMBER_UID_LINES",
                &lines(|u| u.in_posix_group.then(|| format!("memberUid: {}", u.uid))),
            ),
        ],
    )?);
    Ok(ldif)
}
