//! Idle, already-open directory connections for users' binds, so a login does not pay a TLS
//! handshake with the directory (most of the broker's and the directory's cost per login).
//!
//! The rules that keep this exact:
//! - a connection is taken by one request at a time (an LDAP bind must not share a connection with
//!   other operations in flight), and every use starts with that request's own bind: whatever
//!   identity a connection was left with — a previous user, or anonymous after a refused bind —
//!   is replaced before anything else is sent on it;
//! - nothing but binds is ever sent on them (the service account's searches have their own
//!   connections; the DN-template mode, which searches as the user, opens a connection per login);
//! - a connection goes back only when every operation on it got an answer; one that timed out or
//!   broke is dropped, and so is one that sat idle longer than [`IDLE_LIMIT`] (directories close
//!   idle connections: OpenLDAP's `idletimeout`, AD's MaxConnIdleTime) or that goes to a server
//!   that failed since;
//! - at most `capacity` connections wait; beyond that a returned one is closed.

use super::simple_bind::BindConnection;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long a connection may wait unused before it is closed rather than reused.
pub const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// What the pool holds: an LDAP connection (a trait so the pool's rules can be unit-tested).
pub trait Reusable: Send + 'static {
    /// The connection has ended (the directory closed it, or it broke).
    fn is_closed(&mut self) -> bool;
    /// Ends it politely, without waiting.
    fn close(self);
}

impl Reusable for BindConnection {
    fn is_closed(&mut self) -> bool {
        self.has_ended()
    }

    /// The unbind runs in the background, briefly: nobody waits on it, and a frozen directory
    /// must not keep the task.
    fn close(self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), self.unbind()).await;
            });
        }
    }
}

/// An open connection for users' binds, and the server it goes to.
pub struct UserConnection<C = BindConnection> {
    pub conn: C,
    pub server: usize,
}

struct Idle<C> {
    conn: C,
    server: usize,
    since: Instant,
}

pub struct UserBindPool<C = BindConnection> {
    capacity: usize,
    idle: Mutex<Vec<Idle<C>>>,
}

impl<C: Reusable> UserBindPool<C> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            idle: Mutex::new(Vec::with_capacity(capacity)),
        }
    }

    /// The most recently returned connection that is still open, not idle too long and whose
    /// server `usable` accepts; the others it passes over are closed.
    pub fn take(&self, now: Instant, usable: impl Fn(usize) -> bool) -> Option<UserConnection<C>> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.lock();
            let mut found = None;
            while let Some(mut candidate) = idle.pop() {
                let fresh = now.saturating_duration_since(candidate.since) < IDLE_LIMIT;
                if fresh && !candidate.conn.is_closed() && usable(candidate.server) {
                    found = Some(candidate);
                    break;
                }
                stale.push(candidate.conn);
            }
            found
        };
        // Closed outside the lock: an unbind is a network write.
        for conn in stale {
            conn.close();
        }
        found.map(|idle| UserConnection {
            conn: idle.conn,
            server: idle.server,
        })
    }

    /// Gives back a connection whose every operation was answered; closed if the pool is full.
    pub fn give_back(&self, mut connection: UserConnection<C>, now: Instant) {
        let surplus = {
            let mut idle = self.lock();
            if idle.len() < self.capacity && !connection.conn.is_closed() {
                idle.push(Idle {
                    conn: connection.conn,
                    server: connection.server,
                    since: now,
                });
                None
            } else {
                Some(connection.conn)
            }
        };
        if let Some(conn) = surplus {
            conn.close();
        }
    }

    /// How many connections wait now.
    #[cfg(test)]
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle<C>>> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A connection that records whether it was closed.
    struct Fake {
        name: &'static str,
        ended: Arc<AtomicBool>,
        closes: Arc<AtomicUsize>,
    }

    impl Reusable for Fake {
        fn is_closed(&mut self) -> bool {
            self.ended.load(Ordering::SeqCst)
        }
        fn close(self) {
            self.closes.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Fakes {
        closes: Arc<AtomicUsize>,
    }

    impl Fakes {
        fn new() -> Self {
            Self { closes: Arc::default() }
        }
        fn conn(&self, name: &'static str, server: usize) -> (UserConnection<Fake>, Arc<AtomicBool>) {
            let ended = Arc::new(AtomicBool::new(false));
            let fake = Fake {
                name,
                ended: ended.clone(),
                closes: self.closes.clone(),
            };
            let connection = UserConnection { conn: fake, server };
            (connection, ended)
        }
        fn closed(&self) -> usize {
            self.closes.load(Ordering::SeqCst)
        }
    }

    fn name(taken: Option<UserConnection<Fake>>) -> Option<&'static str> {
        taken.map(|c| c.conn.name)
    }

    #[test]
    fn the_newest_open_connection_is_taken_and_each_only_once() {
        let fakes = Fakes::new();
        let pool = UserBindPool::new(4);
        let now = Instant::now();
        assert!(pool.take(now, |_| true).is_none(), "an empty pool has nothing");
        pool.give_back(fakes.conn("a", 0).0, now);
        pool.give_back(fakes.conn("b", 0).0, now);
        assert_eq!(name(pool.take(now, |_| true)), Some("b"));
        assert_eq!(name(pool.take(now, |_| true)), Some("a"));
        assert!(pool.take(now, |_| true).is_none(), "none is handed out twice");
        assert_eq!(fakes.closed(), 0);
    }

    #[test]
    fn closed_idle_too_long_and_failed_server_connections_are_closed_not_taken() {
        let fakes = Fakes::new();
        let pool = UserBindPool::new(8);
        let start = Instant::now();
        let (old, _) = fakes.conn("old", 0);
        pool.give_back(old, start);
        let later = start + IDLE_LIMIT - Duration::from_secs(1);
        let (good, _) = fakes.conn("good", 0);
        pool.give_back(good, later);
        let (ended, end) = fakes.conn("ended", 0);
        pool.give_back(ended, later);
        end.store(true, Ordering::SeqCst);
        let (other_server, _) = fakes.conn("on-1", 1);
        pool.give_back(other_server, later);

        let now = start + IDLE_LIMIT;
        assert_eq!(name(pool.take(now, |server| server != 1)), Some("good"));
        assert_eq!(fakes.closed(), 2, "the closed one and the one on the failed server");
        assert!(
            pool.take(now, |_| true).is_none(),
            "the one idle for IDLE_LIMIT is not reused"
        );
        assert_eq!(fakes.closed(), 3);
    }

    #[test]
    fn a_full_pool_closes_what_comes_back_and_a_closed_connection_is_not_kept() {
        let fakes = Fakes::new();
        let pool = UserBindPool::new(2);
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            pool.give_back(fakes.conn(name, 0).0, now);
        }
        assert_eq!(pool.idle(), 2);
        assert_eq!(fakes.closed(), 1, "the third is surplus");
        let (broken, end) = fakes.conn("broken", 0);
        end.store(true, Ordering::SeqCst);
        let empty = UserBindPool::new(2);
        empty.give_back(broken, now);
        assert_eq!(empty.idle(), 0, "an ended connection is never kept");
        let none = UserBindPool::new(0);
        none.give_back(fakes.conn("d", 0).0, now);
        assert_eq!(none.idle(), 0, "capacity 0: a fresh connection for every bind");
    }
}
