//! A throwaway MIT Kerberos realm: KDC and kadmind in a temp dir, on loopback ports chosen at run
//! time, configured only through the environment of each child (KRB5_CONFIG, KRB5_KDC_PROFILE).

use crate::daemon::{Daemon, free_port, run_checked, tcp_open};
use crate::templates::render;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const REALM: &str = "KRBTEST.COM";
/// The broker's admin principal; kadm5.acl grants it `e` (extract keys) on `*@REALM` and
/// `*/netdisk@REALM`, and nothing else.
pub const BROKER_ADMIN: &str = "ktbroker/admin";
/// A second admin principal for brokers that provision or rotate: `e`, `a` (add) and `c`
/// (change key) on `*@REALM`, still nothing on the KDC's own principals' policy or ACLs.
pub const BROKER_WRITER: &str = "ktbroker/writer";
/// An admin principal kadm5.acl lets only inquire (`i`), never extract: a broker misconfigured
/// with it (check-config's test). Created by [`Realm::admin_keytab_for`] when a test needs it.
pub const BROKER_READER: &str = "ktbroker/reader";

pub struct Realm {
    pub dir: PathBuf,
    pub realm: String,
    pub kdc_port: u16,
    pub kadmin_port: u16,
    pub krb5_conf: PathBuf,
    pub kdc_conf: PathBuf,
    /// Keytab of [`BROKER_ADMIN`], for the broker's kadmin client.
    pub broker_admin_keytab: PathBuf,
    /// Keytab of [`BROKER_WRITER`].
    pub broker_writer_keytab: PathBuf,
    kdc: Daemon,
    kadmind: Daemon,
}

