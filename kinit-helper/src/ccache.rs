//! The credential cache: before a login, refuse a file-based cache that is not ours (another
//! user's file, or a symlink planted in a shared directory); after it, a login succeeded only if
//! the cache's default principal is the one we asked for and the ticket we stored there has not
//! already expired (a badly skewed clock). FILE and DIR caches are created by libkrb5 with mode
//! 0600 (0700 for a DIR collection); KEYRING and KCM caches are guarded by the kernel and the KCM
//! daemon.
//!
//! libkrb5 replaces a FILE cache by writing `NAME.XXXXXX` beside it and renaming that over it. A
//! login killed (SIGKILL) between the two strands that file, a ticket in it. It cannot be created
//! anywhere else, so the next login sweeps such leftovers: files of that exact shape, ours, not
//! symlinks, and older than [`STRANDED_AFTER`] (a concurrent login's is seconds old at most).

use crate::HelperError;
use crate::ticket::KerberosTarget;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Fails if `ccache` (or the default cache) is a FILE or DIR cache whose file or directory exists
/// and is a symlink or belongs to another user; returns the cache's full name (`TYPE:residual`).
pub fn refuse_foreign_cache(ccache: Option<&str>) -> Result<String, HelperError> {
    let context = crate::krb5_context()?;
    let name = context
        .cache_full_name(ccache)
        .map_err(|e| HelperError::Ccache(e.to_string()))?;
    let paths: Vec<&str> = match name.split_once(':') {
        Some(("FILE", path)) => vec![path],
        // DIR:/dir is a collection; DIR::/dir/tktXXX names one cache file inside one.
        Some(("DIR", residual)) => match residual.strip_prefix(':') {
            Some(file) => vec![file, Path::new(file).parent().and_then(Path::to_str).unwrap_or("/")],
            None => vec![residual],
        },
        _ => Vec::new(),
    };
    let euid = rustix::process::geteuid().as_raw();
    for path in paths {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue; // does not exist yet: libkrb5 creates it, ours, 0600
        };
        if meta.file_type().is_symlink() {
            return Err(HelperError::Ccache(format!("{path} is a symbolic link")));
        }
        if meta.uid() != euid {
            return Err(HelperError::Ccache(format!(
                "{path} belongs to uid {}, not to you (uid {euid})",
                meta.uid()
            )));
        }
    }
    Ok(name)
}

/// A temporary of libkrb5's this old is no concurrent login's any more.
pub const STRANDED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the `NAME.XXXXXX` temporaries that killed logins left beside the cache named
/// `full_name` when it is a FILE cache (see the module documentation); returns how many.
pub fn sweep_stranded_temporaries(full_name: &str) -> usize {
    let Some(path) = full_name.strip_prefix("FILE:").map(Path::new) else {
        return 0;
    };
    let (Some(dir), Some(base)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let euid = rustix::process::geteuid().as_raw();
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(suffix) = file_name.to_str().and_then(|n| n.strip_prefix(base)?.strip_prefix('.')) else {
            continue;
        };
        if suffix.len() != 6 || !suffix.bytes().all(|b| b.is_ascii_alphanumeric()) {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age >= STRANDED_AFTER);
        if meta.file_type().is_file() && meta.uid() == euid && old && std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(file = %entry.path().display(), "removed a temporary cache a killed login left");
            removed += 1;
        }
    }
    removed
}

/// Whether a cached ticket's `principal` belongs to the directory user `user` (`name` or
/// `name@tenant`): exactly `expected` when the principal to expect is known, otherwise a principal
/// whose first component is the name (`name@REALM`, `name/netdisk@REALM`). Someone else's ticket
/// in the cache is never taken for the user's.
pub fn principal_is_users(principal: &str, user: &str, expected: Option<&str>) -> bool {
    if let Some(expected) = expected {
        return principal == expected;
    }
    let name = user.split('@').next().unwrap_or(user);
    let first = principal.split(['/', '@']).next().unwrap_or_default();
    !name.is_empty() && first == name && principal.contains('@')
}

pub fn require_valid_tgt(
    context: &ktbroker_krb5::Context,
    principal: &str,
    target: &KerberosTarget,
    times: ktbroker_krb5::TicketTimes,
) -> Result<(), HelperError> {
    let ours = context
        .ccache_belongs_to(target.ccache.as_deref(), principal)
        .map_err(|e| HelperError::NoTicket(e.to_string()))?;
    if !ours {
        return Err(HelperError::NoTicket(format!(
            "the credential cache does not belong to {principal}"
        )));
    }
    if times.end <= crate::unix_now() {
        return Err(HelperError::NoTicket(
            "the new ticket has already expired (is this host's clock right?)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::principal_is_users;

    #[test]
    fn only_the_users_own_principal_counts() {
        assert!(principal_is_users("alice@EXAMPLE.COM", "alice", None));
        assert!(principal_is_users("alice/netdisk@EXAMPLE.COM", "alice@corp", None));
        assert!(!principal_is_users("bob@EXAMPLE.COM", "alice", None));
        assert!(!principal_is_users("alicex@EXAMPLE.COM", "alice", None));
        assert!(!principal_is_users(
            "alice@EXAMPLE.COM",
            "alice",
            Some("alice/netdisk@EXAMPLE.COM")
        ));
        assert!(principal_is_users(
            "alice/netdisk@EXAMPLE.COM",
            "alice",
            Some("alice/netdisk@EXAMPLE.COM")
        ));
    }
}
