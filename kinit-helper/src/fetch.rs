//! Talking to ktbrokerd: TLS only, verified against a configured CA; the keytab arrives into a
//! zeroizing buffer sized from the header and is checked (size, SHA-256, principal) before use.

use crate::HelperError;
use ktbroker_codes::RefusalCode;
use ktbroker_keytab::Keytab;
use ktbroker_proto::v1::{
    FetchKeytabRequest, ServerInfoRequest, fetch_keytab_response::Part, keytab_broker_client::KeytabBrokerClient,
};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use zeroize::{Zeroize, Zeroizing};

/// One broker to talk to.
#[derive(Debug, Clone)]
pub struct BrokerEndpoint {
    /// `https://host:port`; plain `http://` is refused.
    pub url: String,
    /// PEM of the CA the broker's certificate must chain to. Only this CA is trusted.
    pub ca_pem: Vec<u8>,
    /// Name to verify in the certificate, when it differs from the URL's host.
    pub tls_server_name: Option<String>,
    /// This host's certificate and key, for brokers that bind tenants to registered hosts (mTLS).
    pub client_identity: Option<ClientIdentity>,
    pub timeout: Duration,
}

/// A client certificate chain and its private key, both PEM. The key is wiped on drop.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity { key: <redacted> }")
    }
}

/// How the login's credentials come back (client.toml `delivery`, `--delivery`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// The principal's keytab; this host makes the AS exchange with it (in memory).
    #[default]
    Keytab,
    /// Only a ticket (the TGT and its session key): the long-term key stays in the broker.
    Ticket,
}

impl Delivery {
    pub fn label(self) -> &'static str {
        match self {
            Self::Keytab => "keytab",
            Self::Ticket => "ticket",
        }
    }

    pub(crate) fn wire(self) -> i32 {
        match self {
            Self::Keytab => ktbroker_proto::v1::Delivery::Keytab as i32,
            Self::Ticket => ktbroker_proto::v1::Delivery::Ticket as i32,
        }
    }
}

/// What the broker sent, verified: keytab file bytes, or (ticket delivery) a KRB-CRED message
/// holding the TGT and its session key. The bytes are wiped on drop and never printed.
pub struct FetchedKeytab {
    pub principal: String,
    /// The keys' version (0 for a ticket delivery: no key was sent).
    pub kvno: u32,
    pub enctypes: Vec<i32>,
    pub delivered: Delivery,
    pub bytes: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for FetchedKeytab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedKeytab")
            .field("principal", &self.principal)
            .field("kvno", &self.kvno)
            .field("enctypes", &self.enctypes)
            .field("delivered", &self.delivered)
            .field("bytes", &format_args!("<redacted {} bytes>", self.bytes.len()))
            .finish()
    }
}

/// Opens a TLS channel to the broker, verifying its certificate against the configured CA.
pub async fn connect(endpoint: &BrokerEndpoint) -> Result<Channel, HelperError> {
    if !endpoint.url.starts_with("https://") {
        return Err(HelperError::Unreachable(format!(
            "{} is not an https:// URL (the broker speaks only TLS)",
            endpoint.url
        )));
    }
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&endpoint.ca_pem));
    if let Some(name) = &endpoint.tls_server_name {
        tls = tls.domain_name(name.clone());
    }
    if let Some(identity) = &endpoint.client_identity {
        tls = tls.identity(Identity::from_pem(&identity.cert_pem, identity.key_pem.as_slice()));
    }
    let unreachable = |e: &(dyn std::error::Error + 'static)| {
        let text = format!("{}: {}", endpoint.url, error_chain(e));
        if is_tls_trust(e) {
            HelperError::UntrustedBroker(text)
        } else {
            HelperError::Unreachable(text)
        }
    };
    Endpoint::from_shared(endpoint.url.clone())
        .map_err(|e| unreachable(&e))?
        .tls_config(tls)
        .map_err(|e| unreachable(&e))?
        .connect_timeout(endpoint.timeout)
        .timeout(endpoint.timeout)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| unreachable(&e))
}

