//! ID tokens accepted so far, until they expire: a token id seen twice is a replay.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// At most this many live token ids are remembered; beyond it the oldest-expiring half goes
/// (a flood cannot grow the broker's memory, and tokens live minutes).
pub const MAX_REMEMBERED: usize = 100_000;

#[derive(Default)]
pub struct SeenTokens {
    expiries: Mutex<HashMap<String, SystemTime>>,
}

impl SeenTokens {
    /// Records `token_id` until `expires`; false if it was recorded already and has not expired.
    pub fn first_use(&self, token_id: &str, expires: SystemTime) -> bool {
        self.first_use_at(token_id, expires, SystemTime::now())
    }

    fn first_use_at(&self, token_id: &str, expires: SystemTime, now: SystemTime) -> bool {
        let mut seen = self.expiries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.get(token_id).is_some_and(|until| *until > now) {
            return false;
        }
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, until| *until > now);
        }
        if seen.len() >= MAX_REMEMBERED {
            let mut expiries: Vec<SystemTime> = seen.values().copied().collect();
            expiries.sort_unstable();
            let cut = expiries[expiries.len() / 2];
            seen.retain(|_, until| *until > cut);
        }
        seen.insert(token_id.to_owned(), expires);
        true
    }
}

/// A token without `jti` is known by its SHA-256 (of the whole compact form).
pub fn digest(token: &str) -> String {
    crate::audit::hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_token_id_is_accepted_once_until_it_expires() {
        let seen = SeenTokens::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let expires = now + Duration::from_secs(300);
        assert!(seen.first_use_at("t-1", expires, now));
        assert!(!seen.first_use_at("t-1", expires, now + Duration::from_secs(1)));
        assert!(seen.first_use_at("t-2", expires, now));
        // After its expiry the token is refused by its `exp` anyway; the id may be forgotten.
        assert!(seen.first_use_at("t-1", expires, expires + Duration::from_secs(1)));
    }

    #[test]
    fn a_flood_of_token_ids_keeps_the_memory_bounded() {
        let seen = SeenTokens::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        for n in 0..MAX_REMEMBERED + 10 {
            let expires = now + Duration::from_secs(60 + (n % 1000) as u64);
            assert!(seen.first_use_at(&format!("t-{n}"), expires, now));
        }
        assert!(seen.expiries.lock().unwrap().len() <= MAX_REMEMBERED);
        assert_eq!(digest("a").len(), 64);
    }
}
