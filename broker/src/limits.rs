//! Online-guessing limits: failed authentications are counted per username and per source
//! address; `max_failures` within `window` locks that username, `max_source_failures` (higher: a
//! login host speaks for many people) that address, for `lockout`. An IPv6 source counts as its
//! /64, since one host has a whole /64 to pick addresses from. A locked attempt is refused like
//! any failed one (same status, same latency floor) without contacting the directory. A success
//! clears the username's count (not the address's: one right password must not reset a spraying
//! source). Sources the configuration trusts (login hosts) are counted by the caller as no source.
//!
//! An address behind which many people log in (an office's NAT at 9 a.m.) sees their typos add
//! up: a fixed source limit would lock them all out. So each distinct user who logged in from an
//! address within the window raises its limit by `source_credit_per_user`: the budget grows with
//! the people the address has shown it speaks for, while a sprayer, who rarely holds more than an
//! account or two, keeps the base limit.
//!
//! State is per broker replica and in memory: with N replicas an attacker gets up to N times the
//! budget. The directory's own lockout (ppolicy) is the shared backstop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many usernames and sources are tracked; beyond, the oldest entries go first, a few
/// per new entry (never a scan of the whole table), so spraying cannot grow memory without bound.
const MAX_RECORDS: usize = 100_000;

/// At most this many distinct users raise one source's limit (about 40 bytes each). Beyond, the
/// limit stops growing: stricter, never looser. Across sources the count is bounded by the
/// successful logins one replica can serve within a window.
const MAX_VOUCHERS_PER_SOURCE: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitPolicy {
    /// Per username (per tenant).
    pub max_failures: u32,
    /// Per source address (an IPv6 /64).
    pub max_source_failures: u32,
    /// Each distinct user who logged in from a source within the window raises that source's
    /// limit by this much (0: a fixed limit).
    pub source_credit_per_user: u32,
    pub window: Duration,
    pub lockout: Duration,
}

impl Default for LimitPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            max_source_failures: 50,
            source_credit_per_user: 1,
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
    /// For a source: who logged in from it within the window.
    vouchers: Vouchers,
}

/// The distinct users (by a keyed hash of their limit key: no names kept) who logged in from one
/// source within the window. A user's voucher runs from their first success in the window, so a
/// user who logs in again and again holds one entry, not one per login.
#[derive(Debug, Default)]
struct Vouchers {
    users: HashSet<u64>,
    by_age: VecDeque<(Instant, u64)>,
}

impl Vouchers {
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some(&(since, user)) = self.by_age.front() {
            if now.duration_since(since) < window {
                break;
            }
            self.by_age.pop_front();
            self.users.remove(&user);
        }
    }

    fn add(&mut self, user: u64, now: Instant) {
        if self.users.len() < MAX_VOUCHERS_PER_SOURCE && self.users.insert(user) {
            self.by_age.push_back((now, user));
        }
    }

    fn count(&self) -> usize {
        self.users.len()
    }
}

impl Record {
    fn locked_at(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }
}

pub struct FailureLimiter {
    policy: std::sync::RwLock<LimitPolicy>,
    records: Mutex<Records>,
    /// Keys the hash a voucher keeps of a username (random per process).
    voucher_hasher: RandomState,
}

/// The tracked entries, and the order they were created in (for eviction at the cap).
#[derive(Default)]
struct Records {
    by_key: HashMap<Key, Record>,
    created: VecDeque<Key>,
}

impl Records {
    fn get(&self, key: &Key) -> Option<&Record> {
        self.by_key.get(key)
    }

    fn entry(&mut self, key: Key) -> &mut Record {
        if !self.by_key.contains_key(&key) {
            self.make_room();
            self.created.push_back(key.clone());
        }
        self.by_key.entry(key).or_default()
    }

