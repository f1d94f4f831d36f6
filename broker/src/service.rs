//! The `KeytabBroker` gRPC service: tenant → host binding → policy → directory → key source →
//! stream, with every attempt audited. Nothing is streamed until the whole keytab is in hand, so a
//! failure sends no key bytes.
//!
//! What the caller sees is deliberately coarse: wrong password, unknown user, not in the group,
//! a locked account and an empty password all answer [`RefusalCode::AuthFailed`] (gRPC
//! UNAUTHENTICATED), no sooner than `failure_delay` after the request arrived. Every refusal is a
//! [`Refusal`]: its audit outcome and the typed code the caller gets.
//!
//! The tenants live in a [`TenantTable`] that SIGHUP replaces as a whole; a request keeps the
//! table it started with, so a reload never disturbs one in flight.

mod provider_login;
mod stream;

use crate::audit::{Attempt, Auditor, Outcome, OutcomeClass};
pub use crate::config::TenantPolicy;
use crate::delivery::Wanted;
use crate::directory::{AuthError, Directory, EntryPrincipal, VerifiedUser};
use crate::hosts::{ClientHost, host_allowed, host_trusted};
use crate::keysource::{KeySource, KeySourceError};
use crate::limits::{FailureLimiter, LimitPolicy, Locked};
use crate::metrics;
use crate::policy::{self, Username};
use crate::refusal::Refusal;
use ktbroker_codes::{MAX_PASSWORD_LEN, RefusalCode};
use ktbroker_keytab::Keytab;
use ktbroker_proto::v1::{
    FetchKeytabRequest, FetchKeytabResponse, ProviderLoginRequest, RotateKeyRequest, RotateKeyResponse,
    ServerInfoRequest, ServerInfoResponse, keytab_broker_server::KeytabBroker,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use stream::DeliveryParts;
use tokio::time::Instant;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use zeroize::Zeroizing;

/// One tenant: its policy, directory and key source, reachable only through its own name.
pub struct Tenant<D, K> {
    pub policy: TenantPolicy,
    pub directory: Arc<D>,
    pub keys: Arc<K>,
}

/// Settings that apply to every tenant.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Refused authentications answer no sooner than this after the request arrived.
    pub failure_delay: Duration,
    pub limits: LimitPolicy,
    /// A request still running after this long is abandoned.
    pub request_timeout: Duration,
    pub default_tenant: Option<String>,
    /// Client-certificate identities allowed to call RotateKey.
    pub admin_identities: Vec<String>,
    /// Login hosts, never counted as one spraying source (see [`crate::limits`]).
    pub trusted_sources: Vec<crate::hosts::ClientRule>,
}

/// Everything a reload replaces at once.
pub struct TenantTable<D, K> {
    pub settings: ServiceSettings,
    pub tenants: BTreeMap<String, Arc<Tenant<D, K>>>,
}

impl<D, K> TenantTable<D, K> {
    /// The named tenant, or the default one when the request names none.
    fn tenant(&self, name: Option<&str>) -> Option<&Arc<Tenant<D, K>>> {
        let name = name.or(self.settings.default_tenant.as_deref())?;
        self.tenants.get(name)
    }
}

pub struct BrokerService<D, K> {
    current: RwLock<Arc<TenantTable<D, K>>>,
    auditor: Arc<Auditor>,
    limiter: FailureLimiter,
    permits: Arc<tokio::sync::Semaphore>,
    next_request_id: AtomicU64,
    /// RotateKey calls without an admin certificate: audited one by one only up to a rate.
    not_admin: std::sync::Mutex<RefusalFlood>,
    /// Sign-ins waiting for their person, per source address (see `provider_login`).
    waiting_sign_ins: Arc<provider_login::WaitingSignIns>,
}

/// Who called, as far as the transport tells.
#[derive(Clone)]
struct Caller {
    request_id: u64,
    peer: Option<SocketAddr>,
    host: ClientHost,
}

impl Caller {
    fn of<T>(request: &Request<T>, request_id: u64) -> Self {
        let peer = request.remote_addr();
        let mut host = request
            .peer_certs()
            .and_then(|chain| {
                chain
                    .first()
                    .map(|leaf| crate::hosts::certificate_identity(leaf.as_ref()))
            })
            .unwrap_or_default();
        host.address = peer.map(|p| p.ip());
        Self { request_id, peer, host }
    }

