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
//!   (g) the login of (a) through PAM: real libpam (ktbroker-pam-driver, a login program's
//!       authenticate, setcred, open_session and close_session, as `pamtester` runs them) with
//!       pam_ktbroker.so, which runs the helper as alice; only as root, with alice a local
//!       account (created as the PAM tests create it),
//!   (h) the PAM login of (g) with pam_permit.so in place of pam_ktbroker.so: what the login
//!       program and libpam cost by themselves (process start, the stack, NSS), so that g-h is
//!       what the module adds to it,
//! then prints p50/p95/p99 of each and the ratios. Not a test: a measurement to report.

use anyhow::Context;
use clap::Parser;
use ktbroker_tests::Sandbox;
use ktbroker_tests::pam_stack::PamStack;
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

    let pam = pam_logins(&sandbox)?;
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
    if let Some((pam, permit)) = pam {
        variants.push(("(g) as (a), through PAM", Box::new(pam)));
        variants.push(("(h) the PAM login of (g), pam_permit only", Box::new(permit)));
    } else {
        println!("(g) PAM left out: it runs the helper as a local user, so it needs root");
    }
    let samples = measure_interleaved(args.iterations, &mut variants)?;
    println!(
        "login latency over {} interleaved runs each (ms)       p50      p95      p99",
        args.iterations
    );
    for ((name, _), taken) in variants.iter().zip(&samples) {
        println!(
            "{name:<52} {:>7.1}  {:>7.1}  {:>7.1}",
            ms(percentile(taken, 50)),
            ms(percentile(taken, 95)),
            ms(percentile(taken, 99))
        );
    }
    let p50 = |label: char| ms(percentile(&samples[index_of(&variants, label)], 50));
    let ratio = |x: char, y: char| p50(x) / p50(y);
    let p99_ratio = |x: char, y: char| {
        ms(percentile(&samples[index_of(&variants, x)], 99)) / ms(percentile(&samples[index_of(&variants, y)], 99))
    };
    println!(
        "ratio a/b  (p50): {:.2}   (goal <= 0.8: a broker login well under typing the Kerberos password)",
        ratio('a', 'b')
    );
    println!(
        "ratio d/a  (p50): {:.2}   (goal <= 1.10: ticket delivery within 10% of keytab delivery)",
        ratio('d', 'a')
    );
    println!("ratio d/b  (p50): {:.2}   (goal <= 0.8)", ratio('d', 'b'));
    println!("ratio a/b  (p99): {:.2}", p99_ratio('a', 'b'));
    println!("ratio e/b  (p50): {:.2}   (the Kerberos part alone)", ratio('e', 'b'));
    println!(
        "ratio a/f  (p50): {:.2}   (kept-open directory connections against a fresh one per bind)",
        ratio('a', 'f')
    );
    println!(
        "ratio a/c  (p50): {:.2}   (the cost of wiping freed memory)",
        ratio('a', 'c')
    );
    if variants.len() > index_of_opt(&variants, 'g').unwrap_or(usize::MAX) {
        println!(
            "ratio g/a  (p50): {:.2}   (goal <= 1.2: a PAM login within 20% of the helper's)",
            ratio('g', 'a')
        );
        println!("ratio g/a  (p99): {:.2}", p99_ratio('g', 'a'));
        println!(
            "ratio (g-h)/a (p50): {:.2}   (the module's login beside the login program's own cost, against the helper's)",
            (p50('g') - p50('h')) / p50('a')
        );
    }
    Ok(())
}

/// As root: a PAM stack of pam_ktbroker.so on the sandbox and one of pam_permit.so; a login
/// through each (wall time of the driver's authenticate, setcred, open_session, close_session,
/// all PAM_SUCCESS).
#[allow(clippy::type_complexity)]
fn pam_logins(
    sandbox: &Sandbox,
) -> anyhow::Result<
    Option<(
        impl FnMut() -> anyhow::Result<Duration>,
        impl FnMut() -> anyhow::Result<Duration>,
    )>,
> {
    if rustix::process::geteuid().as_raw() != 0 {
        return Ok(None);
    }
    ktbroker_tests::accounts::local_users();
    let stack = std::rc::Rc::new(PamStack::create(sandbox).context("creating the PAM stack")?);
    let service = stack.service("ktbroker-bench", "", "")?;
    std::fs::write(
        stack.confdir.join("permit-bench"),
        "auth required pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\n",
    )?;
    let login = |stack: std::rc::Rc<PamStack>, service: String| {
        move || -> anyhow::Result<Duration> {
            let ops = ["authenticate", "setcred", "open_session", "close_session"];
            let mut command = stack.driver(&service, "alice", &ops);
            let started = Instant::now();
            let out = ktbroker_tests::bench::run_fed(&mut command, Some("alicepw"))?;
            let took = started.elapsed();
            let stdout = String::from_utf8_lossy(&out.stdout);
            for op in ops {
                anyhow::ensure!(
                    stdout.lines().any(|l| l == format!("{op} rc=0")),
                    "PAM {op} failed:\n{stdout}"
                );
            }
            Ok(took)
        }
    };
    Ok(Some((
        login(stack.clone(), service),
        login(stack, "permit-bench".to_owned()),
    )))
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
    index_of_opt(variants, label).expect("a variant with that label")
}

fn index_of_opt(variants: &[Variant<'_>], label: char) -> Option<usize> {
    variants
        .iter()
        .position(|(name, _)| name.starts_with(&format!("({label})")))
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[((sorted.len() - 1) * p) / 100]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