/// Who asks: the directory username, and optionally the principal expected and the tenant.
#[derive(Debug, Clone, Default)]
pub struct Who {
    pub username: String,
    pub principal: Option<String>,
    /// A tenant of the broker other than its default (also expressible as "user@tenant").
    pub tenant: Option<String>,
    /// What to ask the broker for.
    pub delivery: Delivery,
    /// Sign in at the tenant's identity provider (`LoginWithProvider`) instead of a password.
    pub sso: bool,
}

/// The passwords one request sends: the directory password, and after PASSWORD_CHANGE_REQUIRED
/// the new one the directory should take.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub password: &'a [u8],
    pub new_password: Option<&'a [u8]>,
}

impl<'a> Credentials<'a> {
    pub fn password(password: &'a [u8]) -> Self {
        Self {
            password,
            new_password: None,
        }
    }
}

/// Sends the credentials and receives the keytab. Returns only a complete, verified keytab.
pub async fn fetch_keytab(
    endpoint: &BrokerEndpoint,
    username: &str,
    password: &[u8],
    principal: Option<&str>,
) -> Result<FetchedKeytab, HelperError> {
    let who = Who {
        username: username.to_owned(),
        principal: principal.map(str::to_owned),
        tenant: None,
        delivery: Delivery::Keytab,
        sso: false,
    };
    fetch_keytab_as(endpoint, &who, Credentials::password(password)).await
}

/// After a round in which every broker answered "busy", the next starts after this, doubling
/// up to the maximum, each pause jittered (50-150 %) so that clients turned away together do not
/// come back together.
const BUSY_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BUSY_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Tries the brokers in order, each under one deadline of its own ([`attempt`]). Moves on only
/// when one gave no authentication answer: it could not be reached, did not answer in time, lost
/// the connection, was busy or unavailable. An authentication failure or a refusal ends the
/// attempt at once, so a wrong password is never replayed to the other replicas. When every broker
/// was busy, the round is repeated after a jittered backoff, for as long as the brokers' timeouts
/// together allow.
pub async fn fetch_from_any(
    endpoints: &[BrokerEndpoint],
    who: &Who,
    credentials: Credentials<'_>,
) -> Result<FetchedKeytab, HelperError> {
    if endpoints.is_empty() {
        return Err(HelperError::Config(
            "no broker configured (--broker or `brokers` in client.toml)".into(),
        ));
    }
    if who.sso {
        return crate::sso::sign_in_from_any(endpoints, who).await;
    }
    let deadline = tokio::time::Instant::now() + endpoints.iter().map(|e| e.timeout).sum::<Duration>();
    let mut backoff = BUSY_BACKOFF_FIRST;
    loop {
        let mut all_busy = true;
        let mut last = None;
        for (n, endpoint) in endpoints.iter().enumerate() {
            match attempt(endpoint, who, credentials).await {
                Err(e) if e.tries_elsewhere() => {
                    all_busy &= matches!(e, HelperError::Busy(_));
                    if n + 1 < endpoints.len() {
                        tracing::warn!(broker = %endpoint.url, error = %e, "broker failed; trying the next one");
                    }
                    last = Some(e);
                }
                result => return result,
            }
        }
        let last = last.unwrap_or_else(|| HelperError::Internal("no broker was tried".into()));
        let pause = jittered(backoff);
        if !all_busy || tokio::time::Instant::now() + pause >= deadline {
            return Err(last);
        }
        tracing::info!(retry_in = ?pause, "every broker is busy; trying again");
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(BUSY_BACKOFF_MAX);
    }
}

/// One broker under one deadline for all of it: the TCP connect, the TLS handshake, HTTP/2's
/// setup, the call and the whole stream. A broker that is frozen, or accepts and says nothing,
/// costs its timeout and no more.
async fn attempt(
    endpoint: &BrokerEndpoint,
    who: &Who,
    credentials: Credentials<'_>,
) -> Result<FetchedKeytab, HelperError> {
    tokio::time::timeout(endpoint.timeout, fetch_keytab_as(endpoint, who, credentials))
        .await
        .unwrap_or_else(|_| Err(timed_out(endpoint)))
}

/// The error of a broker that gave no complete answer within its timeout.
pub(crate) fn timed_out(endpoint: &BrokerEndpoint) -> HelperError {
    HelperError::Unreachable(format!(
        "{}: no complete answer within {:?}",
        endpoint.url, endpoint.timeout
    ))
}

