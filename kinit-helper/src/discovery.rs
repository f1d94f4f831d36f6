//! Finding brokers in DNS when no list is configured: SRV records `_ktbroker._tcp.<domain>`
//! (RFC 2782, ordered by `ktbroker_srv`). The domain is client.toml's `srv_domain`, else the first
//! search domain of /etc/resolv.conf. The system's resolvers answer, or `dns_server` from
//! client.toml when set.

use crate::HelperError;
use std::net::SocketAddr;
use std::time::Duration;

pub use ktbroker_srv::{SrvTarget, order};

pub const SERVICE: &str = "_ktbroker._tcp";

/// Broker URLs for `domain` (or the resolver's own search domain), in the order to try them.
pub async fn discover_brokers(
    domain: Option<&str>,
    dns_server: Option<SocketAddr>,
    timeout: Duration,
) -> Result<Vec<String>, HelperError> {
    let unavailable = |e: &dyn std::fmt::Display| HelperError::Unreachable(format!("DNS SRV discovery: {e}"));
    let resolver = ktbroker_srv::resolver(dns_server, timeout).map_err(|e| unavailable(&e))?;
    let domain = match domain {
        Some(domain) => domain.trim_end_matches('.').to_owned(),
        None => resolver
            .config()
            .search()
            .first()
            .or(resolver.config().domain())
            .map(|name| name.to_utf8().trim_end_matches('.').to_owned())
            .ok_or_else(|| {
                HelperError::Config("no brokers configured and no DNS search domain for SRV discovery".into())
            })?,
    };
    let name = format!("{SERVICE}.{domain}");
    let urls: Vec<String> = ktbroker_srv::lookup(&resolver, &name)
        .await
        .map_err(|e| unavailable(&e))?
        .into_iter()
        .map(|t| format!("https://{}:{}", t.host, t.port))
        .collect();
    if urls.is_empty() {
        return Err(unavailable(&format!("{name} lists no broker")));
    }
    Ok(urls)
}
