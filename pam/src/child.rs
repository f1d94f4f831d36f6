//! Running `ktbroker-kinit` for the user, the way SSSD runs krb5_child: a child process that
//! becomes the user (groups, gid, uid) before exec, inherits no descriptor of the host process
//! but its stdin, stdout and stderr, gets the password on stdin, and is killed at the deadline.
//! Its stdin is one end of a socket pair, so writing the password can never raise SIGPIPE in the
//! host process.

use crate::args::Args;
use crate::ffi::{Account, become_user_before_exec};
use std::ffi::c_int;
use std::io::{BufRead, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// How the helper run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperOutcome {
    /// Exit status of the helper (0: a ticket is in the cache), and the last line it printed.
    Exited {
        code: Option<i32>,
        last_line: String,
    },
    TimedOut,
    CannotStart(String),
}

/// What the helper is run for, with what it is given on its stdin.
#[derive(Clone, Copy)]
pub enum Secrets<'a> {
    Password(&'a [u8]),
    /// The directory wants `old` changed to `new` (`--new-password`: old, new, new).
    Change {
        old: &'a [u8],
        new: &'a [u8],
    },
    /// `renew`: no password; the ticket already in the cache is renewed in place.
    Renewal,
}

/// Runs the helper for `account` on the cache `ccache`; `secrets` go to its stdin, one per line.
pub fn run_helper(args: &Args, account: &Account, ccache: &str, secrets: Secrets<'_>) -> HelperOutcome {
    let lines: Vec<&[u8]> = match secrets {
        Secrets::Password(password) => vec![password],
        Secrets::Change { old, new } => vec![old, new, new],
        Secrets::Renewal => Vec::new(),
    };
    let (ours, theirs) = match std::os::unix::net::UnixStream::pair() {
        Ok(pair) => pair,
        Err(e) => return HelperOutcome::CannotStart(format!("socketpair: {e}")),
    };
    let mut command = helper_command(args, account);
    match secrets {
        Secrets::Renewal => {
            command.args(["--quiet", "-c", ccache, "renew"]);
        }
        Secrets::Password(_) | Secrets::Change { .. } => {
            if matches!(secrets, Secrets::Change { .. }) {
                command.arg("--new-password");
            }
            command
                .args(["--quiet", "-c", ccache, "--timeout"])
                .arg(args.timeout.as_secs().to_string())
                .arg(&account.name);
        }
    }
    command.stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)));
    let spawned = command.spawn();
    drop(command); // closes our copy of the child's end of the socket pair
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return HelperOutcome::CannotStart(format!("{}: {e}", args.helper.display())),
    };
    // A helper that died early has closed its end: the send fails (EPIPE, no signal) and the exit
    // status tells why.
    let _ = lines
        .iter()
        .try_for_each(|line| crate::ffi::send_all(&ours, line).and_then(|()| crate::ffi::send_all(&ours, b"\n")));
    let _ = ours.shutdown(std::net::Shutdown::Write);
    let (stderr, _) = read_stderr(&mut child);
    let deadline = Instant::now() + args.timeout + Duration::from_millis(500);
    finish(child, stderr, deadline)
}

/// The sign-in at the identity provider (`--sso`): no secrets; once the helper shows where to
/// sign in, `show(url, code)` tells the person (and may wait for them, e.g. for Enter); then the
/// helper gets until the sign-in wait is over. An `Err` from `show` (the person gave up, the
/// conversation failed) ends the helper at once.
pub fn run_sign_in(
    args: &Args,
    account: &Account,
    ccache: &str,
    show: impl FnOnce(&str, &str) -> Result<(), c_int>,
) -> Result<HelperOutcome, c_int> {
    let mut command = helper_command(args, account);
    command
        .args(["--quiet", "--sso", "-c", ccache, "--timeout"])
        .arg(args.timeout.as_secs().to_string())
        .arg(&account.name)
        .stdin(Stdio::null());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Ok(HelperOutcome::CannotStart(format!("{}: {e}", args.helper.display()))),
    };
    let started = Instant::now();
    let (stderr, lines) = read_stderr(&mut child);
    // The prompt comes after one broker round trip: within the helper's timeout.
    let prompt_deadline = started + args.timeout + Duration::from_millis(500);
    let prompt = loop {
        let left = prompt_deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(prompt) = sign_in_prompt(&line) {
                    break Some(prompt);
                }
            }
            // Exited without a prompt, or none in time: the outcome says which.
            Err(_) => break None,
        }
    };
    if let Some((url, code)) = prompt
        && let Err(code) = show(&url, &code)
    {
        let _ = child.kill();
        let _ = child.wait();
        return Err(code);
    }
    let deadline = started + args.sso_wait + args.timeout * 2 + Duration::from_millis(500);
    Ok(finish(child, stderr, deadline))
}

