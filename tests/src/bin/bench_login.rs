//! `bench/login-latency`: brings up the sandbox and measures, in one run and interleaved (each
//! round runs every variant once), the wall time of
//!   (a) a full broker login: `ktbroker-kinit` from password on stdin to a TGT in the ccache, with
//!       the broker reading keys through the kadm5 library (and, for comparison, through one
//!       `kadmin` process per request),
//!   (b) a plain `kinit` with alice's Kerberos password against the same KDC,
//!   (c) the login of (a) against a broker that lets freed heap memory be (GLIBC_TUNABLES with
//!       `glibc.malloc.perturb=0`), for the cost of wiping it,
//!   (d) the login of (a) in ticket delivery (`--delivery ticket`: the broker makes the AS
//!       exchange and sends the TGT),
//!   (e) `kinit -k` with alice's keytab from a file: the Kerberos part of (a) alone,
//!   (f) the login of (a) against a broker that opens a fresh directory connection for each
//!       user's bind (`user_bind_connections = 0`), for what the kept-open connections save,
//! then prints p50/p95 of each and the ratios. Not a test: a measurement to report.

use anyhow::Context;
use clap::Parser;
use ktbroker_tests::Sandbox;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
struct Args {
    /// Logins per variant (after 3 warm-up logins each).
    #[arg(long, default_value_t = 40)]
    iterations: usize,
}

/// A named login to time: "(x) what it is", and how to run it once.
type Variant<'a> = (&'static str, Box<dyn FnMut() -> anyhow::Result<Duration> + 'a>);

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

    let fresh_binds_broker = sandbox.extra_broker("broker-fresh-binds", |c| {
        c.replace("group_dn =", "user_bind_connections = 0\ngroup_dn =")
    })?;
    let keytab = sandbox.root.join("alice-bench.keytab");
    sandbox
        .realm
        .kadmin_local(&format!("ktadd -norandkey -k {} alice", keytab.display()))?;

    let n = std::cell::Cell::new(0);
    let ccache = || {
        n.set(n.get() + 1);
        sandbox.ccache(&format!("bench-{}", n.get()))
    };
    let broker_login_with = |url: &str, cc: &str, extra: &[&str]| {
        let mut command = sandbox.kinit_command_via(url, &sandbox.pki.ca_cert, "alice", cc);
        command.args(extra);
        timed_with_stdin(&mut command, Some("alicepw"))
    };
    let broker_login = |url: &str, cc: &str| broker_login_with(url, cc, &[]);
    let password_kinit = |cc: &str| {
        let mut command = sandbox.realm.command("kinit");
        command.args(["-c", cc, "alice"]);
        timed_with_stdin(&mut command, Some("alice-kdc-pw"))
    };

    let keytab_kinit = |cc: &str| {
        let mut command = sandbox.realm.command("kinit");
        command.args(["-k", "-t"]).arg(&keytab).args(["-c", cc, "alice"]);
        timed_with_stdin(&mut command, None)
    };

    let mut variants: Vec<Variant<'_>> = vec![
        (
            "(a) ktbroker-kinit, key source kadm5",
            Box::new(|| broker_login(&sandbox.broker.url, &ccache())),
        ),
        (
            "(a') ktbroker-kinit, key source kadmin-cli",
            Box::new(|| broker_login(&cli_broker.url, &ccache())),
        ),
        (
            "(b) kinit with the Kerberos password",
            Box::new(|| password_kinit(&ccache())),
        ),
        (
            "(c) as (a), freed heap memory not wiped",
            Box::new(|| broker_login(&unwiped_broker.url, &ccache())),
        ),
        (
            "(d) as (a), ticket delivery",
            Box::new(|| broker_login_with(&sandbox.broker.url, &ccache(), &["--delivery", "ticket"])),
        ),
        ("(e) kinit -k with alice's keytab", Box::new(|| keytab_kinit(&ccache()))),
        (
            "(f) as (a), a fresh directory connection per bind",
            Box::new(|| broker_login(&fresh_binds_broker.url, &ccache())),
        ),
    ];
    let samples = measure_interleaved(args.iterations, &mut variants)?;
    println!(
        "login latency over {} interleaved runs each (ms)       p50      p95",
        args.iterations
    );
    for ((name, _), taken) in variants.iter().zip(&samples) {
        println!(
            "{name:<52} {:>7.1}  {:>7.1}",
            ms(percentile(taken, 50)),
            ms(percentile(taken, 95))
        );
    }
    let p50 = |label: char| ms(percentile(&samples[index_of(&variants, label)], 50));
    let ratio = |x: char, y: char| p50(x) / p50(y);
    println!(
        "ratio a/b  (p50): {:.2}   (goal <= 1.0: a broker login faster than typing the Kerberos password)",
        ratio('a', 'b')
    );
    println!(
        "ratio d/a  (p50): {:.2}   (goal <= 1.10: ticket delivery within 10% of keytab delivery)",
        ratio('d', 'a')
    );
    println!("ratio d/b  (p50): {:.2}   (goal <= 1.0)", ratio('d', 'b'));
    println!("ratio e/b  (p50): {:.2}   (the Kerberos part alone)", ratio('e', 'b'));
    println!(
        "ratio a/f  (p50): {:.2}   (kept-open directory connections against a fresh one per bind)",
        ratio('a', 'f')
    );
    println!(
        "ratio a/c  (p50): {:.2}   (the cost of wiping freed memory)",
        ratio('a', 'c')
    );
    Ok(())
}

/// Runs `command` with `input` and a newline on stdin (or none); the wall time if it exited 0.
fn timed_with_stdin(command: &mut Command, input: Option<&str>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    ktbroker_tests::bench::run_fed(command, input)?;
    Ok(started.elapsed())
}

/// `iterations` rounds (after 3 warm-up rounds), each running every variant once, in order;
/// each variant's samples, sorted.
fn measure_interleaved(iterations: usize, variants: &mut [Variant<'_>]) -> anyhow::Result<Vec<Vec<Duration>>> {
    let mut samples = vec![Vec::with_capacity(iterations); variants.len()];
    for round in 0..iterations + 3 {
        for ((name, variant), taken) in variants.iter_mut().zip(samples.iter_mut()) {
            let took = variant().with_context(|| name.to_string())?;
            if round >= 3 {
                taken.push(took);
            }
        }
    }
    for taken in &mut samples {
        taken.sort();
    }
    Ok(samples)
}

/// The position of the variant labelled `(x)`, e.g. `index_of(v, 'a')` for "(a) ...".
fn index_of(variants: &[Variant<'_>], label: char) -> usize {
    variants
        .iter()
        .position(|(name, _)| name.starts_with(&format!("({label})")))
        .expect("a variant with that label")
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[((sorted.len() - 1) * p) / 100]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
