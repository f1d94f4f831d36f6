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
    /// Validate the configuration and print it with secrets redacted; exit 0 if valid, 1 if not.
    CheckConfig,
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
