//! pam_ktbroker.so in a real sshd (Debian's OpenSSH on a loopback port) against the real KDC,
//! slapd and broker: password and keyboard-interactive logins, through a minimal stack and
//! through Debian's own /etc/pam.d/sshd with the pam-auth-update profile enabled. Every login's
//! session must hold a working ticket (a service ticket can be had with it), and after logout
//! nothing of that login may remain: no temporary cache, no session cache, no record.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ktbroker_tests::Sandbox;
use ktbroker_tests::accounts::{local_users, uid_of};
use ktbroker_tests::bins::project_binary;
use ktbroker_tests::sshd::{AuthMode, Sshd, Stack};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// A sandbox with a host service principal, and the module's own directories for this test:
/// temporary caches (`ccache_dir=`), session caches (`ccache=`) and records (`sessions_dir=`).
struct Site {
    sandbox: Sandbox,
    dir: PathBuf,
    client_toml: PathBuf,
    pending: PathBuf,
    caches: PathBuf,
    sessions: PathBuf,
    /// The krb5.conf the module gives the helper (the realm's, or one with short tickets).
    module_krb5_conf: PathBuf,
}

impl Site {
    fn start() -> Self {
        local_users();
        let sandbox = ktbroker_tests::start_sandbox();
        sandbox.realm.kadmin_local("addprinc -randkey host/localhost").unwrap();
        let dir = sandbox.root.join("ssh");
        let (pending, caches, sessions) = (dir.join("pending"), dir.join("caches"), dir.join("sessions"));
        use std::os::unix::fs::PermissionsExt;
        for d in [&pending, &caches] {
            std::fs::create_dir_all(d).unwrap();
            // Like /tmp: every user may create files, nobody may remove another's.
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o1777)).unwrap();
        }
        let client_toml = dir.join("client.toml");
        std::fs::write(
            &client_toml,
            format!("{}\nsessions_dir = \"{}\"\n", sandbox.client_toml(), sessions.display()),
        )
        .unwrap();
        let module_krb5_conf = sandbox.realm.krb5_conf.clone();
        Self {
            sandbox,
            dir,
            client_toml,
            pending,
            caches,
            sessions,
            module_krb5_conf,
        }
    }

    /// Logins get tickets of `lifetime`, renewable for two minutes.
    fn with_short_tickets(mut self, lifetime: &str) -> Self {
        let short = self.dir.join("short-tickets.krb5.conf");
        let text = std::fs::read_to_string(&self.sandbox.realm.krb5_conf).unwrap();
        let settings = format!("[libdefaults]\n    ticket_lifetime = {lifetime}\n    renew_lifetime = 120s\n");
        std::fs::write(&short, text.replacen("[libdefaults]\n", &settings, 1)).unwrap();
        self.module_krb5_conf = short;
        self
    }

    fn module_args(&self) -> String {
        format!(
            "helper={} krb5_config={} config={} ccache_dir={} ccache=FILE:{}/krb5cc_%u_XXXXXX sessions_dir={} timeout=10",
            project_binary("ktbroker-kinit").display(),
            self.module_krb5_conf.display(),
            self.client_toml.display(),
            self.pending.display(),
            self.caches.display(),
            self.sessions.display()
        )
    }

    /// Our module for auth and session, then `auth_after` (e.g. a module that refuses).
    fn minimal_stack(&self, auth_after: &str) -> Stack {
        let module = project_binary("libpam_ktbroker.so");
        let args = self.module_args();
        Stack::Service(format!(
            "auth required {m} {args}\n{auth_after}account required pam_permit.so\nsession required {m} {args}\n",
            m = module.display()
        ))
    }

    /// Debian's sshd stack with the project's pam-auth-update profile, pointed at this sandbox.
    fn debian_stack(&self) -> Stack {
        let profile =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../pam/pam-configs/ktbroker"))
                .unwrap()
                .replace(
                    "pam_ktbroker.so",
                    &project_binary("libpam_ktbroker.so").display().to_string(),
                )
                .replace("config=/etc/ktbroker/client.toml", &self.module_args());
        Stack::DebianWithProfile(profile)
    }

    fn sshd(&self, name: &str, stack: &Stack, mode: AuthMode) -> Sshd {
        let krb5_config = format!("KRB5_CONFIG={}", self.sandbox.realm.krb5_conf.display());
        let (key, value) = krb5_config.split_once('=').unwrap();
        Sshd::start(&self.dir.join(name), name, stack, mode, &[(key, value)]).unwrap()
    }

    /// What a session prints about itself: its cache, whether the pending variable leaked into
    /// it, its ticket, a service ticket, its record, and `ktbroker-kinit status` without
    /// KRB5CCNAME (so found through the record).
    fn session_probe(&self) -> String {
        format!(
            "echo CCNAME=$KRB5CCNAME; echo PENDING=${{KTBROKER_PENDING_CCACHE:-none}}; klist; \
             kvno host/localhost@{realm} && echo SERVICE_TICKET_OK; \
             cat {sessions}/$(id -u)/* && echo RECORD_OK; \
             env -u KRB5CCNAME {helper} --config {config} status && echo STATUS_OK",
            realm = self.sandbox.realm.realm,
            sessions = self.sessions.display(),
            helper = project_binary("ktbroker-kinit").display(),
            config = self.client_toml.display()
        )
    }

    /// The files this test's module directories hold for `uid`'s logins (none after logout).
    fn leftovers(&self, uid: u32) -> Vec<PathBuf> {
        let list = |dir: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(dir)
                .map(|entries| entries.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        };
        let mut found = list(&self.pending);
        found.extend(list(&self.caches));
        found.extend(list(&self.sessions.join(uid.to_string())));
        found
    }

    /// Waits (sshd closes the session just after the client returns) until nothing is left.
    fn assert_nothing_left(&self, uid: u32, sshd: &Sshd) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.leftovers(uid).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            self.leftovers(uid).is_empty(),
            "left after logout: {:?}\nsshd:\n{}",
            self.leftovers(uid),
            sshd.log_tail()
        );
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One login as alice in `mode` through `stack`: the session has its own cache with alice's
/// ticket, gets a service ticket with it, is findable through its record, and leaves nothing.
fn log_in_and_check(name: &str, mode: AuthMode, debian: bool) {
    let site = Site::start();
    let stack = if debian {
        site.debian_stack()
    } else {
        site.minimal_stack("")
    };
    let sshd = site.sshd(name, &stack, mode);
    let out = sshd.login("alice", "alicepw", mode, &site.session_probe());
    let shown = format!("{}\nsshd:\n{}", text(&out), sshd.log_tail());
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cache = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CCNAME=FILE:"))
        .unwrap_or_else(|| panic!("the session has no FILE cache:\n{shown}"));
    assert!(Path::new(cache).starts_with(&site.caches), "{shown}");
    assert!(
        stdout.contains("PENDING=none"),
        "the hand-over variable reached the session:\n{shown}"
    );
    let principal = site.sandbox.principal("alice");
    assert!(stdout.contains(&format!("Default principal: {principal}")), "{shown}");
    assert!(
        stdout.contains("SERVICE_TICKET_OK"),
        "no service ticket with it:\n{shown}"
    );
    assert!(
        stdout.contains(&format!("FILE:{cache}\nRECORD_OK")),
        "the session's record names its cache:\n{shown}"
    );
    assert!(
        stdout.contains(&format!("cache:      FILE:{cache}")) && stdout.contains("STATUS_OK"),
        "status finds the session's cache without KRB5CCNAME:\n{shown}"
    );
    site.assert_nothing_left(uid_of("alice"), &sshd);
    assert!(!Path::new(cache).exists());
}

