//! Keys through the kadm5 client library: a pool of admin sessions to kadmind, each checked
//! out for one call and checked back in after it.
//!
//! At most `sessions` calls (config `[tenants.X.keys] sessions`) run at once, each on a session
//! of its own; a call beyond them waits, within its deadline, for the first one to finish, so a
//! busy replica reuses its open sessions instead of opening (and authenticating) new ones.
//!
//! A kadm5 call blocks its thread, and one on a session whose connection went dark (kadmind
//! stuck, a firewall that dropped its state) blocks until libgssrpc's own timeout. It cannot be
//! cancelled; the request's deadline ends the wait, the call goes on in its thread, and its turn
//! is given to the next call, which takes an idle session or opens a fresh one instead of
//! queueing behind it. The number of calls still out past their deadline is bounded, so a
//! kadmind that answers nobody costs a bounded number of threads; beyond it requests are
//! refused at once.

use super::{KeySource, KeySourceError, keytab_from_keys};
use crate::kadm5::{Kadm5Error, Kadm5Session, Kadm5Verdict};
use ktbroker_keytab::Keytab;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Calls still out past their deadline (hung on a dark connection) beyond which requests are
/// refused.
const MAX_HUNG_CALLS: usize = 32;

/// Who the broker is to kadmind.
pub struct Kadm5Admin {
    pub principal: String,
    pub keytab: PathBuf,
    pub realm: String,
}

#[derive(Clone)]
pub struct Kadm5KeySource {
    admin: Arc<Kadm5Admin>,
    timeout: Duration,
    pool: Arc<SessionPool>,
}

struct SessionPool {
    idle: Mutex<Vec<Kadm5Session>>,
    /// A turn per session: held by a call while it runs within its deadline.
    turns: Semaphore,
    sessions: usize,
    /// Calls running, or hung past their deadline.
    outstanding: AtomicUsize,
}

impl SessionPool {
    fn take(&self) -> Option<Kadm5Session> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop()
    }

    /// Keeps `session` for the next call, or closes it if the pool is full (a call that ran past
    /// its deadline, while another opened a replacement).
    fn give_back(&self, session: Kadm5Session) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < self.sessions {
            idle.push(session);
        }
    }
}

