//! A real secure HDFS (Hadoop 2.7.3 NameNode and DataNode on the machine's Java 17): Kerberos RPC
//! authentication against the test realm, permissions, block tokens, WebHDFS with SPNEGO. The jars
//! come from `scripts/fetch-hadoop.sh` (cached outside the repository), Jersey 1 from Debian.
//! Bring-up takes about 12 s, so tests start one per test binary (see [`Hdfs::start`]).
//! Recipe and the reasons for each flag: ../shared/notes/hdfs.md.

use crate::daemon::{Daemon, free_port, run_checked};
use crate::realm::Realm;
use crate::templates::render;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The tests' default block size: 1 MiB (HDFS's minimum), so a 3 MiB file spans blocks.
pub const TEST_BLOCK_SIZE: u64 = 1 << 20;

pub struct Hdfs {
    pub dir: PathBuf,
    pub conf_dir: PathBuf,
    pub jars: PathBuf,
    pub rpc_port: u16,
    pub http_port: u16,
    krb5_conf: PathBuf,
    keytab: PathBuf,
    realm: String,
    namenode: Daemon,
    datanode: Daemon,
}

impl Hdfs {
    /// Creates the service principals in `realm`, formats a NameNode under `dir`, starts the
    /// NameNode and a DataNode, and waits until the DataNode has reported its blocks.
    pub fn start(dir: &Path, realm: &Realm) -> anyhow::Result<Self> {
        Self::start_with_block_size(dir, realm, TEST_BLOCK_SIZE)
    }

    /// Like [`Self::start`], with `block_size` as the cluster's default block size.
    pub fn start_with_block_size(dir: &Path, realm: &Realm, block_size: u64) -> anyhow::Result<Self> {
        let jars = jar_dir()?;
        let conf_dir = dir.join("conf");
        for app in ["hdfs", "datanode", "secondary"] {
            let web_inf = conf_dir.join("webapps").join(app).join("WEB-INF");
            std::fs::create_dir_all(&web_inf)?;
            std::fs::write(
                web_inf.join("web.xml"),
                r#"<web-app xmlns="http://java.sun.com/xml/ns/javaee" version="2.5"></web-app>"#,
            )?;
        }
        std::fs::write(
            conf_dir.join("log4j.properties"),
            render("hadoop-log4j.properties.in", &[])?,
        )?;
        let keytab = dir.join("hdfs.keytab");
        for service in ["nn/localhost", "dn/localhost", "HTTP/localhost"] {
            realm.kadmin_local(&format!("addprinc -randkey {service}"))?;
            realm.kadmin_local(&format!("ktadd -k {} {service}", keytab.display()))?;
        }
        let ports = Ports {
            rpc: free_port(),
            http: free_port(),
            secondary: free_port(),
            data: free_port(),
            data_http: free_port(),
            data_ipc: free_port(),
        };
        let text = |path: &Path| path.display().to_string();
        let (rpc, http) = (ports.rpc.to_string(), ports.http.to_string());
        std::fs::write(
            conf_dir.join("core-site.xml"),
            render(
                "core-site.xml.in",
                &[
                    ("HOST", "localhost"),
                    ("RPC_PORT", &rpc),
                    ("REALM_REGEX", &realm.realm.replace('.', "\\.")),
                ],
            )?,
        )?;
        std::fs::write(
            conf_dir.join("hdfs-site.xml"),
            render(
                "hdfs-site.xml.in",
                &[
                    ("DATA_DIR", &text(dir)),
                    ("BLOCK_SIZE", &block_size.to_string()),
                    ("HOST", "localhost"),
                    ("RPC_PORT", &rpc),
                    ("HTTP_PORT", &http),
                    ("SECONDARY_PORT", &ports.secondary.to_string()),
                    ("DATANODE_BIND", "127.0.0.1"),
                    ("DATA_PORT", &ports.data.to_string()),
                    ("DATA_HTTP_PORT", &ports.data_http.to_string()),
                    ("DATA_IPC_PORT", &ports.data_ipc.to_string()),
                    ("REALM", &realm.realm),
                    ("KEYTAB", &text(&keytab)),
                ],
            )?,
        )?;
        std::fs::write(
            conf_dir.join("jvm.args"),
            render(
                "hadoop-jvm.args.in",
                &[
                    ("KRB5_CONF", &text(&realm.krb5_conf)),
                    ("LOG_DIR", &text(dir)),
                    ("CONF_DIR", &text(&conf_dir)),
                    ("JARS", &text(&jars)),
                ],
            )?,
        )?;
        let partial = Partial {
            dir: dir.to_owned(),
            conf_dir,
            jars,
        };
        run_checked(partial.java("org.apache.hadoop.hdfs.server.namenode.NameNode").args([
            "-format",
            "-force",
            "-nonInteractive",
        ]))?;
        let mut namenode = Daemon::spawn(
            "namenode",
            &mut partial.daemon("org.apache.hadoop.hdfs.server.namenode.NameNode"),
            &dir.join("namenode.log"),
        )?;
        let mut datanode = Daemon::spawn(
            "datanode",
            &mut partial.daemon("org.apache.hadoop.hdfs.server.datanode.DataNode"),
            &dir.join("datanode.log"),
        )?;
        let datanode_log = dir.join("datanode.log");
        datanode.wait_ready(Duration::from_secs(90), || {
            std::fs::read_to_string(&datanode_log).is_ok_and(|log| log.contains("Successfully sent block report"))
        })?;
        namenode.check_alive()?;
        Ok(Self {
            dir: partial.dir,
            conf_dir: partial.conf_dir,
            jars: partial.jars,
            rpc_port: ports.rpc,
            http_port: ports.http,
            krb5_conf: realm.krb5_conf.clone(),
            keytab,
            realm: realm.realm.clone(),
            namenode,
            datanode,
        })
    }

