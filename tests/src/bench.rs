//! Pieces the benchmarks in `bench/` share: their brokers, a login as a client makes it, and the
//! sandbox's processes with the CPU and memory they use.

use crate::Sandbox;
use crate::broker::Broker;
use ktbroker_kinit::fetch::BrokerEndpoint;
use ktbroker_proto::v1::{FetchKeytabRequest, fetch_keytab_response::Part, keytab_broker_client::KeytabBrokerClient};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The processes a benchmark accounts for: the sandbox's daemons, and itself as "loadgen".
pub const PROCESSES: [&str; 5] = ["ktbrokerd", "slapd", "krb5kdc", "kadmind", "loadgen"];

/// A broker for the benchmark in ROOT/`name`, its configuration edited by `edit`. One load
/// generator is one source address: the per-source connection cap (256 by default, a defence
/// against one client hoarding connections) would refuse its highest level, as the closing
/// connections of one round still count when the next round connects. Real logins at that
/// concurrency come from many hosts; this broker lets one source have 1024. It logs as deployed
/// (info), not at the test brokers' debug level.
pub fn bench_broker(
    sandbox: &Sandbox,
    name: &str,
    edit: impl FnOnce(String) -> anyhow::Result<String>,
) -> anyhow::Result<Broker> {
    let mut edited = Ok(String::new());
    let broker = Broker::start_with_env(
        &sandbox.root.join(name),
        &sandbox.pki,
        &sandbox.realm,
        &sandbox.directory,
        |config| {
            let config = config.replace("[server]\n", "[server]\nmax_connections_per_source = 1024\n");
            match edit(config) {
                Ok(config) => config,
                Err(e) => {
                    edited = Err(e);
                    String::new()
                }
            }
        },
        &[("KTBROKER_LOG", "info".to_owned())],
    );
    edited?;
    broker
}

/// A login against `broker`, as a closure each task can run.
pub fn logins_at(
    sandbox: &Sandbox,
    broker: &Broker,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>> + Clone + Send + 'static
{
    let mut endpoint = sandbox.endpoint();
    endpoint.url = broker.url.clone();
    let endpoint = Arc::new(endpoint);
    move || {
        let endpoint = endpoint.clone();
        Box::pin(async move { login(&endpoint).await })
    }
}

/// One login as a client makes it: a fresh connection (TCP, TLS, HTTP/2), FetchKeytab, the
/// stream read to its trailer.
pub async fn login(endpoint: &BrokerEndpoint) -> anyhow::Result<()> {
    let channel = ktbroker_kinit::fetch::connect(endpoint).await?;
    let mut client = KeytabBrokerClient::new(channel);
    let request = FetchKeytabRequest {
        username: "alice".into(),
        password: b"alicepw".to_vec(),
        ..Default::default()
    };
    let mut stream = tokio::time::timeout(endpoint.timeout, client.fetch_keytab(request))
        .await??
        .into_inner();
    let mut bytes = 0;
    loop {
        match tokio::time::timeout(endpoint.timeout, stream.message()).await?? {
            Some(message) => match message.part {
                Some(Part::Chunk(chunk)) => bytes += chunk.len(),
                Some(Part::Trailer(_)) => break,
                Some(_) => {}
                None => anyhow::bail!("an empty message"),
            },
            None => anyhow::bail!("the stream ended before the trailer"),
        }
    }
    anyhow::ensure!(bytes > 0, "no keytab bytes");
    Ok(())
}

/// How one login of a person ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Granted,
    /// The broker refused, with its typed code (None: a status without one).
    Refused(Option<ktbroker_codes::RefusalCode>),
}

