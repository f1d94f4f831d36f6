//! pam_ktbroker.so through real libpam (driven by ktbroker-pam-driver with pam_start_confdir, so
//! the service files live in the sandbox, not /etc/pam.d), against the real KDC, slapd and broker.
//! The demo users must exist locally (the module runs the helper as the user): the setup creates
//! them with useradd, and gives alice a local password for the pam_unix stacking test.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ktbroker_tests::Sandbox;
use ktbroker_tests::accounts::{local_users, uid_of};
use ktbroker_tests::bins::{project_binary, tool_binary};
use ktbroker_tests::pam_stack::PamStack;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PAM_SUCCESS: i32 = 0;
const PAM_AUTH_ERR: i32 = 7;
const PAM_AUTHINFO_UNAVAIL: i32 = 9;
const PAM_USER_UNKNOWN: i32 = 10;

/// A sandbox and a PAM stack of our module on it (see [`PamStack`]).
struct PamSetup {
    sandbox: Sandbox,
    stack: PamStack,
}

impl std::ops::Deref for PamSetup {
    type Target = PamStack;
    fn deref(&self) -> &PamStack {
        &self.stack
    }
}

impl PamSetup {
    fn start() -> Self {
        local_users();
        let sandbox = ktbroker_tests::start_sandbox();
        let stack = PamStack::create(&sandbox).unwrap();
        Self { sandbox, stack }
    }

    /// Writes service `name`: our module for auth and session, pam_permit for account.
    fn service(&self, name: &str, extra: &str, auth_before: &str) -> String {
        self.stack.service(name, extra, auth_before).unwrap()
    }

