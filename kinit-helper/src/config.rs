//! The client configuration, `/etc/ktbroker/client.toml` unless `--config` names another file:
//! which brokers to try (in order), the CA that signs them, the tenant, the default ccache and
//! the timeouts. Command-line options override it. Unknown keys are refused; nothing in it is a
//! secret (the host key it may name must be owner-only).
//!
//! ```toml
//! version = 1
//! brokers = ["https://broker1.example.com:8443", "https://broker2.example.com:8443"]
//! ca_file = "/etc/ktbroker/ca.pem"
//! tenant = "corp"                      # optional: the broker's default tenant otherwise
//! ccache = "FILE:/tmp/krb5cc_{uid}"    # optional: KRB5CCNAME, else krb5.conf's default
//! broker_timeout_secs = 10             # per broker, then the next one is tried
//! kdc_timeout_secs = 15
//! ticket_lifetime = "10h"              # optional, as kinit -l: else krb5.conf's, else libkrb5's
//! renew_lifetime = "7d"                # as kinit -r: else krb5.conf's, else 7d (the KDC may cap both)
//! min_lifetime = "2h"                  # `run`: a cached ticket with less left is replaced first
//! client_cert = "/etc/ktbroker/host.pem"   # optional mTLS host identity
//! client_key = "/etc/ktbroker/host.key"
//! # Without `brokers`: DNS SRV _ktbroker._tcp.<srv_domain, else the resolv.conf search domain>
//! srv_domain = "example.com"
//! dns_server = "10.0.0.53:53"          # optional: ask this server instead of the system's
//! sessions_dir = "/run/ktbroker-sessions"  # where pam_ktbroker records session caches (its sessions_dir=)
//! delivery = "ticket"                  # only a ticket, the key stays in the broker; default "keytab"
//! ```

use crate::HelperError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/ktbroker/client.toml";

/// `run`'s least lifetime left on a cached ticket: enough for a long Hadoop command.
pub const DEFAULT_MIN_LIFETIME: Duration = Duration::from_secs(2 * 3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientConfig {
    version: u32,
    #[serde(default)]
    brokers: Vec<String>,
    ca_file: Option<PathBuf>,
    tls_server_name: Option<String>,
    tenant: Option<String>,
    ccache: Option<String>,
    broker_timeout_secs: Option<u64>,
    kdc_timeout_secs: Option<u64>,
    ticket_lifetime: Option<String>,
    renew_lifetime: Option<String>,
    min_lifetime: Option<String>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    srv_domain: Option<String>,
    dns_server: Option<String>,
    sessions_dir: Option<PathBuf>,
    delivery: Option<crate::fetch::Delivery>,
}

/// The file's settings, every one optional (the command line may supply or override each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConfig {
    pub brokers: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub tenant: Option<String>,
    pub ccache: Option<String>,
    pub broker_timeout: Option<Duration>,
    pub kdc_timeout: Option<Duration>,
    /// Ticket lifetimes to request (`ticket_lifetime`, `renew_lifetime`).
    pub lifetimes: ktbroker_krb5::Lifetimes,
    /// `run` logs in again when the cached ticket has less than this left (`min_lifetime`).
    pub min_lifetime: Option<Duration>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Domain for `_ktbroker._tcp` SRV discovery when `brokers` is empty.
    pub srv_domain: Option<String>,
    /// A DNS server to ask for the SRV records instead of the system's resolvers.
    pub dns_server: Option<std::net::SocketAddr>,
    /// Where pam_ktbroker records each session's cache (`sessions_dir`; see [`crate::sessions`]).
    pub sessions_dir: Option<PathBuf>,
    /// What to ask the broker for (`delivery`): a keytab or only a ticket.
    pub delivery: Option<crate::fetch::Delivery>,
}