    /// The audit record of this caller's attempt.
    fn attempt<'a>(
        &'a self,
        tenant: &'a str,
        username: &'a str,
        principal: Option<&'a str>,
        outcome: Outcome,
        kvno: Option<u32>,
        started: Instant,
    ) -> Attempt<'a> {
        Attempt {
            request_id: self.request_id,
            tenant,
            peer: self.peer,
            client_cert: self.host.cert_subject.as_deref(),
            username,
            principal,
            outcome,
            kvno,
            delivery: None,
            identity: None,
            latency: started.elapsed(),
            cancelled: false,
            suppressed: 0,
        }
    }
}

impl<D: Directory, K: KeySource> BrokerService<D, K> {
    pub fn new(table: TenantTable<D, K>, auditor: Auditor, max_concurrent_requests: usize) -> Self {
        Self {
            limiter: FailureLimiter::new(table.settings.limits),
            current: RwLock::new(Arc::new(table)),
            auditor: Arc::new(auditor),
            permits: Arc::new(tokio::sync::Semaphore::new(max_concurrent_requests)),
            next_request_id: AtomicU64::new(1),
            not_admin: std::sync::Mutex::new(RefusalFlood::default()),
            waiting_sign_ins: Arc::default(),
        }
    }

    /// The table requests start with from now on; requests in flight keep theirs.
    pub fn replace(&self, table: TenantTable<D, K>) {
        self.limiter.set_policy(table.settings.limits);
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(table);
    }

    pub fn current(&self) -> Arc<TenantTable<D, K>> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn next_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A slot among `max_concurrent_requests`, or RESOURCE_EXHAUSTED at once (no queue to pile up).
    fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Refusal> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            tracing::warn!("concurrency limit reached; refusing");
            Refusal::new(Outcome::Busy, RefusalCode::Busy)
        })
    }

    /// Authenticates, authorizes and reads the keys.
    async fn obtain_keytab(&self, tenant: &Tenant<D, K>, ask: Ask<'_>) -> Result<(String, Keytab, Outcome), Refusal> {
        let Ask {
            user,
            password,
            new_password,
            requested,
            source,
            wanted,
        } = ask;
        let not_allowed = || Refusal::new(Outcome::PrincipalNotAllowed, RefusalCode::PrincipalNotAllowed);
        let principals = &tenant.policy.principals;
        // With a template the principal is known, and checked, before the password; from the
        // user's entry only after it (the caller's choice is then checked against that).
        let mapped = if tenant.directory.names_principals() {
            principals.principal_for(user, None)
        } else {
            principals.principal_for(user, requested)
        };
        let mut principal = mapped.map_err(|_| not_allowed())?;
        // Failure counters are per tenant: the same name in two directories is two people.
        let limit_key = format!("{}/{user}", tenant.policy.name);
        let now = || Instant::now().into_std();
        if let Err(locked) = self.limiter.check(&limit_key, source, now()) {
            let outcome = match locked {
                Locked::User => Outcome::UserLocked,
                Locked::Source => Outcome::SourceLocked,
            };
            return Err(Refusal::auth_failed(outcome));
        }
        let verified = match authenticate(tenant.directory.as_ref(), user, password, new_password).await {
            Ok(verified) => {
                self.limiter.record_success(&limit_key, source, now());
                verified
            }
            Err(refusal) => {
                if refusal.is_authentication_failure() {
                    self.limiter.record_failure(&limit_key, source, now());
                }
                return Err(refusal);
            }
        };
        // Only a right password gets here: the answer tells nothing to a guesser.
        if !tenant.policy.deliveries.allows(wanted) && !verified.in_keytab_group {
            return Err(delivery_not_allowed());
        }
        match &verified.principal {
            EntryPrincipal::NotAsked => {}
            EntryPrincipal::Found(named) => {
                principal = principals.accept_from_directory(named, requested).map_err(|_| {
                    tracing::warn!(user = %user, named = %named, "the principal the user's entry names is not allowed");
                    not_allowed()
                })?;
            }
            EntryPrincipal::Unusable { values } => {
                tracing::warn!(user = %user, dn = %verified.dn, values,
                    "the user's entry has no single principal attribute value");
                return Err(not_allowed());
            }
        }
        keys_for(tenant, principal, verified.password_changed).await
    }
}

/// The keys of an authorized person's principal, created first where the tenant provisions.
async fn keys_for<D, K: KeySource>(
    tenant: &Tenant<D, K>,
    principal: String,
    password_changed: bool,
) -> Result<(String, Keytab, Outcome), Refusal> {
    match read_keys(tenant, &principal).await {
        Err(Refusal {
            outcome: Outcome::NoPrincipal,
            ..
        }) if tenant.policy.provision => {
            provision(tenant, &principal).await?;
            let keytab = read_keys(tenant, &principal).await?;
            Ok((principal, keytab, Outcome::Provisioned))
        }
        Err(refusal) => Err(refusal),
        Ok(keytab) if password_changed => Ok((principal, keytab, Outcome::PasswordChanged)),
        Ok(keytab) => Ok((principal, keytab, Outcome::Granted)),
    }
}