/// `base` scaled by a random factor between 0.5 and 1.5.
fn jittered(base: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let factor = match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut byte) {
        Ok(()) => 0.5 + f64::from(byte[0]) / 255.0,
        Err(_) => 1.0,
    };
    base.mul_f64(factor)
}

/// [`fetch_keytab`] with a full [`Who`].
pub async fn fetch_keytab_as(
    endpoint: &BrokerEndpoint,
    who: &Who,
    credentials: Credentials<'_>,
) -> Result<FetchedKeytab, HelperError> {
    let channel = connect(endpoint).await?;
    let mut client = KeytabBrokerClient::new(channel);
    // Before the password goes out: a realm this host's krb5 profile cannot reach would make the
    // keytab useless. A broker too old to say, or that has no such tenant, answers no realm; the
    // fetch then says what it says. A broker that lists what it offers (older ones list nothing)
    // and does not offer what this login asks for gets no password.
    check_server_info(&mut client, who).await?;
    // tonic owns and frees this copy after encoding it; prost offers no zeroizing bytes type.
    let request = FetchKeytabRequest {
        username: who.username.clone(),
        password: credentials.password.to_vec(),
        principal: who.principal.clone(),
        tenant: who.tenant.clone(),
        new_password: credentials.new_password.map(<[u8]>::to_vec),
        delivery: who.delivery.wire(),
    };
    let mut stream = client.fetch_keytab(request).await.map_err(status_error)?.into_inner();
    let first = next_part(&mut stream).await?;
    read_delivery(first, &mut stream, who).await
}

/// Checks, at the start of a connection to the broker, that the realm the tenant serves is one
/// this host's krb5 profile knows, and that the tenant offers the delivery asked for.
pub(crate) async fn check_server_info(client: &mut KeytabBrokerClient<Channel>, who: &Who) -> Result<(), HelperError> {
    let tenant = who
        .tenant
        .clone()
        .or_else(|| who.username.rsplit_once('@').map(|(_, t)| t.to_owned()));
    if let Ok(info) = client.server_info(ServerInfoRequest { tenant }).await {
        let info = info.into_inner();
        if !info.realm.is_empty() {
            crate::require_known_realm(&info.realm)?;
        }
        if !info.deliveries.is_empty() && !info.deliveries.contains(&who.delivery.wire()) {
            return Err(HelperError::Refused(ktbroker_codes::RefusalCode::DeliveryNotAllowed));
        }
    }
    Ok(())
}

