//! `bench/rush`: the 9 a.m. rush. People arrive at `--rate` logins a second (Poisson arrivals) for
//! `--seconds`, each from one of `--sources` NAT addresses (loopback aliases 127.0.0.11, .12, ...),
//! each person once; a share of them (`--typo-rate`) first types a wrong password and retries
//! with the right one `--retry-after-ms` later. Against a KDC and a slapd holding every person,
//! it reports, for the right passwords: how many were granted, how many refused, p50/p99 latency.
//! Rows, in one run:
//!   (R) the baseline: the same login at rest, one after another, from another address;
//!   (C) the rush against a broker with the default limits (each person who logged in from an
//!       address raises its failure limit: `source_credit_per_user = 1`);
//!   (F) the same rush with a fixed per-address limit (`source_credit_per_user = 0`), as the
//!       broker had before: the typos of many people lock their shared address for everyone.
//! The goal (issue 20): one replica serves the rush with p99 under 50 ms and no right password
//! refused. Not a test: a measurement to report.

use anyhow::Context;
use clap::Parser;
use ktbroker_tests::bench::{Answer, login_from};
use ktbroker_tests::broker::Broker;
use ktbroker_tests::directory::{Directory, DirectoryUser, PasswordScheme, PasswordState};
use ktbroker_tests::pki::TestPki;
use ktbroker_tests::realm::Realm;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Parser)]
struct Args {
    /// Arrivals per second, all sources together (50,000 people in 15 minutes is 56/s).
    #[arg(long, default_value_t = 56.0)]
    rate: f64,
    /// How long the rush lasts.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// How many addresses the people come from.
    #[arg(long, default_value_t = 4)]
    sources: u8,
    /// The share of people whose first try is a wrong password.
    #[arg(long, default_value_t = 0.10)]
    typo_rate: f64,
    /// How long after a refused typo the person tries again, right this time.
    #[arg(long, default_value_t = 1500)]
    retry_after_ms: u64,
    /// Logins of the at-rest baseline.
    #[arg(long, default_value_t = 100)]
    rest_logins: usize,
    /// Seed of the arrival schedule (the same seed, the same rush).
    #[arg(long, default_value_t = 9)]
    seed: u64,
}

const PASSWORD: &str = "rush-hour-pw";

/// One person's arrival.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    at: Duration,
    person: usize,
    source: IpAddr,
    typo_first: bool,
}

/// What a row measured, for the right passwords only.
#[derive(Default)]
struct Row {
    granted: usize,
    refused: usize,
    /// A wrong password that was granted, or no answer at all: the run is broken.
    errors: usize,
    first_problem: Option<String>,
    latencies: Vec<Duration>,
}

impl Row {
    fn note(&mut self, problem: String) {
        self.errors += 1;
        self.first_problem.get_or_insert(problem);
    }

    fn percentile_ms(&self, p: usize) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies[((self.latencies.len() - 1) * p) / 100].as_secs_f64() * 1000.0
    }

    fn print(&mut self, label: &str) {
        self.latencies.sort();
        println!(
            "{label:<48} {:>8} {:>8} {:>7} {:>8.1} {:>8.1} {:>8.1}",
            self.granted,
            self.refused,
            self.errors,
            self.percentile_ms(50),
            self.percentile_ms(99),
            self.percentile_ms(100)
        );
        if let Some(problem) = &self.first_problem {
            println!("    first error: {problem}");
        }
    }
}

/// xorshift64*: a small seeded generator, so a rush can be replayed (not for anything secret).
struct Seeded(u64);

