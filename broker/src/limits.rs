//! Online-guessing limits: failed authentications are counted per username and per source
//! address; `max_failures` within `window` locks that username or address for `lockout`. A locked
//! attempt is refused like any failed one (same status, same latency floor) without contacting
//! the directory. A success clears the username's count (not the address's: one right password
//! must not reset a spraying source).
//!
//! State is per broker replica and in memory: with N replicas an attacker gets up to N times the
//! budget. The directory's own lockout (ppolicy) is the shared backstop.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries beyond this many trigger pruning of idle ones, bounding memory under username spraying.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitPolicy {
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

impl Default for LimitPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    User,
    Source,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Source(IpAddr),
}

#[derive(Debug, Default)]
struct Record {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

impl Record {
    fn locked_at(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    fn idle_at(&self, now: Instant, window: Duration) -> bool {
        !self.locked_at(now)
            && self
                .failures
                .back()
                .is_none_or(|last| now.duration_since(*last) >= window)
    }
}

pub struct FailureLimiter {
    policy: std::sync::RwLock<LimitPolicy>,
    records: Mutex<HashMap<Key, Record>>,
}

impl FailureLimiter {
    pub fn new(policy: LimitPolicy) -> Self {
        Self {
            policy: std::sync::RwLock::new(policy),
            records: Mutex::new(HashMap::new()),
        }
    }

    /// A new policy (configuration reload); counts and lockouts already running are kept.
    pub fn set_policy(&self, policy: LimitPolicy) {
        *self.policy.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = policy;
    }

    /// Is this attempt allowed to reach the directory?
    pub fn check(&self, user: &str, source: Option<IpAddr>, now: Instant) -> Result<(), Locked> {
        let records = self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if records
            .get(&Key::User(user.to_owned()))
            .is_some_and(|r| r.locked_at(now))
        {
            return Err(Locked::User);
        }
        if source
            .and_then(|ip| records.get(&Key::Source(ip)))
            .is_some_and(|r| r.locked_at(now))
        {
            return Err(Locked::Source);
        }
        Ok(())
    }

    /// Counts a failed authentication against the username and the source.
    pub fn record_failure(&self, user: &str, source: Option<IpAddr>, now: Instant) {
        let policy = *self.policy.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut records = self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let keys = std::iter::once(Key::User(user.to_owned())).chain(source.map(Key::Source));
        for key in keys {
            let record = records.entry(key.clone()).or_default();
            while record
                .failures
                .front()
                .is_some_and(|t| now.duration_since(*t) >= policy.window)
            {
                record.failures.pop_front();
            }
            record.failures.push_back(now);
            if record.failures.len() >= policy.max_failures as usize {
                record.locked_until = Some(now + policy.lockout);
                record.failures.clear();
                tracing::warn!(target: "ktbroker::audit", key = ?key, lockout_secs = policy.lockout.as_secs(),
                    "too many failed authentications: locked");
            }
        }
        if records.len() > PRUNE_ABOVE {
            let window = policy.window;
            records.retain(|_, r| !r.idle_at(now, window));
        }
    }

    /// A success clears the username's failures.
    pub fn record_success(&self, user: &str) {
        let mut records = self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        records.remove(&Key::User(user.to_owned()));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.records.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));
    const OTHER_IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)));

    fn limiter() -> FailureLimiter {
        FailureLimiter::new(LimitPolicy::default())
    }

    #[test]
    fn five_failures_in_the_window_lock_the_user_for_the_lockout() {
        let limiter = limiter();
        let t0 = Instant::now();
        for n in 0..4 {
            limiter.record_failure("alice", IP, t0 + Duration::from_secs(n));
            assert_eq!(limiter.check("alice", OTHER_IP, t0 + Duration::from_secs(n)), Ok(()));
        }
        limiter.record_failure("alice", IP, t0 + Duration::from_secs(5));
        assert_eq!(
            limiter.check("alice", OTHER_IP, t0 + Duration::from_secs(6)),
            Err(Locked::User)
        );
        assert_eq!(limiter.check("bob", OTHER_IP, t0 + Duration::from_secs(6)), Ok(()));
        let after = t0 + Duration::from_secs(5) + LimitPolicy::default().lockout;
        assert_eq!(limiter.check("alice", OTHER_IP, after), Ok(()));
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let limiter = limiter();
        let t0 = Instant::now();
        for n in 0..4 {
            limiter.record_failure("alice", None, t0 + Duration::from_secs(n));
        }
        let later = t0 + Duration::from_secs(16 * 60);
        limiter.record_failure("alice", None, later);
        assert_eq!(limiter.check("alice", None, later), Ok(()));
    }

    #[test]
    fn spraying_many_users_from_one_source_locks_the_source() {
        let limiter = limiter();
        let t0 = Instant::now();
        for (n, user) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            limiter.record_failure(user, IP, t0 + Duration::from_secs(n as u64));
        }
        assert_eq!(
            limiter.check("fresh", IP, t0 + Duration::from_secs(6)),
            Err(Locked::Source)
        );
        assert_eq!(limiter.check("fresh", OTHER_IP, t0 + Duration::from_secs(6)), Ok(()));
    }

    #[test]
    fn success_clears_the_user_but_not_the_source() {
        let limiter = limiter();
        let t0 = Instant::now();
        for n in 0..4 {
            limiter.record_failure("alice", IP, t0 + Duration::from_secs(n));
        }
        limiter.record_success("alice");
        limiter.record_failure("alice", OTHER_IP, t0 + Duration::from_secs(5));
        assert_eq!(limiter.check("alice", OTHER_IP, t0 + Duration::from_secs(6)), Ok(()));
        limiter.record_failure("zed", IP, t0 + Duration::from_secs(6));
        assert_eq!(
            limiter.check("anyone", IP, t0 + Duration::from_secs(7)),
            Err(Locked::Source)
        );
    }

    #[test]
    fn idle_entries_are_pruned_so_spraying_cannot_grow_memory_without_bound() {
        let limiter = limiter();
        let t0 = Instant::now();
        for n in 0..=PRUNE_ABOVE {
            limiter.record_failure(&format!("user{n}"), None, t0);
        }
        let later = t0 + Duration::from_secs(16 * 60);
        limiter.record_failure("last", None, later);
        assert_eq!(limiter.len(), 1);
    }
}
