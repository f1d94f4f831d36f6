//! Handing the keytab to MIT kinit without writing it to any filesystem: the bytes go into a
//! memfd that only the kinit child inherits, which it opens as `FILE:/proc/self/fd/N` (MIT 1.20
//! reads a keytab this way; a pipe fails because the keytab reader seeks). The memfd is wiped and
//! closed as soon as kinit has exited.

use crate::HelperError;
use ktbroker_keytab::memfd::{KeytabMemfd, clear_cloexec};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Which Kerberos tools to run, where the ticket goes, and how long each may take.
#[derive(Debug, Clone)]
pub struct KerberosTools {
    pub kinit: PathBuf,
    pub klist: PathBuf,
    /// The ccache for the ticket (`-c`); `None` lets kinit use KRB5CCNAME or krb5.conf's default.
    pub ccache: Option<String>,
    pub timeout: Duration,
}

impl Default for KerberosTools {
    fn default() -> Self {
        Self {
            kinit: PathBuf::from("/usr/bin/kinit"),
            klist: PathBuf::from("/usr/bin/klist"),
            ccache: None,
            timeout: crate::DEFAULT_TIMEOUT,
        }
    }
}

/// Variables a Kerberos child may see; everything else in our environment is dropped.
const PASSED_ENV: &[&str] = &[
    "KRB5_CONFIG",
    "KRB5CCNAME",
    "KRB5RCACHEDIR",
    "KRB5_TRACE",
    "LANG",
    "LC_ALL",
];

impl KerberosTools {
    /// A command with an allow-listed environment and no stdin.
    pub(crate) fn command(&self, program: &PathBuf) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for name in PASSED_ENV {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
    }

    pub(crate) fn ccache_args(&self) -> Vec<OsString> {
        match &self.ccache {
            Some(ccache) => vec!["-c".into(), ccache.into()],
            None => Vec::new(),
        }
    }
}

/// Runs `kinit -k -t FILE:/proc/self/fd/N [-c CCACHE] PRINCIPAL` with the keytab in a memfd.
pub fn kinit_from_memory(keytab: &[u8], principal: &str, tools: &KerberosTools) -> Result<(), HelperError> {
    let memfd = KeytabMemfd::with_contents(keytab).map_err(|e| HelperError::Internal(format!("memfd: {e}")))?;
    let fd = memfd.raw_fd();
    let mut command = tools.command(&tools.kinit);
    command
        .arg("-k")
        .arg("-t")
        .arg(memfd.child_keytab_name())
        .args(tools.ccache_args())
        .arg(principal);
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl(2), which is
    // async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || clear_cloexec(fd));
    }
    let output = run_with_deadline(command, tools.timeout).map_err(HelperError::Kinit);
    memfd
        .wipe()
        .map_err(|e| HelperError::Internal(format!("wiping the memfd: {e}")))?;
    drop(memfd);
    let output = output?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(HelperError::Kinit(stderr.trim().to_owned()));
    }
    Ok(())
}

/// Runs a child, killing it if it outlives `timeout`. Output is read on threads so a chatty child
/// cannot block on a full pipe.
pub(crate) fn run_with_deadline(mut command: Command, timeout: Duration) -> Result<Output, String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command.spawn().map_err(|e| format!("cannot run {program}: {e}"))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(stdout.map(|p| Box::new(p) as _));
    let err = drain(stderr.map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().map_err(|e| format!("waiting for {program}: {e}"))? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not finish within {timeout:?} and was killed"));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}
