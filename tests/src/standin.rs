//! A stand-in for ktbrokerd that answers every FetchKeytab with a stream the test chose, over the
//! sandbox's TLS: for showing that the client refuses a malformed answer (parts out of order, a
//! wrong size, a wrong SHA-256, an oversized chunk) instead of using it.

use crate::pki::TestPki;
use ktbroker_proto::v1::keytab_broker_server::{KeytabBroker, KeytabBrokerServer};
use ktbroker_proto::v1::{
    FetchKeytabRequest, FetchKeytabResponse, KeytabHeader, KeytabTrailer, ProviderLoginRequest, RotateKeyRequest,
    RotateKeyResponse, ServerInfoRequest, ServerInfoResponse, fetch_keytab_response::Part,
};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tonic::{Request, Response, Status};

/// The parts of a well-formed answer carrying `keytab` for `principal`: header, chunks, trailer.
pub fn well_formed(principal: &str, keytab: &[u8], chunk: usize) -> Vec<Part> {
    let mut parts = vec![Part::Header(KeytabHeader {
        principal: principal.to_owned(),
        kvno: 1,
        enctypes: vec![18],
        total_size: keytab.len() as u64,
    })];
    parts.extend(keytab.chunks(chunk.max(1)).map(|c| Part::Chunk(c.to_vec())));
    parts.push(Part::Trailer(KeytabTrailer {
        sha256: ring::digest::digest(&ring::digest::SHA256, keytab).as_ref().to_vec(),
    }));
    parts
}

pub struct StandIn {
    pub url: String,
    asked: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Answer {
    parts: Vec<Part>,
    asked: Arc<AtomicUsize>,
}

type PartStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<FetchKeytabResponse, Status>> + Send>>;

#[tonic::async_trait]
impl KeytabBroker for Answer {
    type FetchKeytabStream = PartStream;

    async fn fetch_keytab(&self, _request: Request<FetchKeytabRequest>) -> Result<Response<PartStream>, Status> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let messages: Vec<_> = self
            .parts
            .iter()
            .map(|part| {
                Ok(FetchKeytabResponse {
                    part: Some(part.clone()),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(messages))))
    }

    type LoginWithProviderStream = PartStream;

    /// The same parts as FetchKeytab (a test puts a DevicePrompt first).
    async fn login_with_provider(
        &self,
        _request: Request<ProviderLoginRequest>,
    ) -> Result<Response<PartStream>, Status> {
        self.fetch_keytab(Request::new(FetchKeytabRequest::default())).await
    }

    async fn rotate_key(&self, _request: Request<RotateKeyRequest>) -> Result<Response<RotateKeyResponse>, Status> {
        Err(Status::unimplemented("a stand-in"))
    }

    async fn server_info(&self, _request: Request<ServerInfoRequest>) -> Result<Response<ServerInfoResponse>, Status> {
        Err(Status::unimplemented("a stand-in"))
    }
}

impl StandIn {
    /// Serves `parts` to every FetchKeytab on 127.0.0.1 with the sandbox's server certificate.
    pub fn start(pki: &TestPki, parts: Vec<Part>) -> anyhow::Result<Self> {
        let identity =
            tonic::transport::Identity::from_pem(std::fs::read(&pki.server_cert)?, std::fs::read(&pki.server_key)?);
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
        listener.set_nonblocking(true)?;
        let asked = Arc::new(AtomicUsize::new(0));
        let answer = Answer {
            parts,
            asked: asked.clone(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the stand-in");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("the stand-in's listener");
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                let served = tonic::transport::Server::builder()
                    .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                    .expect("the stand-in's TLS")
                    .add_service(KeytabBrokerServer::new(answer))
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stopped.await;
                    });
                let _ = served.await;
            });
        });
        Ok(Self {
            url,
            asked,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// How many FetchKeytab calls it answered.
    pub fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