/// The password check: bounds, then the directory. Every failure has one external answer.
/// With `new_password` (sent after PASSWORD_CHANGE_REQUIRED) the directory changes the password
/// first, and the check is made with the new one.
async fn authenticate<D: Directory>(
    directory: &D,
    user: &Username,
    password: &[u8],
    new_password: Option<&[u8]>,
) -> Result<VerifiedUser, Refusal> {
    let auth_failed = Refusal::auth_failed;
    if password.len() > MAX_PASSWORD_LEN {
        return Err(auth_failed(Outcome::PasswordTooLong));
    }
    // A password that is not UTF-8 cannot match a directory password; same answer as a wrong one.
    let password = std::str::from_utf8(password).map_err(|_| auth_failed(Outcome::InvalidCredentials))?;
    let unusable = || {
        Refusal::new_password_rejected(ktbroker_codes::PasswordRules {
            problem: ktbroker_codes::PasswordProblem::Unspecified,
            ..Default::default()
        })
    };
    let new_password = match new_password {
        None => None,
        Some(new) if new.len() > MAX_PASSWORD_LEN => return Err(unusable()),
        Some(new) => Some(std::str::from_utf8(new).map_err(|_| unusable())?),
    };
    let ldap_started = Instant::now();
    tracing::debug!("directory check started");
    let verified = match new_password {
        None => directory.verify(user, password).await,
        Some(new) => directory.change_password(user, password, new).await,
    };
    let elapsed = ldap_started.elapsed();
    metrics::directory_time(elapsed);
    tracing::debug!(elapsed_ms = elapsed.as_secs_f64() * 1e3, "directory check done");
    verified.map_err(refusal_of)
}

/// The one external answer for each way an identity source can say no.
fn refusal_of(error: AuthError) -> Refusal {
    let auth_failed = Refusal::auth_failed;
    match error {
        AuthError::EmptyPassword => auth_failed(Outcome::EmptyPassword),
        AuthError::InvalidCredentials => auth_failed(Outcome::InvalidCredentials),
        AuthError::UnknownUser => auth_failed(Outcome::UnknownUser),
        AuthError::NotInGroup => auth_failed(Outcome::NotInGroup),
        AuthError::TokenRejected(why) => {
            // A genuine provider sends genuine tokens: this is misconfiguration or an attack.
            tracing::error!(error = %why, "identity provider token rejected");
            auth_failed(Outcome::TokenRejected)
        }
        AuthError::AuthenticationContext => auth_failed(Outcome::AuthContextInsufficient),
        AuthError::DeviceDenied => auth_failed(Outcome::SsoDenied),
        AuthError::DeviceExpired => auth_failed(Outcome::SsoExpired),
        AuthError::TooManyWaiting => Refusal::new(Outcome::Busy, RefusalCode::Busy),
        AuthError::AccountLocked => auth_failed(Outcome::AccountLocked),
        AuthError::AccountDisabled => auth_failed(Outcome::AccountDisabled),
        AuthError::AccountExpired => auth_failed(Outcome::AccountExpired),
        AuthError::LogonRestricted => auth_failed(Outcome::LogonRestricted),
        // Only a right password gets here, so telling it apart reveals nothing to a guesser.
        AuthError::PasswordMustChange => Refusal::new(Outcome::PasswordMustChange, RefusalCode::PasswordChangeRequired),
        AuthError::PasswordExpired { changeable: true } => {
            Refusal::new(Outcome::PasswordExpired, RefusalCode::PasswordChangeRequired)
        }
        AuthError::PasswordExpired { changeable: false } => {
            Refusal::new(Outcome::PasswordExpired, RefusalCode::PasswordChangeElsewhere)
        }
        AuthError::NewPasswordRejected(rules) => Refusal::new_password_rejected(rules),
        AuthError::Unavailable(why) => {
            tracing::error!(error = %why, "directory unavailable");
            Refusal::new(Outcome::DirectoryUnavailable, RefusalCode::DirectoryUnavailable)
        }
    }
}

/// What one FetchKeytab asks for, as [`BrokerService::obtain_keytab`] takes it.
struct Ask<'a> {
    user: &'a Username,
    password: &'a [u8],
    new_password: Option<&'a [u8]>,
    /// The principal the caller expects, if it said.
    requested: Option<&'a str>,
    /// The address the failure limits count against (none for a trusted login host).
    source: Option<IpAddr>,
    wanted: Wanted,
}

