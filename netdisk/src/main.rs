//! `netdisk COMMAND ...`: see `--help`.
#![forbid(unsafe_code)]

use clap::Parser;
use ktbroker_kinit::request::LoginOptions;
use ktbroker_netdisk::cli::{Cli, Command, Global};
use ktbroker_netdisk::commands::{ListStyle, Netdisk};
use ktbroker_netdisk::config::{self, NetdiskConfig, Transport};
use ktbroker_netdisk::error::{Kind, NetdiskError, Result};
use ktbroker_netdisk::fs::Filesystem;
use ktbroker_netdisk::login::{LoginSettings, ensure_ticket};
use ktbroker_netdisk::native::NativeFs;
use ktbroker_netdisk::webhdfs::WebHdfs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    ktbroker_krb5::use_environment_locale();
    let cli = Cli::parse();
    ktbroker_kinit::init_client_logging("NETDISK_LOG", cli.global.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netdisk: [{}] {e}", e.kind.name());
            ExitCode::from(e.kind.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    // The login passes a keytab and a password through this process's memory.
    ktbroker_harden::forbid_core_dumps()
        .map_err(|e| NetdiskError::new(Kind::Other, format!("disabling core dumps: {e}")))?;
    let global = &cli.global;
    let explicit = |path: &Path, default: &str| path != Path::new(default);
    let config = NetdiskConfig::load(&global.config, explicit(&global.config, config::DEFAULT_PATH))?;
    let settings = LoginSettings {
        client_config: global.client_config.clone(),
        explicit: explicit(&global.client_config, ktbroker_kinit::config::DEFAULT_PATH),
        options: LoginOptions {
            user: global.user.clone(),
            sso: global.sso,
            ..LoginOptions::default()
        },
        ccache: global.ccache.clone(),
        password_fd: global.password_fd,
    };
    // Configuration errors first: nobody should type a password for a command that cannot run.
    let transport = global.transport.unwrap_or(config.transport);
    let url = match transport {
        Transport::Native => cluster_url(&global.namenode, &config.namenode, &["hdfs"], "namenode", global)?,
        Transport::Webhdfs => cluster_url(&global.webhdfs, &config.webhdfs, &["https", "http"], "webhdfs", global)?,
    };
    // A cluster that refuses or ignores connections is named now, in a moment, and before any
    // password is asked for (the HDFS client would retry for the whole call timeout).
    ktbroker_netdisk::reach::probe(&url)?;
    let session = ensure_ticket(&settings)?;
    tracing::debug!(principal = %session.principal, cache = %session.cache, "running with this ticket");
    let home = ktbroker_netdisk::paths::home(&config.home, &session.user)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| NetdiskError::new(Kind::Other, format!("async runtime: {e}")))?;
    let quiet = global.quiet;
    let result = match transport {
        Transport::Native => runtime.block_on(async {
            let (hosts, ca_file) = (&config.cluster_hosts, config.ca_file.as_deref());
            // Only df asks WebHDFS (for the cluster's capacity): no HTTP client, CA parsing or
            // TLS setup for any other command.
            let web = match (&config.webhdfs, &cli.command) {
                (Some(web), Command::Df { .. }) => {
                    Some(WebHdfs::connect(web, &session.cache, config.timeout, hosts, ca_file)?)
                }
                _ => None,
            };
            let fs = NativeFs::connect(url.as_str(), &session.principal, &session.cache, config.timeout)?
                .with_capacity_from(web);
            execute(&Netdisk { fs, home, quiet }, cli.command).await
        }),
        Transport::Webhdfs => runtime.block_on(async {
            let (hosts, ca_file) = (&config.cluster_hosts, config.ca_file.as_deref());
            let fs = WebHdfs::connect(&url, &session.cache, config.timeout, hosts, ca_file)?;
            execute(&Netdisk { fs, home, quiet }, cli.command).await
        }),
    };
    // An interrupted upload may leave a blocking read of a pipe behind; do not wait for it.
    runtime.shutdown_background();
    result
}

/// The transport's URL: the option if given, else netdisk.toml's `key`.
fn cluster_url(
    option: &Option<String>,
    configured: &Option<url::Url>,
    schemes: &[&str],
    key: &str,
    global: &Global,
) -> Result<url::Url> {
    match option {
        Some(text) => config::parse_url(text, schemes).map_err(NetdiskError::usage),
        None => configured.clone().ok_or_else(|| {
            NetdiskError::usage(format!(
                "no {key} URL: set `{key}` in {} or pass --{key}",
                global.config.display()
            ))
        }),
    }
}

async fn execute<F: Filesystem>(netdisk: &Netdisk<F>, command: Command) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Ls {
            long,
            recursive,
            human,
            json,
            paths,
        } => {
            let style = ListStyle {
                long,
                recursive,
                json,
                human,
            };
            netdisk.ls(&paths, style, &mut out).await
        }
        Command::Stat { json, paths } => netdisk.stat(&paths, json, &mut out).await,
        Command::Mkdir { parents, paths } => netdisk.mkdir(&paths, parents).await,
        Command::Put { force, local, remote } => netdisk
            .put(&local, remote.as_deref().unwrap_or("~"), force)
            .await
            .map(|_| ()),
        Command::Get { force, remote, local } => {
            let local = local.unwrap_or_else(|| PathBuf::from("."));
            netdisk.get(&remote, &local, force).await.map(|_| ())
        }
        Command::Cat { paths } => {
            drop(out);
            netdisk.cat(&paths).await
        }
        Command::Rm { recursive, paths } => netdisk.rm(&paths, recursive).await,
        Command::Mv { from, to } => netdisk.mv(&from, &to).await,
        Command::Du {
            summarize,
            human,
            paths,
        } => netdisk.du(&paths, summarize, human, &mut out).await,
        Command::Df { human, path } => netdisk.df(path.as_deref(), human, &mut out).await,
        Command::Chmod { recursive, mode, paths } => netdisk.chmod(&mode, &paths, recursive).await,
    }
}
