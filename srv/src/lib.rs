//! DNS SRV records (RFC 2782) in the order to try them: lowest priority first, within a priority
//! the heavier weight first (deterministically, not at random: every client of a site tries the
//! same server first, and a test can tell which). hickory-resolver asks the system's resolvers,
//! or one DNS server given explicitly.
#![forbid(unsafe_code)]

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use std::net::SocketAddr;
use std::time::Duration;

/// One SRV answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    pub priority: u16,
    pub weight: u16,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum SrvError {
    #[error("DNS resolver: {0}")]
    Resolver(String),
    #[error("SRV lookup of {name}: {message}")]
    Lookup { name: String, message: String },
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

/// A resolver with one try per query under `timeout`: the system's, or `dns_server`.
pub fn resolver(dns_server: Option<SocketAddr>, timeout: Duration) -> Result<TokioResolver, SrvError> {
    let mut builder = match dns_server {
        Some(server) => {
            let servers = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), servers),
                TokioConnectionProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(|e| SrvError::Resolver(e.to_string()))?,
    };
    builder.options_mut().timeout = timeout;
    builder.options_mut().attempts = 1;
    Ok(builder.build())
}

/// The SRV records of `name` (e.g. `_ldap._tcp.corp.example.com`), in [`order`].
pub async fn lookup(resolver: &TokioResolver, name: &str) -> Result<Vec<SrvTarget>, SrvError> {
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    let answer = resolver.srv_lookup(fqdn.as_str()).await.map_err(|e| SrvError::Lookup {
        name: name.to_owned(),
        message: e.to_string(),
    })?;
    let targets = answer
        .iter()
        .map(|srv| SrvTarget {
            priority: srv.priority(),
            weight: srv.weight(),
            host: srv.target().to_utf8().trim_end_matches('.').to_owned(),
            port: srv.port(),
        })
        .collect();
    Ok(order(targets))
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