/// One login of `user` from the local address `source` (a loopback alias standing for one host
/// or NAT): a fresh connection bound to it, FetchKeytab, the stream read to its end. An error is
/// a failure to talk to the broker at all; a refusal is an answer.
pub async fn login_from(
    endpoint: &BrokerEndpoint,
    source: std::net::IpAddr,
    user: &str,
    password: &[u8],
) -> anyhow::Result<Answer> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
    let channel = Endpoint::from_shared(endpoint.url.clone())?
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&endpoint.ca_pem)))?
        .local_address(Some(source))
        .connect_timeout(endpoint.timeout)
        .timeout(endpoint.timeout)
        .tcp_nodelay(true)
        .connect()
        .await?;
    let request = FetchKeytabRequest {
        username: user.into(),
        password: password.to_vec(),
        ..Default::default()
    };
    let refused = |status: tonic::Status| Answer::Refused(ktbroker_proto::refusal::code_of(&status));
    let mut stream = match KeytabBrokerClient::new(channel).fetch_keytab(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => return Ok(refused(status)),
    };
    loop {
        match stream.message().await {
            Ok(Some(message)) if matches!(message.part, Some(Part::Trailer(_))) => return Ok(Answer::Granted),
            Ok(Some(_)) => {}
            Ok(None) => anyhow::bail!("the stream ended before the trailer"),
            Err(status) => return Ok(refused(status)),
        }
    }
}

/// The sandbox's daemons by name (found by their environment or command line naming the sandbox
/// directory), and this process as "loadgen".
pub fn daemon_pids(root: &std::path::Path) -> BTreeMap<String, Vec<u32>> {
    let root = root.display().to_string();
    let mut pids: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    pids.entry("loadgen".into()).or_default().push(std::process::id());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let program = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let Some(comm) = program.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !PROCESSES.contains(&comm) {
            continue;
        }
        let mentions_root = ["environ", "cmdline"].iter().any(|file| {
            std::fs::read(format!("/proc/{pid}/{file}"))
                .map(|bytes| String::from_utf8_lossy(&bytes).contains(&root))
                .unwrap_or(false)
        });
        if mentions_root {
            pids.entry(comm.to_owned()).or_default().push(pid);
        }
    }
    pids
}

/// User + system CPU seconds of each process group so far.
pub fn cpu_seconds(pids: &BTreeMap<String, Vec<u32>>) -> BTreeMap<String, f64> {
    // /proc counts CPU time in USER_HZ ticks, 100 a second on Linux whatever the kernel's HZ.
    let ticks = 100.0;
    pids.iter()
        .map(|(name, pids)| {
            let total: u64 = pids.iter().map(|pid| process_ticks(*pid)).sum();
            (name.clone(), total as f64 / ticks)
        })
        .collect()
}

/// utime + stime of `pid` in clock ticks (/proc/PID/stat fields 14 and 15), 0 if it is gone.
pub fn process_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name (field 2) may hold spaces; the fields after it follow its closing ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(14) + field(15)
}

/// Resident memory of `pid` in KiB (VmRSS), 0 if it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `/proc/PID/status` line's value in KiB ("VmRSS:", "VmHWM:"), 0 if absent.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Runs `command` with `input` and a newline on stdin (or nothing on stdin); its output, or an
/// error with its stderr unless it exited 0.
pub fn run_fed(command: &mut std::process::Command, input: Option<&str>) -> anyhow::Result<std::process::Output> {
    use anyhow::Context;
    use std::io::Write;
    use std::process::Stdio;
    let stdin = if input.is_some() { Stdio::piped() } else { Stdio::null() };
    let mut child = command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Fed from a thread: a child that answers each line fills its stdout pipe while we would
    // still be writing a long input, and both would wait for ever.
    let feeder = match input {
        Some(input) => {
            let mut stdin = child.stdin.take().context("stdin")?;
            let input = format!("{input}\n");
            Some(std::thread::spawn(move || stdin.write_all(input.as_bytes())))
        }
        None => None,
    };
    let output = child.wait_with_output()?;
    if let Some(feeder) = feeder {
        feeder
            .join()
            .map_err(|_| anyhow::anyhow!("the stdin feeder panicked"))??;
    }
    anyhow::ensure!(
        output.status.success(),
        "{:?} failed: {}",
        command.get_program(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}
