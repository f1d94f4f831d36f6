//! `ktbrokerd --config /etc/ktbroker/broker.toml`

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// ktbrokerd: checks directory passwords and hands out the user's own Kerberos keytab over TLS.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Path of the broker's TOML configuration.
    #[arg(short, long, default_value = "/etc/ktbroker/broker.toml")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KTBROKER_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    ktbroker_keytab::harden::forbid_core_dumps().context("disabling core dumps")?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = ktbroker_broker::config::Config::load(&args.config)?;
    if let Some(krb5_config) = &config.kerberos.krb5_config {
        // libkrb5 and libkadm5 read their configuration from KRB5_CONFIG (kadm5 in MIT 1.20 reads
        // it itself, not from the context we pass).
        // SAFETY: no other thread exists yet: the async runtime is created below, and nothing
        // before this point spawns one.
        unsafe { std::env::set_var("KRB5_CONFIG", krb5_config) };
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(ktbroker_broker::server::serve(config, shutdown_signal()))
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
