//! The broker's TLS endpoint: rustls (ring, TLS 1.2 and 1.3, ALPN h2) with a certificate that can
//! be replaced while running (SIGHUP). Handshakes run in their own tasks under a deadline, so a
//! slow or silent client never holds up anyone else's connection.

use crate::config::{ConfigError, read_private_file};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The served certificate and key, swappable at run time.
#[derive(Debug)]
pub struct ReloadableCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, ConfigError> {
        let current = RwLock::new(Arc::new(certified_key(cert_path, key_path)?));
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current,
        })
    }

    /// Reads the files again; on any error the certificate in use stays.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let fresh = Arc::new(certified_key(&self.cert_path, &self.key_path)?);
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
    let bad = |key: &'static str, path: &Path, e: &dyn std::fmt::Display| ConfigError::Invalid {
        key,
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

/// TLS 1.2 and 1.3 with the ring provider, ALPN h2 (gRPC), certificate from `cert`.
pub fn server_config(cert: Arc<ReloadableCert>) -> rustls::ServerConfig {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

/// Accepts TCP connections on `listener` and yields completed TLS streams. Failed or slow
/// handshakes are logged and dropped; they never reach gRPC.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            if sender.is_closed() {
                break; // the server has shut down
            }
            let acceptor = acceptor.clone();
            let handshake_sender = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = handshake_sender.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::info!(peer = %peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::info!(peer = %peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}
