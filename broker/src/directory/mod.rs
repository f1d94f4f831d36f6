//! Password check against the directory, in one of two modes:
//!
//! Search-then-bind (a service account):
//! 1. as the service account (a small pool of bound connections, used in turn, each re-opened
//!    when it fails; ldap3 multiplexes concurrent operations on each), search
//!    `(&(objectClass=posixAccount)(uid=<escaped>))` under the user base, require exactly one entry;
//! 2. on a fresh connection, simple-bind as that entry's DN with the given password;
//! 3. as the service account, check the DN (groupOfNames `member`) or uid (posixGroup `memberUid`)
//!    is in the configured group.
//!
//! DN-template bind (no service account): bind as the template DN with the username RFC
//! 4514-escaped into it, then check the group on that same, user-bound connection. An unknown user
//! then looks like a wrong password to the broker too (the directory answers 49 for both).
//!
//! Empty passwords are refused before any connection (an empty simple bind is an anonymous bind).
//!
//! One password check gets one deadline, the directory timeout, for all of its steps (connects,
//! TLS, binds, searches, waiting for a pool slot): every step is given what is left of it, so a
//! hung directory costs a request that timeout and no more. No lock is held across a network
//! step: a slot whose connection failed is reopened by whoever needs it, outside the lock.

mod ppolicy;

use crate::config::{DirectoryConfig, LdapTransport, UserLookup};
use crate::policy::Username;
use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, StdStream, dn_escape, ldap_escape};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

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
    #[error("user is not in the authorized group")]
    NotInGroup,
    #[error("the directory's password policy has locked the account")]
    AccountLocked,
    /// The right password, which an administrator reset: it must be changed first.
    #[error("the password must be changed (reset by an administrator)")]
    PasswordMustChange,
    /// The right password, past its maximum age (no grace logins left, or this was one).
    #[error("the password has expired")]
    PasswordExpired,
    #[error("directory unavailable: {0}")]
    Unavailable(String),
}

/// A user whose password the directory accepted and who is in the authorized group.
#[derive(Debug, Clone)]
pub struct VerifiedUser {
    pub dn: String,
}

/// Checks a username and password. A trait so the gRPC service can be unit-tested with a fake.
pub trait Directory: Send + Sync + 'static {
    fn verify(&self, user: &Username, password: &str) -> impl Future<Output = Result<VerifiedUser, AuthError>> + Send;
}

pub struct LdapDirectory {
    config: DirectoryConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `host:port` from the URL, for connecting the socket ourselves.
    address: String,
    /// The service-account connection pool: slots opened on first use, taken in turn.
    service: Vec<std::sync::Mutex<Option<Pooled>>>,
    next_slot: std::sync::atomic::AtomicUsize,
    /// Numbers the pooled connections, so a failed one is cleared and not its replacement.
    opened: std::sync::atomic::AtomicU64,
}

/// A bound service-account connection in a pool slot.
#[derive(Clone)]
struct Pooled {
    id: u64,
    ldap: Ldap,
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
}

impl LdapDirectory {
    pub fn new(config: DirectoryConfig) -> Result<Self, AuthError> {
        let tls = match (&config.transport, &config.ca_pem) {
            (LdapTransport::PlaintextLoopback, _) => None,
            (_, Some(pem)) => Some(pinned_tls_config(pem)?),
            (_, None) => return Err(AuthError::Unavailable("no CA configured for the directory".into())),
        };
        let address = socket_address(&config.url)?;
        let pool_size = config.service_connections.max(1);
        Ok(Self {
            config,
            tls,
            address,
            service: (0..pool_size).map(|_| std::sync::Mutex::new(None)).collect(),
            next_slot: std::sync::atomic::AtomicUsize::new(0),
            opened: std::sync::atomic::AtomicU64::new(0),
        })
    }

