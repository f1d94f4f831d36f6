//! Running `ktbroker-kinit` for the user, the way SSSD runs krb5_child: a child process that
//! becomes the user (groups, gid, uid) before exec, inherits no descriptor of the host process
//! but its stdin, stdout and stderr, gets the password on stdin, and is killed at the deadline.
//! Its stdin is one end of a socket pair, so writing the password can never raise SIGPIPE in the
//! host process.

use crate::args::Args;
use crate::ffi::{Account, become_user_before_exec};
use std::io::Read;
use std::process::{Command, Stdio};
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
    let mut command = Command::new(&args.helper);
    if let Some(config) = &args.config {
        command.arg("--config").arg(config);
    }
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
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LANG", "C")
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(krb5_config) = &args.krb5_config {
        command.env("KRB5_CONFIG", krb5_config);
    }
    become_user_before_exec(&mut command, account);
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
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.by_ref().take(16 * 1024).read_to_string(&mut text);
        }
        text
    });
    let deadline = Instant::now() + args.timeout + Duration::from_millis(500);
    let Some(status) = crate::ffi::wait_for_exit(&mut child, deadline) else {
        let _ = child.kill();
        let _ = child.wait();
        return HelperOutcome::TimedOut;
    };
    let text = reader.join().unwrap_or_default();
    let last_line = text
        .lines()
        .rfind(|l| l.starts_with("ktbroker-kinit:"))
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    HelperOutcome::Exited {
        code: status.code(),
        last_line,
    }
}