/// The delivery a stream carries from its header (`first`) on: a complete, verified keytab or
/// KRB-CRED message for the principal `who` expects.
pub(crate) async fn read_delivery(
    first: Option<Part>,
    stream: &mut tonic::Streaming<ktbroker_proto::v1::FetchKeytabResponse>,
    who: &Who,
) -> Result<FetchedKeytab, HelperError> {
    // A header says what follows: a keytab, or (ticket delivery) a KRB-CRED message.
    let (principal, kvno, enctypes, delivered, total_size) = match first {
        Some(Part::Header(h)) => (h.principal, h.kvno, h.enctypes, Delivery::Keytab, h.total_size),
        Some(Part::TicketHeader(h)) => (h.principal, 0, Vec::new(), Delivery::Ticket, h.total_size),
        _ => return Err(protocol("the stream did not start with a header")),
    };
    if delivered != who.delivery {
        return Err(protocol(&format!(
            "asked for a {} and the broker sent a {}",
            who.delivery.label(),
            delivered.label()
        )));
    }
    if total_size == 0 || total_size > ktbroker_codes::MAX_KEYTAB_SIZE {
        return Err(protocol(&format!(
            "{} size {total_size} is out of bounds",
            delivered.label()
        )));
    }
    if who.principal.as_ref().is_some_and(|asked| *asked != principal) {
        return Err(protocol("the broker sent a different principal than requested"));
    }
    let total = total_size as usize;
    // Reserved once, so appending never reallocates and leaves copies behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(total));
    let trailer = loop {
        match next_part(stream).await? {
            Some(Part::Chunk(mut chunk)) => {
                let fits = bytes.len() + chunk.len() <= total;
                if fits {
                    bytes.extend_from_slice(&chunk);
                }
                chunk.zeroize();
                if !fits {
                    return Err(protocol(&format!(
                        "more {} bytes than the header announced",
                        delivered.label()
                    )));
                }
            }
            Some(Part::Trailer(trailer)) => break trailer,
            Some(Part::Header(_) | Part::TicketHeader(_)) => return Err(protocol("a second header")),
            Some(Part::DevicePrompt(_)) => return Err(protocol("a sign-in prompt inside a delivery")),
            None => return Err(protocol("the stream ended before the trailer")),
        }
    };
    if bytes.len() != total {
        return Err(protocol(&format!(
            "fewer {} bytes than the header announced",
            delivered.label()
        )));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    if digest.as_ref() != trailer.sha256.as_slice() {
        return Err(protocol(&format!(
            "SHA-256 of the {} does not match the trailer",
            delivered.label()
        )));
    }
    // A ticket's principal and realm are checked when it is stored (ticket::store_delivered).
    if delivered == Delivery::Keytab {
        let keytab = Keytab::parse(&bytes).map_err(|e| protocol(&e.to_string()))?;
        if keytab.entries.is_empty() || keytab.entries.iter().any(|e| e.principal.to_string() != principal) {
            return Err(protocol(
                "the keytab holds keys of another principal than the header names",
            ));
        }
    }
    Ok(FetchedKeytab {
        principal,
        kvno,
        enctypes,
        delivered,
        bytes,
    })
}

pub(crate) async fn next_part(
    stream: &mut tonic::Streaming<ktbroker_proto::v1::FetchKeytabResponse>,
) -> Result<Option<Part>, HelperError> {
    match stream.message().await {
        Ok(Some(message)) => message.part.map(Some).ok_or_else(|| protocol("an empty message")),
        Ok(None) => Ok(None),
        Err(status) => Err(status_error(status)),
    }
}

pub(crate) fn protocol(what: &str) -> HelperError {
    HelperError::Protocol(what.to_owned())
}

/// Maps the broker's answer to the helper's error by its typed refusal code. A status without one
/// did not come from the broker's decision: a transport failure (TLS, a reset, a deadline) or a
/// proxy in between; only those of the "try elsewhere" kinds make the helper move on.
pub(crate) fn status_error(status: tonic::Status) -> HelperError {
    use tonic::Code;
    match ktbroker_proto::refusal::code_of(&status) {
        Some(RefusalCode::AuthFailed) => HelperError::AuthFailed,
        Some(RefusalCode::Busy) => HelperError::Busy(RefusalCode::Busy.message().to_owned()),
        Some(RefusalCode::NewPasswordRejected) => {
            HelperError::NewPasswordRejected(ktbroker_proto::refusal::rules_of(&status).unwrap_or_default())
        }
        Some(code) if code.is_transient() => HelperError::Unavailable(code.message().to_owned()),
        Some(code) => HelperError::Refused(code),
        None => {
            let detail = format!("{}{}", status.message(), source_chain(&status));
            // A transport error underneath (hyper, h2, io): the connection was lost mid-call.
            let lost = std::error::Error::source(&status).is_some();
            match status.code() {
                _ if tls_trust_in_status(&status) => HelperError::UntrustedBroker(detail),
                Code::ResourceExhausted => HelperError::Busy(detail),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
                    HelperError::Unavailable(detail)
                }
                _ if lost => HelperError::Unavailable(detail),
                code => HelperError::Protocol(format!("{code:?} without a refusal code: {detail}")),
            }
        }
    }
}

fn tls_trust_in_status(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some_and(is_tls_trust)
}

/// Whether the error, or one it wraps, is rustls refusing the broker's certificate (an unknown
/// issuer, another name, expired...): told by rustls' error type, never by its words.
fn is_tls_trust(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        // An io::Error hides its payload from source(): look inside it explicitly.
        let inner = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|e| e as &(dyn std::error::Error + 'static));
        for candidate in [Some(error), inner].into_iter().flatten() {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
                return matches!(
                    tls,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::InvalidCertRevocationList(_)
                );
            }
        }
        next = inner.map_or_else(|| error.source(), |e| e.source());
    }
    false
}

fn source_chain(status: &tonic::Status) -> String {
    use std::error::Error;
    status
        .source()
        .map(|s| format!(" ({})", error_chain(s)))
        .unwrap_or_default()
}

/// "outer: inner: innermost", so TLS failures name their real cause.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