fn delivery_not_allowed() -> Refusal {
    Refusal::new(Outcome::DeliveryNotAllowed, RefusalCode::DeliveryNotAllowed)
}

/// What a granted login sends.
enum Grant {
    Keytab(String, Keytab, Outcome),
    /// The AS exchange's credentials as a KRB-CRED message; `kvno` of the keys it used.
    Ticket {
        principal: String,
        message: Zeroizing<Vec<u8>>,
        times: ktbroker_krb5::TicketTimes,
        kvno: u32,
        outcome: Outcome,
    },
}

/// A login's verdict as its answer: the parts of the delivery (audited as granted first: a grant
/// that cannot be audited does not happen), or the refusal's status (authentication failures no
/// sooner than `failure_delay` after `started`).
async fn answer(
    audit: &mut AuditOnce,
    result: Result<Grant, Refusal>,
    started: Instant,
    failure_delay: Duration,
) -> Result<DeliveryParts, Status> {
    let audit_unavailable = || ktbroker_proto::refusal::status(RefusalCode::AuditUnavailable);
    match result {
        Ok(Grant::Ticket {
            principal,
            message,
            times,
            kvno,
            outcome,
        }) => {
            audit.decided(outcome, None);
            audit.granted(&principal, kvno);
            audit.write().map_err(|_| audit_unavailable())?;
            Ok(DeliveryParts::ticket(&principal, kvno, message, times))
        }
        Ok(Grant::Keytab(principal, keytab, outcome)) => {
            let parts = match DeliveryParts::keytab(&principal, &keytab) {
                Ok(parts) => parts,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode keytab");
                    audit.decided(Outcome::KeySourceFailed, Some(RefusalCode::Internal));
                    let _ = audit.write();
                    return Err(ktbroker_proto::refusal::status(RefusalCode::Internal));
                }
            };
            audit.decided(outcome, None);
            audit.granted(&principal, parts.kvno);
            audit.write().map_err(|_| audit_unavailable())?;
            Ok(parts)
        }
        Err(refusal) => Err(refuse(audit, refusal, started, failure_delay).await),
    }
}

/// A refusal's status, audited (authentication failures no sooner than `failure_delay` after
/// `started`).
async fn refuse(audit: &mut AuditOnce, refusal: Refusal, started: Instant, failure_delay: Duration) -> Status {
    audit.decided(refusal.outcome, Some(refusal.code));
    if refusal.is_authentication_failure() {
        tokio::time::sleep_until(started + failure_delay).await;
    }
    // The refusal stands whether or not the audit file could be written (logged).
    let _ = audit.write();
    refusal.status()
}

/// Ticket delivery: the AS exchange with the keys just read, on a blocking thread (a KDC round
/// trip); the keys are dropped (wiped) with the closure.
async fn exchange(
    principal: String,
    keytab: Keytab,
    outcome: Outcome,
    request: ktbroker_krb5::TicketRequest,
) -> Result<Grant, Refusal> {
    let kvno = keytab.entries.iter().map(|e| e.kvno).max().unwrap_or(0);
    let started = Instant::now();
    let name = principal.clone();
    let obtained = tokio::task::spawn_blocking(move || crate::delivery::ticket_for(&name, &keytab, request)).await;
    tracing::debug!(elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "AS exchange done");
    match obtained {
        Ok(Ok((message, times))) => Ok(Grant::Ticket {
            principal,
            message,
            times,
            kvno,
            outcome,
        }),
        Ok(Err(e)) => {
            tracing::error!(principal = %principal, code = e.code, kind = ?e.kind(), error = %e,
                "the AS exchange for a ticket delivery failed");
            Err(Refusal::new(Outcome::KeySourceFailed, RefusalCode::KeysUnavailable))
        }
        Err(e) => {
            tracing::error!(error = %e, "the AS exchange task failed");
            Err(Refusal::new(Outcome::KeySourceFailed, RefusalCode::Internal))
        }
    }
}

