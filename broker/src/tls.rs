//! The broker's TLS endpoint: rustls (ring, TLS 1.2 and 1.3, ALPN h2) with a certificate that can
//! be replaced while running (SIGHUP). Handshakes run in their own tasks under a deadline, so a
//! slow or silent client never holds up anyone else's connection.

use crate::config::{ConfigError, read_private_file};
use crate::connections::{BoundedConnection, LogThrottle, OpenConnections};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accept errors back off from this, doubling, up to the maximum.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The served certificate and key, swappable at run time.
#[derive(Debug)]
pub struct ReloadableCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, ConfigError> {
        let current = RwLock::new(Arc::new(certified_key(cert_path, key_path)?));
        Ok(Self { current })
    }

    /// Reads the (possibly new) files; on any error the certificate in use stays.
    pub fn reload_from(&self, cert_path: &Path, key_path: &Path) -> Result<(), ConfigError> {
        let fresh = Arc::new(certified_key(cert_path, key_path)?);
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        )
    }
}

/// Parses a PEM chain and private key, and checks that the key matches the certificate.
fn certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, ConfigError> {
    let bad = |key: &str, path: &Path, e: &dyn std::fmt::Display| ConfigError::Invalid {
        key: key.to_owned(),
        problem: format!("{}: {e}", path.display()),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| bad("server.tls_cert", cert_path, &e))?;
    if chain.is_empty() {
        return Err(bad("server.tls_cert", cert_path, &"no certificate in the file"));
    }
    let key_pem = read_private_file(key_path, "server.tls_key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad("server.tls_key", key_path, &e))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| bad("server.tls_key", key_path, &e))?;
    Ok(certified)
}

/// TLS 1.2 and 1.3 with the ring provider, ALPN h2 (gRPC), certificate from `cert`. With
/// `client_ca`, clients may present a certificate, which must then chain to that CA; clients
/// without one are still accepted (tenants without host rules need none; rules and admin calls
/// check for a verified identity).
pub fn server_config(cert: Arc<ReloadableCert>, client_ca: Option<&Path>) -> Result<rustls::ServerConfig, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| ConfigError::Invalid {
                key: "server.client_ca_file".into(),
                problem: format!("{}: {e}", path.display()),
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| bad(&e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Accepts TCP connections on `listener` and yields completed TLS streams, each under the
/// bounds of `open` (see [`crate::connections`]). A connection beyond a cap is closed at once,
/// before any TLS work; failed or slow handshakes are logged and dropped and never reach gRPC.
/// Accept errors (EMFILE when descriptors run out) back off up to a second instead of spinning.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    open: Arc<OpenConnections>,
) -> tokio_stream::wrappers::ReceiverStream<Result<BoundedConnection<TlsStream<TcpStream>>, std::io::Error>> {
    static ACCEPT_FAILED: LogThrottle = LogThrottle::new(Duration::from_secs(10));
    static REFUSED: LogThrottle = LogThrottle::new(Duration::from_secs(10));
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let idle_timeout = open.limits().idle_timeout;
    tokio::spawn(async move {
        let mut backoff = Duration::ZERO;
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    backoff = (backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
                    crate::metrics::accept_failed();
                    if let Some(suppressed) = ACCEPT_FAILED.admit() {
                        tracing::warn!(error = %e, suppressed, retry_in = ?backoff, "accept failed");
                    }
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            backoff = Duration::ZERO;
            if sender.is_closed() {
                break; // the server has shut down
            }
            let slot = match open.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(cap) => {
                    crate::metrics::connection_refused(cap);
                    if let Some(suppressed) = REFUSED.admit() {
                        tracing::warn!(peer = %peer, cap = cap.as_str(), suppressed, "connection refused at a cap");
                    }
                    continue; // dropping `tcp` closes it
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let handshake_sender = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let connection = BoundedConnection::new(tls, slot, idle_timeout);
                        let _ = handshake_sender.send(Ok(connection)).await;
                    }
                    Ok(Err(e)) => {
                        crate::metrics::connection_closed("handshake_failed");
                        tracing::info!(peer = %peer, error = %e, "TLS handshake failed");
                    }
                    Err(_) => {
                        crate::metrics::connection_closed("handshake_timeout");
                        tracing::info!(peer = %peer, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// A rustls client config that trusts only the CA certificates of `ca_pem` (no system roots),
/// TLS 1.2 and 1.3, ring provider: for the directory and the identity provider.
pub fn client_config_trusting(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no certificate in the CA file".into());
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