    fn drive(&self, service: &str, user: &str, stdin: &[u8], ops: &[&str]) -> Output {
        let mut child = self
            .driver(service, user, ops)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin);
        drop(input);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.code().is_some(),
            "the driver (and the module in it) crashed: {:?}",
            out.status
        );
        out
    }

    /// The auth step's temporary caches are all gone (this setup's directory holds nothing else).
    fn assert_no_pending_caches(&self) {
        let leftovers: Vec<_> = std::fs::read_dir(&self.pending_dir).unwrap().flatten().collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The return code the driver printed for `op`.
fn rc(out: &Output, op: &str) -> i32 {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{op} rc=")))
        .unwrap_or_else(|| panic!("no {op} in:\n{}", text(out)))
        .parse()
        .unwrap()
}

fn cache_path(out: &Output) -> PathBuf {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let name = stdout
        .lines()
        .find_map(|l| l.strip_prefix("KRB5CCNAME="))
        .unwrap_or_default();
    PathBuf::from(
        name.strip_prefix("FILE:")
            .unwrap_or_else(|| panic!("no FILE cache in:\n{}", text(out))),
    )
}

#[test]
fn the_right_password_opens_a_session_holding_the_users_ticket() {
    let setup = PamSetup::start();
    let service = setup.service("ktbroker-login", "", "");
    let pending = format!("pending={}", setup.pending_dir.display());
    let out = setup.drive(
        &service,
        "alice",
        b"alicepw\n",
        &[
            "authenticate",
            &pending,
            "setcred",
            &pending,
            "acct_mgmt",
            "open_session",
            "cache",
            "klist",
            "close_session",
            "cache",
        ],
    );
    for op in ["authenticate", "setcred", "acct_mgmt", "open_session", "close_session"] {
        assert_eq!(rc(&out, op), PAM_SUCCESS, "{op}:\n{}", text(&out));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cache = cache_path(&out);
    let uid = uid_of("alice");
    let name = cache.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with(&format!("krb5cc_{uid}_")), "{name}");
    assert!(stdout.contains(&format!("cache exists uid={uid} mode=600")), "{stdout}");
    assert!(stdout.contains("Default principal: alice@KRBTEST.COM"), "{stdout}");
    assert!(stdout.contains("krbtgt/KRBTEST.COM@KRBTEST.COM"), "{stdout}");
    assert!(stdout.trim_end().ends_with("prompts=1"), "{stdout}");
    // The ticket waited in the module's ccache_dir between auth and setcred, and left it then.
    assert!(stdout.contains("pending 1\nsetcred rc=0\npending 0\n"), "{stdout}");
    assert!(
        stdout.contains("cache missing"),
        "close_session removed the cache: {stdout}"
    );
    assert!(!cache.exists());
    // Nothing was left behind by the auth step either.
    setup.assert_no_pending_caches();
}

#[test]
fn a_session_cache_on_another_filesystem_is_written_there() {
    let setup = PamSetup::start();
    // The pending ticket waits on the sandbox's filesystem; /dev/shm is a tmpfs of its own, so a
    // rename between them would fail with EXDEV.
    let shm = tempfile::Builder::new()
        .prefix("ktbroker-pam-")
        .tempdir_in("/dev/shm")
        .unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_ne!(
        std::fs::metadata(&setup.pending_dir).unwrap().dev(),
        std::fs::metadata(shm.path()).unwrap().dev(),
        "the test needs two filesystems"
    );
    let extra = format!("ccache=FILE:{}/krb5cc_%u_XXXXXX", shm.path().display());
    let service = setup.service("ktbroker-shm", &extra, "");
    let out = setup.drive(
        &service,
        "alice",
        b"alicepw\n",
        &["authenticate", "open_session", "cache", "klist", "close_session"],
    );
    assert_eq!(rc(&out, "open_session"), PAM_SUCCESS, "{}", text(&out));
    let cache = cache_path(&out);
    assert!(cache.starts_with(shm.path()), "{}", cache.display());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let uid = uid_of("alice");
    assert!(stdout.contains(&format!("cache exists uid={uid} mode=600")), "{stdout}");
    assert!(stdout.contains("Default principal: alice@KRBTEST.COM"), "{stdout}");
    assert_eq!(rc(&out, "close_session"), PAM_SUCCESS, "{}", text(&out));
    assert_eq!(
        std::fs::read_dir(shm.path()).unwrap().count(),
        0,
        "closed, and no staging file left"
    );
    setup.assert_no_pending_caches();
}

#[test]
fn retain_after_close_keeps_the_cache() {
    let setup = PamSetup::start();
    let service = setup.service("ktbroker-retain", "retain_after_close", "");
    let out = setup.drive(
        &service,
        "bob",
        b"bobpw\n",
        &["authenticate", "open_session", "close_session", "cache"],
    );
    assert_eq!(rc(&out, "close_session"), PAM_SUCCESS, "{}", text(&out));
    let cache = cache_path(&out);
    assert!(cache.exists(), "{}", text(&out));
    std::fs::remove_file(cache).unwrap();
}

#[test]
fn wrong_password_unknown_user_and_a_dead_broker_map_to_their_pam_codes() {
    let setup = PamSetup::start();
    let service = setup.service("ktbroker-errors", "", "");
    let out = setup.drive(&service, "alice", b"wrong\n", &["authenticate"]);
    assert_eq!(rc(&out, "authenticate"), PAM_AUTH_ERR, "{}", text(&out));
    let out = setup.drive(&service, "nosuchlocaluser", b"x\n", &["authenticate"]);
    assert_eq!(rc(&out, "authenticate"), PAM_USER_UNKNOWN, "{}", text(&out));
    // With ignore_unknown_user the module steps aside (PAM_IGNORE): the next module decides.
    let module = project_binary("libpam_ktbroker.so");
    std::fs::write(
        setup.confdir.join("ktbroker-ignore"),
        format!(
            "auth required {} {}\nauth required pam_permit.so\n",
            module.display(),
            setup.module_args("ignore_unknown_user")
        ),
    )
    .unwrap();
    let out = setup.drive("ktbroker-ignore", "nosuchlocaluser", b"x\n", &["authenticate"]);
    assert_eq!(
        rc(&out, "authenticate"),
        PAM_SUCCESS,
        "ignored, then pam_permit: {}",
        text(&out)
    );
    let out = setup.drive("ktbroker-ignore", "alice", b"wrong\n", &["authenticate"]);
    assert_eq!(
        rc(&out, "authenticate"),
        PAM_AUTH_ERR,
        "a local user is not ignored: {}",
        text(&out)
    );

    // A broker that never answers: PAM_AUTHINFO_UNAVAIL within the module's timeout + 1 s.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_toml = setup.sandbox.root.join("client").join("dead.toml");
    std::fs::write(
        &dead_toml,
        format!(
            "version = 1\nbrokers = [\"https://127.0.0.1:{}\"]\nca_file = \"{}\"\n",
            silent.local_addr().unwrap().port(),
            setup.sandbox.pki.ca_cert.display()
        ),
    )
    .unwrap();
    let module = project_binary("libpam_ktbroker.so");
    let args = setup
        .module_args("")
        .replace(
            &setup.client_toml.display().to_string(),
            &dead_toml.display().to_string(),
        )
        .replace("timeout=5", "timeout=2");
    std::fs::write(
        setup.confdir.join("ktbroker-dead"),
        format!("auth required {} {args}\n", module.display()),
    )
    .unwrap();
    let started = Instant::now();
    let out = setup.drive("ktbroker-dead", "alice", b"alicepw\n", &["authenticate"]);
    assert_eq!(rc(&out, "authenticate"), PAM_AUTHINFO_UNAVAIL, "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    drop(silent);
}

#[test]
fn after_pam_unix_use_first_pass_means_one_prompt() {
    let setup = PamSetup::start();
    let service = setup.service("ktbroker-stacked", "use_first_pass", "auth required pam_unix.so\n");
    let out = setup.drive(&service, "alice", b"alicepw\n", &["authenticate"]);
    assert_eq!(rc(&out, "authenticate"), PAM_SUCCESS, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("prompts=1"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&setup.sandbox.broker.audit_file)
            .unwrap()
            .lines()
            .count(),
        1,
        "the broker saw the one password"
    );
}

#[test]
fn garbage_arguments_huge_passwords_and_odd_names_give_pam_errors_not_crashes() {
    let setup = PamSetup::start();
    // libpam itself limits a service-file line; within that, any garbage.
    let huge_arg = "x".repeat(600);
    let service = setup.service(
        "ktbroker-garbage",
        &format!("timeout=abc minimum_uid=-1 ccache=KEYRING:x frobnicate = {huge_arg}"),
        "",
    );
    // Unknown and malformed arguments are ignored: the login still works.
    let out = setup.drive(&service, "alice", b"alicepw\n", &["authenticate"]);
    assert_eq!(rc(&out, "authenticate"), PAM_SUCCESS, "{}", text(&out));
    let mut megabyte = vec![b'p'; 1 << 20];
    megabyte.push(b'\n');
    let out = setup.drive(&service, "alice", &megabyte, &["authenticate"]);
    assert_eq!(rc(&out, "authenticate"), PAM_AUTH_ERR, "{}", text(&out));
    // A user name typed with a NUL in it reaches the module cut at the NUL ("ali"): unknown.
    let out = setup.drive(&service, "-", b"ali\0ce\nalicepw\n", &["authenticate"]);
    assert_eq!(rc(&out, "authenticate"), PAM_USER_UNKNOWN, "{}", text(&out));
    let out = setup.drive(&service, "", b"alicepw\n", &["authenticate"]);
    assert_ne!(rc(&out, "authenticate"), PAM_SUCCESS, "{}", text(&out));
}

#[test]
fn the_module_exports_exactly_the_six_pam_hooks() {
    let module: &Path = &project_binary("libpam_ktbroker.so");
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(module)
        .output()
        .unwrap();
    let mut symbols: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    symbols.sort();
    assert_eq!(
        symbols,
        [
            "pam_sm_acct_mgmt",
            "pam_sm_authenticate",
            "pam_sm_chauthtok",
            "pam_sm_close_session",
            "pam_sm_open_session",
            "pam_sm_setcred"
        ]
    );
}

#[test]
fn try_first_pass_takes_an_earlier_password_and_prompts_once_more_if_it_fails() {
    let setup = PamSetup::start();
    // pam_unix (optional) takes the first answer; alice's local password is alicepw.
    let service = setup.service("ktbroker-try", "try_first_pass", "auth optional pam_unix.so\n");
    let out = setup.drive(&service, "alice", b"alicepw\n", &["authenticate"]);
    assert_eq!(rc(&out, "authenticate"), PAM_SUCCESS, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("prompts=1"),
        "reused: {}",
        text(&out)
    );
    // A first answer that is not the directory password: one more prompt, then success.
    let out = setup.drive(&service, "alice", b"only-local-guess\nalicepw\n", &["authenticate"]);
    assert_eq!(rc(&out, "authenticate"), PAM_SUCCESS, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("prompts=2"),
        "{}",
        text(&out)
    );
    // use_first_pass never prompts: the wrong first answer is final.
    let strict = setup.service("ktbroker-use", "use_first_pass", "auth optional pam_unix.so\n");
    let out = setup.drive(&strict, "alice", b"only-local-guess\nalicepw\n", &["authenticate"]);
    assert_eq!(rc(&out, "authenticate"), PAM_AUTH_ERR, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("prompts=1"),
        "{}",
        text(&out)
    );
}

#[test]
fn root_and_low_uids_can_be_left_to_other_modules() {
    let setup = PamSetup::start();
    let module = project_binary("libpam_ktbroker.so");
    let alice = uid_of("alice");
    for (name, extra, user) in [
        ("ktbroker-root", "ignore_root".to_owned(), "root"),
        ("ktbroker-minuid", format!("minimum_uid={}", alice + 1), "alice"),
    ] {
        std::fs::write(
            setup.confdir.join(name),
            format!(
                "auth required {} {}\nauth required pam_permit.so\n",
                module.display(),
                setup.module_args(&extra)
            ),
        )
        .unwrap();
        let out = setup.drive(name, user, b"whatever\n", &["authenticate"]);
        assert_eq!(
            rc(&out, "authenticate"),
            PAM_SUCCESS,
            "{name}: ignored, then pam_permit: {}",
            text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("prompts=0"),
            "{name}: {}",
            text(&out)
        );
    }
    assert_eq!(
        std::fs::read_to_string(&setup.sandbox.broker.audit_file)
            .unwrap_or_default()
            .lines()
            .count(),
        0,
        "the broker was never asked"
    );
}

#[test]
fn no_ccache_authenticates_and_keeps_no_ticket() {
    let setup = PamSetup::start();
    let service = setup.service("ktbroker-nocache", "no_ccache", "");
    let out = setup.drive(
        &service,
        "alice",
        b"alicepw\n",
        &["authenticate", "open_session", "cache"],
    );
    assert_eq!(rc(&out, "authenticate"), PAM_SUCCESS, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("KRB5CCNAME=\n"),
        "no cache exported: {}",
        text(&out)
    );
    setup.assert_no_pending_caches();
}

#[test]
fn pam_auth_update_enables_the_profile_ahead_of_pam_unix() {
    // pam-auth-update rewrites /etc/pam.d/common-*: run it in a private mount namespace over
    // copies of /etc/pam.d, /usr/share/pam-configs and /var/lib/pam, so the machine is untouched.
    let scratch = tempfile::tempdir().unwrap();
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pam/pam-configs/ktbroker");
    let script = format!(
        "set -e
         for d in /etc/pam.d /usr/share/pam-configs /var/lib/pam; do
           mkdir -p {t}$d; cp -a $d/. {t}$d/ 2>/dev/null || true; mount --bind {t}$d $d
         done
         cp {profile} /usr/share/pam-configs/ktbroker
         DEBIAN_FRONTEND=noninteractive pam-auth-update --enable ktbroker
         grep -v '^#' /etc/pam.d/common-auth; echo ===; grep -v '^#' /etc/pam.d/common-session",
        t = scratch.path().display(),
        profile = profile.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    let (auth, session) = shown.split_once("===").unwrap();
    let ours = auth.lines().position(|l| l.contains("pam_ktbroker.so")).expect(&shown);
    let unix = auth.lines().position(|l| l.contains("pam_unix.so")).expect(&shown);
    assert!(
        ours < unix,
        "ktbroker asks first, pam_unix follows with try_first_pass:\n{auth}"
    );
    assert!(auth.lines().nth(unix).unwrap().contains("try_first_pass"), "{auth}");
    assert!(session.contains("optional\tpam_ktbroker.so"), "{session}");
    let real = std::fs::read_to_string("/etc/pam.d/common-auth").unwrap();
    assert!(
        !real.contains("pam_ktbroker"),
        "the machine's own PAM configuration was left alone"
    );
}

#[test]
fn a_password_the_directory_wants_changed_is_changed_through_the_conversation() {
    let setup = PamSetup::start();
    let service = setup.service("ktbroker-change", "", "");
    let ops = ["authenticate", "setcred", "open_session", "klist", "close_session"];
    // erin's password was reset by an administrator: the module asks for a new one twice.
    let out = setup.drive(&service, "erin", b"erinpw\nN3w-erin-pw\nN3w-erin-pw\n", &ops);
    for op in ["authenticate", "setcred", "open_session", "close_session"] {
        assert_eq!(rc(&out, op), PAM_SUCCESS, "{op}:\n{}", text(&out));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Default principal: erin@KRBTEST.COM"), "{stdout}");
    assert!(stdout.trim_end().ends_with("prompts=3"), "{stdout}");
    assert!(text(&out).contains("was changed"), "{}", text(&out));
    // gina's has expired (grace logins left): a new password slapd's rules refuse is told in
    // its terms, two that differ are caught, and the third try goes through.
    let input = b"ginapw\nshort\nshort\nN3w-gina-pw\nN3w-gina-px\nN3w-gina-pw\nN3w-gina-pw\n";
    let out = setup.drive(&service, "gina", input, &["authenticate"]);
    assert_eq!(rc(&out, "authenticate"), PAM_SUCCESS, "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("pam message: the new password was refused: it is too short"),
        "{said}"
    );
    assert!(said.contains("pam message: The two new passwords differ"), "{said}");
    assert!(
        String::from_utf8_lossy(&out.stdout).trim_end().ends_with("prompts=7"),
        "{said}"
    );
    // The directory now takes the new passwords.
    let out = setup.drive(&service, "erin", b"N3w-erin-pw\n", &["authenticate"]);
    assert_eq!(rc(&out, "authenticate"), PAM_SUCCESS, "{}", text(&out));
    assert!(
        setup
            .sandbox
            .directory
            .ppolicy_bind("gina", "ginapw")
            .unwrap()
            .contains("(49)")
    );
    // frank's expired with no grace login left: nothing to change it on; told where to go.
    let out = setup.drive(&service, "frank", b"frankpw\n", &["authenticate"]);
    assert_eq!(rc(&out, "authenticate"), PAM_AUTH_ERR, "{}", text(&out));
    assert!(
        text(&out).contains("pam message: Your directory password has expired"),
        "{}",
        text(&out)
    );
    setup.assert_no_pending_caches();
}

/// The `Valid starting` and `Expires` of the TGT in `cache`, as klist prints them.
fn tgt_times(setup: &PamSetup, cache: &Path) -> String {
    let out = Command::new("klist")
        .arg("-c")
        .arg(format!("FILE:{}", cache.display()))
        .env("KRB5_CONFIG", &setup.sandbox.realm.krb5_conf)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    listing
        .lines()
        .find(|l| l.contains("krbtgt/"))
        .unwrap_or_else(|| panic!("no TGT in {}:\n{listing}", cache.display()))
        .to_owned()
}

fn names_in(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    names
}

#[test]
fn a_screen_unlock_refreshes_the_session_cache_in_place_and_creates_nothing() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let setup = PamSetup::start();
    let caches = setup.sandbox.root.join("unlock-caches");
    std::fs::create_dir_all(&caches).unwrap();
    std::fs::set_permissions(&caches, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let service = setup.service(
        "ktbroker-unlock",
        &format!("ccache=FILE:{}/krb5cc_%u_XXXXXX", caches.display()),
        "",
    );
    // The login: a session cache, left in place as by a session that is still open.
    let out = setup.drive(
        &service,
        "alice",
        b"alicepw\n",
        &["authenticate", "setcred", "open_session", "cache"],
    );
    assert_eq!(rc(&out, "open_session"), PAM_SUCCESS, "{}", text(&out));
    let cache = cache_path(&out);
    let inode = std::fs::metadata(&cache).unwrap().ino();
    let files = names_in(&caches);
    let first = tgt_times(&setup, &cache);

    // The screen locker runs as the user, inside the session (KRB5CCNAME in its environment).
    let uid = uid_of("alice");
    let as_alice = |stdin: &[u8], ops: &[&str], ccname: Option<&Path>| {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid",
                &uid.to_string(),
                "--regid",
                &uid.to_string(),
                "--clear-groups",
            ])
            .arg(tool_binary("ktbroker-pam-driver"))
            .arg(&setup.confdir)
            .args([service.as_str(), "alice"])
            .args(ops)
            .env("KRB5_CONFIG", &setup.sandbox.realm.krb5_conf)
            .env_remove("KRB5CCNAME");
        if let Some(cache) = ccname {
            command.env("KRB5CCNAME", format!("FILE:{}", cache.display()));
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(stdin);
        child.wait_with_output().unwrap()
    };
    let times_differ_from = |earlier: &str| {
        // Kerberos times have one-second resolution.
        std::thread::sleep(Duration::from_millis(1100));
        earlier.to_owned()
    };

    // Unlock with the password: a new ticket, written into the same file.
    let earlier = times_differ_from(&first);
    let out = as_alice(b"alicepw\n", &["authenticate", "refresh"], Some(&cache));
    assert_eq!(rc(&out, "authenticate"), PAM_SUCCESS, "{}", text(&out));
    assert_eq!(rc(&out, "refresh"), PAM_SUCCESS, "{}", text(&out));
    let second = tgt_times(&setup, &cache);
    assert_ne!(second, earlier, "the cache holds a new ticket");
    assert_eq!(
        std::fs::metadata(&cache).unwrap().ino(),
        inode,
        "the same file, in place"
    );
    assert_eq!(names_in(&caches), files, "no new cache file");
    setup.assert_no_pending_caches();

    // Unlocked by another module (no password for this one): the ticket in it is renewed.
    let earlier = times_differ_from(&second);
    let out = as_alice(b"", &["reinitialize"], Some(&cache));
    assert_eq!(rc(&out, "reinitialize"), PAM_SUCCESS, "{}", text(&out));
    assert_ne!(tgt_times(&setup, &cache), earlier, "renewed");
    // (libkrb5 rewrites the file as `kinit -R` does: same name, possibly a new inode.)
    assert_eq!(names_in(&caches), files, "same name, no new file");

    // No session cache to refresh: nothing is created, and the ticket from auth is not kept.
    // (The module ignores the call; a stack whose every module ignored it is PAM_PERM_DENIED.)
    const ALL_IGNORED: i32 = 6;
    let out = as_alice(b"alicepw\n", &["authenticate", "refresh"], None);
    assert_eq!(rc(&out, "refresh"), ALL_IGNORED, "{}", text(&out));
    assert_eq!(names_in(&caches), files);
    setup.assert_no_pending_caches();
    // Nor is a file that is not the user's, whatever KRB5CCNAME says.
    let out = as_alice(b"", &["refresh"], Some(Path::new("/etc/passwd")));
    assert_eq!(rc(&out, "refresh"), ALL_IGNORED, "{}", text(&out));
    std::fs::remove_file(&cache).unwrap();
}

#[test]
fn a_pam_login_in_ticket_delivery_puts_the_delivered_ticket_in_the_session() {
    let setup = PamSetup::start();
    // The same client.toml, asking for tickets only.
    let toml = std::fs::read_to_string(&setup.client_toml).unwrap();
    std::fs::write(&setup.client_toml, format!("{toml}\ndelivery = \"ticket\"\n")).unwrap();
    let service = setup.service("ktbroker-ticket", "", "");
    let out = setup.drive(
        &service,
        "alice",
        b"alicepw\n",
        &["authenticate", "setcred", "open_session", "cache"],
    );
    assert_eq!(rc(&out, "open_session"), PAM_SUCCESS, "{}", text(&out));
    let cache = cache_path(&out);
    let status = setup.sandbox.status_json(&format!("FILE:{}", cache.display()));
    assert_eq!(status["principal"], setup.sandbox.principal("alice"), "{status}");
    assert_eq!(status["delivery"], "ticket", "{status}");
    assert_eq!(status["valid"], true, "{status}");
    std::fs::remove_file(&cache).unwrap();
    setup.assert_no_pending_caches();
}
