//! Credential-cache files: the temporary one the helper fills during `auth`, and the session's,
//! which it becomes at `setcred`/`open_session`. Only FILE caches, only files owned by the user;
//! a symlink or another user's file is never followed, replaced or removed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A ticket the helper stored during `auth` and no session has taken yet. Dropping it (at
/// pam_end, if it was never moved) removes the file.
#[derive(Debug)]
pub struct PendingTicket {
    pub path: PathBuf,
    pub uid: u32,
}

impl Drop for PendingTicket {
    fn drop(&mut self) {
        remove_users_file(&self.path, self.uid);
    }
}

/// The session's cache, for `close_session`.
#[derive(Debug, Clone)]
pub struct SessionCache {
    pub path: PathBuf,
    pub uid: u32,
}

/// `/tmp/krb5cc_ktbroker_pam_UID_RANDOM` for the ticket between `auth` and the session.
pub fn temporary_path(uid: u32) -> std::io::Result<PathBuf> {
    Ok(PathBuf::from(format!(
        "/tmp/krb5cc_ktbroker_pam_{uid}_{}",
        random_hex(8)?
    )))
}

/// The session cache path from a `FILE:` template: `%u` is the uid, trailing `XXXXXX` random.
pub fn session_path(template: &str, uid: u32) -> std::io::Result<PathBuf> {
    let path = template
        .strip_prefix("FILE:")
        .unwrap_or(template)
        .replace("%u", &uid.to_string());
    let path = match path.strip_suffix("XXXXXX") {
        Some(stem) => format!("{stem}{}", random_hex(3)?),
        None => path,
    };
    Ok(PathBuf::from(path))
}

/// Renames the pending ticket to `target`. Refuses a target that exists and is a symlink or
/// another user's file (rename itself never follows a symlink at the target).
pub fn move_ticket(from: &Path, target: &Path, uid: u32) -> Result<(), String> {
    let source = std::fs::symlink_metadata(from).map_err(|e| format!("{}: {e}", from.display()))?;
    if !source.is_file() || source.uid() != uid {
        return Err(format!("{} is not the user's ticket file", from.display()));
    }
    if let Ok(existing) = std::fs::symlink_metadata(target)
        && (existing.file_type().is_symlink() || existing.uid() != uid)
    {
        return Err(format!("{} exists and is not the user's", target.display()));
    }
    std::fs::rename(from, target).map_err(|e| format!("{} -> {}: {e}", from.display(), target.display()))
}

/// Removes `path` if it is a regular file owned by `uid`; anything else is left alone.
pub fn remove_users_file(path: &Path, uid: u32) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() && meta.uid() == uid => std::fs::remove_file(path).is_ok(),
        _ => false,
    }
}

fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buffer = vec![0u8; bytes];
    crate::ffi::random(&mut buffer)?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_uid_and_randomness() {
        let path = session_path("FILE:/tmp/krb5cc_%u_XXXXXX", 1000).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("krb5cc_1000_") && name.len() == "krb5cc_1000_".len() + 6,
            "{name}"
        );
        assert_ne!(path, session_path("FILE:/tmp/krb5cc_%u_XXXXXX", 1000).unwrap());
        assert_eq!(
            session_path("FILE:/tmp/krb5cc_%u", 7).unwrap(),
            PathBuf::from("/tmp/krb5cc_7")
        );
    }

    #[test]
    fn only_the_users_regular_files_are_moved_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let uid = crate::ffi::euid();
        let ticket = dir.path().join("ticket");
        std::fs::write(&ticket, "t").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        assert!(move_ticket(&ticket, &link, uid).is_err(), "a symlink target is refused");
        assert!(
            move_ticket(&ticket, &dir.path().join("session"), uid + 1).is_err(),
            "not that user's"
        );
        move_ticket(&ticket, &dir.path().join("session"), uid).unwrap();
        assert!(!remove_users_file(&link, uid), "symlinks are never removed");
        assert!(remove_users_file(&dir.path().join("session"), uid));
    }
}