#[test]
fn a_password_login_through_a_minimal_stack_holds_a_ticket_and_leaves_nothing() {
    log_in_and_check("ktb-ssh-pw-min", AuthMode::Password, false);
}

#[test]
fn a_keyboard_interactive_login_through_a_minimal_stack_holds_a_ticket_and_leaves_nothing() {
    log_in_and_check("ktb-ssh-kbd-min", AuthMode::KeyboardInteractive, false);
}

#[test]
fn a_password_login_through_debians_stack_holds_a_ticket_and_leaves_nothing() {
    log_in_and_check("ktb-ssh-pw-deb", AuthMode::Password, true);
}

#[test]
fn a_keyboard_interactive_login_through_debians_stack_holds_a_ticket_and_leaves_nothing() {
    log_in_and_check("ktb-ssh-kbd-deb", AuthMode::KeyboardInteractive, true);
}

#[test]
fn failed_logins_leave_no_ticket_behind_in_either_mode() {
    let site = Site::start();
    let uid = uid_of("bob");
    // The module obtains a ticket, then a later module refuses the login.
    let refused = site.minimal_stack("auth required pam_deny.so\n");
    for mode in [AuthMode::Password, AuthMode::KeyboardInteractive] {
        let name = format!("ktb-ssh-deny-{}", mode.short());
        let sshd = site.sshd(&name, &refused, mode);
        let wrong = sshd.login("bob", "not-bobs-password", mode, "true");
        assert_ne!(wrong.status.code(), Some(0), "{}", text(&wrong));
        assert!(site.leftovers(uid).is_empty(), "{:?}", site.leftovers(uid));
        let denied = sshd.login("bob", "bobpw", mode, "true");
        assert_ne!(denied.status.code(), Some(0), "{}", text(&denied));
        if mode == AuthMode::KeyboardInteractive {
            // sshd's auth child got the ticket and exited without pam_end, so it is still there
            // (which shows the module did succeed before pam_deny)...
            let orphans = site.leftovers(uid);
            assert_eq!(orphans.len(), 1, "{orphans:?}\n{}", sshd.log_tail());
            // ...until the processes that could still use it are gone: then the next
            // authentication on the host removes it.
            let deadline = Instant::now() + Duration::from_secs(10);
            while orphans[0].exists() && Instant::now() < deadline {
                let again = sshd.login("bob", "not-bobs-password", mode, "true");
                assert_ne!(again.status.code(), Some(0), "{}", text(&again));
            }
            assert!(!orphans[0].exists(), "{}", sshd.log_tail());
        }
        site.assert_nothing_left(uid, &sshd);
    }
}

