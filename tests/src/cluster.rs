//! One sandbox (KDC, slapd, broker) and one secure HDFS for every test in a test binary: HDFS
//! takes about 12 s to start, so the netdisk tests share it. It is started on first use by a
//! thread that lives as long as the process (daemons die with the thread that spawned them), and
//! stopped, its directory removed, when the process exits.
//!
//! Tests sharing it keep out of each other's way by working in their own directories and ccaches.

use crate::bins::project_binary;
use crate::hdfs::Hdfs;
use crate::sandbox::{Sandbox, run_with_password};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub struct SharedCluster {
    pub sandbox: Sandbox,
    pub hdfs: Hdfs,
}

static CLUSTER: OnceLock<&'static SharedCluster> = OnceLock::new();

/// The process-wide cluster, started on first call: alice's and bob's homes exist, each owned
/// by its user with mode 700, and bob's holds `secret.txt`.
pub fn shared_cluster() -> &'static SharedCluster {
    crate::shared::start_once(&CLUSTER, "the shared sandbox and HDFS", start, stop_at_exit)
}

fn start() -> anyhow::Result<SharedCluster> {
    let sandbox = Sandbox::start()?;
    let hdfs = Hdfs::start(&sandbox.root.join("hdfs"), &sandbox.realm)?;
    hdfs.as_superuser(&["-mkdir", "-p", "/user/alice", "/user/bob"])?;
    let secret = sandbox.root.join("secret.txt");
    std::fs::write(&secret, "bob's secret\n")?;
    hdfs.as_superuser(&["-put", &secret.display().to_string(), "/user/bob/secret.txt"])?;
    hdfs.as_superuser(&["-chown", "-R", "alice", "/user/alice"])?;
    hdfs.as_superuser(&["-chown", "-R", "bob", "/user/bob"])?;
    hdfs.as_superuser(&["-chmod", "700", "/user/alice", "/user/bob"])?;
    Ok(SharedCluster { sandbox, hdfs })
}

extern "C" fn stop_at_exit() {
    // No panic may unwind out of an atexit handler.
    let _ = std::panic::catch_unwind(|| {
        if let Some(cluster) = CLUSTER.get() {
            cluster.hdfs.kill_daemons();
            cluster.sandbox.kill_daemons();
            std::thread::sleep(std::time::Duration::from_millis(200));
            let _ = std::fs::remove_dir_all(&cluster.sandbox.root);
        }
    });
}

impl SharedCluster {
    /// A netdisk client for `user` in one test: its own directory with netdisk.toml and client.toml,
    /// and its own FILE ccache (empty until it logs in).
    pub fn netdisk_client(&self, name: &str, user: &str) -> NetdiskClient {
        let dir = self.sandbox.root.join("netdisk").join(name);
        std::fs::create_dir_all(&dir).expect("creating the client directory");
        std::fs::write(dir.join("netdisk.toml"), self.hdfs.netdisk_toml()).expect("writing netdisk.toml");
        std::fs::write(dir.join("client.toml"), self.sandbox.client_toml()).expect("writing client.toml");
        NetdiskClient {
            transport: "native",
            user: user.to_owned(),
            ccache: format!("FILE:{}", dir.join("ccache").display()),
            dir,
            krb5_conf: self.sandbox.realm.krb5_conf.clone(),
        }
    }
}

/// Runs `netdisk` as one person: their config files, their ccache, only the test realm.
pub struct NetdiskClient {
    /// `native` (hdfs-native RPC) or `webhdfs` (REST with SPNEGO).
    pub transport: &'static str,
    pub user: String,
    pub dir: PathBuf,
    pub ccache: String,
    krb5_conf: PathBuf,
}

impl NetdiskClient {
    /// `netdisk ARGS` with the client's configuration; stdin is /dev/null.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(project_binary("netdisk"));
        command
            .arg("--config")
            .arg(self.dir.join("netdisk.toml"))
            .arg("--client-config")
            .arg(self.dir.join("client.toml"))
            .args(["-c", &self.ccache, "--user", &self.user, "--transport", self.transport])
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("KRB5_CONFIG", &self.krb5_conf)
            .stdin(Stdio::null());
        command
    }

    /// The same person over another transport.
    pub fn over(mut self, transport: &'static str) -> Self {
        self.transport = transport;
        self
    }

    /// Runs netdisk with nothing on stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running netdisk")
    }

    /// Runs netdisk with `password` and a newline on stdin.
    pub fn run_with_password(&self, password: &str, args: &[&str]) -> Output {
        run_with_password(self.command(args), password)
    }
}
