//! The `KeytabBroker` gRPC service: policy → directory → key source → stream, with every attempt
//! audited. Nothing is streamed until the whole keytab is in hand, so a failure sends no key bytes.
//!
//! What the caller sees is deliberately coarse: wrong password, unknown user, not in the group and
//! empty password all answer `UNAUTHENTICATED "KTB-101 authentication failed"`, no sooner than
//! `failure_delay` after the request arrived.

use crate::audit::{Attempt, Auditor, Outcome};
use crate::directory::{AuthError, Directory};
use crate::keysource::{KeySource, KeySourceError};
use crate::limits::{FailureLimiter, LimitPolicy, Locked};
use crate::metrics;
use crate::policy;
use ktbroker_keytab::Keytab;
use ktbroker_proto::v1::{
    FetchKeytabRequest, FetchKeytabResponse, KeytabHeader, KeytabTrailer, fetch_keytab_response::Part,
    keytab_broker_server::KeytabBroker,
};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use zeroize::Zeroizing;

/// Longer passwords are refused before any work (hashing DoS; pam-krb5 uses the same bound).
pub const MAX_PASSWORD_LEN: usize = 1024;

pub const MSG_AUTH_FAILED: &str = "KTB-101 authentication failed";
pub const MSG_INVALID_USERNAME: &str = "KTB-102 invalid username";
pub const MSG_PRINCIPAL_NOT_ALLOWED: &str = "KTB-103 principal not allowed by policy";
pub const MSG_NO_PRINCIPAL: &str = "KTB-104 no Kerberos principal for this user";
pub const MSG_DIRECTORY_UNAVAILABLE: &str = "KTB-201 directory unavailable";
pub const MSG_KEYS_UNAVAILABLE: &str = "KTB-202 key source unavailable";

pub const MSG_AUDIT_UNAVAILABLE: &str = "KTB-203 audit unavailable";

pub const MSG_NO_USABLE_ENCTYPE: &str = "KTB-105 no key of an allowed enctype";

/// What the service enforces, from the configuration.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The realm users' principals live in.
    pub realm: String,
    /// Refused authentications answer no sooner than this after the request arrived.
    pub failure_delay: Duration,
    pub limits: LimitPolicy,
    /// Enctypes that may be served; keys of any other enctype are stripped.
    pub enctypes: Vec<u16>,
}

pub struct BrokerService<D, K> {
    directory: D,
    keys: K,
    settings: ServiceSettings,
    auditor: Auditor,
    limiter: FailureLimiter,
    next_request_id: AtomicU64,
}

impl<D: Directory, K: KeySource> BrokerService<D, K> {
    pub fn new(directory: D, keys: K, settings: ServiceSettings, auditor: Auditor) -> Self {
        let limiter = FailureLimiter::new(settings.limits);
        Self {
            directory,
            keys,
            settings,
            auditor,
            limiter,
            next_request_id: AtomicU64::new(1),
        }
    }

    /// Authenticates, authorizes and reads the keys. Returns the audit outcome with the status.
    async fn obtain_keytab(
        &self,
        username: &str,
        password: &[u8],
        requested: Option<&str>,
        source: Option<IpAddr>,
    ) -> Result<(String, Keytab), (Outcome, Status)> {
        let user = policy::validate_username(username)
            .map_err(|_| (Outcome::InvalidUsername, Status::invalid_argument(MSG_INVALID_USERNAME)))?;
        let principal = policy::principal_for(&user, &self.settings.realm, requested).map_err(|_| {
            (
                Outcome::PrincipalNotAllowed,
                Status::permission_denied(MSG_PRINCIPAL_NOT_ALLOWED),
            )
        })?;
        let now = || Instant::now().into_std();
        if let Err(locked) = self.limiter.check(user.as_str(), source, now()) {
            let outcome = match locked {
                Locked::User => Outcome::UserLocked,
                Locked::Source => Outcome::SourceLocked,
            };
            return Err((outcome, Status::unauthenticated(MSG_AUTH_FAILED)));
        }
        match self.authenticate(&user, password).await {
            Ok(()) => self.limiter.record_success(user.as_str()),
            Err(refusal) => {
                if refusal.1.code() == tonic::Code::Unauthenticated {
                    self.limiter.record_failure(user.as_str(), source, now());
                }
                return Err(refusal);
            }
        }
        self.read_keys(principal).await
    }

