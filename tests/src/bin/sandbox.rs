//! README command 1: a sandbox realm, directory and broker on loopback; logs in demo user alice
//! through ktbroker-kinit and shows klist; then keeps everything up until Ctrl-C (or, with
//! `--once`, tears down and exits 0 only if alice got her TGT).

use anyhow::Context;
use clap::Parser;
use ktbroker_tests::Sandbox;
use std::time::Duration;

/// Run a self-contained ktbroker sandbox and log in demo user alice.
#[derive(Debug, Parser)]
struct Args {
    /// Log in once, tear everything down, and exit (0 only if the TGT was obtained).
    #[arg(long)]
    once: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = std::time::Instant::now();
    eprintln!("starting MIT KDC + kadmind, slapd and ktbrokerd on 127.0.0.1 ...");
    let mut sandbox = Sandbox::start().context("starting the sandbox")?;
    eprintln!(
        "sandbox up in {:.1} s: realm {} (KDC 127.0.0.1:{}), directory {}, broker {}",
        started.elapsed().as_secs_f64(),
        sandbox.realm.realm,
        sandbox.realm.kdc_port,
        sandbox.directory.url,
        sandbox.broker.url
    );

    let ccache = sandbox.ccache("alice.ccache");
    eprintln!(
        "\n$ ktbroker-kinit --broker {} ... alice   (password typed on stdin)",
        sandbox.broker.url
    );
    let login = sandbox.login("alice", "alicepw", &ccache);
    eprint!("{}", String::from_utf8_lossy(&login.stderr));
    let listing = sandbox.klist(&ccache);
    eprintln!("\n$ klist -c {ccache}");
    match &listing {
        Some(text) => println!("{text}"),
        None => eprintln!("(no ticket cache)"),
    }
    let ok = login.status.success()
        && listing.is_some_and(|l| l.contains(&format!("Default principal: {}", sandbox.principal("alice"))));
    sandbox.check_alive()?;
    if args.once {
        anyhow::ensure!(ok, "alice did not get a TGT (ktbroker-kinit exited {})", login.status);
        eprintln!("sandbox login OK; tearing down");
        return Ok(());
    }
    eprintln!(
        "\nThe sandbox stays up until Ctrl-C. To log in from another terminal:\n{}\n",
        sandbox.login_hint()
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break Ok(()),
                _ = terminate.recv() => break Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(2)) => sandbox.check_alive()?,
            }
        }
    })
}
