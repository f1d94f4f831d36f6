//! Open connections, bounded. A client opens one connection per login and closes it a moment
//! later, so only connections held open on purpose (or by a broken client) meet these bounds:
//!
//! - a cap on all open connections and one per source address (IPv6: per /64), applied at accept
//!   before any TLS work, so one hostile source cannot take every descriptor;
//! - the HTTP/2 preface deadline: a TLS connection must start speaking at once;
//! - the idle timeout: a connection with no request in flight for that long is closed.
//!
//! Connections are counted by a [`ConnectionSlot`] that lives as long as the connection object,
//! and marked busy by [`TrackActivity`], a layer around the gRPC services.

use crate::limits::source_key;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// How long a client may take, after the TLS handshake, to send the 24-byte HTTP/2 preface (a real
/// client sends it at once). Until then the server cannot tell the connection apart from one that
/// is being opened, and would keep it, and wait for it at shutdown, for ever.
pub const PREFACE_TIMEOUT: Duration = Duration::from_secs(5);

/// The length of the HTTP/2 client connection preface (RFC 9113 section 3.4).
const PREFACE_LEN: usize = 24;

/// Descriptors kept out of the connection cap for everything else the broker opens (LDAP pools,
/// kadmin children, the audit file, the metrics listener).
pub const OTHER_DESCRIPTORS: u64 = 256;

/// The configured bounds (`[server] max_connections`, `max_connections_per_source`,
/// `idle_timeout_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_total: usize,
    pub max_per_source: usize,
    pub idle_timeout: Duration,
}

impl ConnectionLimits {
    pub const DEFAULT_MAX_TOTAL: usize = 4096;
    pub const DEFAULT_MAX_PER_SOURCE: usize = 256;
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

    /// These limits with the total cap lowered, if need be, to what `open_files` descriptors
    /// allow beside [`OTHER_DESCRIPTORS`]: refusing a connection at the cap is better than an
    /// accept that fails with EMFILE for everyone. `None` when nothing had to change.
    pub fn within_open_files(self, open_files: u64) -> Option<Self> {
        let room = usize::try_from(open_files.saturating_sub(OTHER_DESCRIPTORS).max(1)).unwrap_or(usize::MAX);
        (self.max_total > room).then(|| Self {
            max_total: room,
            max_per_source: self.max_per_source.min(room),
            ..self
        })
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_total: Self::DEFAULT_MAX_TOTAL,
            max_per_source: Self::DEFAULT_MAX_PER_SOURCE,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapReached {
    Total,
    Source,
}

impl CapReached {
    /// The metric label: the name of the setting that was reached.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Total => "max_connections",
            Self::Source => "max_connections_per_source",
        }
    }
}

/// Counts of the connections open now, in all and by source. The map holds only sources with a
/// connection open, so it never has more entries than the total cap.
#[derive(Debug)]
pub struct OpenConnections {
    limits: ConnectionLimits,
    open: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

impl OpenConnections {
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new(Counts::default()),
        })
    }

    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// A slot for a connection from `peer`, or which cap it would exceed.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<ConnectionSlot, CapReached> {
        let source = source_key(peer);
        let mut counts = self.lock();
        if counts.total >= self.limits.max_total {
            return Err(CapReached::Total);
        }
        let from_source = counts.by_source.get(&source).copied().unwrap_or(0);
        if from_source >= self.limits.max_per_source {
            return Err(CapReached::Source);
        }
        counts.by_source.insert(source, from_source + 1);
        counts.total += 1;
        crate::metrics::connections_open(counts.total);
        Ok(ConnectionSlot {
            table: self.clone(),
            source,
        })
    }

    /// Connections open now (all sources).
    pub fn total(&self) -> usize {
        self.lock().total
    }

    fn release(&self, source: IpAddr) {
        let mut counts = self.lock();
        counts.total = counts.total.saturating_sub(1);
        if let std::collections::hash_map::Entry::Occupied(mut entry) = counts.by_source.entry(source) {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
        crate::metrics::connections_open(counts.total);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One open connection, counted until this is dropped (with the connection).
#[derive(Debug)]
pub struct ConnectionSlot {
    table: Arc<OpenConnections>,
    source: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.table.release(self.source);
    }
}

/// Requests in flight on one connection, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<ActivityState>,
}

