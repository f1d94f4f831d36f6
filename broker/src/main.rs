//! `ktbrokerd [--config FILE] [run | check-config [--online] | audit-verify FILE]`
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use ktbroker_broker::cli::{Args, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = Args::parse();
    let serving = matches!(args.command, None | Some(Command::Run));
    // Before anything else: this may re-execute the program (see ktbroker_harden).
    let freed_memory = serving.then(ktbroker_harden::wipe_freed_memory);
    init_logging(args.log_format);
    if let Some(freed_memory) = freed_memory {
        log_freed_memory(&freed_memory);
    }
    let result = match args.command.unwrap_or(Command::Run) {
        Command::Run => run(&args.config),
        Command::CheckConfig {
            credentials_dir,
            unit,
            user,
            online,
        } => check_config(
            &args.config,
            &CheckOptions {
                credentials_dir,
                unit,
                user,
                online,
            },
        ),
        Command::AuditVerify {
            file,
            expect_heads,
            expect_anchor,
            key,
        } => {
            let key = key
                .map(|path| {
                    std::fs::read(&path)
                        .map(zeroize::Zeroizing::new)
                        .with_context(|| format!("reading {}", path.display()))
                })
                .transpose();
            key.and_then(|key| {
                let options = ktbroker_broker::audit::VerifyOptions {
                    key,
                    expect_heads,
                    expect_anchor,
                };
                audit_verify(&file, &options)
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn log_freed_memory(freed_memory: &std::io::Result<ktbroker_harden::FreedMemory>) {
    use ktbroker_harden::FreedMemory;
    match freed_memory {
        Ok(FreedMemory::Wiped) => tracing::info!("freed heap memory is overwritten (glibc malloc tunables)"),
        Ok(FreedMemory::AsConfigured | FreedMemory::Kept) => tracing::warn!(
            "GLIBC_TUNABLES sets glibc.malloc.perturb: freed heap memory is left as configured and may keep \
             copies of passwords and keys"
        ),
        Err(e) => tracing::warn!(error = %e,
            "cannot re-execute with malloc tunables that wipe freed memory; it may keep copies of passwords and keys"),
    }
}

fn run(config_path: &std::path::Path) -> anyhow::Result<()> {
    ktbroker_harden::forbid_core_dumps().context("disabling core dumps")?;
    raise_open_files_limit();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = ktbroker_broker::config::Config::load(config_path)?;
    if let Some(krb5_config) = &config.krb5_config {
        // Before the async runtime below starts any thread.
        ktbroker_broker::kadm5::use_krb5_config(krb5_config).context("setting KRB5_CONFIG")?;
    }
    let notifier = ktbroker_broker::systemd::Notifier::from_env();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(ktbroker_broker::server::serve(
        config,
        config_path.to_owned(),
        shutdown_signal(),
        notifier,
    ))
}

struct CheckOptions {
    credentials_dir: Option<std::path::PathBuf>,
    unit: Option<std::path::PathBuf>,
    user: Option<String>,
    online: bool,
}

/// `check-config`: loads the configuration the way `run` will find it, then looks for what would
/// make `run` fail (see `ktbroker_broker::check`).
fn check_config(config_path: &std::path::Path, options: &CheckOptions) -> anyhow::Result<()> {
    use ktbroker_broker::check::{self, Severity, access::ServiceUser, unit::ServiceUnit};
    use ktbroker_broker::config::{Config, Credentials};
    let inside_unit = std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from);
    let unit = match (&options.unit, &inside_unit) {
        (Some(file), _) => Some(ServiceUnit::from_file(file)?),
        (None, None) => match ServiceUnit::installed() {
            Ok(unit) => Some(unit),
            Err(check::unit::UnitError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
        (None, Some(_)) => None,
    };
    let sources = unit.as_ref().map(ServiceUnit::credential_files).unwrap_or_default();
    let directory = options.credentials_dir.clone().or(inside_unit.clone());
    let (credentials, credential_paths) = match (&directory, &unit) {
        (Some(dir), _) => (Credentials::Directory(dir), vec![dir.clone()]),
        (None, Some(_)) => (Credentials::Sources(&sources), sources.values().cloned().collect()),
        (None, None) => (Credentials::Unset, Vec::new()),
    };
    if directory.is_none()
        && let Some(unit) = &unit
    {
        for (name, source) in &unit.credentials {
            if !matches!(source, check::unit::CredentialSource::File(_)) {
                eprintln!(
                    "warning: credential {name:?} is encrypted or set inline in the unit: only the unit sees it \
                     (its ExecStartPre= check-config checks it)"
                );
            }
        }
    }
    let config = Config::load_with(config_path, credentials)?;
    // Secret files appear by path only; their contents are never printed.
    print!("{}", config.effective_toml());
    if let Some(krb5_config) = &config.krb5_config {
        // Before the async runtime below starts any thread.
        ktbroker_broker::kadm5::use_krb5_config(krb5_config).context("setting KRB5_CONFIG")?;
    }
    let user = match (&options.user, &inside_unit, &unit) {
        (Some(name), _, _) => Some(ServiceUser::named(name).with_context(|| format!("no user {name:?}"))?),
        (None, Some(_), _) | (None, None, None) => Some(ServiceUser::current()),
        (None, None, Some(unit)) => {
            let name = unit.user.as_deref().unwrap_or("root");
            let user = ServiceUser::named(name);
            if user.is_none() {
                eprintln!("warning: the unit's User={name} is not in the user database: file access is not checked");
            }
            user
        }
    };
    let setting = check::Setting {
        user,
        unit,
        credentials: credential_paths,
    };
    let mut report = check::offline(&config, &setting, std::time::SystemTime::now());
    if options.online {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        report.extend(runtime.block_on(check::online::online(&config)));
        runtime.shutdown_background();
    }
    for finding in &report.findings {
        eprintln!("{finding}");
    }
    let (errors, warnings) = (report.count(Severity::Error), report.count(Severity::Warning));
    let checked = if options.online { "checked online" } else { "checked" };
    match (errors, warnings) {
        (0, 0) => eprintln!("{}: valid, {checked}", config_path.display()),
        (0, w) => eprintln!("{}: valid, {checked}, {w} warning(s)", config_path.display()),
        (e, w) => anyhow::bail!(
            "{}: {e} error(s), {w} warning(s): it would not work",
            config_path.display()
        ),
    }
    Ok(())
}

fn audit_verify(file: &std::path::Path, options: &ktbroker_broker::audit::VerifyOptions) -> anyhow::Result<()> {
    let reader =
        std::io::BufReader::new(std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?);
    let summary = ktbroker_broker::audit::verify_chain_with(reader, options)
        .with_context(|| format!("{} is not intact", file.display()))?;
    println!(
        "{}: {} lines, chain intact\n  anchor (prev of line 1): {}\n  head (hash of last line): {}",
        file.display(),
        summary.lines,
        summary.anchor,
        summary.head
    );
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}

/// Every connection is a descriptor: take the whole hard limit (the unit sets it with LimitNOFILE=)
/// rather than systemd's soft default of 1024, which a few hundred idle clients exhaust.
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!(limit = ?limit.maximum, "open files limit raised to the hard limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}

/// Logs to stderr (the journal, under systemd), filtered by `KTBROKER_LOG`: text with colours only
/// when stderr is a terminal (escape codes are noise in the journal), or one JSON object a line.
fn init_logging(format: ktbroker_broker::cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KTBROKER_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        ktbroker_broker::cli::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        ktbroker_broker::cli::LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}