/// Reads the principal's current keys of allowed enctypes, in preference order.
async fn read_keys<D, K: KeySource>(tenant: &Tenant<D, K>, principal: &str) -> Result<Keytab, Refusal> {
    let keys_started = Instant::now();
    let fetched = tenant.keys.fetch(principal).await;
    let elapsed = keys_started.elapsed();
    metrics::key_source_time(elapsed);
    tracing::debug!(elapsed_ms = elapsed.as_secs_f64() * 1e3, "key source done");
    let enctypes = &tenant.policy.enctypes;
    match fetched {
        Ok(mut keytab) => {
            // Only the current keys: older kvnos are of no use to a client's kinit.
            let current = keytab.entries.iter().map(|e| e.kvno).max().unwrap_or(0);
            keytab.retain(|e| e.kvno == current);
            // Only allowed enctypes (AES by default): RC4, DES and 3DES keys never leave.
            keytab.retain(|e| enctypes.contains(&e.key.enctype));
            if keytab.entries.is_empty() {
                tracing::warn!(principal, "the principal has no key of an allowed enctype");
                return Err(Refusal::new(Outcome::NoUsableEnctype, RefusalCode::NoUsableEnctype));
            }
            keytab
                .entries
                .sort_by_key(|e| enctypes.iter().position(|t| *t == e.key.enctype));
            Ok(keytab)
        }
        Err(KeySourceError::NoSuchPrincipal(_)) => Err(Refusal::new(Outcome::NoPrincipal, RefusalCode::NoPrincipal)),
        Err(e) => {
            tracing::error!(error = %e, principal, "reading keys failed");
            Err(Refusal::new(Outcome::KeySourceFailed, RefusalCode::KeysUnavailable))
        }
    }
}

/// First-login provisioning: creates the missing principal with a random key.
async fn provision<D, K: KeySource>(tenant: &Tenant<D, K>, principal: &str) -> Result<(), Refusal> {
    match tenant.keys.create(principal).await {
        Ok(()) => {
            tracing::info!(target: "ktbroker::audit", tenant = %tenant.policy.name, principal,
                "provisioned a new principal (random key, requires_preauth)");
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, principal, "provisioning failed");
            Err(Refusal::new(Outcome::ProvisionFailed, RefusalCode::KeysUnavailable))
        }
    }
}

pub type KeytabStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<FetchKeytabResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<D: Directory, K: KeySource> KeytabBroker for BrokerService<D, K> {
    type FetchKeytabStream = KeytabStream;

    async fn fetch_keytab(&self, request: Request<FetchKeytabRequest>) -> Result<Response<KeytabStream>, Status> {
        let caller = Caller::of(&request, self.next_id());
        let span = tracing::info_span!("fetch_keytab", request_id = caller.request_id, peer = ?caller.peer);
        self.handle_fetch(caller, request.into_inner()).instrument(span).await
    }

    async fn server_info(&self, request: Request<ServerInfoRequest>) -> Result<Response<ServerInfoResponse>, Status> {
        let table = self.current();
        let tenant = table.tenant(request.get_ref().tenant.as_deref());
        let realm = tenant
            .map(|t| t.policy.principals.realm().to_owned())
            .unwrap_or_default();
        // Keytabs are on offer where some users may get them (keytab_groups) too.
        let deliveries = tenant
            .map(|t| {
                let mut offered = t.policy.deliveries;
                offered.keytab |= t.directory.has_keytab_groups();
                offered.offered()
            })
            .unwrap_or_default();
        let unix_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Ok(Response::new(ServerInfoResponse {
            unix_time,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            realm,
            deliveries,
        }))
    }

    type LoginWithProviderStream = KeytabStream;

    async fn login_with_provider(
        &self,
        request: Request<ProviderLoginRequest>,
    ) -> Result<Response<KeytabStream>, Status> {
        let caller = Caller::of(&request, self.next_id());
        let span = tracing::info_span!("login_with_provider", request_id = caller.request_id, peer = ?caller.peer);
        self.handle_provider_login(caller, request.into_inner())
            .instrument(span)
            .await
    }

    async fn rotate_key(&self, request: Request<RotateKeyRequest>) -> Result<Response<RotateKeyResponse>, Status> {
        let caller = Caller::of(&request, self.next_id());
        let span = tracing::info_span!("rotate_key", request_id = caller.request_id, peer = ?caller.peer);
        self.handle_rotate(caller, request.into_inner()).instrument(span).await
    }
}