    async fn connect(&self, budget: Budget) -> Result<Ldap, AuthError> {
        let unavailable = |what: &str| AuthError::Unavailable(format!("connect to {}: {what}", self.config.url));
        // We open the socket ourselves: ldap3 leaves Nagle's algorithm on, and on an LDAP exchange
        // of small writes that costs a delayed-ACK stall (~40 ms) per round trip.
        let tcp = tokio::time::timeout(budget.left()?, tokio::net::TcpStream::connect(&self.address))
            .await
            .map_err(|_| unavailable("timed out"))?
            .map_err(|e| unavailable(&e.to_string()))?;
        tcp.set_nodelay(true).map_err(|e| unavailable(&e.to_string()))?;
        let tcp = tcp.into_std().map_err(|e| unavailable(&e.to_string()))?;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(budget.left()?)
            .set_starttls(self.config.transport == LdapTransport::StartTls)
            .set_std_stream(StdStream::Tcp(tcp));
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let connecting = LdapConnAsync::with_settings(settings, &self.config.url);
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

    /// Binds as a user with the password policy request control; distinguishes a locked account
    /// (ppolicy response `accountLocked`) from a wrong password.
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
        let policy = result
            .ctrls
            .iter()
            .filter(|c| c.1.ctype == ppolicy::OID)
            .find_map(|c| c.1.val.as_deref());
        let policy_error = policy.and_then(ppolicy::response_error);
        // A temporary or expired password never yields keys, even though the directory let it bind.
        match (result.rc, policy_error) {
            (0, Some(ppolicy::PolicyError::ChangeAfterReset)) => Err(AuthError::PasswordMustChange),
            (0, _) if policy.is_some_and(ppolicy::grace_login) => Err(AuthError::PasswordExpired),
            (0, _) => Ok(()),
            (RC_INVALID_CREDENTIALS, Some(ppolicy::PolicyError::AccountLocked)) => Err(AuthError::AccountLocked),
            (RC_INVALID_CREDENTIALS, Some(ppolicy::PolicyError::PasswordExpired)) => Err(AuthError::PasswordExpired),
            (RC_INVALID_CREDENTIALS, _) => Err(AuthError::InvalidCredentials),
            (rc, _) => Err(AuthError::Unavailable(format!("bind answered rc={rc} {}", result.text))),
        }
    }

    /// Binds; `Ok(false)` means the directory said "invalid credentials".
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

    /// Returns the DNs of the entries matching `filter` (attributes not fetched).
    async fn search_dns(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        budget: Budget,
    ) -> Result<Vec<String>, AuthError> {
        let (entries, _) = ldap
            .with_timeout(budget.left()?)
            .search(base, scope, filter, vec!["1.1"])
            .await
            .and_then(|r| r.success())
            .map_err(|e| AuthError::Unavailable(format!("search under {base}: {e}")))?;
        Ok(entries.into_iter().map(|e| SearchEntry::construct(e).dn).collect())
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
        let mut ldap = self.connect(budget).await?;
        if !self.bind(&mut ldap, bind_dn, &bind_password.0, budget).await? {
            return Err(AuthError::Unavailable("the service account's bind was refused".into()));
        }
        let fresh = Pooled {
            id: self.opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
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
    /// one may have been closed by the directory's idle timeout or a restart), within the budget.
    async fn service_search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        budget: Budget,
    ) -> Result<Vec<String>, AuthError> {
        let index = self.next_slot.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.service.len();
        let mut pooled = self.service_connection(index, budget).await?;
        match self.search_dns(&mut pooled.ldap, base, scope, filter, budget).await {
            Err(AuthError::Unavailable(why)) => {
                tracing::debug!(error = %why, slot = index, "service connection failed; retrying on a fresh one");
                self.clear(index, pooled.id);
                let mut pooled = self.service_connection(index, budget).await?;
                self.search_dns(&mut pooled.ldap, base, scope, filter, budget).await
            }
            result => result,
        }
    }
}

impl Directory for LdapDirectory {
    async fn verify(&self, user: &Username, password: &str) -> Result<VerifiedUser, AuthError> {
        if password.trim().is_empty() {
            return Err(AuthError::EmptyPassword);
        }
        let budget = Budget::of(self.config.timeout);
        let check = async {
            match &self.config.lookup {
                UserLookup::Search { user_base, .. } => self.search_then_bind(user_base, user, password, budget).await,
                UserLookup::Template { template } => self.template_bind(template, user, password, budget).await,
            }
        };
        // The steps stop at the deadline themselves; this is the backstop for any wait between them.
        tokio::time::timeout_at(budget.deadline, check)
            .await
            .unwrap_or_else(|_| Err(AuthError::Unavailable("the directory timeout passed".into())))
    }
}

impl LdapDirectory {
    async fn search_then_bind(
        &self,
        user_base: &str,
        user: &Username,
        password: &str,
        budget: Budget,
    ) -> Result<VerifiedUser, AuthError> {
        let mut dns = self
            .service_search(user_base, Scope::Subtree, &user_filter(user), budget)
            .await?;
        let dn = match dns.len() {
            1 => dns.remove(0),
            0 => return Err(AuthError::UnknownUser),
            n => {
                tracing::error!(user = %user, entries = n, "username matches several directory entries; refusing");
                return Err(AuthError::UnknownUser);
            }
        };

        // The user's bind always happens on a connection of its own, never the shared one.
        let mut as_user = self.connect(budget).await?;
        let accepted = self.bind_user(&mut as_user, &dn, password, budget).await;
        let _ = as_user.unbind().await;
        accepted?;

        let in_group = self
            .service_search(&self.config.group_dn, Scope::Base, &group_filter(&dn, user), budget)
            .await?;
        if in_group.is_empty() {
            return Err(AuthError::NotInGroup);
        }
        Ok(VerifiedUser { dn })
    }

