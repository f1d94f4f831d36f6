//! The tenant's directory servers, in the configured order. A server that failed to connect, or
//! stopped answering, is passed over for [`PASS_OVER`] so that each login does not wait on it
//! again; when every server has failed recently they are all tried anyway, in order.

use super::AuthError;
use crate::config::{DirectoryConfig, DirectoryServer, LdapTransport, SrvDiscovery};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long a failed server is tried only after the others.
pub const PASS_OVER: Duration = Duration::from_secs(30);

pub struct Server {
    pub url: String,
    /// `host:port` from the URL, for connecting the socket ourselves.
    pub address: String,
    /// The URL's host, the name its TLS certificate must carry.
    pub host: String,
    pub transport: LdapTransport,
    failed_at: Mutex<Option<Instant>>,
}

pub struct Servers {
    list: Vec<Server>,
}

impl Servers {
    pub fn new(configured: &[DirectoryServer]) -> Result<Self, AuthError> {
        let list = configured
            .iter()
            .map(|s| {
                Ok(Server {
                    url: s.url.clone(),
                    address: socket_address(&s.url)?,
                    host: url_host(&s.url)?,
                    transport: s.transport.clone(),
                    failed_at: Mutex::new(None),
                })
            })
            .collect::<Result<Vec<_>, AuthError>>()?;
        Ok(Self { list })
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn get(&self, index: usize) -> &Server {
        &self.list[index]
    }

    /// The order to try them in now: those without a recent failure first, each group in the
    /// configured order.
    pub fn order(&self, now: Instant) -> Vec<usize> {
        let (mut fine, passed_over): (Vec<usize>, Vec<usize>) =
            (0..self.list.len()).partition(|&i| !self.list[i].recently_failed(now));
        fine.extend(passed_over);
        fine
    }

    /// Whether server `index` failed less than [`PASS_OVER`] before `now`.
    pub fn recently_failed(&self, index: usize, now: Instant) -> bool {
        self.list[index].recently_failed(now)
    }

    /// Marks server `index` failed at `now`; true when it had been fine until then.
    pub fn failed(&self, index: usize, now: Instant) -> bool {
        let server = &self.list[index];
        let newly = server.lock().replace(now).is_none();
        if newly && self.list.len() > 1 {
            tracing::warn!(server = %server.url, "directory server failed; trying the others first for {}s",
                PASS_OVER.as_secs());
        }
        newly
    }

    /// Marks server `index` fine again; true when it had failed.
    pub fn answered(&self, index: usize) -> bool {
        let server = &self.list[index];
        let back = server.lock().take().is_some();
        if back && self.list.len() > 1 {
            tracing::info!(server = %server.url, "directory server answers again");
        }
        back
    }
}

impl Server {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.failed_at.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn recently_failed(&self, now: Instant) -> bool {
        self.lock()
            .is_some_and(|at| now.saturating_duration_since(at) < PASS_OVER)
    }
}

/// Fills `config.servers` from DNS when the tenant names an SRV domain (at start and at each
/// reload): `_ldap._tcp.DOMAIN`, in RFC 2782 order, each host once.
pub async fn discover(config: &mut DirectoryConfig) -> Result<(), String> {
    let Some(discovery) = &config.discovery else {
        return Ok(());
    };
    let name = format!("{}.{}", SrvDiscovery::SERVICE, discovery.domain);
    let resolver = ktbroker_srv::resolver(discovery.dns_server, config.timeout).map_err(|e| e.to_string())?;
    let targets = tokio::time::timeout(config.timeout, ktbroker_srv::lookup(&resolver, &name))
        .await
        .map_err(|_| format!("SRV lookup of {name}: no answer within {:?}", config.timeout))?
        .map_err(|e| e.to_string())?;
    let mut servers: Vec<DirectoryServer> = Vec::new();
    for target in targets {
        let server = discovery.server(&target.host, target.port);
        if !servers.contains(&server) {
            servers.push(server);
        }
    }
    if servers.is_empty() {
        return Err(format!("{name} lists no directory server"));
    }
    let urls: Vec<&str> = servers.iter().map(|s| s.url.as_str()).collect();
    tracing::info!(name = %name, servers = ?urls, "directory servers from DNS SRV");
    config.servers = servers;
    Ok(())
}

/// The host of an `ldap://` or `ldaps://` URL (brackets off an IPv6 address; default localhost).
fn url_host(url: &str) -> Result<String, AuthError> {
    let parsed = url::Url::parse(url).map_err(|e| AuthError::Unavailable(format!("directory URL {url}: {e}")))?;
    Ok(match parsed.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => name.to_owned(),
        Some(url::Host::Ipv4(address)) => address.to_string(),
        Some(url::Host::Ipv6(address)) => address.to_string(),
        _ => "localhost".to_owned(),
    })
}

/// `host:port` of an `ldap://` or `ldaps://` URL (default ports 389 and 636).
fn socket_address(url: &str) -> Result<String, AuthError> {
    let parsed = url::Url::parse(url).map_err(|e| AuthError::Unavailable(format!("directory URL {url}: {e}")))?;
    let host = parsed.host_str().filter(|h| !h.is_empty()).unwrap_or("localhost");
    let port = parsed
        .port()
        .unwrap_or(if parsed.scheme() == "ldaps" { 636 } else { 389 });
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(urls: &[&str]) -> Servers {
        let configured: Vec<DirectoryServer> = urls
            .iter()
            .map(|url| DirectoryServer {
                url: (*url).to_owned(),
                transport: LdapTransport::Ldaps,
            })
            .collect();
        Servers::new(&configured).unwrap()
    }

    #[test]
    fn socket_address_comes_from_the_url_with_default_ports() {
        assert_eq!(
            socket_address("ldaps://dir.example.com/").unwrap(),
            "dir.example.com:636"
        );
        assert_eq!(socket_address("ldap://dir.example.com").unwrap(), "dir.example.com:389");
        assert_eq!(socket_address("ldaps://127.0.0.1:1636/").unwrap(), "127.0.0.1:1636");
        assert_eq!(socket_address("ldap://[::1]:389").unwrap(), "[::1]:389");
        assert_eq!(url_host("ldap://[::1]:389").unwrap(), "::1");
        assert_eq!(url_host("ldaps://dc1.example.com/").unwrap(), "dc1.example.com");
        assert_eq!(url_host("ldaps://127.0.0.1:1636/").unwrap(), "127.0.0.1");
    }

    #[test]
    fn a_failed_server_is_tried_last_until_its_pass_over_ends() {
        let list = servers(&["ldaps://a/", "ldaps://b/", "ldaps://c/"]);
        let start = Instant::now();
        assert_eq!(list.order(start), [0, 1, 2]);
        assert!(list.failed(0, start), "a first failure is news");
        assert!(!list.failed(0, start), "a repeated one is not");
        assert_eq!(list.order(start), [1, 2, 0]);
        list.failed(2, start);
        assert_eq!(list.order(start + Duration::from_secs(1)), [1, 0, 2]);
        // All failed: still all tried, in the configured order.
        list.failed(1, start);
        assert_eq!(list.order(start + Duration::from_secs(1)), [0, 1, 2]);
        // A server that answers again is back in its place; the others once their time is up.
        assert!(list.answered(2), "back after a failure");
        assert!(!list.answered(2), "already fine");
        assert_eq!(list.order(start + Duration::from_secs(1)), [2, 0, 1]);
        assert_eq!(list.order(start + PASS_OVER), [0, 1, 2]);
    }
}
