//! Password check against the directory, in one of two modes:
//!
//! Search-then-bind (a service account):
//! 1. as the service account (a small pool of bound connections, used in turn, each re-opened
//!    when it fails; ldap3 multiplexes concurrent operations on each), search the tenant's user
//!    filter (by default the schema's, e.g. `(&(objectClass=posixAccount)(uid=<escaped>))`)
//!    under the user base, require exactly one entry;
//! 2. on a connection of the users' pool (see `user_binds`: open already, taken by this request
//!    alone, used for nothing but binds; `simple_bind` speaks on it), simple-bind as that entry's
//!    DN with the given password; why a bind was refused comes from the password policy control
//!    (OpenLDAP's ppolicy) or from AD's bind sub-code (see `ad`);
//! 3. as the service account, check membership of the allowed groups (see `groups`).
//!
//! DN-template bind (no service account): bind as the template DN with the username RFC
//! 4514-escaped into it, then check the groups on that same, user-bound connection (a fresh one
//! per login: it searches, so it is an ldap3 connection, not one of the users' pool). An unknown
//! user then looks like a wrong password to the broker too (the directory answers 49 for both).
//!
//! Empty passwords are refused before any connection (an empty simple bind is an anonymous bind).
//!
//! One password check gets one deadline, the directory timeout, for all of its steps (connects,
//! TLS, binds, searches, waiting for a pool slot): every step is given what is left of it, so a
//! hung directory costs a request that timeout and no more. With several servers a connect, and a
//! search on a pooled connection, get only a share of it, so a frozen server leaves time for the
//! next (see `servers`). No lock is held across a network step: a slot whose connection failed is
//! reopened by whoever needs it, outside the lock.
//!
//! Referrals are never chased: a search's continuation references are dropped, and a referral
//! result is an error.

mod ad;
mod ber;
mod change;
mod groups;
pub mod ppolicy;
pub mod probe;
mod servers;
pub mod simple_bind;
mod user_binds;

use crate::config::{DirectoryConfig, LdapTransport, UserLookup};
use crate::policy::Username;
use ad::BindRefusal;
pub use groups::{listed_filter, member_of_filter};
use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, StdStream, dn_escape, ldap_escape};
use servers::Servers;
pub use servers::discover;
use simple_bind::BindConnection;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use user_binds::{Reusable, UserBindPool, UserConnection};

/// LDAP result code for a failed simple bind (RFC 4511).
const RC_INVALID_CREDENTIALS: u32 = 49;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("empty password")]
    EmptyPassword,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("no such user in the directory")]
    UnknownUser,
    #[error("user is not in an authorized group")]
    NotInGroup,
    #[error("the directory has locked the account")]
    AccountLocked,
    #[error("the directory has disabled the account")]
    AccountDisabled,
    #[error("the account has expired")]
    AccountExpired,
    #[error("the account may not log in at this time or from here")]
    LogonRestricted,
    /// The right password, which an administrator reset: it must be changed first.
    #[error("the password must be changed (reset by an administrator)")]
    PasswordMustChange,
    /// The right password, past its maximum age (no grace logins left, or this was one).
    /// `changeable`: whether the broker can change it (OpenLDAP gives no bind to change an
    /// expired password on once the grace logins are used up).
    #[error("the password has expired")]
    PasswordExpired { changeable: bool },
    /// The directory refused a new password (its password policy).
    #[error("the directory refused the new password")]
    NewPasswordRejected(ktbroker_codes::PasswordRules),
    /// An identity provider's token that failed verification (signature, claims, replay).
    #[error("the identity provider's token was rejected: {0}")]
    TokenRejected(String),
    /// The identity provider authenticated the person without the required second factor
    /// (`acr`/`amr`).
    #[error("the login lacks the required authentication context")]
    AuthenticationContext,
    /// The person refused the device login at the identity provider.
    #[error("the sign-in was refused at the identity provider")]
    DeviceDenied,
    /// Nobody signed in at the identity provider before the device code expired.
    #[error("nobody signed in at the identity provider in time")]
    DeviceExpired,
    /// As many device logins are waiting as the tenant allows.
    #[error("too many sign-ins are waiting")]
    TooManyWaiting,
    #[error("directory unavailable: {0}")]
    Unavailable(String),
}

