//! A real Active Directory: Samba's AD DC (Debian's `samba-ad-dc`), provisioned in a temporary
//! directory with people in nested groups and in each account state AD knows, then started in
//! the foreground. Its LDAP ports are fixed (389 and 636 on 127.0.0.1), so one runs at a time:
//! a test binary starts one and shares it (see `tests/tests/active_directory.rs`).
//!
//! Everything is set up with `samba-tool` before samba starts (on the database files directly,
//! which is quicker than over LDAP); then the lockout is produced by real failed binds. The TLS
//! certificate is the test PKI's (its SAN names 127.0.0.1; Samba's own would name only the FQDN).
//!
//! Samba's RPC server takes its dynamic ports from 61000 up (see [`smb_conf`]): above the
//! kernel's ephemeral range (32768-60999), where an outgoing connection's local port could hold
//! one of them, and above [`crate::daemon::free_port`]'s range.

use crate::broker::Broker;
use crate::daemon::{Daemon, run_checked, tcp_open};
use crate::pki::TestPki;
use crate::realm::{BROKER_ADMIN, Realm};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const DNS_DOMAIN: &str = "ad.corp.test";
pub const AD_REALM: &str = "AD.CORP.TEST";
pub const BASE_DN: &str = "DC=ad,DC=corp,DC=test";
pub const USERS_DN: &str = "CN=Users,DC=ad,DC=corp,DC=test";
/// The group that authorizes: `eng` is in it, and alice only in `eng`.
pub const HADOOP_USERS: &str = "CN=hadoop-users,CN=Users,DC=ad,DC=corp,DC=test";
pub const ENG: &str = "CN=eng,CN=Users,DC=ad,DC=corp,DC=test";
/// An ordinary account with no rights beyond reading the directory, as the broker needs.
pub const SERVICE_USER: &str = "svc-ktbroker";
pub const SERVICE_DN: &str = "CN=svc-ktbroker,CN=Users,DC=ad,DC=corp,DC=test";
/// The domain administrator's password (`CN=Administrator,CN=Users,...`).
pub const ADMIN_PASSWORD: &str = "Adm1n-Pass!";
/// Failed binds after which [`AccountState::LockedOut`] people are locked (their own PSO).
pub const LOCKOUT_THRESHOLD: usize = 3;

/// What AD will say of a person's account when they bind with the right password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    Normal,
    /// "User must change password at next logon" (bind data 773).
    MustChange,
    /// userAccountControl ACCOUNTDISABLE (data 533).
    Disabled,
    /// accountExpires in the past (data 701).
    AccountExpired,
    /// Older than its maximum age (data 532): set three days ago under a two-day policy.
    PasswordExpired,
    /// Locked by failed binds (data 775).
    LockedOut,
    /// May log on at no hour of the week: `logonHours` all zero (data 530).
    NoLogonHours,
    /// May log on only from a workstation that does not exist: `userWorkstations` (data 531).
    OtherWorkstation,
}

#[derive(Debug, Clone)]
pub struct AdPerson {
    pub name: &'static str,
    pub password: &'static str,
    pub state: AccountState,
    /// Groups (by name, under CN=Users) the person is a direct member of.
    pub groups: &'static [&'static str],
}

/// alice, only in eng (which is in hadoop-users): authorized through nesting.
pub const ALICE: AdPerson = AdPerson {
    name: "alice",
    password: "Al1ce-AD-pw!",
    state: AccountState::Normal,
    groups: &["eng"],
};

/// bob, in hadoop-users, whose password must change at next logon.
pub const BOB: AdPerson = AdPerson {
    name: "bob",
    password: "B0b-AD-pw!x",
    state: AccountState::MustChange,
    groups: &["hadoop-users"],
};

pub struct ActiveDirectory {
    /// `ldaps://127.0.0.1:636/`
    pub url: String,
    pub ca_cert: PathBuf,
    pub service_password: String,
    pub log: PathBuf,
    samba: Daemon,
}

