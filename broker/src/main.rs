//! `ktbrokerd [--config FILE] [run | check-config | audit-verify FILE]`
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
        Command::CheckConfig => check_config(&args.config),
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

fn check_config(config_path: &std::path::Path) -> anyhow::Result<()> {
    let config = ktbroker_broker::config::Config::load(config_path)?;
    // Secret files appear by path only; their contents are never printed.
    print!("{}", config.effective_toml());
    eprintln!("{}: valid", config_path.display());
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