/// The principal the user's entry names, when the tenant takes it from an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryPrincipal {
    /// The tenant maps usernames through its template; the entry was not asked.
    NotAsked,
    Found(String),
    /// The attribute is missing, or has several values.
    Unusable {
        values: usize,
    },
}

/// A user whose password the directory accepted and who is in an authorized group.
#[derive(Debug, Clone)]
pub struct VerifiedUser {
    pub dn: String,
    pub principal: EntryPrincipal,
    /// The directory took a new password for this login (see [`Directory::change_password`]).
    pub password_changed: bool,
    /// In one of the directory's `keytab_groups`: may get a keytab where the tenant allows only
    /// tickets.
    pub in_keytab_group: bool,
}

/// Checks a username and password. A trait so the gRPC service can be unit-tested with a fake.
pub trait Directory: Send + Sync + 'static {
    fn verify(&self, user: &Username, password: &str) -> impl Future<Output = Result<VerifiedUser, AuthError>> + Send;

    /// For a password the directory wants changed (a `verify` answered PasswordMustChange or
    /// PasswordExpired): changes it to `new` in the directory, then checks the user as `verify`
    /// does with the new password. A password that needs no change is just verified.
    fn change_password(
        &self,
        user: &Username,
        old: &str,
        new: &str,
    ) -> impl Future<Output = Result<VerifiedUser, AuthError>> + Send;

    /// Whether the principal comes from the user's entry (then it is known only after `verify`).
    fn names_principals(&self) -> bool {
        false
    }

    /// Whether some users may get keytabs by group (`keytab_groups`): known only after `verify`.
    fn has_keytab_groups(&self) -> bool {
        false
    }

    /// For the audit: which kind of identity source this is.
    fn kind(&self) -> &'static str {
        "directory"
    }

    /// Whether a username and password can log in here (an identity provider may take only
    /// sign-ins at itself).
    fn offers_password_login(&self) -> bool {
        true
    }

    /// Whether people can sign in at an identity provider (`LoginWithProvider`).
    fn offers_device_login(&self) -> bool {
        false
    }

    /// Starts a sign-in at the identity provider (see `oidc::OidcSource::start_device_login`).
    fn start_device_login(&self) -> impl Future<Output = Result<crate::oidc::DeviceLogin, AuthError>> + Send {
        async {
            Err(AuthError::Unavailable(
                "this identity source has no provider sign-in".into(),
            ))
        }
    }

    /// Waits for the person to sign in, and names them.
    fn finish_device_login(
        &self,
        _login: &crate::oidc::DeviceLogin,
    ) -> impl Future<Output = Result<crate::oidc::SignedIn, AuthError>> + Send {
        async {
            Err(AuthError::Unavailable(
                "this identity source has no provider sign-in".into(),
            ))
        }
    }
}

pub struct LdapDirectory {
    config: DirectoryConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    servers: Servers,
    /// The service-account connection pool: slots opened on first use, taken in turn.
    service: Vec<std::sync::Mutex<Option<Pooled>>>,
    next_slot: std::sync::atomic::AtomicUsize,
    /// Numbers the pooled connections, so a failed one is cleared and not its replacement.
    opened: std::sync::atomic::AtomicU64,
    /// Open connections for users' binds.
    user_binds: UserBindPool,
}

/// An open connection and the server it goes to.
struct Connection {
    ldap: Ldap,
    server: usize,
}

/// A bound service-account connection in a pool slot.
#[derive(Clone)]
struct Pooled {
    id: u64,
    server: usize,
    ldap: Ldap,
}

/// Where a search runs: on the service account's pool, or on the user's own connection.
enum Via<'a> {
    Service,
    User(&'a mut Ldap),
}

/// What is left of one password check's time (see the module documentation).
#[derive(Debug, Clone, Copy)]
struct Budget {
    deadline: Instant,
}