impl ActiveDirectory {
    /// Provisions the domain in `dir`, adds `people`, starts samba and waits for LDAPS (~15 s).
    pub fn start(dir: &Path, pki: &TestPki, people: &[AdPerson]) -> anyhow::Result<Self> {
        for port in [389, 636] {
            anyhow::ensure!(
                !tcp_open(port),
                "127.0.0.1:{port} is taken: another directory (an earlier AD DC?) is running"
            );
        }
        std::fs::create_dir_all(dir)?;
        let target = dir.join("dc");
        run_checked(
            Command::new("samba-tool")
                .args([
                    "domain",
                    "provision",
                    "--server-role=dc",
                    "--dns-backend=NONE",
                    "--use-rfc2307",
                ])
                .arg(format!("--realm={AD_REALM}"))
                .arg("--domain=ADCORP")
                .arg(format!("--adminpass={ADMIN_PASSWORD}"))
                .arg(format!("--targetdir={}", target.display()))
                .args(["--option=interfaces=lo", "--option=bind interfaces only=yes"]),
        )?;
        let conf = target.join("etc").join("smb.conf");
        let provisioned = std::fs::read_to_string(&conf)?;
        std::fs::write(&conf, smb_conf(&provisioned, pki)?)?;
        let directory = Self::setup(&conf, people)?;
        let log = dir.join("samba.log");
        let mut samba = Daemon::spawn(
            "samba",
            Command::new("samba")
                .arg("-s")
                .arg(&conf)
                .args(["-i", "--debug-stdout"])
                .env("LC_ALL", "C.UTF-8"),
            &log,
        )?;
        samba.wait_ready(Duration::from_secs(60), || {
            TcpStream::connect_timeout(&([127, 0, 0, 1], 636).into(), Duration::from_millis(200)).is_ok()
        })?;
        let ad = Self {
            url: "ldaps://127.0.0.1:636/".into(),
            ca_cert: pki.ca_cert.clone(),
            service_password: directory,
            log,
            samba,
        };
        // The first binds can come before samba has loaded everything: wait for a real answer.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while ad.bind_as(SERVICE_USER, &ad.service_password)?.is_some() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the service account cannot bind; log {}",
                ad.log.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        for person in people.iter().filter(|p| p.state == AccountState::LockedOut) {
            for _ in 0..LOCKOUT_THRESHOLD {
                ad.bind_as(person.name, "not-the-password")?;
            }
        }
        Ok(ad)
    }

    /// Users, groups and password settings, on the database before samba runs. Returns the
    /// service account's password.
    fn setup(conf: &Path, people: &[AdPerson]) -> anyhow::Result<String> {
        let tool = |args: &[&str]| run_checked(&mut samba_tool(conf, args)).map(|_| ());
        // A fresh account's password may be changed at once (the default minimum age is a day).
        tool(&["domain", "passwordsettings", "set", "--min-pwd-age=0"])?;
        tool(&["group", "add", "hadoop-users"])?;
        tool(&["group", "add", "eng"])?;
        tool(&["group", "add", "contractors"])?;
        tool(&["group", "addmembers", "hadoop-users", "eng"])?;
        // Password settings of their own for the expired and the locked, so that nobody else's
        // password ages or locks.
        tool(&[
            "domain",
            "passwordsettings",
            "pso",
            "create",
            "short-lived",
            "1",
            "--max-pwd-age=2",
        ])?;
        let threshold = format!("--account-lockout-threshold={LOCKOUT_THRESHOLD}");
        tool(&[
            "domain",
            "passwordsettings",
            "pso",
            "create",
            "lockout",
            "2",
            &threshold,
        ])?;
        let service_password = "Svc-ktbroker-9!".to_owned();
        tool(&["user", "create", SERVICE_USER, &service_password])?;
        for person in people {
            let must_change = ["--must-change-at-next-login"];
            let flags: &[&str] = if person.state == AccountState::MustChange {
                &must_change
            } else {
                &[]
            };
            let create_args = [&["user", "create", person.name, person.password][..], flags].concat();
            let mut create = samba_tool(conf, &create_args);
            if person.state == AccountState::PasswordExpired {
                // pwdLastSet is always "now": make now three days ago for this one command.
                let mut aged = Command::new("faketime");
                aged.args(["-f", "-3d"])
                    .arg(create.get_program())
                    .args(create.get_args());
                create = aged;
            }
            run_checked(&mut create)?;
            for group in person.groups {
                tool(&["group", "addmembers", group, person.name])?;
            }
            match person.state {
                AccountState::Disabled => tool(&["user", "disable", person.name])?,
                AccountState::AccountExpired => tool(&["user", "setexpiry", person.name, "--days=0"])?,
                AccountState::PasswordExpired => {
                    tool(&["domain", "passwordsettings", "pso", "apply", "short-lived", person.name])?;
                }
                AccountState::LockedOut => {
                    tool(&["domain", "passwordsettings", "pso", "apply", "lockout", person.name])?;
                }
                AccountState::NoLogonHours => {
                    // 21 zero bytes: not one hour of the week (samba-tool has no command for it).
                    set_attribute(conf, person.name, "logonHours:: AAAAAAAAAAAAAAAAAAAAAAAAAAAA")?;
                }
                AccountState::OtherWorkstation => {
                    set_attribute(conf, person.name, "userWorkstations: NO-SUCH-HOST")?;
                }
                AccountState::Normal | AccountState::MustChange => {}
            }
        }
        Ok(service_password)
    }

    /// A `[tenants.NAME]` table as an admin would write it for this domain beside the MIT realm
    /// `realm`: the schema profile, the service account, the allowed group, kadm5 keys;
    /// `directory_lines` add to (or override) its directory table.
    pub fn tenant_text(&self, name: &str, realm: &Realm, directory_lines: &str) -> String {
        format!(
            r#"[tenants.{name}]
realm = "{realm_name}"

[tenants.{name}.directory]
schema = "active-directory"
ca_file = "{ca}"
bind_dn = "{SERVICE_DN}"
bind_password_file = "credential:ldap-password"
user_base = "{BASE_DN}"
group_dn = "{HADOOP_USERS}"
{directory_lines}

[tenants.{name}.keys]
admin_principal = "{BROKER_ADMIN}@{realm_name}"
admin_keytab = "{keytab}"
"#,
            realm_name = realm.realm,
            ca = self.ca_cert.display(),
            keytab = realm.broker_admin_keytab.display(),
        )
    }

