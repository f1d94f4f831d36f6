//! Finding brokers in DNS when no list is configured: SRV records `_ktbroker._tcp.<domain>`
//! (RFC 2782), lowest priority first, within a priority the heavier weight first. The domain is
//! client.toml's `srv_domain`, else the first search domain of /etc/resolv.conf. hickory-resolver
//! asks the system's resolvers, or `dns_server` from client.toml when set.

use crate::HelperError;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use std::net::SocketAddr;
use std::time::Duration;

pub const SERVICE: &str = "_ktbroker._tcp";

/// One SRV answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    pub priority: u16,
    pub weight: u16,
    pub host: String,
    pub port: u16,
}

/// RFC 2782 order, deterministic: priority ascending, then weight descending, then name.
pub fn order(mut targets: Vec<SrvTarget>) -> Vec<SrvTarget> {
    targets.sort_by(|a, b| {
        (a.priority, std::cmp::Reverse(a.weight), &a.host, a.port).cmp(&(
            b.priority,
            std::cmp::Reverse(b.weight),
            &b.host,
            b.port,
        ))
    });
    // "." as the target means the service is decidedly not available in the domain.
    targets.retain(|t| !t.host.is_empty());
    targets
}

/// Broker URLs for `domain` (or the resolver's own search domain), in the order to try them.
pub async fn discover_brokers(
    domain: Option<&str>,
    dns_server: Option<SocketAddr>,
    timeout: Duration,
) -> Result<Vec<String>, HelperError> {
    let unavailable = |e: &dyn std::fmt::Display| HelperError::Unreachable(format!("DNS SRV discovery: {e}"));
    let resolver = match dns_server {
        Some(server) => {
            let servers = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), servers),
                TokioConnectionProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(|e| unavailable(&e))?,
    };
    let mut resolver_builder = resolver;
    resolver_builder.options_mut().timeout = timeout;
    resolver_builder.options_mut().attempts = 1;
    let resolver = resolver_builder.build();
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
    let name = format!("{SERVICE}.{domain}.");
    let answer = resolver.srv_lookup(name.as_str()).await.map_err(|e| unavailable(&e))?;
    let targets = answer
        .iter()
        .map(|srv| SrvTarget {
            priority: srv.priority(),
            weight: srv.weight(),
            host: srv.target().to_utf8().trim_end_matches('.').to_owned(),
            port: srv.port(),
        })
        .collect();
    let urls: Vec<String> = order(targets)
        .into_iter()
        .map(|t| format!("https://{}:{}", t.host, t.port))
        .collect();
    if urls.is_empty() {
        return Err(unavailable(&format!("{name} lists no broker")));
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(priority: u16, weight: u16, host: &str) -> SrvTarget {
        SrvTarget {
            priority,
            weight,
            host: host.into(),
            port: 8443,
        }
    }

    #[test]
    fn lower_priority_first_then_heavier_weight() {
        let ordered = order(vec![
            target(20, 5, "c"),
            target(10, 1, "b"),
            target(10, 9, "a"),
            target(5, 0, ""),
        ]);
        let hosts: Vec<&str> = ordered.iter().map(|t| t.host.as_str()).collect();
        assert_eq!(hosts, ["a", "b", "c"], "the '.' target is dropped");
    }
}
