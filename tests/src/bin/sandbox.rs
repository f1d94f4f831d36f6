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
    /// Also start a secure HDFS (about 15 s; Hadoop's jars are fetched once, 233 MB) and show a
    /// short netdisk session as alice.
    #[arg(long)]
    hdfs: bool,
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
    let programs = if args.hdfs {
        &["ktbrokerd", "ktbroker-kinit", "netdisk"][..]
    } else {
        &["ktbrokerd", "ktbroker-kinit"][..]
    };
    for program in programs {
        eprintln!("using {}", ktbroker_tests::bins::project_binary(program).display());
    }

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
    let netdisk_hint = if args.hdfs {
        anyhow::ensure!(ok, "alice did not get a TGT (ktbroker-kinit exited {})", login.status);
        Some(netdisk_demo(&sandbox, &ccache)?)
    } else {
        None
    };
    if args.once {
        anyhow::ensure!(ok, "alice did not get a TGT (ktbroker-kinit exited {})", login.status);
        eprintln!("sandbox login OK; tearing down");
        return Ok(());
    }
    eprintln!(
        "\nThe sandbox stays up until Ctrl-C. To log in from another terminal:\n{}\n",
        sandbox.login_hint()
    );
    if let Some((hint, _)) = &netdisk_hint {
        eprintln!("netdisk as alice, from another terminal:\n{hint}\n");
    }
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

/// Starts HDFS next to the sandbox, gives alice a home, and runs a few netdisk commands on her
/// ticket, printing each with its output. Returns the command line for another terminal, and
/// HDFS, which runs as long as the caller keeps it.
fn netdisk_demo(sandbox: &Sandbox, ccache: &str) -> anyhow::Result<(String, ktbroker_tests::hdfs::Hdfs)> {
    use ktbroker_tests::bins::project_binary;
    use ktbroker_tests::hdfs::Hdfs;
    let started = std::time::Instant::now();
    eprintln!("\nstarting a secure HDFS (NameNode + DataNode, Kerberos) ...");
    let hdfs = Hdfs::start(&sandbox.root.join("hdfs"), &sandbox.realm).context("starting HDFS")?;
    hdfs.as_superuser(&["-mkdir", "-p", "/user/alice"])?;
    hdfs.as_superuser(&["-chown", "alice", "/user/alice"])?;
    eprintln!(
        "HDFS up in {:.1} s: hdfs://localhost:{}",
        started.elapsed().as_secs_f64(),
        hdfs.rpc_port
    );
    let dir = sandbox.root.join("client");
    let config = dir.join("netdisk.toml");
    std::fs::write(&config, hdfs.netdisk_toml())?;
    let client_config = dir.join("client.toml");
    std::fs::write(&client_config, sandbox.client_toml())?;
    let sample = dir.join("hello.txt");
    std::fs::write(&sample, "hello from alice's netdisk\n")?;
    let netdisk = project_binary("netdisk");
    let prefix = format!(
        "KRB5_CONFIG={} {} --config {} --client-config {} -c {ccache} --user alice",
        sandbox.realm.krb5_conf.display(),
        netdisk.display(),
        config.display(),
        client_config.display()
    );
    let sample_arg = sample.display().to_string();
    for args in [
        &["mkdir", "-p", "demo"][..],
        &["put", &sample_arg, "demo/"],
        &["ls", "-l", "demo"],
        &["cat", "demo/hello.txt"],
        &["stat", "demo/hello.txt"],
        &["--transport", "webhdfs", "ls", "-l", "/user"],
        &["df", "-H"],
        &["ls", "/user/nobody-here"],
    ] {
        eprintln!("\n$ netdisk {}", args.join(" "));
        let out = std::process::Command::new(&netdisk)
            .arg("--config")
            .arg(&config)
            .arg("--client-config")
            .arg(&client_config)
            .args(["-c", ccache, "--user", "alice"])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("KRB5_CONFIG", &sandbox.realm.krb5_conf)
            .stdin(std::process::Stdio::null())
            .output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        let expected_failure = args[1] == "/user/nobody-here";
        anyhow::ensure!(
            out.status.success() != expected_failure,
            "netdisk {args:?} exited {}",
            out.status
        );
        if expected_failure {
            eprintln!("(exit {})", out.status.code().unwrap_or(-1));
        }
    }
    Ok((format!("{prefix} ls -l"), hdfs))
}