    /// A broker in `dir` on this domain and `realm` (one tenant, `corp`), certificate from `pki`.
    pub fn broker(&self, dir: &Path, pki: &TestPki, realm: &Realm, directory_lines: &str) -> anyhow::Result<Broker> {
        let tenant = self.tenant_text("corp", realm, directory_lines);
        let audit = dir.join("audit.log");
        Broker::launch(
            dir,
            pki,
            &self.service_password,
            |port| crate::broker::broker_text(port, pki, realm, &audit, &tenant),
            &[],
        )
    }

    /// A person's DN.
    pub fn dn(name: &str) -> String {
        format!("CN={name},{USERS_DN}")
    }

    /// A simple bind as `user@ad.corp.test` over LDAPS (ldapwhoami): `None` when it succeeded,
    /// else the directory's diagnostic message (with AD's `data` code).
    pub fn bind_as(&self, user: &str, password: &str) -> anyhow::Result<Option<String>> {
        let out = ldap_tool(&self.ca_cert, "ldapwhoami")
            .args([
                "-H",
                &self.url,
                "-x",
                "-D",
                &format!("{user}@{DNS_DOMAIN}"),
                "-w",
                password,
            ])
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // A refused bind exits with its result code, invalidCredentials (49). Samba does not
        // implement WhoAmI, so a bind that worked ends in a failed WhoAmI (exit 1 or 2).
        match out.status.code() {
            Some(1 | 2) => Ok(None),
            Some(49) => Ok(Some(text)),
            _ => anyhow::bail!("ldapwhoami as {user}: {}: {text}", out.status),
        }
    }

    /// `ldapsearch` as the administrator: LDIF of `base` with `attributes`.
    pub fn search_as_admin(&self, base: &str, attributes: &[&str]) -> anyhow::Result<String> {
        let out = run_checked(
            ldap_tool(&self.ca_cert, "ldapsearch")
                .args(["-LLL", "-o", "ldif-wrap=no", "-H", &self.url, "-x"])
                .args(["-D", &format!("Administrator@{DNS_DOMAIN}"), "-w", ADMIN_PASSWORD])
                .args(["-s", "base", "-b", base])
                .args(attributes),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops samba with SIGKILL (its children follow through their parent-death signal).
    pub fn kill_daemons(&self) {
        self.samba.kill_now();
    }
}

/// Replaces one attribute of a person's entry on the database itself (ldbmodify, before samba
/// runs); `line` is the LDIF line, e.g. `userWorkstations: HOST`.
fn set_attribute(conf: &Path, name: &str, line: &str) -> anyhow::Result<()> {
    let sam = conf
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow::anyhow!("{} is not in DIR/etc", conf.display()))?
        .join("private")
        .join("sam.ldb");
    let attribute = line.split(':').next().unwrap_or_default();
    let ldif = format!(
        "dn: {}\nchangetype: modify\nreplace: {attribute}\n{line}\n",
        ActiveDirectory::dn(name)
    );
    let file = conf.with_file_name(format!("{name}-{attribute}.ldif"));
    std::fs::write(&file, ldif)?;
    run_checked(Command::new("ldbmodify").arg("-H").arg(&sam).arg(&file))?;
    Ok(())
}

/// `samba-tool ARGS` on the domain of `conf` (samba-tool takes its options after the subcommand).
fn samba_tool(conf: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("samba-tool");
    command.args(args).arg("-s").arg(conf);
    command
}

fn ldap_tool(ca_cert: &Path, program: &str) -> Command {
    let mut command = Command::new(program);
    command.env("LDAPTLS_CACERT", ca_cert).env("LDAPTLS_REQCERT", "demand");
    command
}

/// The provisioned smb.conf with only the AD services this container can run (the file server
/// smbd dies here and takes samba with it) and the test PKI's certificate for LDAPS.
fn smb_conf(provisioned: &str, pki: &TestPki) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut replaced = false;
    for line in provisioned.lines() {
        if line.trim_start().starts_with("server services") {
            out.push_str("\tserver services = ldap, cldap, kdc, rpc, drepl, kcc\n");
            out.push_str("\ttls enabled = yes\n");
            // A changed password stops working at once (AD keeps the old one for an hour).
            out.push_str("\told password allowed period = 0\n");
            // Samba's default, 49152-65535, starts inside the kernel's ephemeral port range: a
            // connection that happened to get local port 49154 once kept samba from starting.
            out.push_str("\trpc server dynamic port range = 61000-61999\n");
            out.push_str(&format!("\ttls keyfile = {}\n", pki.server_key.display()));
            out.push_str(&format!("\ttls certfile = {}\n", pki.server_cert.display()));
            out.push_str(&format!("\ttls cafile = {}\n", pki.ca_cert.display()));
            replaced = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    anyhow::ensure!(replaced, "the provisioned smb.conf has no `server services` line");
    Ok(out)
}