/// One call out, counted until dropped (in the call's own thread, whenever it ends).
struct Outstanding(Arc<SessionPool>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Kadm5KeySource {
    /// `sessions`: calls to kadmind at once, at most (at least 1).
    pub fn new(admin: Kadm5Admin, timeout: Duration, sessions: usize) -> Self {
        let sessions = sessions.max(1);
        Self {
            admin: Arc::new(admin),
            timeout,
            pool: Arc::new(SessionPool {
                idle: Mutex::new(Vec::with_capacity(sessions)),
                turns: Semaphore::new(sessions),
                sessions,
                outstanding: AtomicUsize::new(0),
            }),
        }
    }

    /// Opens an admin session ahead of the first request; a failure is only logged (the next
    /// request tries again), so a broker can start while kadmind is briefly down.
    pub async fn warm_up(&self) {
        let this = self.clone();
        let opened = tokio::task::spawn_blocking(move || this.open().map(|session| this.pool.give_back(session))).await;
        match opened {
            Ok(Ok(())) => tracing::info!(admin = %self.admin.principal, "kadm5 admin session open"),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot open the kadm5 admin session yet"),
            Err(e) => tracing::error!(error = %e, "kadm5 warm-up task failed"),
        }
    }

    fn open(&self) -> Result<Kadm5Session, KeySourceError> {
        Kadm5Session::open(&self.admin.principal, &self.admin.keytab, &self.admin.realm)
            .map_err(|e| KeySourceError::Unavailable(e.to_string()))
    }

    /// Blocking: runs `op` on a checked-out session, on a fresh one once more if the call failed
    /// for a reason other than "no such principal", "already exists" or "not authorized"
    /// (expired ticket, kadmind restarted). A session whose call failed is closed.
    fn with_session<T>(
        &self,
        principal: &str,
        op: impl Fn(&mut Kadm5Session) -> Result<T, Kadm5Error>,
    ) -> Result<T, KeySourceError> {
        let mut session = match self.pool.take() {
            Some(session) => session,
            None => self.open()?,
        };
        let mut retried = false;
        loop {
            let verdict = match op(&mut session) {
                Ok(value) => Ok(value),
                Err(e) if e.is_unknown_principal() => Err(KeySourceError::NoSuchPrincipal(principal.to_owned())),
                Err(e) if e.is_not_authorized() || e.is_duplicate() => Err(KeySourceError::Refused(e.to_string())),
                Err(e) if retried => return Err(KeySourceError::Unavailable(e.to_string())),
                Err(e) => {
                    tracing::warn!(error = %e, "kadm5 call failed; retrying on a fresh admin session");
                    drop(session);
                    session = self.open()?;
                    retried = true;
                    continue;
                }
            };
            self.pool.give_back(session);
            return verdict;
        }
    }

    /// Runs a blocking kadm5 operation off the async threads, when a session's turn comes, all
    /// under the timeout.
    async fn blocking<T: Send + 'static>(
        &self,
        principal: &str,
        op: impl Fn(&mut Kadm5Session, &str) -> Result<T, Kadm5Error> + Send + 'static,
    ) -> Result<T, KeySourceError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let turn = tokio::time::timeout_at(deadline, self.pool.turns.acquire())
            .await
            .map_err(|_| {
                KeySourceError::Unavailable(format!(
                    "all {} kadm5 sessions stayed busy for {:?}",
                    self.pool.sessions, self.timeout
                ))
            })?
            .map_err(|e| KeySourceError::Unavailable(format!("kadm5 session pool: {e}")))?;
        let out = self.pool.outstanding.fetch_add(1, Ordering::AcqRel);
        let outstanding = Outstanding(self.pool.clone());
        if out >= self.pool.sessions + MAX_HUNG_CALLS {
            return Err(KeySourceError::Unavailable(format!(
                "{} kadm5 calls are still waiting for kadmind past their deadline",
                out.saturating_sub(self.pool.sessions)
            )));
        }
        let this = self.clone();
        let name = principal.to_owned();
        let task = tokio::task::spawn_blocking(move || {
            let _outstanding = outstanding;
            this.with_session(&name, |session| op(session, &name))
        });
        let answer = tokio::time::timeout_at(deadline, task).await;
        // On time or not, the turn goes to the next call now; a call that hangs keeps only its
        // own session and its count in `outstanding`.
        drop(turn);
        answer
            .map_err(|_| KeySourceError::Unavailable(format!("kadmind did not answer within {:?}", self.timeout)))?
            .map_err(|e| KeySourceError::Unavailable(format!("kadm5 task failed: {e}")))?
    }
}

impl KeySource for Kadm5KeySource {
    async fn fetch(&self, principal: &str) -> Result<Keytab, KeySourceError> {
        let keys = self
            .blocking(principal, |session, name| session.principal_keys(name))
            .await?;
        keytab_from_keys(principal, keys)
    }

    async fn create(&self, principal: &str) -> Result<(), KeySourceError> {
        self.blocking(principal, |session, name| session.create_principal(name))
            .await
    }

    async fn rotate(&self, principal: &str) -> Result<u32, KeySourceError> {
        // Two calls, so a retry after a failed key read can never randomize the key twice.
        self.blocking(principal, |session, name| session.randomize_key(name))
            .await?;
        // The new kvno, from the keys themselves (dropped, and so wiped, right here).
        self.blocking(principal, |session, name| {
            Ok(session.principal_keys(name)?.iter().map(|k| k.kvno).max().unwrap_or(0))
        })
        .await
    }
}
