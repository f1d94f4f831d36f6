//! A real DNS server for the SRV discovery tests: dnsmasq on a loopback port, answering only the
//! SRV records it is given (no upstream, no hosts file), logging every query.

use crate::daemon::{Daemon, free_port};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct Dns {
    pub port: u16,
    pub log: PathBuf,
    daemon: Daemon,
}

impl Dns {
    /// dnsmasq in `dir` with `srv_hosts`, each as dnsmasq's `--srv-host` takes it:
    /// `_service._tcp.domain,target,port,priority,weight`.
    pub fn start(dir: &Path, srv_hosts: &[String]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port();
        let log = dir.join("dnsmasq.log");
        let mut command = Command::new("dnsmasq");
        command
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
            ])
            .args(["--listen-address=127.0.0.1", "--user=root", "--log-queries"])
            .arg(format!("--port={port}"))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()));
        for record in srv_hosts {
            command.arg(format!("--srv-host={record}"));
        }
        let mut daemon = Daemon::spawn("dnsmasq", &mut command, &log)?;
        daemon.wait_ready(Duration::from_secs(10), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("started"))
        })?;
        Ok(Self { port, log, daemon })
    }

    /// Fails if dnsmasq died.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.daemon.check_alive()
    }

    /// Whether anyone asked it for `name`.
    pub fn was_asked(&self, name: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|l| l.contains(name))
    }
}
