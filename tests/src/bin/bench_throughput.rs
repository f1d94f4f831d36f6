//! `bench/throughput`: brings up the sandbox and measures, at each concurrency level, in one run:
//!   (L) broker logins per second: every request on a fresh TCP + TLS connection (as each
//!       `ktbroker-kinit` makes one), FetchKeytab for alice read to its end, the keytab checked;
//!   (B) the baseline: slapd simple binds as alice per second, each client on one persistent
//!       LDAPS connection, with the same client technology (tokio, rustls, the broker's own bind
//!       client): what the directory alone can do, the ceiling of any broker in front of it.
//!   (K) the logins of (L) with kadmind as if on another host (a relay holding every chunk for
//!       `--kadmind-delay-ms` each way), with the default 8 admin sessions and with 1 (one session
//!       for every key read, as the broker had before sessions were pooled).
//! The levels alternate (L then B at each level). Each row gives the rate, p50/p99 latency, the
//! errors, and the CPU each process spent per operation (from /proc, so the whole machine's cost
//! of a login shows, the load generator's own included). Not a test: a measurement to report.

use anyhow::Context;
use clap::Parser;
use ktbroker_broker::config::LdapTransport;
use ktbroker_broker::directory::simple_bind::BindConnection;
use ktbroker_tests::Sandbox;
use ktbroker_tests::bench::{PROCESSES, bench_broker, cpu_seconds, daemon_pids, logins_at};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
struct Args {
    /// Concurrency levels, comma-separated.
    #[arg(long, default_value = "1,4,16,64,256", value_delimiter = ',')]
    levels: Vec<usize>,
    /// Seconds each workload runs at each level (after a short warm-up).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Delay each way added in front of kadmind for the (K) rows, in milliseconds (0: no rows).
    #[arg(long, default_value_t = 1.0)]
    kadmind_delay_ms: f64,
    /// Concurrency of the (K) rows.
    #[arg(long, default_value_t = 64)]
    kadmind_level: usize,
}

/// What one run at one level measured.
struct Run {
    ok: usize,
    errors: usize,
    /// The first error seen, to say what failed.
    first_error: Option<String>,
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// CPU seconds per process name over the run.
    cpu: BTreeMap<String, f64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: usize) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies[((self.latencies.len() - 1) * p) / 100].as_secs_f64() * 1000.0
    }

    /// CPU milliseconds per successful operation of `process`.
    fn cpu_ms_per_op(&self, process: &str) -> f64 {
        self.cpu.get(process).copied().unwrap_or(0.0) * 1000.0 / self.ok.max(1) as f64
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sandbox = Sandbox::start().context("starting the sandbox")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let broker = bench_broker(&sandbox, "broker-throughput", Ok)?;
    let logins = logins_at(&sandbox, &broker);
    let directory = DirectoryTarget {
        address: format!("127.0.0.1:{}", sandbox.directory.port),
        tls: ktbroker_broker::directory::pinned_tls_config(&std::fs::read(&sandbox.directory.ca_cert)?)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        dn: ktbroker_tests::directory::Directory::user_dn("alice"),
        password: "alicepw".into(),
    };
    let pids = daemon_pids(&sandbox.root);
    let duration = Duration::from_secs_f64(args.seconds);

    // Warm-up: the broker's sessions and connections open, the daemons' caches fill.
    runtime.block_on(run(4, Duration::from_millis(500), &pids, logins.clone()));

    println!(
        "{:<40} {:>9} {:>8} {:>8} {:>7}   CPU ms per op: {}",
        "throughput (ops/s)",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "errors",
        PROCESSES.join(" / ")
    );
    let mut ratios = Vec::new();
    for &level in &args.levels {
        let logged_in = runtime.block_on(run(level, duration, &pids, logins.clone()));
        print_row(&format!("(L) broker logins, {level} concurrent"), &logged_in);
        let binds = runtime.block_on(run_binds(level, duration, &pids, &directory));
        print_row(&format!("(B) slapd binds, persistent, {level} conc."), &binds);
        ratios.push((level, logged_in.rate() / binds.rate()));
    }
    if args.kadmind_delay_ms > 0.0 {
        let delay = Duration::from_secs_f64(args.kadmind_delay_ms / 1000.0);
        let relay = ktbroker_tests::proxy::DarkeningRelay::start_delayed(sandbox.realm.kadmin_port, delay)?;
        let level = args.kadmind_level;
        for sessions in [8, 1] {
            let name = format!("broker-kadmind-{sessions}");
            let broker = bench_broker(&sandbox, &name, |config| {
                let config = config.replace(
                    "timeout_secs = 10",
                    &format!("timeout_secs = 10\nsessions = {sessions}"),
                );
                sandbox.with_kadmind_at(config, relay.port, &name)
            })?;
            let logins = logins_at(&sandbox, &broker);
            let pids = daemon_pids(&sandbox.root);
            runtime.block_on(run(4, Duration::from_millis(500), &pids, logins.clone()));
            let run = runtime.block_on(run(level, duration, &pids, logins));
            print_row(
                &format!(
                    "(K) kadmind {} ms away, {sessions} sess., {level} c.",
                    args.kadmind_delay_ms
                ),
                &run,
            );
        }
    }
    for (level, ratio) in ratios {
        println!("ratio L/B at {level:>3} concurrent: {ratio:.3}   (goal at 64: >= 0.15, i.e. >= 2,000 logins/s)");
    }
    Ok(())
}

