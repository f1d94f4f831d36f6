//! A quick look at whether the cluster's endpoint takes connections at all, before any login or
//! call: the HDFS client retries a refused connection for the whole call timeout (a minute),
//! logging each attempt, where a person wants to hear at once that the NameNode is not there.

use crate::error::{Kind, NetdiskError, Result};
use std::net::ToSocketAddrs;
use std::time::Duration;

/// How long the TCP connect may take: a NameNode answers a connect in milliseconds.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to `url`'s host and port and hangs up. Only a URL with an explicit port is probed (an
/// HA nameservice name is resolved by the HDFS client itself).
pub fn probe(url: &url::Url) -> Result<()> {
    let (Some(host), Some(port)) = (url.host_str(), url.port()) else {
        return Ok(());
    };
    let unreachable = |what: String| NetdiskError::new(Kind::Unavailable, what);
    let addresses: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = None;
    for address in &addresses {
        match std::net::TcpStream::connect_timeout(address, PROBE_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    let endpoint = format!("{host}:{port}");
    Err(match last {
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => unreachable(format!(
            "{endpoint} refuses connections: is the NameNode running there, on that port?"
        )),
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            unreachable(format!("{endpoint} did not take a connection within {PROBE_TIMEOUT:?}"))
        }
        Some(e) => unreachable(format!("cannot connect to {endpoint}: {e}")),
        None => unreachable(format!("{host} resolves to no address")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_port_is_named_at_once_and_an_open_one_passes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = url::Url::parse(&format!("hdfs://127.0.0.1:{}", listener.local_addr().unwrap().port())).unwrap();
        probe(&open).unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let started = std::time::Instant::now();
        let error = probe(&url::Url::parse(&format!("hdfs://127.0.0.1:{port}")).unwrap()).unwrap_err();
        assert_eq!(error.kind, Kind::Unavailable);
        assert!(error.message.contains("refuses connections"), "{}", error.message);
        assert!(started.elapsed() < Duration::from_secs(1));
        // A nameservice without a port is left to the HDFS client.
        probe(&url::Url::parse("hdfs://mycluster").unwrap()).unwrap();
    }
}
