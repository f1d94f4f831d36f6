//! The caches `status` and `renew` act on. Inside a session KRB5CCNAME names its cache; outside
//! one (the `ktbroker-renew` user unit, a cron job) there is none, and the session caches
//! pam_ktbroker made have random names. The module records each open session's cache as a
//! one-line file `SESSIONS_DIR/UID/NAME` holding `FILE:/path` (see the module's `registry`);
//! this reads them back.

use crate::config::ClientConfig;
use crate::request::chosen_ccache;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// pam_ktbroker's default `sessions_dir=`.
pub const DEFAULT_DIR: &str = "/run/ktbroker-sessions";

/// An entry is one short line; anything longer is not one of the module's.
const MAX_ENTRY: u64 = 4096;

/// Which caches a command acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// One cache: the one named by `-c` or client.toml, else libkrb5's default (`None`: KRB5CCNAME,
    /// else krb5.conf's `default_ccache_name`).
    One(Option<String>),
    /// No cache was named and KRB5CCNAME is unset: every session cache recorded for this user.
    Sessions(Vec<String>),
}

impl Targets {
    /// For `-c` (`option`) and client.toml: an explicit name or KRB5CCNAME wins; else the
    /// recorded session caches, if there are any.
    pub fn choose(option: Option<&str>, config: &ClientConfig) -> Self {
        if let Some(named) = chosen_ccache(option, config) {
            return Self::One(Some(named));
        }
        if std::env::var_os("KRB5CCNAME").is_some() {
            return Self::One(None);
        }
        let dir = config.sessions_dir.as_deref().unwrap_or(Path::new(DEFAULT_DIR));
        let found = recorded(dir, rustix::process::getuid().as_raw());
        if found.is_empty() {
            Self::One(None)
        } else {
            Self::Sessions(found)
        }
    }

    /// The caches, as `Option<String>` the way the krb5 calls take them.
    pub fn names(&self) -> Vec<Option<String>> {
        match self {
            Self::One(name) => vec![name.clone()],
            Self::Sessions(names) => names.iter().cloned().map(Some).collect(),
        }
    }
}

/// The session caches recorded for `uid` under `dir`, sorted. An entry whose cache file is gone
/// (a session that ended without closing) is removed; entries that are not one line
/// `FILE:/absolute/path` are skipped.
pub fn recorded(dir: &Path, uid: u32) -> Vec<String> {
    let users_dir = dir.join(uid.to_string());
    let Ok(entries) = std::fs::read_dir(&users_dir) else {
        return Vec::new();
    };
    let mut caches: Vec<String> = entries
        .flatten()
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|entry| {
            let path = entry.path();
            let cache = read_entry(&path)?;
            if std::fs::symlink_metadata(&cache).is_err() {
                let _ = std::fs::remove_file(&path);
                return None;
            }
            Some(format!("FILE:{}", cache.display()))
        })
        .collect();
    caches.sort();
    caches
}

fn read_entry(path: &Path) -> Option<PathBuf> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_ENTRY || meta.uid() != rustix::process::geteuid().as_raw() {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let cache = line.strip_prefix("FILE:")?;
    let usable = cache.starts_with('/') && !line.contains('\n') && !cache.contains('\0');
    usable.then(|| PathBuf::from(cache))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_caches_are_read_and_stale_or_foreign_entries_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let uid = rustix::process::getuid().as_raw();
        let users = dir.path().join(uid.to_string());
        std::fs::create_dir(&users).unwrap();
        let live = dir.path().join("krb5cc_live");
        std::fs::write(&live, "a cache").unwrap();
        std::fs::write(users.join("krb5cc_live"), format!("FILE:{}\n", live.display())).unwrap();
        let stale = users.join("krb5cc_gone");
        std::fs::write(&stale, "FILE:/nonexistent/krb5cc_gone\n").unwrap();
        std::fs::write(users.join("two-lines"), format!("FILE:{}\nFILE:/x\n", live.display())).unwrap();
        std::fs::write(users.join("keyring"), "KEYRING:persistent:1000\n").unwrap();
        std::fs::write(users.join(".entry-abc"), format!("FILE:{}\n", live.display())).unwrap();
        assert_eq!(recorded(dir.path(), uid), [format!("FILE:{}", live.display())]);
        assert!(!stale.exists(), "the stale entry is removed");
        assert!(recorded(dir.path(), uid + 1).is_empty(), "another user's directory");
    }
}