impl Seeded {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn schedule(args: &Args) -> Vec<Arrival> {
    let mut random = Seeded(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut at = 0.0;
    let mut arrivals = Vec::new();
    loop {
        at += -(1.0 - random.unit()).ln() / args.rate;
        if at >= args.seconds {
            return arrivals;
        }
        let source = 11 + (random.unit() * f64::from(args.sources)) as u8;
        arrivals.push(Arrival {
            at: Duration::from_secs_f64(at),
            person: arrivals.len(),
            source: IpAddr::V4(Ipv4Addr::new(127, 0, 0, source)),
            typo_first: random.unit() < args.typo_rate,
        });
    }
}

fn person(n: usize) -> String {
    format!("p{n:05}")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!((1..=200).contains(&args.sources), "--sources must be between 1 and 200");
    let arrivals = schedule(&args);
    let typos = arrivals.iter().filter(|a| a.typo_first).count();
    let dir = tempfile::Builder::new().prefix("ktbroker-rush-").tempdir()?;
    let root = dir.path();
    let pki = TestPki::create(&root.join("pki"), "ktbroker rush CA")?;
    let realm = Realm::start(&root.join("kdc"))?;
    let people: Vec<String> = (0..arrivals.len().max(args.rest_logins)).map(person).collect();
    realm
        .add_random_key_principals(&people)
        .context("creating the people's principals")?;
    let users: Vec<DirectoryUser> = people
        .iter()
        .map(|uid| DirectoryUser {
            uid: uid.clone(),
            password: PASSWORD.into(),
            scheme: PasswordScheme::Ssha,
            in_group: true,
            in_posix_group: false,
            password_state: PasswordState::Current,
        })
        .collect();
    let directory = Directory::start(&root.join("ldap"), &pki, &users)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;

    println!(
        "the rush: {} people in {:.0} s ({:.1}/s) from {} addresses, {typos} of them ({:.0} %) first type a wrong \
         password and retry after {} ms",
        arrivals.len(),
        args.seconds,
        arrivals.len() as f64 / args.seconds,
        args.sources,
        100.0 * typos as f64 / arrivals.len().max(1) as f64,
        args.retry_after_ms
    );
    println!(
        "{:<48} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8}",
        "right passwords", "granted", "refused", "errors", "p50 ms", "p99 ms", "max ms"
    );
    let mut rows = Vec::new();
    for (tag, label, credit) in [
        ("(C)", "rush, source_credit_per_user = 1 (default)", 1),
        ("(F)", "rush, fixed source limit (credit 0)", 0),
    ] {
        let broker = Broker::start_with_env(
            &root.join(format!("broker-credit-{credit}")),
            &pki,
            &realm,
            &directory,
            |config| format!("{config}\n[limits]\nsource_credit_per_user = {credit}\n"),
            &[("KTBROKER_LOG", "info".to_owned())],
        )?;
        let endpoint = Arc::new(ktbroker_kinit::fetch::BrokerEndpoint {
            url: broker.url.clone(),
            ca_pem: std::fs::read(&pki.ca_cert)?,
            tls_server_name: None,
            client_identity: None,
            timeout: Duration::from_secs(10),
        });
        let mut rest = runtime.block_on(at_rest(&endpoint, args.rest_logins));
        rest.print(&format!("(R) at rest, one by one, before {tag}"));
        let mut rush = runtime.block_on(rush(&endpoint, &arrivals, Duration::from_millis(args.retry_after_ms)));
        rush.print(&format!("{tag} {label}"));
        rows.push((tag, rest, rush));
    }
    println!();
    for (tag, rest, rush) in &rows {
        println!(
            "{tag}: p99 rush/rest {:.2}; right passwords refused {} of {}",
            rush.percentile_ms(99) / rest.percentile_ms(99),
            rush.refused,
            rush.granted + rush.refused
        );
    }
    let (_, _, served) = &rows[0];
    let met = served.refused == 0 && served.errors == 0 && served.percentile_ms(99) < 50.0;
    println!(
        "goal (C: p99 < 50 ms, no right password refused, no error): {}",
        if met { "met" } else { "NOT met" }
    );
    Ok(())
}

/// The baseline: people log in one after another, from an address of their own.
async fn at_rest(endpoint: &ktbroker_kinit::fetch::BrokerEndpoint, logins: usize) -> Row {
    let mut row = Row::default();
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    for n in 0..logins {
        let started = Instant::now();
        match login_from(endpoint, source, &person(n), PASSWORD.as_bytes()).await {
            Ok(Answer::Granted) => {
                row.granted += 1;
                row.latencies.push(started.elapsed());
            }
            Ok(Answer::Refused(code)) => {
                row.refused += 1;
                row.first_problem
                    .get_or_insert(format!("{} refused: {code:?}", person(n)));
            }
            Err(e) => row.note(format!("{}: {e:#}", person(n))),
        }
    }
    row
}

/// Every arrival on its own task at its own time; a typo first, then the right password.
async fn rush(
    endpoint: &Arc<ktbroker_kinit::fetch::BrokerEndpoint>,
    arrivals: &[Arrival],
    retry_after: Duration,
) -> Row {
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = tokio::task::JoinSet::new();
    for arrival in arrivals.iter().copied() {
        let endpoint = endpoint.clone();
        tasks.spawn(async move {
            tokio::time::sleep_until(start + arrival.at).await;
            let user = person(arrival.person);
            let mut problem = None;
            if arrival.typo_first {
                match login_from(&endpoint, arrival.source, &user, b"rush-hour-typo").await {
                    Ok(Answer::Refused(_)) => {}
                    Ok(Answer::Granted) => problem = Some(format!("{user}: a wrong password was granted")),
                    Err(e) => problem = Some(format!("{user}, the typo: {e:#}")),
                }
                tokio::time::sleep(retry_after).await;
            }
            let started = Instant::now();
            let answer = login_from(&endpoint, arrival.source, &user, PASSWORD.as_bytes()).await;
            (user, arrival.source, answer, started.elapsed(), problem)
        });
    }
    let mut row = Row::default();
    while let Some(done) = tasks.join_next().await {
        let (user, source, answer, took, problem) = match done {
            Ok(done) => done,
            Err(e) => {
                row.note(format!("a task failed: {e}"));
                continue;
            }
        };
        if let Some(problem) = problem {
            row.note(problem);
        }
        match answer {
            Ok(Answer::Granted) => {
                row.granted += 1;
                row.latencies.push(took);
            }
            Ok(Answer::Refused(code)) => {
                row.refused += 1;
                row.first_problem
                    .get_or_insert(format!("{user} from {source}, right password, refused: {code:?}"));
            }
            Err(e) => row.note(format!("{user} from {source}: {e:#}")),
        }
    }
    row
}
