//! `bench/memory`: brings up the sandbox and measures, in one run,
//!   - the broker's resident memory (VmRSS): idle after its first login, after `--logins` more
//!     (16 at a time, each on a fresh TLS connection), and with `--idle-connections` open TLS +
//!     HTTP/2 connections that send nothing;
//!   - the peak resident memory (the kernel's maxrss, from GNU time) of one login each by
//!     `ktbroker-kinit` in keytab and in ticket delivery, against `kinit -k` with a keytab file and
//!     `kinit` with the password, the median of `--rounds` interleaved rounds; and of the
//!     ktbroker-kinit the package ships (`--packaged-client`, scripts/build-client.sh: smaller),
//!     against the plain release build.
//!
//! It prints them with the ratios. Not a test: a measurement to report.

use anyhow::Context;
use clap::Parser;
use ktbroker_tests::Sandbox;
use ktbroker_tests::bench::{bench_broker, login, rss_kib, run_fed};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A client login to measure: its name, and its command (for a ccache) with what it reads on stdin.
type Client<'a> = (&'static str, Box<dyn Fn(&str) -> (Command, Option<&'static str>) + 'a>);

#[derive(Debug, Parser)]
struct Args {
    /// Logins between the idle and the "after logins" readings.
    #[arg(long, default_value_t = 10_000)]
    logins: usize,
    /// Connections held open for the last reading.
    #[arg(long, default_value_t = 1_000)]
    idle_connections: usize,
    /// Rounds of client logins for the peak-RSS medians.
    #[arg(long, default_value_t = 9)]
    rounds: usize,
    /// The ktbroker-kinit the package ships (scripts/build-client.sh), measured beside the
    /// release build's.
    #[arg(long)]
    packaged_client: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Room for the idle connections (both ends are on this machine; the broker inherits it).
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )?;
    let sandbox = Sandbox::start().context("starting the sandbox")?;
    let broker = bench_broker(&sandbox, "broker-memory", |config| {
        // The idle connections stay until measured (the default closes them after 30 s).
        Ok(config.replace("[server]\n", "[server]\nidle_timeout_secs = 600\n"))
    })?;
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    let endpoint = Arc::new(endpoint);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let pid = broker.pid();
    let mib = |kib: u64| kib as f64 / 1024.0;

    runtime.block_on(login(&endpoint))?;
    let idle = rss_kib(pid);
    let failed = runtime.block_on(logins(&endpoint, args.logins, 16));
    let after_logins = rss_kib(pid);
    let connections = runtime.block_on(open_idle(&endpoint, args.idle_connections))?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    let with_connections = rss_kib(pid);
    drop(connections);

    println!("{:<52} {:>5}", "broker memory (VmRSS)", "MiB");
    println!("{:<52} {:>5.1}   (goal <= 20)", "idle, after one login", mib(idle));
    let label = format!("after {} more logins ({failed} failed)", args.logins);
    println!("{label:<52} {:>5.1}", mib(after_logins));
    let label = format!("with {} idle connections open", args.idle_connections);
    let each = with_connections.saturating_sub(after_logins) as f64 / args.idle_connections.max(1) as f64;
    println!(
        "{label:<52} {:>5.1}   (goal <= 64; {each:.1} KiB each)",
        mib(with_connections)
    );

    let keytab = sandbox.root.join("alice-memory.keytab");
    sandbox
        .realm
        .kadmin_local(&format!("ktadd -norandkey -k {} alice", keytab.display()))?;
    let mut n = 0;
    let mut ccache = || {
        n += 1;
        sandbox.ccache(&format!("memory-{n}"))
    };
    let packaged = &args.packaged_client;
    let clients: [Client<'_>; 5] = [
        (
            "(a*) as (a), as packaged (scripts/build-client.sh)",
            Box::new(|cc| {
                let command = sandbox.kinit_command_of(packaged, &broker.url, &sandbox.pki.ca_cert, "alice", cc);
                (command, Some("alicepw"))
            }),
        ),
        (
            "(a) ktbroker-kinit, keytab delivery",
            Box::new(|cc| {
                (
                    sandbox.kinit_command_via(&broker.url, &sandbox.pki.ca_cert, "alice", cc),
                    Some("alicepw"),
                )
            }),
        ),
        (
            "(d) ktbroker-kinit, ticket delivery",
            Box::new(|cc| {
                let mut command = sandbox.kinit_command_via(&broker.url, &sandbox.pki.ca_cert, "alice", cc);
                command.args(["--delivery", "ticket"]);
                (command, Some("alicepw"))
            }),
        ),
        (
            "(e) kinit -k with alice's keytab",
            Box::new(|cc| {
                let mut command = sandbox.realm.command("kinit");
                command.args(["-k", "-t"]).arg(&keytab).args(["-c", cc, "alice"]);
                (command, None)
            }),
        ),
        (
            "(b) kinit with the Kerberos password",
            Box::new(|cc| {
                let mut command = sandbox.realm.command("kinit");
                command.args(["-c", cc, "alice"]);
                (command, Some("alice-kdc-pw"))
            }),
        ),
    ];
    let mut peaks = vec![Vec::new(); clients.len()];
    for _ in 0..args.rounds {
        for ((name, make), peak) in clients.iter().zip(peaks.iter_mut()) {
            let (command, input) = make(&ccache());
            peak.push(peak_rss_kib(&command, input).with_context(|| name.to_string())?);
        }
    }
    let label = format!("client peak memory (maxrss), median of {} rounds", args.rounds);
    println!("{label:<52} {:>5}", "MiB");
    let mut medians = Vec::new();
    for ((name, _), peak) in clients.iter().zip(peaks.iter_mut()) {
        peak.sort();
        let median = peak[peak.len() / 2];
        medians.push(median);
        println!("{name:<52} {:>5.1}", mib(median));
    }
    let ratio = |x: usize, y: usize| medians[x] as f64 / medians[y].max(1) as f64;
    println!(
        "ratio a*/a: {:.2}   (the packaged client against the release build; goal: a* <= 8 MiB)",
        ratio(0, 1)
    );
    println!("ratio a*/e: {:.2}   (against kinit -k)", ratio(0, 3));
    println!("ratio a/e: {:.2}", ratio(1, 3));
    println!("ratio d/e: {:.2}", ratio(2, 3));
    println!("ratio a/b: {:.2}   (against the password kinit)", ratio(1, 4));
    Ok(())
}