    /// `java ... org.apache.hadoop.fs.FsShell` with this cluster's configuration: append the shell
    /// arguments, and set KRB5CCNAME (or not) to choose whose ticket it uses.
    pub fn fs_shell_command(&self) -> Command {
        self.partial().java("org.apache.hadoop.fs.FsShell")
    }

    /// The FsShell command line as program and arguments, for `ktbroker-kinit run -- ...`.
    pub fn fs_shell_argv(&self) -> Vec<String> {
        let command = self.fs_shell_command();
        std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    /// Runs FsShell as the HDFS superuser (nn/localhost from the service keytab).
    pub fn as_superuser(&self, args: &[&str]) -> anyhow::Result<Output> {
        let ccache = self.superuser_ccache()?;
        run_checked(self.fs_shell_command().env("KRB5CCNAME", &ccache).args(args))
    }

    /// A fresh ticket for nn/localhost (HDFS's superuser) from the service keytab.
    fn superuser_ccache(&self) -> anyhow::Result<String> {
        let ccache = format!("FILE:{}", self.dir.join("superuser.ccache").display());
        let mut kinit = Command::new("kinit");
        kinit
            .env("KRB5_CONFIG", &self.krb5_conf)
            .args(["-k", "-t"])
            .arg(&self.keytab)
            .args(["-c", &ccache, &format!("nn/localhost@{}", self.realm)]);
        run_checked(&mut kinit)?;
        Ok(ccache)
    }

    /// A netdisk.toml for this cluster (both transports).
    pub fn netdisk_toml(&self) -> String {
        render(
            "netdisk.toml.in",
            &[
                ("HOST", "localhost"),
                ("RPC_PORT", &self.rpc_port.to_string()),
                ("HTTP_PORT", &self.http_port.to_string()),
            ],
        )
        .expect("templates/netdisk.toml.in renders")
    }

    /// Runs DFSAdmin (quotas, safe mode) as the HDFS superuser.
    pub fn dfsadmin_as_superuser(&self, args: &[&str]) -> anyhow::Result<Output> {
        let ccache = self.superuser_ccache()?;
        run_checked(
            self.partial()
                .java("org.apache.hadoop.hdfs.tools.DFSAdmin")
                .env("KRB5CCNAME", &ccache)
                .args(args),
        )
    }

    /// Fails if the NameNode or DataNode died.
    pub fn kill_daemons(&self) {
        self.namenode.kill_now();
        self.datanode.kill_now();
    }

    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.namenode.check_alive()?;
        self.datanode.check_alive()
    }

    fn partial(&self) -> Partial {
        Partial {
            dir: self.dir.clone(),
            conf_dir: self.conf_dir.clone(),
            jars: self.jars.clone(),
        }
    }
}

/// What a Java command needs before the cluster is up.
struct Partial {
    dir: PathBuf,
    conf_dir: PathBuf,
    jars: PathBuf,
}

impl Partial {
    /// A daemon's JVM: logs at INFO.
    fn daemon(&self, class: &str) -> Command {
        let mut command = Command::new("java");
        command.arg("-Dhadoop.root.logger=INFO,console");
        self.with_classpath(command, class)
    }

    fn java(&self, class: &str) -> Command {
        self.with_classpath(Command::new("java"), class)
    }

    /// `java [command's options] @CONF/jvm.args CLASS`: the JVM options and classpath from
    /// templates/hadoop-jvm.args.in, as the compose demo's HDFS container runs them.
    fn with_classpath(&self, mut command: Command, class: &str) -> Command {
        command
            .arg(format!("@{}", self.conf_dir.join("jvm.args").display()))
            .arg(class)
            .env_remove("KRB5CCNAME")
            .env_remove("HADOOP_CONF_DIR");
        command
    }
}

struct Ports {
    rpc: u16,
    http: u16,
    secondary: u16,
    data: u16,
    data_http: u16,
    data_ipc: u16,
}

/// The jar directory from `scripts/fetch-hadoop.sh` (which downloads only once).
fn jar_dir() -> anyhow::Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-hadoop.sh");
    let out = run_checked(&mut Command::new(script))?;
    let jars = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    anyhow::ensure!(
        jars.join("hadoop-hdfs-2.7.3.jar").exists(),
        "no Hadoop jars in {}",
        jars.display()
    );
    Ok(jars)
}