    /// The password check: bounds, then the directory. Every failure has one external answer.
    async fn authenticate(&self, user: &policy::Username, password: &[u8]) -> Result<(), (Outcome, Status)> {
        let auth_failed = |outcome| (outcome, Status::unauthenticated(MSG_AUTH_FAILED));
        if password.len() > MAX_PASSWORD_LEN {
            return Err(auth_failed(Outcome::PasswordTooLong));
        }
        // A password that is not UTF-8 cannot match a directory password; same answer as a wrong one.
        let password = std::str::from_utf8(password).map_err(|_| auth_failed(Outcome::InvalidCredentials))?;
        let ldap_started = Instant::now();
        let verified = self.directory.verify(user, password).await;
        let elapsed = ldap_started.elapsed();
        metrics::directory_time(elapsed);
        tracing::debug!(elapsed_ms = elapsed.as_secs_f64() * 1e3, "directory check done");
        match verified {
            Ok(_) => Ok(()),
            Err(AuthError::EmptyPassword) => Err(auth_failed(Outcome::EmptyPassword)),
            Err(AuthError::InvalidCredentials) => Err(auth_failed(Outcome::InvalidCredentials)),
            Err(AuthError::UnknownUser) => Err(auth_failed(Outcome::UnknownUser)),
            Err(AuthError::NotInGroup) => Err(auth_failed(Outcome::NotInGroup)),
            Err(AuthError::Unavailable(why)) => {
                tracing::error!(error = %why, "directory unavailable");
                Err((
                    Outcome::DirectoryUnavailable,
                    Status::unavailable(MSG_DIRECTORY_UNAVAILABLE),
                ))
            }
        }
    }

    /// Reads the principal's current keys.
    async fn read_keys(&self, principal: String) -> Result<(String, Keytab), (Outcome, Status)> {
        let keys_started = Instant::now();
        let fetched = self.keys.fetch(&principal).await;
        let elapsed = keys_started.elapsed();
        metrics::key_source_time(elapsed);
        tracing::debug!(elapsed_ms = elapsed.as_secs_f64() * 1e3, "key source done");
        match fetched {
            Ok(mut keytab) => {
                // Only the current keys: older kvnos are of no use to a client's kinit.
                let current = keytab.entries.iter().map(|e| e.kvno).max().unwrap_or(0);
                keytab.retain(|e| e.kvno == current);
                // Only allowed enctypes (AES by default): RC4, DES and 3DES keys never leave.
                keytab.retain(|e| self.settings.enctypes.contains(&e.key.enctype));
                if keytab.entries.is_empty() {
                    tracing::warn!(principal, "the principal has no key of an allowed enctype");
                    return Err((
                        Outcome::NoUsableEnctype,
                        Status::failed_precondition(MSG_NO_USABLE_ENCTYPE),
                    ));
                }
                // In the configured order of preference.
                keytab
                    .entries
                    .sort_by_key(|e| self.settings.enctypes.iter().position(|t| *t == e.key.enctype));
                Ok((principal, keytab))
            }
            Err(KeySourceError::NoSuchPrincipal(_)) => Err((Outcome::NoPrincipal, Status::not_found(MSG_NO_PRINCIPAL))),
            Err(e) => {
                tracing::error!(error = %e, principal, "reading keys failed");
                Err((Outcome::KeySourceFailed, Status::unavailable(MSG_KEYS_UNAVAILABLE)))
            }
        }
    }
}

pub type KeytabStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<FetchKeytabResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<D: Directory, K: KeySource> KeytabBroker for BrokerService<D, K> {
    type FetchKeytabStream = KeytabStream;

    async fn fetch_keytab(&self, request: Request<FetchKeytabRequest>) -> Result<Response<KeytabStream>, Status> {
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let peer = request.remote_addr();
        let span = tracing::info_span!("fetch_keytab", request_id, peer = ?peer);
        self.handle(request_id, peer, request.into_inner())
            .instrument(span)
            .await
    }
}