fn print_row(name: &str, run: &Run) {
    let cpu: Vec<String> = PROCESSES
        .iter()
        .map(|p| format!("{:.2}", run.cpu_ms_per_op(p)))
        .collect();
    println!(
        "{name:<40} {:>9.0} {:>8.1} {:>8.1} {:>7}   {}",
        run.rate(),
        run.percentile_ms(50),
        run.percentile_ms(99),
        run.errors,
        cpu.join(" / ")
    );
    if let Some(error) = &run.first_error {
        println!("    first error: {error}");
    }
}

/// `concurrency` tasks each running `op` back to back for `duration`.
async fn run<F, Fut>(concurrency: usize, duration: Duration, pids: &BTreeMap<String, Vec<u32>>, op: F) -> Run
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let before = cpu_seconds(pids);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut done = Outcomes::default();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    done.record(op().await, t.elapsed());
                }
                done
            })
        })
        .collect();
    finish(tasks, started, before, pids).await
}

/// Like [`run`] for binds: each task opens its connection first, then binds on it.
async fn run_binds(
    concurrency: usize,
    duration: Duration,
    pids: &BTreeMap<String, Vec<u32>>,
    target: &DirectoryTarget,
) -> Run {
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        connections.push(target.connect().await);
    }
    let before = cpu_seconds(pids);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|connection| {
            let (dn, password) = (target.dn.clone(), target.password.clone());
            tokio::spawn(async move {
                let mut done = Outcomes::default();
                let mut connection = match connection {
                    Ok(connection) => connection,
                    Err(e) => {
                        done.record(Err(e), Duration::ZERO);
                        return done;
                    }
                };
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let answer = connection.bind(&dn, &password).await;
                    let result = match answer {
                        Ok(answer) if answer.rc == 0 => Ok(()),
                        Ok(answer) => Err(anyhow::anyhow!("bind rc {} {}", answer.rc, answer.text)),
                        Err(e) => Err(e.into()),
                    };
                    let broken = result.is_err();
                    done.record(result, t.elapsed());
                    if broken {
                        break;
                    }
                }
                done
            })
        })
        .collect();
    finish(tasks, started, before, pids).await
}

async fn finish(
    tasks: Vec<tokio::task::JoinHandle<Outcomes>>,
    started: Instant,
    before: BTreeMap<String, f64>,
    pids: &BTreeMap<String, Vec<u32>>,
) -> Run {
    let mut all = Outcomes::default();
    for task in tasks {
        match task.await {
            Ok(done) => all.merge(done),
            Err(e) => all.record(Err(anyhow::anyhow!("task: {e}")), Duration::ZERO),
        }
    }
    let elapsed = started.elapsed();
    let after = cpu_seconds(pids);
    all.latencies.sort();
    Run {
        ok: all.ok,
        errors: all.errors,
        first_error: all.first_error,
        latencies: all.latencies,
        elapsed,
        cpu: after
            .iter()
            .map(|(name, t)| (name.clone(), t - before.get(name).copied().unwrap_or(0.0)))
            .collect(),
    }
}

#[derive(Default)]
struct Outcomes {
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    latencies: Vec<Duration>,
}

impl Outcomes {
    fn record(&mut self, result: anyhow::Result<()>, took: Duration) {
        match result {
            Ok(()) => {
                self.ok += 1;
                self.latencies.push(took);
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    fn merge(&mut self, other: Outcomes) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies.extend(other.latencies);
    }
}

struct DirectoryTarget {
    address: String,
    tls: Arc<rustls::ClientConfig>,
    dn: String,
    password: String,
}

impl DirectoryTarget {
    async fn connect(&self) -> anyhow::Result<BindConnection> {
        let tcp = tokio::net::TcpStream::connect(&self.address).await?;
        tcp.set_nodelay(true)?;
        Ok(BindConnection::open(tcp, "127.0.0.1", &LdapTransport::Ldaps, Some(&self.tls)).await?)
    }
}