impl Realm {
    /// Creates the database and starts krb5kdc and kadmind (about 0.3 s).
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_named(dir, REALM)
    }

    /// Like [`Self::start`] for a realm named `realm`.
    pub fn start_named(dir: &Path, realm: &str) -> anyhow::Result<Self> {
        Self::start_with(dir, realm, true)
    }

    /// A realm as a site has it before ktbroker: no broker principals, a kadm5.acl without
    /// their lines (the admin guide's runbook adds both; see scripts/test-admin-guide.sh).
    pub fn start_bare(dir: &Path, realm: &str) -> anyhow::Result<Self> {
        Self::start_with(dir, realm, false)
    }

    fn start_with(dir: &Path, realm: &str, broker_principals: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (kdc_port, kadmin_port, kpasswd_port) = (free_port(), free_port(), free_port());
        let krb5_conf = dir.join("krb5.conf");
        let kdc_conf = dir.join("kdc.conf");
        std::fs::write(&krb5_conf, krb5_conf_text(realm, kdc_port, kadmin_port)?)?;
        let loopback = |port: u16| format!("127.0.0.1:{port}");
        std::fs::write(
            &kdc_conf,
            render(
                "kdc.conf.in",
                &[
                    ("KDC_LISTEN", &loopback(kdc_port)),
                    ("REALM", realm),
                    ("DB_DIR", &dir.display().to_string()),
                    ("KADMIN_LISTEN", &loopback(kadmin_port)),
                    ("KPASSWD_LISTEN", &loopback(kpasswd_port)),
                ],
            )?,
        )?;
        // The broker's grant as deployed (templates/kadm5.acl.in), and the writer's for the
        // provisioning and rotation tests.
        let acl = render(
            "kadm5.acl.in",
            &[("BROKER_ADMIN", &format!("{BROKER_ADMIN}@{realm}")), ("REALM", realm)],
        )?;
        let acl = if broker_principals {
            format!("{acl}{BROKER_WRITER}@{realm} eac *@{realm}\n{BROKER_READER}@{realm} i *@{realm}\n")
        } else {
            "# kadm5.acl of a realm without ktbroker yet\n".to_owned()
        };
        std::fs::write(dir.join("kadm5.acl"), acl)?;

        let env = RealmEnv {
            krb5_conf: krb5_conf.clone(),
            kdc_conf: kdc_conf.clone(),
            dir: dir.to_owned(),
        };
        // -W: weak random for the master key; a throwaway test realm needs no strong entropy.
        run_checked(
            env.command("kdb5_util")
                .args(["create", "-s", "-r", realm, "-P", "masterpw", "-W"]),
        )?;
        let broker_admin_keytab = dir.join("broker-admin.keytab");
        let broker_writer_keytab = dir.join("broker-writer.keytab");
        if broker_principals {
            env.kadmin_local(&format!("addprinc -randkey {BROKER_ADMIN}"))?;
            env.kadmin_local(&format!("ktadd -k {} {BROKER_ADMIN}", broker_admin_keytab.display()))?;
            env.kadmin_local(&format!("addprinc -randkey {BROKER_WRITER}"))?;
            env.kadmin_local(&format!("ktadd -k {} {BROKER_WRITER}", broker_writer_keytab.display()))?;
        }

        // Both start at once; then each is waited for.
        let mut kdc = env.spawn(KDC)?;
        let mut kadmind = env.spawn(KADMIND)?;
        kdc.wait_ready(Duration::from_secs(10), || tcp_open(kdc_port))?;
        kadmind.wait_ready(Duration::from_secs(10), || tcp_open(kadmin_port))?;
        Ok(Self {
            dir: dir.to_owned(),
            realm: realm.to_owned(),
            kdc_port,
            kadmin_port,
            krb5_conf,
            kdc_conf,
            broker_admin_keytab,
            broker_writer_keytab,
            kdc,
            kadmind,
        })
    }

    fn env(&self) -> RealmEnv {
        RealmEnv {
            krb5_conf: self.krb5_conf.clone(),
            kdc_conf: self.kdc_conf.clone(),
            dir: self.dir.clone(),
        }
    }

    /// A command whose environment points at this realm (and at no ccache of the caller's).
    pub fn command(&self, program: &str) -> Command {
        self.env().command(program)
    }

    /// Runs `kadmin.local -q QUERY` and returns its stdout; fails if kadmin.local printed an error
    /// (it exits 0 even when the query failed).
    pub fn kadmin_local(&self, query: &str) -> anyhow::Result<String> {
        self.env().kadmin_local(query)
    }

    /// Creates `principal` with a random key and writes its keytab (0600) to DIR/NAME.keytab,
    /// `/` in the name turned into `-`.
    pub fn admin_keytab_for(&self, principal: &str) -> anyhow::Result<PathBuf> {
        let keytab = self.dir.join(format!("{}.keytab", principal.replace('/', "-")));
        self.kadmin_local(&format!("addprinc -randkey {principal}"))?;
        self.kadmin_local(&format!("ktadd -k {} {principal}", keytab.display()))?;
        Ok(keytab)
    }

    /// Creates many principals with random keys in one kadmin.local run, its commands on stdin
    /// (a process per principal would take minutes for thousands).
    pub fn add_random_key_principals(&self, names: &[String]) -> anyhow::Result<()> {
        let commands: String = names.iter().map(|name| format!("addprinc -randkey {name}\n")).collect();
        let output = crate::bench::run_fed(&mut self.command("kadmin.local"), Some(&commands))?;
        let errors = kadmin_errors(&output.stderr);
        anyhow::ensure!(errors.is_empty(), "kadmin.local addprinc: {}", errors.join("; "));
        Ok(())
    }

    pub fn add_user(&self, name: &str, password: &str) -> anyhow::Result<()> {
        self.kadmin_local(&format!("addprinc -pw {password} {name}")).map(drop)
    }

    /// The principal's current kvno (the highest of its keys), from the KDC database.
    pub fn kvno(&self, principal: &str) -> anyhow::Result<u32> {
        let out = self.kadmin_local(&format!("getprinc {principal}"))?;
        out.lines()
            .filter_map(|l| l.strip_prefix("Key: vno "))
            .filter_map(|rest| rest.split(',').next()?.trim().parse().ok())
            .max()
            .ok_or_else(|| anyhow::anyhow!("no kvno in getprinc output:\n{out}"))
    }

    /// How krb5kdc answered `user`'s requests for the realm's TGT so far, from its log:
    /// (PREAUTH_REQUIRED answers, tickets issued).
    pub fn as_exchanges(&self, user: &str) -> (usize, usize) {
        let client = format!("{user}@{} for krbtgt/", self.realm);
        let log = std::fs::read_to_string(self.dir.join("kdc.log")).unwrap_or_default();
        let requests: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("AS_REQ") && l.contains(&client))
            .collect();
        let count = |what: &str| requests.iter().filter(|l| l.contains(what)).count();
        (count(": NEEDED_PREAUTH: "), count(": ISSUE: "))
    }

    /// kinit with a password (on stdin) into `ccache`; true when it succeeded.
    pub fn kinit_with_password(&self, principal: &str, password: &str, ccache: &str) -> anyhow::Result<bool> {
        use std::io::Write;
        let mut child = self
            .command("kinit")
            .args(["-c", ccache, principal])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(format!("{password}\n").as_bytes())?;
        Ok(child.wait()?.success())
    }

    /// SIGSTOP: the KDC stops answering (its sockets stay open), as a wedged KDC would.
    pub fn pause_kdc(&self) -> anyhow::Result<()> {
        self.kdc.signal(rustix::process::Signal::STOP)
    }

    /// SIGCONT after [`Self::pause_kdc`].
    pub fn resume_kdc(&self) -> anyhow::Result<()> {
        self.kdc.signal(rustix::process::Signal::CONT)
    }

    /// Stops kadmind and starts it again on the same port (clients' sessions break).
    pub fn restart_kadmind(&mut self) -> anyhow::Result<()> {
        self.kadmind.stop()?;
        self.kadmind = self.env().spawn(KADMIND)?;
        let port = self.kadmin_port;
        self.kadmind.wait_ready(Duration::from_secs(10), || tcp_open(port))
    }

    /// Stops krb5kdc and starts it again on the same port, reading kdc.conf anew.
    pub fn restart_kdc(&mut self) -> anyhow::Result<()> {
        self.kdc.stop()?;
        self.kdc = self.env().spawn(KDC)?;
        let port = self.kdc_port;
        self.kdc.wait_ready(Duration::from_secs(10), || tcp_open(port))
    }

    /// Writes a krb5.conf at `path` that knows every realm in `realms` (the first is the default):
    /// what a broker serving several tenants, or a client of several realms, needs.
    pub fn combined_krb5_conf(path: &Path, realms: &[&Realm]) -> anyhow::Result<()> {
        let first = realms.first().ok_or_else(|| anyhow::anyhow!("no realm"))?;
        let mut text = krb5_conf_text(&first.realm, first.kdc_port, first.kadmin_port)?;
        let stanzas: String = realms[1..]
            .iter()
            .map(|r| {
                format!(
                    "    {realm} = {{\n        kdc = 127.0.0.1:{kdc}\n        admin_server = 127.0.0.1:{kadmin}\n    }}\n",
                    realm = r.realm,
                    kdc = r.kdc_port,
                    kadmin = r.kadmin_port
                )
            })
            .collect();
        text = text.replacen("[domain_realm]", &format!("{stanzas}[domain_realm]"), 1);
        std::fs::write(path, text)?;
        Ok(())
    }

    /// Fails if the KDC or kadmind died.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.kdc.check_alive()?;
        self.kadmind.check_alive()
    }

    pub fn stop(&mut self) -> anyhow::Result<()> {
        let kdc = self.kdc.stop();
        let kadmind = self.kadmind.stop();
        kdc.and(kadmind)
    }

    pub fn kill_daemons(&self) {
        self.kdc.kill_now();
        self.kadmind.kill_now();
    }
}