impl ClientConfig {
    /// Reads `path`. A missing file is an empty configuration only when it is the default path
    /// (`explicit` false); a file named on the command line must exist.
    pub fn load(path: &Path, explicit: bool) -> Result<Self, HelperError> {
        let bad = |problem: String| HelperError::Config(format!("{}: {problem}", path.display()));
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(Self::default()),
            Err(e) => return Err(bad(e.to_string())),
        };
        let raw: RawClientConfig = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if raw.version != 1 {
            return Err(bad(format!(
                "`version` is {}, this ktbroker-kinit reads 1",
                raw.version
            )));
        }
        for url in &raw.brokers {
            if !url.starts_with("https://") {
                return Err(bad(format!("`brokers`: {url} is not an https:// URL")));
            }
        }
        if raw.client_cert.is_some() != raw.client_key.is_some() {
            return Err(bad("`client_cert` and `client_key` go together".into()));
        }
        let seconds = |value: Option<u64>, key: &str| match value {
            None => Ok(None),
            Some(secs @ 1..=300) => Ok(Some(Duration::from_secs(secs))),
            Some(_) => Err(bad(format!("`{key}` must be between 1 and 300"))),
        };
        let duration = |value: &Option<String>, key: &str| match value {
            None => Ok(None),
            Some(text) => match ktbroker_krb5::parse_duration(text) {
                Ok(d) if !d.is_zero() => Ok(Some(d)),
                _ => Err(bad(format!(
                    "`{key}` {text:?} is not a duration as kinit -l takes (10h, 7d, 1h30m)"
                ))),
            },
        };
        let lifetimes = ktbroker_krb5::Lifetimes {
            ticket: duration(&raw.ticket_lifetime, "ticket_lifetime")?,
            renewable: duration(&raw.renew_lifetime, "renew_lifetime")?,
        };
        let dns_server = match &raw.dns_server {
            Some(text) => Some(
                text.parse()
                    .map_err(|_| bad(format!("`dns_server` {text:?} is not an IP:PORT")))?,
            ),
            None => None,
        };
        if raw.sessions_dir.as_ref().is_some_and(|d| d.is_relative()) {
            return Err(bad("`sessions_dir` must be an absolute path".into()));
        }
        let base = path.parent().unwrap_or(Path::new("/"));
        let resolve = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        Ok(Self {
            brokers: raw.brokers,
            ca_file: raw.ca_file.map(resolve),
            tls_server_name: raw.tls_server_name,
            tenant: raw.tenant,
            ccache: raw.ccache,
            broker_timeout: seconds(raw.broker_timeout_secs, "broker_timeout_secs")?,
            kdc_timeout: seconds(raw.kdc_timeout_secs, "kdc_timeout_secs")?,
            lifetimes,
            min_lifetime: duration(&raw.min_lifetime, "min_lifetime")?,
            client_cert: raw.client_cert.map(resolve),
            client_key: raw.client_key.map(resolve),
            srv_domain: raw.srv_domain,
            dns_server,
            sessions_dir: raw.sessions_dir,
            delivery: raw.delivery,
        })
    }
}

/// `{uid}` in a ccache name becomes the real user id, as in krb5.conf's `%{uid}`.
pub fn expand_ccache(name: &str) -> String {
    let uid = rustix::process::getuid().as_raw();
    name.replace("{uid}", &uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<ClientConfig, HelperError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.toml");
        std::fs::write(&path, text).unwrap();
        ClientConfig::load(&path, true)
    }

    #[test]
    fn a_full_file_loads_and_relative_paths_follow_it() {
        let config = load_text(
            "version = 1\nbrokers = [\"https://a:1\", \"https://b:2\"]\nca_file = \"ca.pem\"\ntenant = \"corp\"\n\
             broker_timeout_secs = 3\n",
        )
        .unwrap();
        assert_eq!(config.brokers, ["https://a:1", "https://b:2"]);
        assert!(config.ca_file.unwrap().ends_with("ca.pem"));
        assert_eq!(config.tenant.as_deref(), Some("corp"));
        assert_eq!(config.broker_timeout, Some(Duration::from_secs(3)));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, needle) in [
            ("version = 2\n", "version"),
            ("version = 1\nbrokers = [\"http://a\"]\n", "https://"),
            ("version = 1\nbroker = [\"https://a\"]\n", "unknown field"),
            ("version = 1\nclient_cert = \"c.pem\"\n", "go together"),
            ("version = 1\nkdc_timeout_secs = 0\n", "kdc_timeout_secs"),
            ("version = 1\nticket_lifetime = \"soon\"\n", "ticket_lifetime"),
            ("version = 1\nrenew_lifetime = \"0\"\n", "renew_lifetime"),
        ] {
            let err = load_text(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn only_the_default_path_may_be_missing() {
        let missing = Path::new("/nonexistent/ktbroker/client.toml");
        assert_eq!(ClientConfig::load(missing, false).unwrap(), ClientConfig::default());
        assert!(ClientConfig::load(missing, true).is_err());
    }

    #[test]
    fn the_readme_example_loads() {
        let readme = include_str!("../../README.md");
        let example = readme
            .split("```toml\n")
            .skip(1)
            .map(|block| &block[..block.find("```").unwrap()])
            .find(|block| block.contains("broker_timeout_secs"))
            .expect("the README's client.toml example");
        let config = load_text(example).unwrap();
        assert_eq!(config.brokers.len(), 2);
        assert_eq!(
            config.lifetimes,
            ktbroker_krb5::Lifetimes {
                ticket: Some(Duration::from_secs(36_000)),
                renewable: Some(Duration::from_secs(604_800)),
            }
        );
    }

    #[test]
    fn uid_placeholders_expand() {
        let uid = rustix::process::getuid().as_raw();
        assert_eq!(
            expand_ccache("FILE:/tmp/krb5cc_{uid}"),
            format!("FILE:/tmp/krb5cc_{uid}")
        );
        assert_eq!(expand_ccache("KEYRING:persistent"), "KEYRING:persistent");
    }
}
