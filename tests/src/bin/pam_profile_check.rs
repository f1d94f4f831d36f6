//! `ktbroker-pam-profile-check [PROFILE]`: logs the demo users in through the PAM lines of a
//! pam-auth-update profile (default: the installed /usr/share/pam-configs/ktbroker), the way a
//! login would once an admin selects it, but in a private PAM config directory so /etc/pam.d is
//! never touched. The module is named as the profile names it (`pam_ktbroker.so`, no path), so
//! libpam must find it in its own module directory: this checks the package put it there.
//! Only `config=` is pointed at the sandbox's client.toml and `krb5_config=` at its realm.
//! Exits 0 when alice's right password opens a session holding her ticket, her wrong password
//! fails and the session's cache is gone after close. Run by scripts/test-packages.sh.

use anyhow::{Context, bail, ensure};
use ktbroker_tests::accounts::local_users;
use ktbroker_tests::bins::tool_binary;
use ktbroker_tests::sandbox::run_with_password;
use std::path::Path;
use std::process::Command;

const DEFAULT_PROFILE: &str = "/usr/share/pam-configs/ktbroker";

fn main() -> anyhow::Result<()> {
    let profile = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
    let text = std::fs::read_to_string(&profile).with_context(|| format!("reading {profile}"))?;
    local_users();
    let sandbox = ktbroker_tests::Sandbox::start()?;
    let client_toml = sandbox.root.join("client").join("client.toml");
    std::fs::write(&client_toml, sandbox.client_toml())?;
    let local = |line: &str| {
        format!(
            "{} krb5_config={} timeout=20",
            line.replace(
                "config=/etc/ktbroker/client.toml",
                &format!("config={}", client_toml.display())
            ),
            sandbox.realm.krb5_conf.display()
        )
    };
    let auth = section(&text, "Auth")?;
    let session = section(&text, "Session")?;
    let confdir = sandbox.root.join("pam.d");
    std::fs::create_dir_all(&confdir)?;
    // What pam-auth-update writes into common-auth: the primary block's `success=end` becomes a
    // jump over pam_deny to pam_permit.
    let service = format!(
        "auth {}\nauth requisite pam_deny.so\nauth required pam_permit.so\n\
         account required pam_permit.so\nsession {}\n",
        local(&auth).replace("success=end", "success=1"),
        local(&session)
    );
    print!("PAM service built from {profile}:\n{service}");
    std::fs::write(confdir.join("ktbroker-profile"), &service)?;

    let ops = [
        "authenticate",
        "setcred",
        "open_session",
        "klist",
        "close_session",
        "cache",
    ];
    let good = drive(&confdir, &sandbox.realm.krb5_conf, "alicepw", &ops)?;
    print!("{good}");
    for op in ["authenticate", "setcred", "open_session", "close_session"] {
        ensure!(
            good.contains(&format!("{op} rc=0")),
            "{op} failed for alice's right password"
        );
    }
    ensure!(
        good.contains(&format!("Default principal: {}", sandbox.principal("alice"))),
        "the session's cache does not hold alice's ticket"
    );
    ensure!(good.contains("cache missing"), "close_session left the cache behind");
    let bad = drive(&confdir, &sandbox.realm.krb5_conf, "not-alicepw", &["authenticate"])?;
    print!("{bad}");
    ensure!(
        !bad.contains("authenticate rc=0"),
        "alice's wrong password authenticated"
    );
    println!("pam-profile-check: ok");
    Ok(())
}

/// The first line of the profile's `NAME:` section (the lines indented below it).
fn section(profile: &str, name: &str) -> anyhow::Result<String> {
    let mut lines = profile.lines().skip_while(|l| l.trim_end() != format!("{name}:"));
    if lines.next().is_none() {
        bail!("the profile has no {name}: section");
    }
    lines
        .next()
        .filter(|l| l.starts_with(char::is_whitespace))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .with_context(|| format!("the profile's {name}: section is empty"))
}

/// Runs ktbroker-pam-driver for alice with `password` on stdin; returns what it printed.
fn drive(confdir: &Path, krb5_conf: &Path, password: &str, ops: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new(tool_binary("ktbroker-pam-driver"));
    command
        .arg(confdir)
        .args(["ktbroker-profile", "alice"])
        .args(ops)
        .env("KRB5_CONFIG", krb5_conf);
    let out = run_with_password(command, password);
    ensure!(out.status.code().is_some(), "the PAM driver crashed: {:?}", out.status);
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}
