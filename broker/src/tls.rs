//! The broker's TLS endpoint: rustls (ring, TLS 1.2 and 1.3, ALPN h2) with a certificate that can
//! be replaced while running (SIGHUP). Handshakes run in their own tasks under a deadline, so a
//! slow or silent client never holds up anyone else's connection.

use crate::config::{ConfigError, read_private_file};
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

/// How long a client may take, after the handshake, to send the 24-byte HTTP/2 preface (a real
/// client sends it at once). Until then the server cannot tell the connection apart from one that
/// is being opened, and would keep it, and wait for it at shutdown, for ever.
pub const PREFACE_TIMEOUT: Duration = Duration::from_secs(5);

/// The length of the HTTP/2 client connection preface (RFC 9113 section 3.4).
const PREFACE_LEN: usize = 24;

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

/// Accepts TCP connections on `listener` and yields completed TLS streams. Failed or slow
/// handshakes are logged and dropped; they never reach gRPC.
/// A connection that must start speaking within [`PREFACE_TIMEOUT`]: reads fail with `TimedOut`
/// (which closes it) if the first [`PREFACE_LEN`] bytes have not arrived by then. Afterwards it is
/// the plain stream.
pub struct PrefaceDeadline<S> {
    inner: S,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    awaited: usize,
}

impl<S> PrefaceDeadline<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(PREFACE_TIMEOUT))),
            awaited: PREFACE_LEN,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for PrefaceDeadline<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(deadline) = &mut this.deadline else {
            return polled;
        };
        match polled {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                this.awaited = this.awaited.saturating_sub(read);
                if this.awaited == 0 || read == 0 {
                    this.deadline = None; // the preface is in (or the peer is gone)
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                tracing::info!("closing a connection that sent no HTTP/2 preface in time");
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no HTTP/2 preface in time",
                )))
            }
            other => other,
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for PrefaceDeadline<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for PrefaceDeadline<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> tokio_stream::wrappers::ReceiverStream<Result<PrefaceDeadline<TlsStream<TcpStream>>, std::io::Error>> {
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
                        let _ = handshake_sender.send(Ok(PrefaceDeadline::new(tls))).await;
                    }
                    Ok(Err(e)) => tracing::info!(peer = %peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::info!(peer = %peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}
