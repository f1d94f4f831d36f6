//! A real secure HDFS (Hadoop 2.7.3 NameNode and DataNode on the machine's Java 17): Kerberos RPC
//! authentication against the test realm, permissions, block tokens, WebHDFS with SPNEGO. The jars
//! come from `scripts/fetch-hadoop.sh` (cached outside the repository), Jersey 1 from Debian.
//! Bring-up takes about 12 s, so tests start one per test binary (see [`Hdfs::start`]).
//! Recipe and the reasons for each flag: ../shared/notes/hdfs.md.

use crate::daemon::{Daemon, free_port, run_checked};
use crate::realm::Realm;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Jersey 1 jars (Debian) that WebHDFS needs, before the Hadoop jars on the classpath.
const JERSEY: &[&str] = &[
    "/usr/share/java/jsr311-api.jar",
    "/usr/share/java/jersey1-core.jar",
    "/usr/share/java/jersey1-server.jar",
    "/usr/share/java/jersey1-servlet.jar",
    "/usr/share/java/jersey1-json.jar",
    "/usr/share/java/jettison.jar",
];

/// Java 17 needs these to run Hadoop 2.7's Kerberos and NIO code.
const JAVA_OPENS: &[&str] = &[
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.dns=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-opens=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.jgss=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5.internal=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.jgss.krb5=ALL-UNNAMED",
];

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
        // Daemons log at INFO (their readiness is read from the log), clients at WARN.
        std::fs::write(
            conf_dir.join("log4j.properties"),
            "hadoop.root.logger=WARN,console\nlog4j.rootLogger=${hadoop.root.logger}\n\
             log4j.appender.console=org.apache.log4j.ConsoleAppender\nlog4j.appender.console.target=System.err\n\
             log4j.appender.console.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n\n",
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
        std::fs::write(conf_dir.join("core-site.xml"), core_site(&realm.realm, ports.rpc))?;
        std::fs::write(
            conf_dir.join("hdfs-site.xml"),
            hdfs_site(&realm.realm, dir, &keytab, &ports, block_size),
        )?;
        let partial = Partial {
            dir: dir.to_owned(),
            conf_dir,
            jars,
            krb5_conf: realm.krb5_conf.clone(),
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
        format!(
            "version = 1\nnamenode = \"hdfs://localhost:{}\"\nwebhdfs = \"http://localhost:{}\"\ntimeout_secs = 30\n",
            self.rpc_port, self.http_port
        )
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
            krb5_conf: self.krb5_conf.clone(),
        }
    }
}

/// What a Java command needs before the cluster is up.
struct Partial {
    dir: PathBuf,
    conf_dir: PathBuf,
    jars: PathBuf,
    krb5_conf: PathBuf,
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

    fn with_classpath(&self, mut command: Command, class: &str) -> Command {
        let classpath = std::iter::once(self.conf_dir.display().to_string())
            .chain(JERSEY.iter().map(|j| (*j).to_owned()))
            .chain(std::iter::once(format!("{}/*", self.jars.display())))
            .collect::<Vec<_>>()
            .join(":");
        command
            .args(["-Xmx256m", "-Djava.net.preferIPv4Stack=true"])
            .arg(format!("-Djava.security.krb5.conf={}", self.krb5_conf.display()))
            .arg(format!("-Dhadoop.log.dir={}", self.dir.display()))
            .args(JAVA_OPENS)
            .args(["-cp", &classpath, class])
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

fn property(name: &str, value: &str) -> String {
    format!("  <property><name>{name}</name><value>{value}</value></property>\n")
}

fn configuration(properties: &[(&str, String)]) -> String {
    let body: String = properties.iter().map(|(n, v)| property(n, v)).collect();
    format!("<?xml version=\"1.0\"?>\n<configuration>\n{body}</configuration>\n")
}

fn core_site(realm: &str, rpc: u16) -> String {
    let escaped = realm.replace('.', "\\.");
    // One rule a line: a `(a|b)` group inside a match fails to parse in Hadoop 2.7.
    let rules = format!(
        "RULE:[2:$1@$0](nn@{escaped})s/.*/hdfs/\nRULE:[2:$1@$0](dn@{escaped})s/.*/hdfs/\n\
         RULE:[1:$1@$0](.*@{escaped})s/@.*//\nRULE:[2:$1@$0](.*@{escaped})s/@.*//\nDEFAULT"
    );
    configuration(&[
        ("fs.defaultFS", format!("hdfs://localhost:{rpc}")),
        ("hadoop.security.authentication", "kerberos".into()),
        ("hadoop.security.authorization", "true".into()),
        ("hadoop.rpc.protection", "authentication".into()),
        ("hadoop.security.auth_to_local", rules),
    ])
}

fn hdfs_site(realm: &str, dir: &Path, keytab: &Path, p: &Ports, block_size: u64) -> String {
    let keytab = keytab.display().to_string();
    configuration(&[
        ("dfs.namenode.name.dir", format!("{}/name", dir.display())),
        ("dfs.datanode.data.dir", format!("{}/data", dir.display())),
        ("dfs.replication", "1".into()),
        ("dfs.blocksize", block_size.to_string()),
        ("dfs.namenode.rpc-address", format!("localhost:{}", p.rpc)),
        ("dfs.namenode.http-address", format!("localhost:{}", p.http)),
        (
            "dfs.namenode.secondary.http-address",
            format!("localhost:{}", p.secondary),
        ),
        ("dfs.datanode.address", format!("127.0.0.1:{}", p.data)),
        ("dfs.datanode.http.address", format!("127.0.0.1:{}", p.data_http)),
        ("dfs.datanode.ipc.address", format!("127.0.0.1:{}", p.data_ipc)),
        ("dfs.datanode.hostname", "localhost".into()),
        ("dfs.namenode.datanode.registration.ip-hostname-check", "false".into()),
        ("dfs.namenode.safemode.extension", "0".into()),
        ("dfs.webhdfs.enabled", "true".into()),
        ("dfs.block.access.token.enable", "true".into()),
        ("dfs.namenode.kerberos.principal", format!("nn/localhost@{realm}")),
        ("dfs.datanode.kerberos.principal", format!("dn/localhost@{realm}")),
        (
            "dfs.web.authentication.kerberos.principal",
            format!("HTTP/localhost@{realm}"),
        ),
        (
            "dfs.namenode.kerberos.internal.spnego.principal",
            format!("HTTP/localhost@{realm}"),
        ),
        ("dfs.namenode.keytab.file", keytab.clone()),
        ("dfs.datanode.keytab.file", keytab.clone()),
        ("dfs.web.authentication.kerberos.keytab", keytab),
        ("ignore.secure.ports.for.testing", "true".into()),
    ])
}