impl Budget {
    fn of(timeout: Duration) -> Self {
        Self {
            deadline: Instant::now() + timeout,
        }
    }

    /// The time left, or `Unavailable` when none is.
    fn left(&self) -> Result<Duration, AuthError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AuthError::Unavailable("the directory timeout passed".into()));
        }
        Ok(left)
    }

    /// What is left, but at most `share`.
    fn at_most(&self, share: Duration) -> Result<Duration, AuthError> {
        Ok(self.left()?.min(share))
    }

    /// A budget inside this one that ends after `share` at the latest.
    fn within(&self, share: Duration) -> Result<Self, AuthError> {
        Ok(Self::of(self.at_most(share)?))
    }
}

impl LdapDirectory {
    pub fn new(config: DirectoryConfig) -> Result<Self, AuthError> {
        let plaintext = config
            .servers
            .iter()
            .all(|s| s.transport == LdapTransport::PlaintextLoopback);
        let tls = match (plaintext, &config.ca_pem) {
            (true, _) => None,
            (false, Some(pem)) => Some(pinned_tls_config(pem)?),
            (false, None) => return Err(AuthError::Unavailable("no CA configured for the directory".into())),
        };
        let servers = Servers::new(&config.servers)?;
        let pool_size = config.service_connections.max(1);
        Ok(Self {
            tls,
            servers,
            service: (0..pool_size).map(|_| std::sync::Mutex::new(None)).collect(),
            next_slot: std::sync::atomic::AtomicUsize::new(0),
            opened: std::sync::atomic::AtomicU64::new(0),
            user_binds: UserBindPool::new(config.user_bind_connections),
            config,
        })
    }

    /// The part of the timeout one server may take when there are others to fail over to.
    fn share(&self) -> Duration {
        let servers = u32::try_from(self.servers.len()).unwrap_or(u32::MAX).max(1);
        if servers == 1 {
            self.config.timeout
        } else {
            self.config.timeout / servers.saturating_add(1).min(4)
        }
    }

    /// A connection to the first server that takes one, in [`Servers::order`].
    async fn connect(&self, budget: Budget) -> Result<Connection, AuthError> {
        let (ldap, server) = self
            .first_server(budget, |index, budget| self.connect_to(index, budget))
            .await?;
        Ok(Connection { ldap, server })
    }

    /// `open` on the first server where it succeeds, in [`Servers::order`], and that server's
    /// index. With several servers each but the last gets only a share of the budget.
    async fn first_server<T, F>(
        &self,
        budget: Budget,
        open: impl Fn(usize, Budget) -> F,
    ) -> Result<(T, usize), AuthError>
    where
        F: Future<Output = Result<T, AuthError>>,
    {
        let order = self.servers.order(Instant::now());
        let mut last_error = None;
        for (n, &index) in order.iter().enumerate() {
            let last = n + 1 == order.len();
            let attempt_time = if last {
                budget.left()?
            } else {
                budget.at_most(self.share())?
            };
            match open(index, Budget::of(attempt_time)).await {
                Ok(opened) => {
                    self.servers.answered(index);
                    return Ok((opened, index));
                }
                Err(AuthError::Unavailable(why)) => {
                    tracing::warn!(server = %self.servers.get(index).url, error = %why, "directory connect failed");
                    self.servers.failed(index, Instant::now());
                    last_error = Some(why);
                }
                Err(other) => return Err(other),
            }
        }
        Err(AuthError::Unavailable(
            last_error.unwrap_or_else(|| "no directory server is configured".into()),
        ))
    }

    /// A TCP connection to server `index`, with Nagle's algorithm off: on an LDAP exchange of
    /// small writes it costs a delayed-ACK stall (~40 ms) per round trip (ldap3 leaves it on,
    /// so we open the socket ourselves).
    async fn tcp_to(&self, index: usize, budget: Budget) -> Result<tokio::net::TcpStream, AuthError> {
        let server = self.servers.get(index);
        let unavailable = |what: &str| AuthError::Unavailable(format!("connect to {}: {what}", server.url));
        let tcp = tokio::time::timeout(budget.left()?, tokio::net::TcpStream::connect(&server.address))
            .await
            .map_err(|_| unavailable("timed out"))?
            .map_err(|e| unavailable(&e.to_string()))?;
        tcp.set_nodelay(true).map_err(|e| unavailable(&e.to_string()))?;
        Ok(tcp)
    }