    async fn template_bind(
        &self,
        template: &str,
        user: &Username,
        password: &str,
        budget: Budget,
    ) -> Result<VerifiedUser, AuthError> {
        let dn = template_dn(template, user);
        let mut as_user = self.connect(budget).await?;
        let result = async {
            self.bind_user(&mut as_user, &dn, password, budget).await?;
            let filter = group_filter(&dn, user);
            self.search_dns(&mut as_user, &self.config.group_dn, Scope::Base, &filter, budget)
                .await
        }
        .await;
        let _ = as_user.unbind().await;
        if result?.is_empty() {
            return Err(AuthError::NotInGroup);
        }
        Ok(VerifiedUser { dn })
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

/// The fixed user filter, with the username escaped per RFC 4515 (it is also charset-checked).
pub fn user_filter(user: &Username) -> String {
    format!("(&(objectClass=posixAccount)(uid={}))", ldap_escape(user.as_str()))
}

/// Membership by DN (groupOfNames) or by uid (posixGroup); both values escaped per RFC 4515.
pub fn group_filter(dn: &str, user: &Username) -> String {
    format!(
        "(|(member={})(memberUid={}))",
        ldap_escape(dn),
        ldap_escape(user.as_str())
    )
}

/// `host:port` of an `ldap://` or `ldaps://` URL (default ports 389 and 636).
fn socket_address(url: &str) -> Result<String, AuthError> {
    let parsed = url::Url::parse(url).map_err(|e| AuthError::Unavailable(format!("directory URL {url}: {e}")))?;
    let host = parsed.host_str().filter(|h| !h.is_empty()).unwrap_or("localhost");
    let port = parsed
        .port()
        .unwrap_or(if parsed.scheme() == "ldaps" { 636 } else { 389 });
    Ok(format!("{host}:{port}"))
}

/// A rustls client config that trusts only the given CA bundle, TLS 1.2 and 1.3, ring provider.
fn pinned_tls_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, AuthError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let bad_ca = |e: &dyn std::fmt::Display| AuthError::Unavailable(format!("directory CA: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.map_err(|e| bad_ca(&e))?).map_err(|e| bad_ca(&e))?;
    }
    if roots.is_empty() {
        return Err(bad_ca(&"no certificate in the CA file"));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| bad_ca(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::validate_username;

    #[test]
    fn socket_address_comes_from_the_url_with_default_ports() {
        assert_eq!(
            socket_address("ldaps://dir.example.com/").unwrap(),
            "dir.example.com:636"
        );
        assert_eq!(socket_address("ldap://dir.example.com").unwrap(), "dir.example.com:389");
        assert_eq!(socket_address("ldaps://127.0.0.1:1636/").unwrap(), "127.0.0.1:1636");
        assert_eq!(socket_address("ldap://[::1]:389").unwrap(), "[::1]:389");
    }

    #[test]
    fn filters_have_a_fixed_shape_and_escaped_values() {
        let alice = validate_username("alice").unwrap();
        assert_eq!(user_filter(&alice), "(&(objectClass=posixAccount)(uid=alice))");
        let dn = "uid=a*b,ou=people\\, x (y),dc=example,dc=com";
        assert_eq!(
            group_filter(dn, &alice),
            "(|(member=uid=a\\2ab,ou=people\\5c, x \\28y\\29,dc=example,dc=com)(memberUid=alice))"
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