#[derive(Debug)]
struct ActivityState {
    in_flight: usize,
    idle_since: Instant,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: Instant::now(),
            }),
        })
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.lock().in_flight += 1;
        Busy(self.clone())
    }

    /// When the connection becomes idle for `timeout`; `None` while a request is in flight.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        let state = self.lock();
        (state.in_flight == 0).then(|| state.idle_since + timeout)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A request in flight (see [`Activity::begin`]).
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
        }
    }
}

/// What the gRPC layer learns of a connection: the transport's own information (address, client
/// certificate) and the connection's [`Activity`].
#[derive(Debug, Clone)]
pub struct ConnectionInfo<T> {
    pub transport: T,
    pub activity: Arc<Activity>,
}

/// A connection under the preface deadline and the idle timeout: reads fail with `TimedOut`
/// (which makes the HTTP/2 server drop the connection) when either passes. It also holds the
/// connection's [`ConnectionSlot`].
pub struct BoundedConnection<S> {
    inner: S,
    preface: Option<Pin<Box<Sleep>>>,
    preface_awaited: usize,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    activity: Arc<Activity>,
    _slot: ConnectionSlot,
}

impl<S> BoundedConnection<S> {
    pub fn new(inner: S, slot: ConnectionSlot, idle_timeout: Duration) -> Self {
        Self {
            inner,
            preface: Some(Box::pin(tokio::time::sleep(PREFACE_TIMEOUT))),
            preface_awaited: PREFACE_LEN,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            idle_timeout,
            activity: Activity::new(),
            _slot: slot,
        }
    }

    /// Ready with the reason once the connection must be closed; registers the timers otherwise.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<&'static str> {
        if let Some(preface) = &mut self.preface
            && preface.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready("no_preface");
        }
        while self.idle.as_mut().poll(cx).is_ready() {
            match self.activity.idle_deadline(self.idle_timeout) {
                Some(deadline) if deadline <= Instant::now() => return Poll::Ready("idle"),
                Some(deadline) => self.idle.as_mut().reset(deadline),
                // A request is in flight: look again one timeout from now.
                None => self.idle.as_mut().reset(Instant::now() + self.idle_timeout),
            }
        }
        Poll::Pending
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for BoundedConnection<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                this.preface_awaited = this.preface_awaited.saturating_sub(read);
                if this.preface_awaited == 0 || read == 0 {
                    this.preface = None; // the preface is in (or the peer is gone)
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.poll_expired(cx) {
                Poll::Ready(reason) => {
                    // Debug only: a client holding connections would otherwise write the log.
                    tracing::debug!(reason, "closing a connection");
                    crate::metrics::connection_closed(reason);
                    Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, reason)))
                }
                Poll::Pending => Poll::Pending,
            },
            failed => failed,
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for BoundedConnection<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for BoundedConnection<S> {
    type ConnectInfo = ConnectionInfo<S::ConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnectionInfo {
            transport: self.inner.connect_info(),
            activity: self.activity.clone(),
        }
    }
}

/// The connection information tonic's own accessors (`remote_addr`, `peer_certs`) look for.
pub type TlsInfo = tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>;

/// The layer that marks each request busy on its connection while it runs, and hands the
/// transport's information on where tonic looks for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackActivityLayer;

impl<S> tower::Layer<S> for TrackActivityLayer {
    type Service = TrackActivity<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrackActivity { inner }
    }
}

/// See [`TrackActivityLayer`]. The connection counts as busy until the response head is sent;
/// the body (a keytab of a few hundred bytes) follows at once.
#[derive(Debug, Clone)]
pub struct TrackActivity<S> {
    inner: S,
}

impl<S, B> tower::Service<tonic::codegen::http::Request<B>> for TrackActivity<S>
where
    S: tower::Service<tonic::codegen::http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: tonic::codegen::http::Request<B>) -> Self::Future {
        let busy = match request.extensions().get::<ConnectionInfo<TlsInfo>>().cloned() {
            Some(info) => {
                request.extensions_mut().insert(info.transport.get_ref().clone());
                request.extensions_mut().insert(info.transport);
                Some(info.activity.begin())
            }
            None => None,
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let answered = response.await;
            drop(busy);
            answered
        })
    }
}

/// At most one log line per interval for an event that a hostile client can repeat at will
/// (accept failures, refusals at a cap), with the number left out since the last one.
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(left out since the last line)` when this event may be logged.
    pub fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        match state.0 {
            Some(last) if now < last + self.interval => {
                state.1 += 1;
                None
            }
            _ => {
                let suppressed = std::mem::take(&mut state.1);
                state.0 = Some(now);
                Some(suppressed)
            }
        }
    }
}

#[cfg(test)]
mod tests;