impl<D: Directory, K: KeySource> BrokerService<D, K> {
    /// One FetchKeytab call: decide, audit, and either build the stream or refuse (refused
    /// authentications no sooner than `failure_delay` after arrival).
    async fn handle_fetch(
        &self,
        caller: Caller,
        mut message: FetchKeytabRequest,
    ) -> Result<Response<KeytabStream>, Status> {
        let started = Instant::now();
        let password = Zeroizing::new(std::mem::take(&mut message.password));
        let new_password = message.new_password.take().map(Zeroizing::new);
        let table = self.current();
        let split = policy::split_tenant(&message.username, message.tenant.as_deref());
        // Audit and metrics name only configured tenants: a client's made-up name is not a label.
        let tenant = split.ok().and_then(|(_, asked)| table.tenant(asked));
        let tenant_name = tenant.map_or("-", |t| t.policy.name.as_str());
        let unknown_tenant = || Refusal::new(Outcome::UnknownTenant, RefusalCode::UnknownTenant);
        // Dropped unwritten only if the caller hangs up: then it records what was decided so far.
        let mut audit = AuditOnce::new(
            self.auditor.clone(),
            caller.clone(),
            tenant_name,
            &message.username,
            started,
        );
        let wanted = Wanted::of(message.delivery);
        audit.delivery = Some(wanted.label());
        audit.identity = tenant.map(|t| t.directory.kind());
        let result = async {
            let _permit = self.admit()?;
            let (user, _) = split.map_err(|_| unknown_tenant())?;
            let tenant = tenant.ok_or_else(unknown_tenant)?;
            let user = policy::validate_username(user)
                .map_err(|_| Refusal::new(Outcome::InvalidUsername, RefusalCode::InvalidUsername))?;
            if !host_allowed(&tenant.policy.clients, &caller.host) {
                return Err(Refusal::new(Outcome::HostNotAllowed, RefusalCode::HostNotRegistered));
            }
            if !tenant.directory.offers_password_login() {
                return Err(Refusal::new(
                    Outcome::PasswordLoginNotOffered,
                    RefusalCode::PasswordLoginNotOffered,
                ));
            }
            // A trusted login host speaks for many people: only the per-username limit applies.
            let counted_source = (!host_trusted(&table.settings.trusted_sources, &caller.host))
                .then_some(caller.host.address)
                .flatten();
            // Tenant-wide policy, the same for everyone: told before the password is checked,
            // unless a keytab may still come from group membership (known after it).
            let by_group = wanted == Wanted::Keytab && tenant.directory.has_keytab_groups();
            if !tenant.policy.deliveries.allows(wanted) && !by_group {
                return Err(delivery_not_allowed());
            }
            let work = async {
                let (principal, keytab, outcome) = self
                    .obtain_keytab(
                        tenant,
                        Ask {
                            user: &user,
                            password: &password,
                            new_password: new_password.as_deref().map(Vec::as_slice),
                            requested: message.principal.as_deref(),
                            source: counted_source,
                            wanted,
                        },
                    )
                    .await?;
                match wanted {
                    Wanted::Keytab => Ok(Grant::Keytab(principal, keytab, outcome)),
                    Wanted::Ticket => exchange(principal, keytab, outcome, tenant.policy.ticket).await,
                }
            };
            tokio::time::timeout(table.settings.request_timeout, work)
                .await
                .map_err(|_| Refusal::new(Outcome::DeadlineExceeded, RefusalCode::DeadlineExceeded))?
        }
        .await;
        drop(password);
        drop(new_password);
        let parts = answer(&mut audit, result, started, table.settings.failure_delay).await?;
        Ok(Response::new(Box::pin(tokio_stream::iter(parts))))
    }

