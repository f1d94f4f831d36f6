//! netdisk's configuration, `/etc/ktbroker/netdisk.toml` unless `--config` names another file:
//! where the cluster is and how to reach it. How to log in comes from the helper's client.toml.
//!
//! ```toml
//! version = 1
//! namenode = "hdfs://nn.example.com:8020"     # the native transport (default)
//! webhdfs = "https://nn.example.com:9871"     # the WebHDFS transport
//! transport = "native"                        # or "webhdfs"
//! home = "/user/{user}"                       # where relative paths start
//! timeout_secs = 60                           # per call (a transfer: per chunk)
//! # Hosts a WebHDFS redirect may send us to (DataNodes); default: the webhdfs host only.
//! cluster_hosts = ["nn.example.com", "*.dn.example.com"]
//! ca_file = "/etc/ktbroker/hadoop-ca.pem"     # for an https webhdfs URL; else the system's roots
//! ```

use crate::error::{NetdiskError, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/ktbroker/netdisk.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: u32,
    namenode: Option<String>,
    webhdfs: Option<String>,
    transport: Option<Transport>,
    home: Option<String>,
    timeout_secs: Option<u64>,
    cluster_hosts: Option<Vec<String>>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// HDFS RPC with Kerberos (hdfs-native).
    Native,
    /// WebHDFS REST with SPNEGO.
    Webhdfs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetdiskConfig {
    pub namenode: Option<url::Url>,
    pub webhdfs: Option<url::Url>,
    pub transport: Transport,
    pub home: String,
    pub timeout: Duration,
    pub cluster_hosts: Vec<String>,
    pub ca_file: Option<PathBuf>,
}

impl Default for NetdiskConfig {
    fn default() -> Self {
        Self {
            namenode: None,
            webhdfs: None,
            transport: Transport::Native,
            home: "/user/{user}".into(),
            timeout: Duration::from_secs(60),
            cluster_hosts: Vec::new(),
            ca_file: None,
        }
    }
}

impl NetdiskConfig {
    /// Reads `path`; a missing file is the defaults only when it is the default path.
    pub fn load(path: &Path, explicit: bool) -> Result<Self> {
        let bad = |problem: String| NetdiskError::usage(format!("{}: {problem}", path.display()));
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(Self::default()),
            Err(e) => return Err(bad(e.to_string())),
        };
        let raw: RawConfig = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if raw.version != 1 {
            return Err(bad(format!("`version` is {}, this netdisk reads 1", raw.version)));
        }
        let defaults = Self::default();
        let namenode = raw
            .namenode
            .map(|u| parse_url(&u, &["hdfs"]))
            .transpose()
            .map_err(|e| bad(format!("`namenode`: {e}")))?;
        let webhdfs = raw
            .webhdfs
            .map(|u| parse_url(&u, &["https", "http"]))
            .transpose()
            .map_err(|e| bad(format!("`webhdfs`: {e}")))?;
        let timeout = match raw.timeout_secs {
            None => defaults.timeout,
            Some(secs @ 1..=3600) => Duration::from_secs(secs),
            Some(_) => return Err(bad("`timeout_secs` must be between 1 and 3600".into())),
        };
        let home = raw.home.unwrap_or(defaults.home);
        if !home.starts_with('/') || !home.contains("{user}") {
            return Err(bad(format!("`home` {home:?} must be absolute and contain {{user}}")));
        }
        let base = path.parent().unwrap_or(Path::new("/"));
        Ok(Self {
            namenode,
            webhdfs,
            transport: raw.transport.unwrap_or(defaults.transport),
            home,
            timeout,
            cluster_hosts: raw.cluster_hosts.unwrap_or_default(),
            ca_file: raw.ca_file.map(|p| if p.is_relative() { base.join(p) } else { p }),
        })
    }
}

/// A URL with one of `schemes`, a host, and nothing after the authority.
pub fn parse_url(text: &str, schemes: &[&str]) -> std::result::Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!("{text:?} must start with {}://", schemes.join(":// or ")));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if url.path() != "/" && !url.path().is_empty() || url.query().is_some() {
        return Err(format!("{text:?}: give only scheme, host and port"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{text:?}: no credentials in URLs"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<NetdiskConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netdisk.toml");
        std::fs::write(&path, text).unwrap();
        NetdiskConfig::load(&path, true)
    }

    #[test]
    fn the_documented_example_loads() {
        let example: String = include_str!("config.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .skip_while(|l| !l.starts_with("version"))
            .take_while(|l| !l.starts_with("```"))
            .map(|l| format!("{l}\n"))
            .collect();
        let config = load_text(&example).unwrap();
        assert_eq!(config.namenode.unwrap().port(), Some(8020));
        assert_eq!(config.transport, Transport::Native);
        assert_eq!(config.timeout, Duration::from_secs(60));
        assert_eq!(config.cluster_hosts.len(), 2);
        assert!(config.ca_file.is_some());
    }

    #[test]
    fn the_readme_example_loads() {
        let readme = include_str!("../../README.md");
        let example = readme
            .split("```toml\n")
            .skip(1)
            .map(|block| &block[..block.find("```").unwrap()])
            .find(|block| block.contains("namenode"))
            .expect("the README's netdisk.toml example");
        assert_eq!(load_text(example).unwrap().cluster_hosts.len(), 2);
    }

    #[test]
    fn bad_files_name_the_key() {
        for (text, needle) in [
            ("version = 2\n", "version"),
            ("version = 1\nnamenode = \"http://nn:8020\"\n", "`namenode`"),
            ("version = 1\nwebhdfs = \"https://nn:9871/webhdfs/v1\"\n", "`webhdfs`"),
            ("version = 1\nwebhdfs = \"https://u:p@nn:9871\"\n", "credentials"),
            ("version = 1\nhome = \"/shared\"\n", "`home`"),
            ("version = 1\ntimeout_secs = 0\n", "timeout_secs"),
            ("version = 1\ntransport = \"ftp\"\n", "transport"),
            ("version = 1\nnamenod = \"hdfs://nn:8020\"\n", "unknown field"),
        ] {
            let err = load_text(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert!(NetdiskConfig::load(Path::new("/nonexistent/netdisk.toml"), true).is_err());
        assert_eq!(
            NetdiskConfig::load(Path::new("/nonexistent/netdisk.toml"), false).unwrap(),
            NetdiskConfig::default()
        );
    }
}