/// The TGT line of klist for `cache`, and whether the cache holds a valid TGT (`klist -s`).
fn tgt(site: &Site, cache: &Path) -> (String, bool) {
    let klist = |args: &[&str]| {
        std::process::Command::new("klist")
            .args(args)
            .arg("-c")
            .arg(format!("FILE:{}", cache.display()))
            .env("KRB5_CONFIG", &site.sandbox.realm.krb5_conf)
            .env("LC_ALL", "C")
            .output()
            .unwrap()
    };
    let listing = String::from_utf8_lossy(&klist(&[]).stdout).into_owned();
    let line = listing.lines().find(|l| l.contains("krbtgt/")).unwrap_or("").to_owned();
    (line, klist(&["-s"]).status.success())
}

/// The session caches recorded for `uid`, waiting up to 15 s for `count` of them.
fn recorded_caches(site: &Site, uid: u32, count: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let caches: Vec<PathBuf> = std::fs::read_dir(site.sessions.join(uid.to_string()))
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .filter_map(|line| line.trim_end().strip_prefix("FILE:").map(PathBuf::from))
                    .collect()
            })
            .unwrap_or_default();
        if caches.len() >= count || Instant::now() > deadline {
            return caches;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_renewal_user_unit_keeps_every_open_sessions_ticket_renewed() {
    use ktbroker_tests::user_manager::UserManager;
    // Ten-second tickets: renewed at half-life, so every ~5 s.
    let site = Site::start().with_short_tickets("10s");
    let sshd = site.sshd("ktb-ssh-renew", &site.minimal_stack(""), AuthMode::Password);
    let uid = uid_of("bob");
    // Two sessions of the same user, kept open.
    let mut sessions: Vec<_> = (0..2)
        .map(|_| {
            use std::os::unix::process::CommandExt;
            sshd.login_command("bob", "bobpw", AuthMode::Password, "sleep 61")
                .process_group(0) // so that logging out ends timeout, sshpass and ssh together
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let caches = recorded_caches(&site, uid, 2);
    assert_eq!(
        caches.len(),
        2,
        "two recorded session caches: {caches:?}\n{}",
        sshd.log_tail()
    );
    let first: Vec<(String, bool)> = caches.iter().map(|c| tgt(&site, c)).collect();
    assert!(first.iter().all(|(_, valid)| *valid), "{first:?}");
    let expires_by = Instant::now() + Duration::from_secs(11);

    // The project's unit, as installed, with this sandbox's helper, client.toml and krb5.conf.
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/ktbroker-renew.service"))
        .unwrap()
        .replace(
            "ExecStart=/usr/bin/ktbroker-kinit renew --keep-renewed",
            &format!(
                "Environment=KRB5_CONFIG={}\nExecStart={} --config {} renew --keep-renewed",
                site.module_krb5_conf.display(),
                project_binary("ktbroker-kinit").display(),
                site.client_toml.display()
            ),
        );
    assert!(unit.contains("renew --keep-renewed"), "{unit}");
    let manager = UserManager::start(&site.dir.join("bob-manager"), "bob", uid).unwrap();
    manager.install_unit("ktbroker-renew.service", &unit).unwrap();
    let started = manager.systemctl(&["start", "ktbroker-renew"]);
    assert!(started.status.success(), "{started:?}");

    // Past the first tickets' end, both caches still hold a valid ticket, renewed in place.
    while Instant::now() < expires_by {
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(1));
    for (cache, (before, _)) in caches.iter().zip(&first) {
        let (now, valid) = tgt(&site, cache);
        assert!(
            valid && now != *before,
            "{} was not renewed: {before} -> {now}\n{}",
            cache.display(),
            String::from_utf8_lossy(&manager.systemctl(&["status", "ktbroker-renew", "--no-pager"]).stdout)
        );
    }
    let active = manager.systemctl(&["is-active", "ktbroker-renew"]);
    assert_eq!(String::from_utf8_lossy(&active.stdout).trim(), "active");

    // Logging out ends the sessions' caches and records; the unit keeps waiting for new ones.
    for session in &mut sessions {
        let group = format!("-{}", session.id());
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status();
        let _ = session.wait();
    }
    // Without a terminal, sshd leaves the session's command running after the connection ends.
    let _ = std::process::Command::new("pkill")
        .args(["-KILL", "-u", "bob", "-f", "^sleep 61$"])
        .status();
    site.assert_nothing_left(uid, &sshd);
    std::thread::sleep(Duration::from_secs(1));
    let active = manager.systemctl(&["is-active", "ktbroker-renew"]);
    assert_eq!(String::from_utf8_lossy(&active.stdout).trim(), "active");
}

trait Short {
    fn short(self) -> &'static str;
}

impl Short for AuthMode {
    fn short(self) -> &'static str {
        match self {
            AuthMode::Password => "pw",
            AuthMode::KeyboardInteractive => "kbd",
        }
    }
}
