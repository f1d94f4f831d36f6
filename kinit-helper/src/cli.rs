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
    after_help = "Exit codes: 0 success; 1 internal error; 2 usage or configuration error; 3 authentication \
failed; 4 refused by policy; 5 broker unreachable or unavailable (includes TLS trust failures); 6 invalid \
answer from the broker; 7 the KDC exchange failed, or no valid ticket (status, renew); 8 cannot read the \
password; 9 the credential cache is not yours; 10 the directory password must be changed and no new one \
was given. Errors print as [code] message, with a hint; the codes are listed in the README."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of every subcommand; accepted before or after its name.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The default command's (login) own options.
    #[command(flatten)]
    pub login: LoginFields,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in (the default): password to ticket.
    Login(Box<LoginFields>),
    /// Show the cache's principal and its ticket's expiry and renew-till; exit 7 without a valid ticket.
    /// Without -c, client.toml's `ccache` and KRB5CCNAME: every session cache pam_ktbroker recorded.
    Status {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Destroy the credential cache.
    Logout,
    /// Renew the ticket in the cache (no password needed while it is renewable). Without -c,
    /// client.toml's `ccache` and KRB5CCNAME: every session cache pam_ktbroker recorded.
    Renew {
        /// Keep running: renew at about half of the remaining lifetime until the renewable lifetime
        /// ends, backing off while the KDC is unreachable; SIGTERM ends it cleanly. Following the
        /// recorded session caches, it looks for new ones every minute and keeps running.
        #[arg(long)]
        keep_renewed: bool,
    },
    /// Check configuration, broker TLS trust and health, clock skew, KDC reachability and the
    /// cache; print what is wrong and what to do. Exit code of the first failure, 0 if none.
    Doctor {
        #[command(flatten)]
        login: Box<LoginFields>,
    },
    /// Log in unless the cache already holds USER's ticket with at least --min-lifetime left, then
    /// run CMD with KRB5CCNAME set. Java/Hadoop read only FILE caches, so this uses one unless -c
    /// or client.toml says otherwise.
    Run {
        #[command(flatten)]
        login: Box<LoginFields>,
        /// Least lifetime a cached ticket must have left to be used, as kinit -l writes it (30m,
        /// 4h); default: client.toml's `min_lifetime`, else 2h.
        #[arg(long, value_parser = parse_lifetime)]
        min_lifetime: Option<std::time::Duration>,
        /// The command and its arguments (after `--`); run directly, never through a shell.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

fn parse_lifetime(text: &str) -> Result<std::time::Duration, String> {
    ktbroker_krb5::parse_duration(text).map_err(|e| e.to_string())
}

/// Options every subcommand takes, before or after its name (`--config F status` and
/// `status --config F` are the same).
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// Client configuration file.
    #[arg(long, global = true, default_value = DEFAULT_PATH)]
    pub config: PathBuf,
    /// Credential cache (default: client.toml's `ccache`, else KRB5CCNAME, else krb5.conf's default).
    #[arg(short = 'c', long, global = true)]
    pub ccache: Option<String>,
    /// Print nothing on success.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// What a login takes beyond [`CommonArgs`].
#[derive(Debug, Args, Clone)]
pub struct LoginFields {
    #[command(flatten)]
    pub login: LoginOptions,
    /// Read the password from this file descriptor (a pipe) instead of the terminal or stdin.
    #[arg(long)]
    pub password_fd: Option<i32>,
    /// The directory wants the password changed: read the new one twice after the old and change
    /// it in this login, without asking with the old one first (what the PAM module does once it
    /// has the new one).
    #[arg(long)]
    pub new_password: bool,
}

/// A login's whole command line: the common options and the login's own.
#[derive(Debug, Clone)]
pub struct LoginArgs {
    pub common: CommonArgs,
    pub login: LoginOptions,
    pub password_fd: Option<i32>,
    pub new_password: bool,
}

impl LoginArgs {
    pub fn new(common: CommonArgs, fields: LoginFields) -> Self {
        Self {
            common,
            login: fields.login,
            password_fd: fields.password_fd,
            new_password: fields.new_password,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("ktbroker-kinit").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn subcommands_parse_the_same_with_common_options_before_or_after_them() {
        for args in [["--config", "/x.toml", "status"], ["status", "--config", "/x.toml"]] {
            let cli = parse(&args);
            assert!(matches!(cli.command, Some(Command::Status { json: false })), "{args:?}");
            assert_eq!(cli.common.config, PathBuf::from("/x.toml"), "{args:?}");
        }
        for args in [
            vec!["--config", "/x.toml", "-c", "FILE:/tmp/cc", "run", "alice", "--", "id"],
            vec!["run", "--config", "/x.toml", "-c", "FILE:/tmp/cc", "alice", "--", "id"],
        ] {
            let cli = parse(&args);
            let Some(Command::Run { login, command, .. }) = cli.command else {
                panic!("{args:?}: not run");
            };
            assert_eq!(login.login.user.as_deref(), Some("alice"), "{args:?}");
            assert_eq!(command, ["id"]);
            assert_eq!(cli.common.ccache.as_deref(), Some("FILE:/tmp/cc"));
        }
    }

    #[test]
    fn without_a_subcommand_the_words_are_a_login() {
        let cli = parse(&["--config", "/x.toml", "--broker", "https://b:1", "alice"]);
        assert!(cli.command.is_none());
        assert_eq!(cli.login.login.user.as_deref(), Some("alice"));
        assert_eq!(cli.login.login.brokers, ["https://b:1"]);
        assert_eq!(cli.common.config, PathBuf::from("/x.toml"));
    }
}
