//! `ktbroker-guide-env DIR [--ad]`: what scripts/test-admin-guide.sh runs the admin guide's
//! runbook against: a throwaway MIT realm with no ktbroker principals or ACL lines yet, and a
//! directory with people and groups but no service account for the broker (its manager may add
//! one): OpenLDAP, or with `--ad` Samba's AD DC (alice in eng, which is in hadoop-users), on
//! loopback ports. Writes DIR/env (shell `export` lines: the runbook's site variables and
//! the KDC tools' profile) and DIR/ready, then serves until SIGTERM; SIGUSR1 restarts kadmind
//! (the runbook's `systemctl restart krb5-admin-server`) and rewrites DIR/ready when it is back.

use anyhow::Context;
use ktbroker_tests::daemon::{free_port, write_private};
use ktbroker_tests::directory::{Directory, DirectoryUser, GROUP_DN, PasswordScheme, PasswordState, SUFFIX};
use ktbroker_tests::pki::TestPki;
use ktbroker_tests::realm::Realm;
use std::path::{Path, PathBuf};

const REALM: &str = "GUIDE.TEST";
const FIRST_USER: &str = "alice";
const FIRST_USER_PASSWORD: &str = "alice-directory-pw";

/// The directory as the runbook sees it; the daemon runs while this lives.
struct Site {
    url: String,
    base: String,
    admin_dn: String,
    group: String,
    first_password: String,
    _directory: Box<dyn std::any::Any>,
}

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::args_os().nth(1).context("usage: ktbroker-guide-env DIR")?);
    std::fs::create_dir_all(&dir)?;
    let ad = std::env::args().nth(2).as_deref() == Some("--ad");
    let pki = TestPki::create(&dir.join("pki"), "throwaway directory CA")?;
    let admin_password_file = dir.join("ldap-admin.pw");
    // Samba first (its RPC ports are above every range the harness or the kernel hands out).
    let site = if ad {
        use ktbroker_tests::active_directory::{ADMIN_PASSWORD, ALICE, ActiveDirectory, BASE_DN, HADOOP_USERS};
        let directory = ActiveDirectory::start(&dir.join("ad"), &pki, &[ALICE]).context("starting the AD DC")?;
        write_private(&admin_password_file, ADMIN_PASSWORD)?;
        Site {
            url: directory.url.clone(),
            base: BASE_DN.to_owned(),
            admin_dn: format!("CN=Administrator,CN=Users,{BASE_DN}"),
            group: HADOOP_USERS.to_owned(),
            first_password: ALICE.password.to_owned(),
            _directory: Box::new(directory),
        }
    } else {
        let alice = DirectoryUser {
            uid: FIRST_USER.into(),
            password: FIRST_USER_PASSWORD.into(),
            scheme: PasswordScheme::Ssha,
            in_group: true,
            in_posix_group: false,
            password_state: PasswordState::Current,
        };
        let admin_password = "directory-manager-pw";
        let directory = Directory::start_without_service_account(&dir.join("ldap"), &pki, &[alice], admin_password)
            .context("starting the directory")?;
        write_private(&admin_password_file, admin_password)?;
        Site {
            url: directory.url.clone(),
            base: SUFFIX.to_owned(),
            admin_dn: format!("cn=admin,{SUFFIX}"),
            group: GROUP_DN.to_owned(),
            first_password: FIRST_USER_PASSWORD.to_owned(),
            _directory: Box::new(directory),
        }
    };
    let mut realm = Realm::start_bare(&dir.join("kdc"), REALM).context("starting the realm")?;
    // The person's principal exists already (the broker serves existing principals).
    realm.kadmin_local(&format!("addprinc -randkey {FIRST_USER}"))?;
    write_private(&dir.join("first-user.pw"), format!("{}\n", site.first_password))?;

    let path = |p: &Path| p.display().to_string();
    let vars = [
        ("REALM", REALM.to_owned()),
        ("KDC", format!("127.0.0.1:{}", realm.kdc_port)),
        ("ADMIN_SERVER", format!("127.0.0.1:{}", realm.kadmin_port)),
        ("KADM5_ACL", path(&realm.dir.join("kadm5.acl"))),
        ("LDAP_URI", site.url.clone()),
        ("LDAP_CA_FILE", path(&pki.ca_cert)),
        ("LDAPTLS_CACERT", path(&pki.ca_cert)),
        ("LDAP_BASE", site.base.clone()),
        ("LDAP_ADMIN_DN", site.admin_dn.clone()),
        ("LDAP_ADMIN_PASSWORD_FILE", path(&admin_password_file)),
        ("GROUP_DN", site.group.clone()),
        ("BROKER_HOST", "localhost".to_owned()),
        ("BROKER_LISTEN", format!("127.0.0.1:{}", free_port())),
        ("KRB5_CONF", path(&dir.join("krb5.conf"))),
        ("CA_DIR", path(&dir.join("internal-ca"))),
        ("FIRST_USER", FIRST_USER.to_owned()),
        ("FIRST_USER_PASSWORD_FILE", path(&dir.join("first-user.pw"))),
        // What the KDC host's own tools read (kadmin.local), as /etc/krb5kdc would hold them.
        ("KRB5_CONFIG", path(&realm.krb5_conf)),
        ("KRB5_KDC_PROFILE", path(&realm.kdc_conf)),
        ("GUIDE_ENV_PID", std::process::id().to_string()),
    ];
    let env: String = vars
        .iter()
        .map(|(name, value)| format!("export {name}='{value}'\n"))
        .collect();
    std::fs::write(dir.join("env"), env)?;
    std::fs::write(dir.join("ready"), "up\n")?;
    eprintln!(
        "ktbroker-guide-env: realm {REALM} and {} up; {}",
        site.url,
        dir.join("env").display()
    );

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut restart = signal(SignalKind::user_defined1())?;
        loop {
            tokio::select! {
                _ = terminate.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                _ = restart.recv() => {
                    let _ = std::fs::remove_file(dir.join("ready"));
                    realm.restart_kadmind()?;
                    std::fs::write(dir.join("ready"), "up\n")?;
                    eprintln!("ktbroker-guide-env: kadmind restarted");
                }
            }
        }
        anyhow::Ok(())
    })?;
    drop(site);
    realm.stop()
}
