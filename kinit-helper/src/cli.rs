//! ktbroker-kinit's command line, in the library so man pages and shell completions can be
//! generated from it (see `packaging/`).

use crate::config::DEFAULT_PATH;
use crate::request::LoginOptions;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Get a Kerberos ticket with your directory password, through ktbrokerd.
///
/// The password is read from the terminal without echo, from stdin when stdin is not a terminal,
/// or from --password-fd; never from the command line or the environment. The keytab the broker
/// returns is used in memory and wiped; it never touches a disk.
#[derive(Debug, Parser)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Exit codes: 0 success; 1 internal error; 2 usage or configuration error; 3 authentication \
failed; 4 refused by policy; 5 broker unreachable or unavailable (includes TLS trust failures); 6 invalid \
answer from the broker; 7 the KDC exchange failed, or no valid ticket (status, renew); 8 cannot read the \
password; 9 the credential cache is not yours. Errors print as [code] message, with a hint; the codes are \
listed in the README."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub login: LoginArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in (the default): password to ticket.
    Login(Box<LoginArgs>),
    /// Show the cache's principal and its ticket's expiry and renew-till; exit 7 without a valid ticket.
    Status {
        #[command(flatten)]
        common: CommonArgs,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Destroy the credential cache.
    Logout {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Renew the ticket in the cache (no password needed while it is renewable).
    Renew {
        #[command(flatten)]
        common: CommonArgs,
        /// Keep running: renew at about half of the remaining lifetime until the renewable lifetime
        /// ends, backing off while the KDC is unreachable; SIGTERM ends it cleanly.
        #[arg(long)]
        keep_renewed: bool,
    },
    /// Check configuration, broker TLS trust and health, clock skew, KDC reachability and the
    /// cache; print what is wrong and what to do. Exit code of the first failure, 0 if none.
    Doctor {
        #[command(flatten)]
        login: Box<LoginArgs>,
    },
    /// Log in unless the cache already holds a valid ticket, then run CMD with KRB5CCNAME set.
    /// Java/Hadoop read only FILE caches, so this uses one unless -c or client.toml says otherwise.
    Run {
        #[command(flatten)]
        login: Box<LoginArgs>,
        /// The command and its arguments (after `--`); run directly, never through a shell.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// Options every subcommand takes.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// Client configuration file.
    #[arg(long, default_value = DEFAULT_PATH)]
    pub config: PathBuf,
    /// Credential cache (default: client.toml's `ccache`, else KRB5CCNAME, else krb5.conf's default).
    #[arg(short = 'c', long)]
    pub ccache: Option<String>,
    /// Print nothing on success.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args, Clone)]
pub struct LoginArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub login: LoginOptions,
    /// Read the password from this file descriptor (a pipe) instead of the terminal or stdin.
    #[arg(long)]
    pub password_fd: Option<i32>,
}
