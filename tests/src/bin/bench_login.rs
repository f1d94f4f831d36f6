//! `bench/login-latency`: brings up the sandbox and measures, in one run, the wall time of
//!   (a) a full broker login: `ktbroker-kinit` from password on stdin to a TGT in the ccache, with
//!       the broker reading keys through the kadm5 library (and, for comparison, through one
//!       `kadmin` process per request), and
//!   (b) a plain `kinit` with alice's Kerberos password against the same KDC,
//!   (c) the login of (a) against a broker that lets freed heap memory be (GLIBC_TUNABLES with
//!       `glibc.malloc.perturb=0`), for the cost of wiping it,
//!   (d) the login of (a) in ticket delivery (`--delivery ticket`: the broker makes the AS
//!       exchange and sends the TGT),
//! then prints p50/p95 of each and the ratios a/b, a/c, d/a and d/b. Not a test: a measurement
//! to report.

use anyhow::Context;
use clap::Parser;
use ktbroker_tests::Sandbox;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
struct Args {
    /// Logins per variant (after 3 warm-up logins each).
    #[arg(long, default_value_t = 40)]
    iterations: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sandbox = Sandbox::start().context("starting the sandbox")?;
    let cli_broker = sandbox.kadmin_cli_broker()?;
    let unwiped_broker = ktbroker_tests::broker::Broker::start_with_env(
        &sandbox.root.join("broker-unwiped"),
        &sandbox.pki,
        &sandbox.realm,
        &sandbox.directory,
        |config| config,
        &[("GLIBC_TUNABLES", "glibc.malloc.perturb=0".to_owned())],
    )?;

    let mut n = 0;
    let mut ccache = || {
        n += 1;
        sandbox.ccache(&format!("bench-{n}"))
    };
    let broker_login_with = |url: &str, cc: &str, extra: &[&str]| {
        let mut command = sandbox.kinit_command_via(url, &sandbox.pki.ca_cert, "alice", cc);
        command.args(extra);
        timed_with_stdin(&mut command, "alicepw")
    };
    let broker_login = |url: &str, cc: &str| broker_login_with(url, cc, &[]);
    let password_kinit = |cc: &str| {
        let mut command = sandbox.realm.command("kinit");
        command.args(["-c", cc, "alice"]);
        timed_with_stdin(&mut command, "alice-kdc-pw")
    };

    let kadm5 = measure(args.iterations, || broker_login(&sandbox.broker.url, &ccache()))?;
    let cli = measure(args.iterations, || broker_login(&cli_broker.url, &ccache()))?;
    let kinit = measure(args.iterations, || password_kinit(&ccache()))?;
    let unwiped = measure(args.iterations, || broker_login(&unwiped_broker.url, &ccache()))?;
    let ticket = measure(args.iterations, || {
        broker_login_with(&sandbox.broker.url, &ccache(), &["--delivery", "ticket"])
    })?;

    println!(
        "login latency over {} runs each (ms)       p50      p95",
        args.iterations
    );
    for (name, samples) in [
        ("(a) ktbroker-kinit, key source kadm5", &kadm5),
        ("(a') ktbroker-kinit, key source kadmin-cli", &cli),
        ("(b) kinit with the Kerberos password", &kinit),
        ("(c) as (a), freed heap memory not wiped", &unwiped),
        ("(d) as (a), ticket delivery", &ticket),
    ] {
        println!(
            "{name:<44} {:>7.1}  {:>7.1}",
            ms(percentile(samples, 50)),
            ms(percentile(samples, 95))
        );
    }
    let p50 = |samples: &[Duration]| ms(percentile(samples, 50));
    println!(
        "ratio a/b  (p50): {:.2}   (goal <= 1.0)\nratio a'/b (p50): {:.2}\nratio a/c  (p50): {:.2}   (the cost of wiping freed memory)",
        p50(&kadm5) / p50(&kinit),
        p50(&cli) / p50(&kinit),
        p50(&kadm5) / p50(&unwiped),
    );
    println!(
        "ratio d/a  (p50): {:.2}   (goal <= 1.10: ticket delivery within 10% of keytab delivery)\nratio d/b  (p50): {:.2}   (goal <= 1.0)",
        p50(&ticket) / p50(&kadm5),
        p50(&ticket) / p50(&kinit),
    );
    Ok(())
}

/// Runs `command` with `input` and a newline on stdin; the wall time if it exited 0.
fn timed_with_stdin(command: &mut Command, input: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{input}\n").as_bytes())?;
    let output = child.wait_with_output()?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "{:?} failed: {}",
        command.get_program(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(elapsed)
}

fn measure(iterations: usize, mut run: impl FnMut() -> anyhow::Result<Duration>) -> anyhow::Result<Vec<Duration>> {
    for _ in 0..3 {
        run()?;
    }
    let mut samples = (0..iterations).map(|_| run()).collect::<anyhow::Result<Vec<_>>>()?;
    samples.sort();
    Ok(samples)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[((sorted.len() - 1) * p) / 100]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
