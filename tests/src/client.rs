//! A raw gRPC client for tests: sends a request and records exactly what came back.

use ktbroker_codes::RefusalCode;
use ktbroker_kinit::fetch::{BrokerEndpoint, connect};
use ktbroker_proto::v1::{FetchKeytabRequest, fetch_keytab_response::Part, keytab_broker_client::KeytabBrokerClient};
use std::process::Output;
use tonic::Code;

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a raw gRPC client saw: the final status (None if the stream ended cleanly) as its gRPC
/// code and the broker's typed refusal code, how many messages arrived before it, and how many
/// keytab bytes they carried.
#[derive(Debug, PartialEq)]
pub struct RawAnswer {
    pub status: Option<(Code, Option<RefusalCode>)>,
    pub messages: usize,
    pub keytab_bytes: usize,
}

pub fn raw_fetch(endpoint: &BrokerEndpoint, username: &str, password: &[u8], principal: Option<&str>) -> RawAnswer {
    raw_request(
        endpoint,
        FetchKeytabRequest {
            username: username.into(),
            password: password.to_vec(),
            principal: principal.map(Into::into),
            tenant: None,
            new_password: None,
            delivery: 0,
        },
    )
}

/// Sends one FetchKeytab request and reads the whole answer.
pub fn raw_request(endpoint: &BrokerEndpoint, request: FetchKeytabRequest) -> RawAnswer {
    block_on(async {
        let channel = connect(endpoint).await.expect("TLS connection to the broker");
        let (mut messages, mut keytab_bytes) = (0, 0);
        let mut stream = match KeytabBrokerClient::new(channel).fetch_keytab(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                return RawAnswer {
                    status: Some(typed(&status)),
                    messages,
                    keytab_bytes,
                };
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    messages += 1;
                    if let Some(Part::Chunk(chunk)) = message.part {
                        keytab_bytes += chunk.len();
                    }
                }
                Ok(None) => {
                    return RawAnswer {
                        status: None,
                        messages,
                        keytab_bytes,
                    };
                }
                Err(status) => {
                    return RawAnswer {
                        status: Some(typed(&status)),
                        messages,
                        keytab_bytes,
                    };
                }
            }
        }
    })
}

/// A status as (gRPC code, refusal code); a refusal's message must be its code's.
pub fn typed(status: &tonic::Status) -> (Code, Option<RefusalCode>) {
    let code = ktbroker_proto::refusal::code_of(status);
    if let Some(code) = code {
        assert_eq!(status.message(), code.message(), "a refusal's message is its code's");
    }
    (status.code(), code)
}

/// What a refusal with `code` looks like to a raw client: nothing but the status.
pub fn refused(code: RefusalCode) -> RawAnswer {
    RawAnswer {
        status: Some((ktbroker_proto::refusal::grpc_code(code), Some(code))),
        messages: 0,
        keytab_bytes: 0,
    }
}

/// (kvno, enctype, key bytes) of every entry of a keytab file, for comparing what two sources served.
pub fn key_list(bytes: &[u8]) -> Vec<(u32, u16, Vec<u8>)> {
    ktbroker_keytab::Keytab::parse(bytes)
        .expect("a keytab")
        .entries
        .iter()
        .map(|e| (e.kvno, e.key.enctype, e.key.contents.to_vec()))
        .collect()
}

/// The `reason` of every line of a broker's audit file, in order (empty if there is no file yet).
pub fn audit_reasons(audit_file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(audit_file)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let record: serde_json::Value = serde_json::from_str(l).expect("an audit line is JSON");
            record["reason"].as_str().expect("a reason").to_owned()
        })
        .collect()
}

/// A TLS connection (ALPN h2) to the broker that then says nothing.
pub fn silent_tls(endpoint: &BrokerEndpoint) -> TlsConnection {
    tls_from(endpoint, None).expect("a TLS connection to the broker")
}

/// A client's TLS connection, blocking.
pub type TlsConnection = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// A TLS connection to the broker from `source` (any loopback address: 127.0.0.0/8 is all
/// local), or the error that ended it: a broker at a connection cap closes it before the handshake.
pub fn tls_from(endpoint: &BrokerEndpoint, source: Option<std::net::IpAddr>) -> std::io::Result<TlsConnection> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&endpoint.ca_pem) {
        roots.add(cert.expect("a CA certificate")).expect("a usable CA");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let url = url_host_port(&endpoint.url);
    let name =
        ServerName::try_from(endpoint.tls_server_name.clone().unwrap_or_else(|| url.0.clone())).expect("a server name");
    let mut connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("a TLS client");
    let address: std::net::SocketAddr = format!("{}:{}", url.0, url.1)
        .parse()
        .expect("an IP address in the URL");
    let mut socket = match source {
        None => std::net::TcpStream::connect(address)?,
        Some(source) => block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(std::net::SocketAddr::new(source, 0))?;
            socket.connect(address).await?.into_std()
        })?,
    };
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    while connection.is_handshaking() {
        connection.complete_io(&mut socket)?;
    }
    Ok(rustls::StreamOwned::new(connection, socket))
}

/// A TLS connection from `source` that has sent the HTTP/2 preface and an empty SETTINGS frame
/// and then idles: an HTTP/2 connection with no request.
pub fn idle_h2_from(endpoint: &BrokerEndpoint, source: std::net::IpAddr) -> std::io::Result<TlsConnection> {
    let mut connection = tls_from(endpoint, Some(source))?;
    std::io::Write::write_all(&mut connection, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")?;
    std::io::Write::flush(&mut connection)?;
    Ok(connection)
}

/// Reads until the broker closes `connection` or `within` passes; whether it was closed.
pub fn closed_within(connection: &mut TlsConnection, within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    let mut buffer = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        connection.sock.set_read_timeout(Some(left)).expect("a read timeout");
        match std::io::Read::read(connection, &mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// GET /metrics over plain HTTP/1.0 from 127.0.0.1:port; the body.
pub fn scrape_metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics listener");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("a read timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("a metrics request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a metrics response");
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    response
}

/// The value of the metric line `name` (with its labels, exactly as exported), if present.
pub fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// ("host", port) of `https://host:port`.
fn url_host_port(url: &str) -> (String, u16) {
    let rest = url.trim_start_matches("https://").trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').expect("https://host:port");
    (host.to_owned(), port.parse().expect("a port"))
}
