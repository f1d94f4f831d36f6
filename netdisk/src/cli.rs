//! netdisk's command line, in the library so man pages and shell completions can be generated
//! from it (see `packaging/`).

use crate::config::{self, Transport};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Your HDFS space: list, upload, download and manage files with your directory password.
///
/// Relative paths start at your home directory (/user/NAME unless netdisk.toml says otherwise);
/// `~` is your home. Without a valid Kerberos ticket netdisk logs you in first through the broker
/// (the password from the terminal, from stdin when it is not a terminal, or from --password-fd).
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Exit codes: 0 success; 1 other error; 2 usage or configuration; 3 login required or \
authentication failed; 4 permission denied; 5 not found; 6 already exists, not empty, or is/is not a \
directory; 7 cluster unreachable, too slow, or in safe mode; 8 quota exceeded; 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// netdisk's configuration (the cluster).
    #[arg(long, global = true, default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// The login configuration, shared with ktbroker-kinit.
    #[arg(long, global = true, default_value = ktbroker_kinit::config::DEFAULT_PATH)]
    pub client_config: PathBuf,
    /// NameNode URL, hdfs://HOST:PORT (overrides netdisk.toml).
    #[arg(long, global = true)]
    pub namenode: Option<String>,
    /// WebHDFS URL, http(s)://HOST:PORT (overrides netdisk.toml).
    #[arg(long, global = true)]
    pub webhdfs: Option<String>,
    /// How to reach the cluster (overrides netdisk.toml).
    #[arg(long, global = true, value_enum)]
    pub transport: Option<Transport>,
    /// Credential cache (default: client.toml's `ccache`, else KRB5CCNAME, else krb5.conf's).
    #[arg(short = 'c', long, global = true)]
    pub ccache: Option<String>,
    /// Directory user to log in as when there is no ticket (default: $USER).
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Read the login password from this file descriptor.
    #[arg(long, global = true)]
    pub password_fd: Option<i32>,
    /// When a login is needed, sign in at the identity provider (the address and code are shown)
    /// instead of typing the password here.
    #[arg(long, global = true)]
    pub sso: bool,
    /// No progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Also show what the HDFS and HTTP libraries log (retries, connection errors); NETDISK_LOG
    /// chooses finer.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List directories (names; -l for details).
    Ls {
        /// Long format: permissions, replication, owner, group, size, time, path.
        #[arg(short, long)]
        long: bool,
        /// Descend into subdirectories.
        #[arg(short = 'R', long)]
        recursive: bool,
        /// Sizes in K, M, G.
        #[arg(short = 'H', long)]
        human: bool,
        /// A JSON array of entries.
        #[arg(long)]
        json: bool,
        paths: Vec<String>,
    },
    /// Show a file's or directory's details.
    Stat {
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Make directories.
    Mkdir {
        /// Make parents as needed; no error if it exists.
        #[arg(short, long)]
        parents: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Upload a local file (to a temporary name, renamed into place when complete).
    Put {
        /// Replace an existing file.
        #[arg(short, long)]
        force: bool,
        local: PathBuf,
        /// A file name or an existing directory (default: home).
        remote: Option<String>,
    },
    /// Download a file (to a temporary local file, renamed into place when complete; mode 0600).
    Get {
        #[arg(short, long)]
        force: bool,
        remote: String,
        /// A file name or an existing directory (default: the current directory).
        local: Option<PathBuf>,
    },
    /// Print files to stdout.
    Cat {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Remove files (and directories with -r).
    Rm {
        #[arg(short, long, short_alias = 'R')]
        recursive: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Move or rename.
    Mv { from: String, to: String },
    /// Space used under each entry of a directory (-s: the total).
    Du {
        #[arg(short, long)]
        summarize: bool,
        #[arg(short = 'H', long)]
        human: bool,
        paths: Vec<String>,
    },
    /// Your quota and the cluster's free space.
    Df {
        #[arg(short = 'H', long)]
        human: bool,
        path: Option<String>,
    },
    /// Change permissions (octal, e.g. 750).
    Chmod {
        #[arg(short = 'R', long)]
        recursive: bool,
        mode: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
}
