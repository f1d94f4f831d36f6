//! `bench/netdisk-transfer`: brings up the sandbox and a secure HDFS (128 MiB blocks, as in
//! production), logs alice in once, and times `put` and `get` of one file (100 MiB by default)
//! through each route, in one run:
//!   - Hadoop's own Java client (`FsShell -put/-get`): the baseline netdisk replaces;
//!   - netdisk over native HDFS RPC (hdfs-native);
//!   - netdisk over WebHDFS with SPNEGO.
//!
//! Prints the median wall time, throughput and peak RSS of each, and ratios against the baseline
//! and between the two transports. Not a test: a measurement to report.

use anyhow::Context;
use clap::Parser;
use ktbroker_tests::Sandbox;
use ktbroker_tests::cluster::SharedCluster;
use ktbroker_tests::hdfs::Hdfs;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
struct Args {
    /// File size in MiB.
    #[arg(long, default_value_t = 100)]
    size_mib: usize,
    /// Timed runs per route and direction (after one warm-up each).
    #[arg(long, default_value_t = 3)]
    iterations: usize,
}

/// One timed run: wall time and the child's peak RSS.
struct Run {
    wall: Duration,
    max_rss_kib: i64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sandbox = Sandbox::start().context("starting the sandbox")?;
    let hdfs =
        Hdfs::start_with_block_size(&sandbox.root.join("hdfs"), &sandbox.realm, 128 << 20).context("starting HDFS")?;
    hdfs.as_superuser(&["-mkdir", "-p", "/user/alice"])?;
    hdfs.as_superuser(&["-chown", "alice", "/user/alice"])?;
    let cluster = SharedCluster { sandbox, hdfs };
    let native = cluster.netdisk_client("bench", "alice");
    let login = native.run_with_password("alicepw", &["ls"]);
    anyhow::ensure!(
        login.status.success(),
        "login: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    let webhdfs = cluster.netdisk_client("bench", "alice").over("webhdfs");

    let local = native.dir.join("payload.bin");
    let bytes = args.size_mib << 20;
    // Written a MiB at a time: a child's peak RSS (wait4) starts from this process's peak, so
    // this process must never hold the whole payload.
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&local)?);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..args.size_mib {
            for byte in chunk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *byte = (x >> 24) as u8;
            }
            file.write_all(&chunk)?;
        }
        file.flush()?;
    }
    let fetched = native.dir.join("fetched.bin");
    let local_arg = local.display().to_string();
    let fetched_arg = fetched.display().to_string();
    let java = |fs_args: &[&str]| {
        let mut command = cluster.hdfs.fs_shell_command();
        command.env("KRB5CCNAME", &native.ccache).args(fs_args);
        command
    };

    type Route<'a> = (
        &'a str,
        Box<dyn Fn(&[&str]) -> Command + 'a>,
        &'a [&'a str],
        &'a [&'a str],
    );
    let routes: Vec<Route> = vec![
        ("java FsShell (baseline)", Box::new(java), &["-put", "-f"], &["-get"]),
        (
            "netdisk native RPC",
            Box::new(|a: &[&str]| native.command(a)),
            &["put", "-f"],
            &["get", "-f"],
        ),
        (
            "netdisk WebHDFS",
            Box::new(|a: &[&str]| webhdfs.command(a)),
            &["put", "-f"],
            &["get", "-f"],
        ),
    ];
    let remote = "/user/alice/payload.bin";
    let mut results = Vec::new();
    for (name, command, put, get) in &routes {
        let mut puts = Vec::new();
        let mut gets = Vec::new();
        for i in 0..=args.iterations {
            let _ = std::fs::remove_file(&fetched);
            let put_run = timed(command(&[put, &[local_arg.as_str(), remote][..]].concat()))
                .with_context(|| format!("{name} put"))?;
            let get_run = timed(command(&[get, &[remote, fetched_arg.as_str()][..]].concat()))
                .with_context(|| format!("{name} get"))?;
            anyhow::ensure!(
                std::fs::metadata(&fetched)?.len() == bytes as u64,
                "{name}: the fetched file has the wrong size"
            );
            if i > 0 {
                puts.push(put_run);
                gets.push(get_run);
            }
        }
        results.push((*name, median(puts), median(gets)));
    }

    println!(
        "\n{} MiB file, median of {} runs each (after a warm-up), release build, loopback, 1 DataNode\n",
        args.size_mib, args.iterations
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "route", "put s", "put MB/s", "get s", "get MB/s", "put RSS", "get RSS"
    );
    let mb = bytes as f64 / 1e6;
    for (name, put, get) in &results {
        println!(
            "{:<26} {:>9.2} {:>9.0} {:>9.2} {:>9.0} {:>8}Mi {:>8}Mi",
            name,
            put.wall.as_secs_f64(),
            mb / put.wall.as_secs_f64(),
            get.wall.as_secs_f64(),
            mb / get.wall.as_secs_f64(),
            put.max_rss_kib / 1024,
            get.max_rss_kib / 1024
        );
    }
    let (_, base_put, base_get) = &results[0];
    println!("\nratios of wall time (lower is faster):");
    for (name, put, get) in &results[1..] {
        println!(
            "  {name} / java baseline: put {:.2}, get {:.2}",
            ratio(put, base_put),
            ratio(get, base_get)
        );
    }
    let (_, native_put, native_get) = &results[1];
    let (_, web_put, web_get) = &results[2];
    println!(
        "  WebHDFS / native RPC: put {:.2}, get {:.2}",
        ratio(web_put, native_put),
        ratio(web_get, native_get)
    );
    Ok(())
}

fn ratio(a: &Run, b: &Run) -> f64 {
    a.wall.as_secs_f64() / b.wall.as_secs_f64()
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by_key(|r| r.wall);
    runs.swap_remove(runs.len() / 2)
}

/// Runs `command` to completion; wall time and peak RSS from wait4(2).
// wait4(2) for the child's own rusage: libc, since std and rustix report no rusage.
#[allow(unsafe_code)]
fn timed(mut command: Command) -> anyhow::Result<Run> {
    let start = Instant::now();
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals above. The Child handle is
    // then never waited on again (its stderr pipe is read below and closed on drop).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    anyhow::ensure!(waited == pid, "wait4: {}", std::io::Error::last_os_error());
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut message = String::new();
        if let Some(mut stderr) = child.stderr {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut message);
        }
        anyhow::bail!("{:?} failed: {message}", command.get_program());
    }
    Ok(Run {
        wall,
        max_rss_kib: usage.ru_maxrss,
    })
}
