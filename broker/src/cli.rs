//! ktbrokerd's command line, in the library so its man page can be generated from it (see
//! `packaging/`).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// ktbrokerd: checks directory passwords and hands out the user's own Kerberos keytab over TLS.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Path of the broker's TOML configuration.
    #[arg(short, long, default_value = "/etc/ktbroker/broker.toml", global = true)]
    pub config: PathBuf,
    /// Log lines as text (colours only on a terminal) or as one JSON object each.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker (the default).
    Run,
    /// Check that the configuration would work; exit 0 if it would (warnings allowed), 1 if not.
    ///
    /// It parses and validates; every file it names exists and the service user may use it;
    /// secrets are private; the TLS certificate matches its key and is in date (a warning within
    /// 30 days of its end); CA bundles parse; admin keytabs hold the admin principal; each realm
    /// is in the krb5 profile; the audit file can be written. Prints the effective configuration
    /// (secrets by path only) on stdout, one `error:` or `warning:` line per finding on stderr,
    /// then a summary. Exit status 2: a usage error.
    CheckConfig {
        /// Read `credential:NAME` secrets from DIR (default: $CREDENTIALS_DIRECTORY inside the
        /// unit; outside it, the files the unit's LoadCredential= lines name).
        #[arg(long, value_name = "DIR")]
        credentials_dir: Option<PathBuf>,
        /// The systemd unit whose LoadCredential=, User= and write permissions apply, with the
        /// drop-ins in FILE.d/ (default: ktbrokerd.service where systemd finds it, with all its
        /// drop-ins).
        #[arg(long, value_name = "FILE")]
        unit: Option<PathBuf>,
        /// The account whose access to the files is checked (default: the unit's User=; inside
        /// the unit, the process's own).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Also ask the peers: every directory server (TLS, the service account's bind, the user
        /// base, the groups), each realm's KDC, and kadmind (the admin keytab's session and the
        /// ACL's privileges on a principal like the served ones).
        #[arg(long)]
        online: bool,
    },
    /// Verify an audit file's hash chain; exit 0 if intact, 1 at the first broken line.
    AuditVerify {
        /// The audit file (`[audit] file` in the configuration).
        file: PathBuf,
        /// A head the broker logged ("audit chain head"); some line must have it. Repeatable.
        #[arg(long = "expect-head")]
        expect_heads: Vec<String>,
        /// The anchor the file must start from (64 zeros for the first file of a chain).
        #[arg(long)]
        expect_anchor: Option<String>,
        /// The chain's HMAC key file (`[audit] key_file`): every line's mac must verify.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}