    /// One RotateKey call: only for an admin identity from a verified client certificate.
    async fn handle_rotate(
        &self,
        caller: Caller,
        message: RotateKeyRequest,
    ) -> Result<Response<RotateKeyResponse>, Status> {
        let started = Instant::now();
        let table = self.current();
        let tenant = table.tenant(message.tenant.as_deref());
        let tenant_name = tenant.map_or("-", |t| t.policy.name.as_str());
        let admin = caller.host.cert_names.iter().find(|name| {
            table
                .settings
                .admin_identities
                .iter()
                .any(|a| a.eq_ignore_ascii_case(name))
        });
        let refused = |code| Refusal::new(Outcome::RotateRefused, code);
        let admin_name = admin.map_or("-", String::as_str);
        // Refusals before any key work: decided and audited without waiting for anything.
        let admitted = (|| {
            if admin.is_none() {
                return Err(refused(RefusalCode::NotAdmin));
            }
            let permit = self.admit()?;
            let tenant = tenant.ok_or_else(|| Refusal::new(Outcome::UnknownTenant, RefusalCode::UnknownTenant))?;
            if !tenant.policy.principals.allows(&message.principal) {
                return Err(refused(RefusalCode::PrincipalNotAllowed));
            }
            Ok((permit, tenant))
        })();
        let (permit, tenant) = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => {
                let attempt = caller.attempt(
                    tenant_name,
                    admin_name,
                    Some(&message.principal),
                    refusal.outcome,
                    None,
                    started,
                );
                if refusal.code != RefusalCode::NotAdmin {
                    let _ = self.conclude(&attempt, Some(refusal.code));
                    return Err(refusal.status());
                }
                // Anyone can call RotateKey: a flood of them must not flood the audit (and fill
                // the disk that grants need). Beyond a rate they are counted, then summarised.
                let (audit_this, summarised) = self
                    .not_admin
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .admit(Instant::now());
                if summarised > 0 {
                    let mut summary =
                        caller.attempt(tenant_name, "-", None, Outcome::NotAdminSuppressed, None, started);
                    summary.suppressed = summarised;
                    let _ = self.auditor.record(&summary);
                }
                if audit_this {
                    let _ = self.conclude(&attempt, Some(refusal.code));
                } else {
                    metrics::attempt(attempt.tenant, attempt.outcome, Some(refusal.code), attempt.latency);
                }
                return Err(refusal.status());
            }
        };
        // The key changes even if the caller hangs up meanwhile (kadm5 runs on its own thread), so
        // the rotation, its audit record and its metric run to the end in a task of their own.
        let hung_up = HangUpFlag::default();
        let rotation = RotationTask {
            keys: tenant.keys.clone(),
            auditor: self.auditor.clone(),
            caller: caller.clone(),
            tenant: tenant_name.to_owned(),
            admin: admin_name.to_owned(),
            principal: message.principal.clone(),
            timeout: table.settings.request_timeout,
            started,
            hung_up: hung_up.0.clone(),
        };
        let rotated = tokio::spawn(async move {
            let _permit = permit;
            rotation.run().await
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the rotation task failed");
            ktbroker_proto::refusal::status(RefusalCode::Internal)
        })?;
        drop(hung_up);
        match rotated {
            Ok(kvno) => Ok(Response::new(RotateKeyResponse {
                principal: message.principal,
                kvno,
            })),
            Err(refusal) => Err(refusal.status()),
        }
    }

    fn conclude(&self, attempt: &Attempt, code: Option<RefusalCode>) -> std::io::Result<()> {
        conclude(&self.auditor, attempt, code)
    }

    /// At stop: writes what is still pending (the summary of a RotateKey flood whose window has
    /// not been closed by a later call), then logs the audit chain's head, the last copy outside
    /// the file.
    pub fn finish(&self) {
        let pending = std::mem::take(
            &mut self
                .not_admin
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .suppressed,
        );
        if pending > 0 {
            let nobody = Caller {
                request_id: self.next_id(),
                peer: None,
                host: ClientHost::default(),
            };
            let mut summary = nobody.attempt("-", "-", None, Outcome::NotAdminSuppressed, None, Instant::now());
            summary.suppressed = pending;
            let _ = self.auditor.record(&summary);
        }
        self.auditor.log_head();
    }
}

/// The one place an attempt is audited and counted. `Err` when the audit file could not be
/// written: a grant must then not be handed out, so it is not counted as one either.
fn conclude(auditor: &Auditor, attempt: &Attempt, code: Option<RefusalCode>) -> std::io::Result<()> {
    let audited = auditor.record(attempt);
    if audited.is_ok() || attempt.outcome.class() != OutcomeClass::Granted {
        metrics::attempt(attempt.tenant, attempt.outcome, code, attempt.latency);
    }
    if audited.is_ok()
        && attempt.outcome.class() == OutcomeClass::Granted
        && let Some(delivery) = attempt.delivery
    {
        metrics::delivered(attempt.tenant, delivery);
    }
    audited
}

/// RotateKey refusals without an admin certificate audited one by one per window; the rest of the
/// window's are summarised in one line when the next window starts.
const NOT_ADMIN_AUDITED_PER_WINDOW: u32 = 10;
const NOT_ADMIN_WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
struct RefusalFlood {
    window_start: Option<Instant>,
    audited: u32,
    suppressed: u64,
}

impl RefusalFlood {
    /// Whether to audit this refusal on its own, and how many the window that just ended held
    /// beyond those (to be summarised now; 0 for none).
    fn admit(&mut self, now: Instant) -> (bool, u64) {
        let mut ended = 0;
        if self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= NOT_ADMIN_WINDOW)
        {
            ended = std::mem::take(&mut self.suppressed);
            self.window_start = Some(now);
            self.audited = 0;
        }
        if self.audited < NOT_ADMIN_AUDITED_PER_WINDOW {
            self.audited += 1;
            (true, ended)
        } else {
            self.suppressed += 1;
            (false, ended)
        }
    }
}