impl<D: Directory, K: KeySource> BrokerService<D, K> {
    /// One FetchKeytab call: decide, audit, and either build the stream or refuse (refused
    /// authentications no sooner than `failure_delay` after arrival).
    async fn handle(
        &self,
        request_id: u64,
        peer: Option<std::net::SocketAddr>,
        mut message: FetchKeytabRequest,
    ) -> Result<Response<KeytabStream>, Status> {
        let started = Instant::now();
        let password = Zeroizing::new(std::mem::take(&mut message.password));
        let result = self
            .obtain_keytab(
                &message.username,
                &password,
                message.principal.as_deref(),
                peer.map(|p| p.ip()),
            )
            .await;
        drop(password);
        let attempt = |principal, outcome, kvno| Attempt {
            request_id,
            peer,
            username: &message.username,
            principal,
            outcome,
            kvno,
            latency: started.elapsed(),
        };
        match result {
            Ok((principal, keytab)) => {
                let stream = KeytabParts::new(&principal, &keytab).map_err(|e| {
                    tracing::error!(error = %e, "cannot encode keytab");
                    Status::internal("KTB-900 internal error")
                })?;
                let kvno = stream.header.as_ref().map(|h| h.kvno);
                // A grant that cannot be audited does not happen.
                self.auditor
                    .record(&attempt(Some(&principal), Outcome::Granted, kvno))
                    .map_err(|_| Status::unavailable(MSG_AUDIT_UNAVAILABLE))?;
                metrics::attempt(Outcome::Granted, started.elapsed());
                Ok(Response::new(Box::pin(tokio_stream::iter(stream))))
            }
            Err((outcome, status)) => {
                if status.code() == tonic::Code::Unauthenticated {
                    tokio::time::sleep_until(started + self.settings.failure_delay).await;
                }
                // The refusal stands whether or not the audit file could be written (logged).
                let _ = self.auditor.record(&attempt(None, outcome, None));
                metrics::attempt(outcome, started.elapsed());
                Err(status)
            }
        }
    }
}

/// The response stream: header, chunks of at most `CHUNK_SIZE`, trailer. It owns the encoded
/// keytab in a zeroizing buffer, which is wiped when the stream is dropped.
struct KeytabParts {
    bytes: Zeroizing<Vec<u8>>,
    header: Option<KeytabHeader>,
    sent: usize,
    trailer_sent: bool,
}

impl KeytabParts {
    fn new(principal: &str, keytab: &Keytab) -> Result<Self, ktbroker_keytab::KeytabError> {
        let bytes = keytab.encode()?;
        // read_keys kept only the current kvno's keys, in preference order.
        let kvno = keytab.entries.iter().map(|e| e.kvno).max().unwrap_or(0);
        let mut enctypes: Vec<i32> = Vec::new();
        for entry in &keytab.entries {
            let enctype = i32::from(entry.key.enctype);
            if !enctypes.contains(&enctype) {
                enctypes.push(enctype);
            }
        }
        let header = KeytabHeader {
            principal: principal.to_owned(),
            kvno,
            enctypes,
            total_size: bytes.len() as u64,
        };
        Ok(Self {
            bytes,
            header: Some(header),
            sent: 0,
            trailer_sent: false,
        })
    }
}

impl Iterator for KeytabParts {
    type Item = Result<FetchKeytabResponse, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        let part = if let Some(header) = self.header.take() {
            Part::Header(header)
        } else if self.sent < self.bytes.len() {
            let end = (self.sent + ktbroker_proto::CHUNK_SIZE).min(self.bytes.len());
            // This copy is owned by tonic once yielded and freed without wiping: prost has no
            // zeroizing bytes type. Our own buffer is wiped on drop.
            let chunk = self.bytes[self.sent..end].to_vec();
            self.sent = end;
            Part::Chunk(chunk)
        } else if !self.trailer_sent {
            self.trailer_sent = true;
            let digest = ring::digest::digest(&ring::digest::SHA256, &self.bytes);
            Part::Trailer(KeytabTrailer {
                sha256: digest.as_ref().to_vec(),
            })
        } else {
            return None;
        };
        Some(Ok(FetchKeytabResponse { part: Some(part) }))
    }
}

#[cfg(test)]
mod tests;
