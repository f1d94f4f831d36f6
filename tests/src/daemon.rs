//! A daemon the harness started: a child process in the foreground, its output in a log file.
//! Dropping it stops it. A daemon that exited on its own is reported, with its log, so a test
//! can fail on it.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub name: String,
    pub log: PathBuf,
    child: Child,
    /// Set once the harness stopped it on purpose: exiting is then no failure.
    stopped: bool,
}

impl Daemon {
    /// SIGKILL, for a shutdown that has only shared access (see [`crate::cluster`]).
    pub fn kill_now(&self) {
        let _ = self.signal(rustix::process::Signal::KILL);
    }

    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        // SAFETY: runs in the forked child before exec; prctl(2) is async-signal-safe and the
        // closure allocates nothing. The daemon then dies with the thread that started it, so a
        // killed test run or sandbox leaves no stray KDC, slapd or broker behind.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                    .map_err(std::io::Error::from)
            });
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {name} ({:?}): {e}", command.get_program()))?;
        Ok(Self {
            name: name.to_owned(),
            log: log.to_owned(),
            child,
            stopped: false,
        })
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Err` with the log's tail if the daemon is no longer running (unless stopped on purpose).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if self.stopped {
            return Ok(());
        }
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => anyhow::bail!(
                "{} exited on its own ({status}); log {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log)
            ),
        }
    }

    /// Stops the daemon; returns `Err` if it had already died.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let alive = self.check_alive();
        let _ = self.child.kill();
        let _ = self.child.wait();
        alive
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: rustix::process::Signal) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a child has a pid");
        rustix::process::kill_process(pid, signal)?;
        Ok(())
    }

    /// Sends SIGTERM and waits up to `timeout` for the daemon to exit; returns its exit status.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        self.check_alive()?;
        self.stopped = true;
        self.signal(rustix::process::Signal::TERM)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?} of SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls `ready` until it returns true, failing early if the daemon dies. No fixed sleeps:
    /// the first successful probe ends the wait.
    pub fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            self.check_alive()?;
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{} not ready after {timeout:?}; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log)
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free for both TCP and UDP a moment ago, and that this process
/// has not handed out before: tests run in parallel threads, and two daemons given the same port
/// number (a KDC binds UDP and TCP with SO_REUSEADDR) would silently steal each other's requests.
///
/// Chosen below the kernel's ephemeral range (`ip_local_port_range`, 32768 up by default), so
/// that no outgoing connection of any test can take it between this check and the daemon's
/// bind, and below 61000, where the tests' Samba takes its RPC ports.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    const RANGE: std::ops::Range<u16> = 20_000..32_000;
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // Start where this process's id points, so that two test binaries rarely probe the same ports.
    let span = u32::from(RANGE.end - RANGE.start);
    let offset = std::process::id().wrapping_mul(7919) % span;
    for step in 0..span {
        // 37 is prime to the span: the walk visits every port of the range once.
        let port = RANGE.start + ((offset + step * 37) % span) as u16;
        if handed_out.contains(&port) {
            continue;
        }
        let tcp_free = TcpListener::bind(("127.0.0.1", port)).is_ok();
        let udp_free = tcp_free && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if udp_free {
            handed_out.push(port);
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {RANGE:?}");
}

pub fn tcp_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// The last 40 lines of a log file.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Runs a setup command to completion, failing with its output if it fails.
pub fn run_checked(command: &mut Command) -> anyhow::Result<std::process::Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {:?}: {e}", command.get_program()))?;
    if !output.status.success() {
        anyhow::bail!(
            "{:?} {:?} failed ({}):\n{}{}",
            command.get_program(),
            command.get_args().collect::<Vec<_>>(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: impl AsRef<[u8]>) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_ref())?;
    Ok(())
}