/// Set when the handler that owns it is dropped: its caller hung up before the answer.
#[derive(Default)]
struct HangUpFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for HangUpFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One admitted RotateKey: rotates, then audits and counts the result, whether or not the caller
/// is still there (then `cancelled`).
struct RotationTask<K> {
    keys: Arc<K>,
    auditor: Arc<Auditor>,
    caller: Caller,
    tenant: String,
    admin: String,
    principal: String,
    timeout: Duration,
    started: Instant,
    hung_up: Arc<std::sync::atomic::AtomicBool>,
}

impl<K: KeySource> RotationTask<K> {
    async fn run(self) -> Result<u32, Refusal> {
        let refused = |code| Refusal::new(Outcome::RotateRefused, code);
        let rotated = match tokio::time::timeout(self.timeout, self.keys.rotate(&self.principal)).await {
            Err(_) => Err(Refusal::new(Outcome::DeadlineExceeded, RefusalCode::DeadlineExceeded)),
            Ok(Ok(kvno)) => Ok(kvno),
            Ok(Err(KeySourceError::NoSuchPrincipal(_))) => Err(refused(RefusalCode::NoPrincipal)),
            Ok(Err(KeySourceError::Unsupported(_))) => Err(refused(RefusalCode::CannotRotate)),
            Ok(Err(other)) => {
                tracing::error!(error = %other, principal = %self.principal, "rotating the key failed");
                Err(Refusal::new(Outcome::RotateFailed, RefusalCode::KeysUnavailable))
            }
        };
        let (outcome, kvno, code) = match &rotated {
            Ok(kvno) => (Outcome::Rotated, Some(*kvno), None),
            Err(refusal) => (refusal.outcome, None, Some(refusal.code)),
        };
        let mut attempt = self.caller.attempt(
            &self.tenant,
            &self.admin,
            Some(&self.principal),
            outcome,
            kvno,
            self.started,
        );
        attempt.cancelled = self.hung_up.load(Ordering::Relaxed);
        // The key has changed already, if it did; an audit failure is logged by the auditor.
        let _ = conclude(&self.auditor, &attempt, code);
        rotated
    }
}

/// A FetchKeytab attempt's audit record, written exactly once: by [`AuditOnce::write`] when the
/// request runs to its answer, or, when the caller hangs up first (tonic drops the handler, e.g.
/// during the failure delay), on drop, marked `cancelled`, with whatever was decided by then (the
/// real reason, or `abandoned` if nothing was).
struct AuditOnce {
    auditor: Arc<Auditor>,
    caller: Caller,
    tenant: String,
    username: String,
    started: Instant,
    outcome: Outcome,
    code: Option<RefusalCode>,
    grant: Option<(String, u32)>,
    delivery: Option<&'static str>,
    /// The kind of the tenant's identity source (`directory`, `oidc`), when the tenant is known.
    identity: Option<&'static str>,
    written: bool,
}

impl AuditOnce {
    fn new(auditor: Arc<Auditor>, caller: Caller, tenant: &str, username: &str, started: Instant) -> Self {
        Self {
            auditor,
            caller,
            tenant: tenant.to_owned(),
            username: username.to_owned(),
            started,
            outcome: Outcome::Abandoned,
            code: None,
            grant: None,
            delivery: None,
            identity: None,
            written: false,
        }
    }

    fn decided(&mut self, outcome: Outcome, code: Option<RefusalCode>) {
        self.outcome = outcome;
        self.code = code;
    }

    fn granted(&mut self, principal: &str, kvno: u32) {
        self.grant = Some((principal.to_owned(), kvno));
    }

    fn write(&mut self) -> std::io::Result<()> {
        self.record(false)
    }

    fn record(&mut self, cancelled: bool) -> std::io::Result<()> {
        self.written = true;
        let (principal, kvno) = match &self.grant {
            Some((principal, kvno)) => (Some(principal.as_str()), Some(*kvno)),
            None => (None, None),
        };
        let mut attempt = self.caller.attempt(
            &self.tenant,
            &self.username,
            principal,
            self.outcome,
            kvno,
            self.started,
        );
        attempt.cancelled = cancelled;
        attempt.delivery = self.delivery;
        attempt.identity = self.identity;
        conclude(&self.auditor, &attempt, self.code)
    }
}

impl Drop for AuditOnce {
    fn drop(&mut self) {
        if !self.written {
            tracing::info!(outcome = self.outcome.as_str(), "the caller hung up before the answer");
            let _ = self.record(true);
        }
    }
}

#[cfg(test)]
mod tests;