struct RealmEnv {
    krb5_conf: PathBuf,
    kdc_conf: PathBuf,
    dir: PathBuf,
}

/// The realm's daemons: program, and the flag that keeps it in the foreground.
const KDC: (&str, &str) = ("krb5kdc", "-n");
const KADMIND: (&str, &str) = ("kadmind", "-nofork");

impl RealmEnv {
    /// Starts `daemon` for this realm, its output in DIR/PROGRAM.out.
    fn spawn(&self, (program, foreground): (&str, &str)) -> anyhow::Result<Daemon> {
        let log = self.dir.join(format!("{program}.out"));
        Daemon::spawn(program, self.command(program).arg(foreground), &log)
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("KRB5_CONFIG", &self.krb5_conf)
            .env("KRB5_KDC_PROFILE", &self.kdc_conf)
            .env("KRB5CCNAME", format!("FILE:{}/harness.ccache", self.dir.display()))
            .env("KRB5RCACHEDIR", &self.dir)
            // MIT's tools in untranslated English, whatever the machine's locale: the harness
            // reads their tables (getprinc) and their stderr.
            .env("LC_ALL", "C")
            .env_remove("LANGUAGE")
            .env_remove("KRB5_KTNAME")
            .env_remove("KRB5_CLIENT_KTNAME");
        command
    }

    fn kadmin_local(&self, query: &str) -> anyhow::Result<String> {
        let output = run_checked(self.command("kadmin.local").args(["-q", query]))?;
        let errors = kadmin_errors(&output.stderr);
        if !errors.is_empty() {
            anyhow::bail!("kadmin.local -q {query:?}: {}", errors.join("; "));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// The lines of kadmin.local's stderr that report errors: "No policy specified ... defaulting to
/// no policy" is informational, anything else is an error (kadmin.local exits 0 either way).
fn kadmin_errors(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("No policy specified"))
        .map(str::to_owned)
        .collect()
}

/// templates/krb5.conf.in for a realm whose KDC and kadmind listen on loopback.
fn krb5_conf_text(realm: &str, kdc: u16, kadmin: u16) -> anyhow::Result<String> {
    render(
        "krb5.conf.in",
        &[
            ("REALM", realm),
            ("KDC", &format!("127.0.0.1:{kdc}")),
            ("KADMIN", &format!("127.0.0.1:{kadmin}")),
            ("HOST", "localhost"),
        ],
    )
}