    /// Drops the oldest entries until one more fits. The queue may name entries removed since
    /// (a success removes a username): those are skipped, and the queue is rebuilt when they
    /// outnumber the live ones, so the work per new entry stays small on average.
    fn make_room(&mut self) {
        while self.by_key.len() >= MAX_RECORDS {
            match self.created.pop_front() {
                Some(oldest) => {
                    self.by_key.remove(&oldest);
                }
                None => break,
            }
        }
        if self.created.len() > 2 * self.by_key.len() + 16 {
            let live = &self.by_key;
            self.created.retain(|key| live.contains_key(key));
        }
    }
}

/// The key a source is counted under: IPv4 as it is, IPv6 as its /64 (IPv4-mapped as IPv4).
pub fn source_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
}

impl FailureLimiter {
    pub fn new(policy: LimitPolicy) -> Self {
        Self {
            policy: std::sync::RwLock::new(policy),
            records: Mutex::new(Records::default()),
            voucher_hasher: RandomState::new(),
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
            .and_then(|ip| records.get(&Key::Source(source_key(ip))))
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
        let keys = std::iter::once(Key::User(user.to_owned())).chain(source.map(|ip| Key::Source(source_key(ip))));
        for key in keys {
            let record = records.entry(key.clone());
            while record
                .failures
                .front()
                .is_some_and(|t| now.duration_since(*t) >= policy.window)
            {
                record.failures.pop_front();
            }
            record.failures.push_back(now);
            let limit = match key {
                Key::User(_) => policy.max_failures as usize,
                Key::Source(_) => {
                    record.vouchers.expire(now, policy.window);
                    let credit = record.vouchers.count() * policy.source_credit_per_user as usize;
                    policy.max_source_failures as usize + credit
                }
            };
            if record.failures.len() >= limit {
                record.locked_until = Some(now + policy.lockout);
                record.failures.clear();
                tracing::warn!(target: "ktbroker::audit", key = ?key, limit, lockout_secs = policy.lockout.as_secs(),
                    "too many failed authentications: locked");
            }
        }
    }

    /// A success clears the username's failures, and vouches for the source it came from.
    pub fn record_success(&self, user: &str, source: Option<IpAddr>, now: Instant) {
        let policy = *self.policy.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut records = self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        records.by_key.remove(&Key::User(user.to_owned()));
        if let Some(ip) = source
            && policy.source_credit_per_user > 0
        {
            let voucher = self.voucher_hasher.hash_one(user);
            let vouchers = &mut records.entry(Key::Source(source_key(ip))).vouchers;
            vouchers.expire(now, policy.window);
            vouchers.add(voucher, now);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.records.lock().unwrap().by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));
    const OTHER_IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)));

    fn limiter() -> FailureLimiter {
        FailureLimiter::new(LimitPolicy {
            max_source_failures: 5,
            ..LimitPolicy::default()
        })
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
        limiter.record_success("alice", None, t0 + Duration::from_secs(4));
        limiter.record_failure("alice", OTHER_IP, t0 + Duration::from_secs(5));
        assert_eq!(limiter.check("alice", OTHER_IP, t0 + Duration::from_secs(6)), Ok(()));
        limiter.record_failure("zed", IP, t0 + Duration::from_secs(6));
        assert_eq!(
            limiter.check("anyone", IP, t0 + Duration::from_secs(7)),
            Err(Locked::Source)
        );
    }

    #[test]
    fn spraying_cannot_grow_memory_beyond_the_cap_and_the_oldest_go_first() {
        let limiter = limiter();
        let t0 = Instant::now();
        for n in 0..MAX_RECORDS + 10 {
            limiter.record_failure(&format!("user{n}"), None, t0);
        }
        assert_eq!(limiter.len(), MAX_RECORDS);
        let records = limiter.records.lock().unwrap();
        assert!(
            !records.by_key.contains_key(&Key::User("user0".into())),
            "the oldest went"
        );
        assert!(
            records
                .by_key
                .contains_key(&Key::User(format!("user{}", MAX_RECORDS + 9)))
        );
        assert!(records.created.len() <= 2 * MAX_RECORDS + 16);
    }

    #[test]
    fn a_login_host_locks_out_no_one_before_its_own_higher_limit() {
        let limiter = FailureLimiter::new(LimitPolicy::default());
        let t0 = Instant::now();
        // Five typos by one person on a shared host lock that person, not the host.
        for n in 0..5 {
            limiter.record_failure("alice", IP, t0 + Duration::from_secs(n));
        }
        assert_eq!(
            limiter.check("alice", IP, t0 + Duration::from_secs(6)),
            Err(Locked::User)
        );
        assert_eq!(limiter.check("bob", IP, t0 + Duration::from_secs(6)), Ok(()));
        for n in 0..45 {
            limiter.record_failure(&format!("u{n}"), IP, t0 + Duration::from_secs(7));
        }
        assert_eq!(
            limiter.check("bob", IP, t0 + Duration::from_secs(8)),
            Err(Locked::Source),
            "fifty from one host lock it"
        );
    }

    /// 200 people log in through one NAT, and 150 others mistype first: with the default credit
    /// no one is locked out; with a fixed limit (credit 0) the address locks at its 50th typo.
    #[test]
    fn the_people_behind_an_address_raise_its_limit_with_a_fixed_limit_they_lock_it() {
        for (credit, locked_after) in [(1, None), (0, Some(50))] {
            let limiter = FailureLimiter::new(LimitPolicy {
                source_credit_per_user: credit,
                ..LimitPolicy::default()
            });
            let t0 = Instant::now();
            for n in 0..200 {
                limiter.record_success(&format!("person{n}"), IP, t0);
                limiter.record_success(&format!("person{n}"), IP, t0);
            }
            let mut first_locked = None;
            for n in 0..150 {
                limiter.record_failure(&format!("typist{n}"), IP, t0 + Duration::from_secs(1));
                if first_locked.is_none() && limiter.check("next", IP, t0 + Duration::from_secs(1)).is_err() {
                    first_locked = Some(n + 1);
                }
            }
            assert_eq!(first_locked, locked_after, "credit {credit}");
        }
    }

    #[test]
    fn a_sprayer_with_one_account_gets_one_more_guess_however_often_it_logs_in() {
        let limiter = FailureLimiter::new(LimitPolicy::default());
        let t0 = Instant::now();
        for _ in 0..1000 {
            limiter.record_success("mallory", IP, t0);
        }
        for n in 0..50 {
            limiter.record_failure(&format!("victim{n}"), IP, t0);
        }
        assert_eq!(limiter.check("victim99", IP, t0), Ok(()), "50 of 51 guesses");
        limiter.record_failure("victim50", IP, t0);
        assert_eq!(limiter.check("victim99", IP, t0), Err(Locked::Source));
    }

    #[test]
    fn vouchers_last_one_window_and_a_trusted_source_gets_none() {
        let limiter = FailureLimiter::new(LimitPolicy::default());
        let t0 = Instant::now();
        for n in 0..100 {
            limiter.record_success(&format!("person{n}"), IP, t0);
            limiter.record_success(&format!("person{n}"), None, t0);
        }
        let later = t0 + LimitPolicy::default().window;
        for n in 0..50 {
            limiter.record_failure(&format!("typist{n}"), IP, later);
        }
        assert_eq!(limiter.check("next", IP, later), Err(Locked::Source));
        let records = limiter.records.lock().unwrap();
        assert_eq!(
            records.by_key.len(),
            51,
            "the 50 typists and the one source, no record for None"
        );
        assert_eq!(records.get(&Key::Source(IP.unwrap())).unwrap().vouchers.count(), 0);
    }

    #[test]
    fn an_ipv6_host_is_one_source_whatever_address_of_its_64_it_uses() {
        let limiter = limiter();
        let t0 = Instant::now();
        for n in 0..5u16 {
            let address = std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, n, n, n, n);
            limiter.record_failure(&format!("u{n}"), Some(IpAddr::V6(address)), t0);
        }
        let same_64 = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
        let next_64 = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert_eq!(limiter.check("fresh", Some(same_64), t0), Err(Locked::Source));
        assert_eq!(limiter.check("fresh", Some(next_64), t0), Ok(()));
        let mapped = IpAddr::V6(std::net::Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(source_key(mapped), IP.unwrap());
    }
}