    async fn connect_to(&self, index: usize, budget: Budget) -> Result<Ldap, AuthError> {
        let server = self.servers.get(index);
        let unavailable = |what: &str| AuthError::Unavailable(format!("connect to {}: {what}", server.url));
        let tcp = self
            .tcp_to(index, budget)
            .await?
            .into_std()
            .map_err(|e| unavailable(&e.to_string()))?;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(budget.left()?)
            .set_starttls(server.transport == LdapTransport::StartTls)
            .set_std_stream(StdStream::Tcp(tcp));
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let connecting = LdapConnAsync::with_settings(settings, &server.url);
        let (conn, ldap) = tokio::time::timeout(budget.left()?, connecting)
            .await
            .map_err(|_| unavailable("TLS or StartTLS timed out"))?
            .map_err(|e| unavailable(&e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended with an error");
            }
        });
        Ok(ldap)
    }

    /// A new connection for users' binds to server `index` (see `simple_bind`).
    async fn bind_connection_to(&self, index: usize, budget: Budget) -> Result<BindConnection, AuthError> {
        let server = self.servers.get(index);
        let tcp = self.tcp_to(index, budget).await?;
        let opening = BindConnection::open(tcp, &server.host, &server.transport, self.tls.as_ref());
        tokio::time::timeout(budget.left()?, opening)
            .await
            .map_err(|_| AuthError::Unavailable(format!("connect to {}: TLS or StartTLS timed out", server.url)))?
            .map_err(|e| AuthError::Unavailable(format!("connect to {}: {e}", server.url)))
    }

    /// Binds as a user (ldap3) with the password policy request control, and says why a bind
    /// was refused when the directory tells (see [`judge_user_bind`]).
    async fn bind_user(&self, ldap: &mut Ldap, dn: &str, password: &str, budget: Budget) -> Result<(), AuthError> {
        let request = RawControl {
            ctype: ppolicy::OID.into(),
            crit: false,
            val: None,
        };
        let result = ldap
            .with_controls(request)
            .with_timeout(budget.left()?)
            .simple_bind(dn, password)
            .await
            .map_err(|e| AuthError::Unavailable(format!("bind: {e}")))?;
        judge_user_bind(result.rc, &result.text, ppolicy::response_value(&result))
    }

    /// A user's bind on one of the users' connections, within `budget`.
    async fn bind_on(
        connection: &mut BindConnection,
        dn: &str,
        password: &str,
        budget: Budget,
    ) -> Result<(), AuthError> {
        let answer = tokio::time::timeout(budget.left()?, connection.bind(dn, password))
            .await
            .map_err(|_| AuthError::Unavailable("bind: the directory did not answer in time".into()))?
            .map_err(|e| AuthError::Unavailable(format!("bind: {e}")))?;
        judge_user_bind(answer.rc, &answer.text, answer.ppolicy.as_deref())
    }

    /// Checks a user's password with a bind on a connection of the users' pool, or on a fresh
    /// one when none waits; the connection then goes back to the pool unless it failed.
    /// A pooled connection that fails (the directory closed it, or its server froze: then it gets
    /// only a share of the time, with several servers) is dropped and the bind tried once more on
    /// a fresh connection: the first bind got no answer, so the directory counted no attempt
    /// unless it froze mid-way.
    async fn check_password(&self, dn: &str, password: &str, budget: Budget) -> Result<(), AuthError> {
        let now = Instant::now();
        if let Some(mut pooled) = self
            .user_binds
            .take(now, |server| !self.servers.recently_failed(server, now))
        {
            let outcome = Self::bind_on(&mut pooled.conn, dn, password, budget.within(self.share())?).await;
            let Err(AuthError::Unavailable(why)) = &outcome else {
                self.settle(pooled, &outcome);
                return outcome;
            };
            tracing::debug!(error = %why, "pooled user-bind connection failed; binding on a fresh one");
            // Ended: the directory closed it (idle timeout, restart). Open but silent: frozen.
            if !pooled.conn.is_closed() && self.servers.len() > 1 {
                self.servers.failed(pooled.server, Instant::now());
            }
            self.settle(pooled, &outcome);
        }
        let (conn, server) = self
            .first_server(budget, |index, budget| self.bind_connection_to(index, budget))
            .await?;
        let mut fresh = UserConnection { conn, server };
        let outcome = Self::bind_on(&mut fresh.conn, dn, password, budget).await;
        self.settle(fresh, &outcome);
        outcome
    }

    /// After a bind: the connection goes back to the users' pool when the directory answered
    /// (whatever it answered), and is closed when it did not.
    fn settle(&self, connection: UserConnection, outcome: &Result<(), AuthError>) {
        match outcome {
            Err(AuthError::Unavailable(_)) => connection.conn.close(),
            _ => self.user_binds.give_back(connection, Instant::now()),
        }
    }

    /// The service account's bind; `Ok(false)` means the directory said "invalid credentials".
    async fn bind(&self, ldap: &mut Ldap, dn: &str, password: &str, budget: Budget) -> Result<bool, AuthError> {
        let result = ldap
            .with_timeout(budget.left()?)
            .simple_bind(dn, password)
            .await
            .map_err(|e| AuthError::Unavailable(format!("bind: {e}")))?;
        match result.rc {
            0 => Ok(true),
            RC_INVALID_CREDENTIALS => Ok(false),
            rc => Err(AuthError::Unavailable(format!("bind answered rc={rc} {}", result.text))),
        }
    }

    /// The entries matching `filter` with `attributes` (`1.1` for none). Continuation references
    /// (AD sends them for its other partitions) are dropped, never followed.
    async fn search_entries(
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
        time: Duration,
    ) -> Result<Vec<SearchEntry>, AuthError> {
        let (entries, _) = ldap
            .with_timeout(time)
            .search(base, scope, filter, attributes.to_vec())
            .await
            .and_then(|r| r.success())
            .map_err(|e| AuthError::Unavailable(format!("search under {base}: {e}")))?;
        Ok(entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
            .collect())
    }

    /// A search wherever `via` says.
    async fn search(
        &self,
        via: &mut Via<'_>,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
        budget: Budget,
    ) -> Result<Vec<SearchEntry>, AuthError> {
        match via {
            Via::Service => self.service_search(base, scope, filter, attributes, budget).await,
            Via::User(ldap) => Self::search_entries(ldap, base, scope, filter, attributes, budget.left()?).await,
        }
    }

    /// The DNs of the entries matching `filter`.
    async fn search_dns(
        &self,
        via: &mut Via<'_>,
        base: &str,
        scope: Scope,
        filter: &str,
        budget: Budget,
    ) -> Result<Vec<String>, AuthError> {
        let entries = self.search(via, base, scope, filter, &["1.1"], budget).await?;
        Ok(entries.into_iter().map(|e| e.dn).collect())
    }

    /// The bound service-account connection in pool slot `index`, opened on first use and again
    /// after it failed. The slot is locked only to look and to store, never across the reconnect,
    /// so a hung directory holds up no one else's request (each waits only on its own budget).
    async fn service_connection(&self, index: usize, budget: Budget) -> Result<Pooled, AuthError> {
        if let Some(pooled) = self.healthy(index) {
            return Ok(pooled);
        }
        let UserLookup::Search {
            bind_dn, bind_password, ..
        } = &self.config.lookup
        else {
            return Err(AuthError::Unavailable("no service account is configured".into()));
        };
        let Connection { mut ldap, server } = self.connect(budget).await?;
        if !self.bind(&mut ldap, bind_dn, &bind_password.0, budget).await? {
            return Err(AuthError::Unavailable("the service account's bind was refused".into()));
        }
        let fresh = Pooled {
            id: self.opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            server,
            ldap,
        };
        let mut slot = self.slot(index);
        match still_open(&mut slot) {
            // Another request reopened the slot meanwhile: use its connection, let ours go.
            Some(theirs) => Ok(theirs),
            None => {
                *slot = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// The connection in slot `index`, if it has one that is still open.
    fn healthy(&self, index: usize) -> Option<Pooled> {
        still_open(&mut self.slot(index))
    }

    /// Empties slot `index` if it still holds the connection numbered `id`.
    fn clear(&self, index: usize, id: u64) {
        let mut slot = self.slot(index);
        if slot.as_ref().is_some_and(|p| p.id == id) {
            *slot = None;
        }
    }

    fn slot(&self, index: usize) -> std::sync::MutexGuard<'_, Option<Pooled>> {
        self.service[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A search as the service account; on failure retried once on a fresh connection (the shared
    /// one may have been closed by the directory's idle timeout or a restart, or its server may
    /// have frozen: with several servers the first try gets only a share of the time).
    async fn service_search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
        budget: Budget,
    ) -> Result<Vec<SearchEntry>, AuthError> {
        let index = self.next_slot.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.service.len();
        let mut pooled = self.service_connection(index, budget).await?;
        let first_try = budget.at_most(self.share())?;
        match Self::search_entries(&mut pooled.ldap, base, scope, filter, attributes, first_try).await {
            Err(AuthError::Unavailable(why)) => {
                tracing::debug!(error = %why, slot = index, "service connection failed; retrying on a fresh one");
                self.clear(index, pooled.id);
                if self.servers.len() > 1 {
                    self.servers.failed(pooled.server, Instant::now());
                }
                let mut pooled = self.service_connection(index, budget).await?;
                Self::search_entries(&mut pooled.ldap, base, scope, filter, attributes, budget.left()?).await
            }
            result => result,
        }
    }
}

impl Directory for LdapDirectory {
    async fn verify(&self, user: &Username, password: &str) -> Result<VerifiedUser, AuthError> {
        let budget = Budget::of(self.config.timeout);
        // The steps stop at the deadline themselves; this is the backstop for any wait between them.
        tokio::time::timeout_at(budget.deadline, self.verify_within(user, password, budget))
            .await
            .unwrap_or_else(|_| Err(AuthError::Unavailable("the directory timeout passed".into())))
    }

    async fn change_password(&self, user: &Username, old: &str, new: &str) -> Result<VerifiedUser, AuthError> {
        let budget = Budget::of(self.config.timeout);
        tokio::time::timeout_at(budget.deadline, self.change_within(user, old, new, budget))
            .await
            .unwrap_or_else(|_| Err(AuthError::Unavailable("the directory timeout passed".into())))
    }

    fn names_principals(&self) -> bool {
        self.config.principal_attribute.is_some()
    }

    fn has_keytab_groups(&self) -> bool {
        !self.config.keytab_groups.is_empty()
    }
}

impl LdapDirectory {
    /// The whole password check within `budget`.
    async fn verify_within(&self, user: &Username, password: &str, budget: Budget) -> Result<VerifiedUser, AuthError> {
        if password.trim().is_empty() {
            return Err(AuthError::EmptyPassword);
        }
        match &self.config.lookup {
            UserLookup::Search { user_base, .. } => self.search_then_bind(user_base, user, password, budget).await,
            UserLookup::Template { template } => self.template_bind(template, user, password, budget).await,
        }
    }

    async fn search_then_bind(
        &self,
        user_base: &str,
        user: &Username,
        password: &str,
        budget: Budget,
    ) -> Result<VerifiedUser, AuthError> {
        let entry = self.find_entry(user_base, user, budget).await?;
        // The user's bind never happens on the service account's connections.
        self.check_password(&entry.dn, password, budget).await?;

        if !self
            .in_allowed_group(&mut Via::Service, &entry.dn, user, budget)
            .await?
        {
            return Err(AuthError::NotInGroup);
        }
        let in_keytab_group = self.in_keytab_group(&mut Via::Service, &entry.dn, user, budget).await?;
        Ok(VerifiedUser {
            principal: self.entry_principal(&entry),
            dn: entry.dn,
            password_changed: false,
            in_keytab_group,
        })
    }

    async fn template_bind(
        &self,
        template: &str,
        user: &Username,
        password: &str,
        budget: Budget,
    ) -> Result<VerifiedUser, AuthError> {
        let dn = template_dn(template, user);
        let mut as_user = self.connect(budget).await?.ldap;
        let result = async {
            self.bind_user(&mut as_user, &dn, password, budget).await?;
            let mut via = Via::User(&mut as_user);
            if !self.in_allowed_group(&mut via, &dn, user, budget).await? {
                return Err(AuthError::NotInGroup);
            }
            let in_keytab_group = self.in_keytab_group(&mut via, &dn, user, budget).await?;
            if self.config.principal_attribute.is_none() {
                return Ok((EntryPrincipal::NotAsked, in_keytab_group));
            }
            let attributes = self.entry_attributes();
            let mut entries = self
                .search(&mut via, &dn, Scope::Base, "(objectClass=*)", &attributes, budget)
                .await?;
            let principal = match entries.pop() {
                Some(entry) => self.entry_principal(&entry),
                None => EntryPrincipal::Unusable { values: 0 },
            };
            Ok((principal, in_keytab_group))
        }
        .await;
        let _ = as_user.unbind().await;
        let (principal, in_keytab_group) = result?;
        Ok(VerifiedUser {
            dn,
            principal,
            password_changed: false,
            in_keytab_group,
        })
    }

    /// The one entry the user filter finds for `user` (search-then-bind).
    async fn find_entry(&self, user_base: &str, user: &Username, budget: Budget) -> Result<SearchEntry, AuthError> {
        let attributes = self.entry_attributes();
        let filter = user_filter(&self.config.user_filter, user);
        let mut entries = self
            .service_search(user_base, Scope::Subtree, &filter, &attributes, budget)
            .await?;
        match entries.len() {
            1 => Ok(entries.remove(0)),
            0 => Err(AuthError::UnknownUser),
            n => {
                tracing::error!(user = %user, entries = n, "username matches several directory entries; refusing");
                Err(AuthError::UnknownUser)
            }
        }
    }

    /// What the user search asks for: the principal attribute, if the principal comes from it.
    fn entry_attributes(&self) -> Vec<&str> {
        match &self.config.principal_attribute {
            Some(attribute) => vec![attribute.as_str()],
            None => vec!["1.1"],
        }
    }

    fn entry_principal(&self, entry: &SearchEntry) -> EntryPrincipal {
        let Some(attribute) = &self.config.principal_attribute else {
            return EntryPrincipal::NotAsked;
        };
        // Attribute names are case-insensitive; the directory may spell it its own way.
        let values: Vec<&String> = entry
            .attrs
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(attribute))
            .flat_map(|(_, values)| values)
            .collect();
        match values.as_slice() {
            [one] => EntryPrincipal::Found((*one).clone()),
            _ => EntryPrincipal::Unusable { values: values.len() },
        }
    }
}

/// What a user's bind answer means: `rc` and the diagnostic `text` (AD's sub-code), with the
/// password policy response control's value if the directory sent one.
fn judge_user_bind(rc: u32, text: &str, policy: Option<&[u8]>) -> Result<(), AuthError> {
    let policy_error = policy.and_then(ppolicy::response_error);
    // A temporary or expired password never yields keys, even though the directory let it bind.
    match (rc, policy_error) {
        (0, Some(ppolicy::PolicyError::ChangeAfterReset)) => Err(AuthError::PasswordMustChange),
        (0, _) if policy.is_some_and(ppolicy::grace_login) => Err(AuthError::PasswordExpired { changeable: true }),
        (0, _) => Ok(()),
        (RC_INVALID_CREDENTIALS, Some(ppolicy::PolicyError::AccountLocked)) => Err(AuthError::AccountLocked),
        (RC_INVALID_CREDENTIALS, Some(ppolicy::PolicyError::PasswordExpired)) => {
            Err(AuthError::PasswordExpired { changeable: false })
        }
        (RC_INVALID_CREDENTIALS, _) => Err(match ad::bind_refusal(text) {
            None | Some(BindRefusal::WrongPassword) => AuthError::InvalidCredentials,
            Some(BindRefusal::NoSuchUser) => AuthError::UnknownUser,
            Some(BindRefusal::LogonRestricted) => AuthError::LogonRestricted,
            // AD lets another account change it with the old password (see `change`).
            Some(BindRefusal::PasswordExpired) => AuthError::PasswordExpired { changeable: true },
            Some(BindRefusal::AccountDisabled) => AuthError::AccountDisabled,
            Some(BindRefusal::AccountExpired) => AuthError::AccountExpired,
            Some(BindRefusal::PasswordMustChange) => AuthError::PasswordMustChange,
            Some(BindRefusal::AccountLocked) => AuthError::AccountLocked,
        }),
        (rc, _) => Err(AuthError::Unavailable(format!("bind answered rc={rc} {text}"))),
    }
}

fn still_open(slot: &mut Option<Pooled>) -> Option<Pooled> {
    let pooled = slot.as_mut()?;
    (!pooled.ldap.is_closed()).then(|| pooled.clone())
}

/// The user's DN from a template, the username escaped per RFC 4514 (it is also charset-checked).
pub fn template_dn(template: &str, user: &Username) -> String {
    template.replace("{user}", &dn_escape(user.as_str()))
}

/// The tenant's user filter with the username escaped per RFC 4515 (it is also charset-checked).
pub fn user_filter(template: &str, user: &Username) -> String {
    template.replace("{user}", &ldap_escape(user.as_str()))
}

/// A rustls client config that trusts only the given CA bundle, TLS 1.2 and 1.3, ring provider.
pub fn pinned_tls_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, AuthError> {
    crate::tls::client_config_trusting(ca_pem).map_err(|e| AuthError::Unavailable(format!("directory CA: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Schema;
    use crate::policy::validate_username;

    #[test]
    fn user_filters_put_the_escaped_name_into_the_template() {
        let alice = validate_username("alice").unwrap();
        let rfc2307 = Schema::Rfc2307.user_filter("uid");
        assert_eq!(
            user_filter(&rfc2307, &alice),
            "(&(objectClass=posixAccount)(uid=alice))"
        );
        let ad = Schema::ActiveDirectory.user_filter("sAMAccountName");
        assert_eq!(
            user_filter(&ad, &alice),
            "(&(objectCategory=person)(objectClass=user)(sAMAccountName=alice))"
        );
        let upn = "(&(objectClass=user)(userPrincipalName={user}@corp.example.com))";
        assert_eq!(
            user_filter(upn, &alice),
            "(&(objectClass=user)(userPrincipalName=alice@corp.example.com))"
        );
        // Names the policy would refuse anyway still cannot change the filter's shape.
        let hostile = Username::unchecked_for_tests("*)(uid=*");
        assert_eq!(
            user_filter(&rfc2307, &hostile),
            "(&(objectClass=posixAccount)(uid=\\2a\\29\\28uid=\\2a))"
        );
    }

    #[test]
    fn template_dns_escape_the_username() {
        let template = "uid={user},ou=people,dc=example,dc=com";
        let alice = validate_username("alice").unwrap();
        assert_eq!(template_dn(template, &alice), "uid=alice,ou=people,dc=example,dc=com");
        // Names the policy would refuse anyway still cannot change the DN's shape.
        for (raw, escaped) in [
            ("a,b", "a\\2cb"),
            ("a+b", "a\\2bb"),
            ("#a", "\\23a"),
            ("a=b", "a\\3db"),
            ("a ", "a\\20"),
        ] {
            let user = Username::unchecked_for_tests(raw);
            assert_eq!(
                template_dn(template, &user),
                format!("uid={escaped},ou=people,dc=example,dc=com")
            );
        }
    }
}