/// `count` logins, `concurrency` at a time; how many failed.
async fn logins(endpoint: &Arc<ktbroker_kinit::fetch::BrokerEndpoint>, count: usize, concurrency: usize) -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (endpoint, next, failed) = (endpoint.clone(), next.clone(), failed.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    if login(&endpoint).await.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    failed.load(Ordering::Relaxed)
}

/// `count` connections to the broker, each through TLS and HTTP/2's setup, then silent.
async fn open_idle(
    endpoint: &ktbroker_kinit::fetch::BrokerEndpoint,
    count: usize,
) -> anyhow::Result<Vec<tonic::transport::Channel>> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(ktbroker_kinit::fetch::connect(endpoint).await?);
    }
    Ok(channels)
}

/// Runs `command` (with `input` and a newline on stdin, if any) under GNU time and returns its
/// peak resident memory in KiB, if it exited 0. Not measured in this process's own child: a
/// child's maxrss starts at the size of the process that forked it, here the benchmark's.
fn peak_rss_kib(command: &Command, input: Option<&str>) -> anyhow::Result<u64> {
    let report = tempfile::NamedTempFile::new()?;
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M", "-o"])
        .arg(report.path())
        .arg(command.get_program());
    timed.args(command.get_args());
    // The commands here either clear their environment or set every variable they need.
    timed.env_clear().env("PATH", "/usr/bin:/bin");
    for (name, value) in command.get_envs() {
        if let Some(value) = value {
            timed.env(name, value);
        }
    }
    run_fed(&mut timed, input)?;
    let text = std::fs::read_to_string(report.path())?;
    text.trim()
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .with_context(|| format!("GNU time reported {text:?}"))
}