/// `ktbroker-kinit: sign-in url=URL code=CODE expires_in=N` as (URL, CODE), checked as the
/// helper checks them: an https address and a code of printable characters.
fn sign_in_prompt(line: &str) -> Option<(String, String)> {
    let fields = line.strip_prefix("ktbroker-kinit: sign-in ")?;
    let field = |name: &str| {
        fields
            .split(' ')
            .find_map(|f| f.strip_prefix(name))
            .filter(|v| !v.is_empty() && v.len() <= 2048 && v.chars().all(|c| c.is_ascii_graphic()))
            .map(str::to_owned)
    };
    let url = field("url=").filter(|u| u.starts_with("https://"))?;
    Some((url, field("code=")?))
}

/// The helper as the user, in a clean environment, its stdout discarded and stderr piped.
fn helper_command(args: &Args, account: &Account) -> Command {
    let mut command = Command::new(&args.helper);
    if let Some(config) = &args.config {
        command.arg("--config").arg(config);
    }
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LANG", "C")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(krb5_config) = &args.krb5_config {
        command.env("KRB5_CONFIG", krb5_config);
    }
    become_user_before_exec(&mut command, account);
    command
}

/// A thread that reads the helper's stderr (16 KiB at most): all of it at the end, and each line
/// as it comes.
fn read_stderr(child: &mut std::process::Child) -> (std::thread::JoinHandle<String>, Receiver<String>) {
    let stderr = child.stderr.take();
    let (sender, lines) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(stderr) = stderr {
            let mut reader = std::io::BufReader::new(stderr.take(16 * 1024));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                let _ = sender.send(line.trim_end().to_owned());
                text.push_str(&line);
                line.clear();
            }
        }
        text
    });
    (reader, lines)
}

/// Waits for the helper until `deadline` (then kills it), and reads how it ended.
fn finish(mut child: std::process::Child, stderr: std::thread::JoinHandle<String>, deadline: Instant) -> HelperOutcome {
    let Some(status) = crate::ffi::wait_for_exit(&mut child, deadline) else {
        let _ = child.kill();
        let _ = child.wait();
        return HelperOutcome::TimedOut;
    };
    let text = stderr.join().unwrap_or_default();
    let last_line = text
        .lines()
        .rfind(|l| l.starts_with("ktbroker-kinit:") && !l.starts_with("ktbroker-kinit: sign-in "))
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    HelperOutcome::Exited {
        code: status.code(),
        last_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_sign_in_line_is_shown_to_the_person() {
        assert_eq!(
            sign_in_prompt("ktbroker-kinit: sign-in url=https://idp/device code=AB-CD expires_in=300"),
            Some(("https://idp/device".into(), "AB-CD".into()))
        );
        assert_eq!(
            sign_in_prompt("ktbroker-kinit: sign-in url=http://idp/device code=AB"),
            None
        );
        assert_eq!(sign_in_prompt("ktbroker-kinit: sign-in url=https://idp/device"), None);
        assert_eq!(sign_in_prompt("To log in, open https://idp/device"), None);
        assert_eq!(
            sign_in_prompt("ktbroker-kinit: sign-in url=https://idp/\u{1b}[2J code=AB"),
            None
        );
    }
}
