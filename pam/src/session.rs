//! Credential-cache files: the temporary one the helper fills during `auth`, and the session's,
//! a copy of it made at `setcred`/`open_session`. Only FILE caches, only files owned by the user;
//! a symlink or another user's file is never followed, replaced or removed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

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

/// A new name in `dir` for the ticket between `auth` and the session (see [`crate::pending`]).
pub fn temporary_path(dir: &Path, uid: u32) -> std::io::Result<PathBuf> {
    Ok(crate::pending::path_for(
        dir,
        crate::pending::Origin::here(uid),
        &random_hex(8)?,
    ))
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

/// A credential cache file is a few KiB; a bigger "pending ticket" is not ours.
const MAX_CACHE_FILE: u64 = 1024 * 1024;

/// Makes the pending ticket the session's cache at `target`, as pam-krb5's setcred does: a new
/// file, the user's and 0600, created in `target`'s own directory (so `ccache=` may name any
/// filesystem, `/run/user/%u` included), the credentials copied into it, then renamed into place
/// within that directory; the pending file is removed. Refuses a pending file that is not the
/// user's regular file, and a target that exists as a symlink or as another user's file.
pub fn install_ticket(from: &Path, target: &Path, uid: u32) -> Result<(), String> {
    let (contents, gid) = read_users_file(from, uid)?;
    if let Ok(existing) = std::fs::symlink_metadata(target)
        && (existing.file_type().is_symlink() || existing.uid() != uid)
    {
        return Err(format!("{} exists and is not the user's", target.display()));
    }
    let staged = staging_path(target).map_err(|e| format!("{}: {e}", target.display()))?;
    let written = write_users_file(&staged, &contents, uid, gid)
        .and_then(|()| std::fs::rename(&staged, target))
        .map_err(|e| format!("{}: {e}", target.display()));
    if written.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    written?;
    remove_users_file(from, uid);
    Ok(())
}

/// Screen unlock with a password: the pending ticket replaces the contents of the session's
/// existing cache `target` in place (same file, same name: nothing new is created), under the
/// same fcntl write lock libkrb5 takes on a FILE cache, so a reader never sees half of it. The
/// caller removes the pending file, whatever the outcome. `target` must be the user's regular file, reached without a link.
pub fn refresh_in_place(from: &Path, target: &Path, uid: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (contents, _) = read_users_file(from, uid)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)
        .map_err(|e| format!("{}: {e}", target.display()))?;
    let meta = file.metadata().map_err(|e| format!("{}: {e}", target.display()))?;
    if !meta.is_file() || meta.uid() != uid {
        return Err(format!("{} is not the user's ticket file", target.display()));
    }
    crate::ffi::lock_for_writing(&file, LOCK_PATIENCE).map_err(|e| format!("{}: lock: {e}", target.display()))?;
    file.set_len(0)
        .and_then(|()| file.write_all(&contents))
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", target.display()))?;
    drop(file); // closing releases the lock
    Ok(())
}

/// How long a refresh waits for another process's lock on the cache (libkrb5 holds it for
/// milliseconds); then it gives up rather than hold up an unlock.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// The contents (wiped on drop: a cache holds session keys) and gid of the user's regular file.
fn read_users_file(path: &Path, uid: u32) -> Result<(Zeroizing<Vec<u8>>, u32), String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let not_theirs = || format!("{} is not the user's ticket file", path.display());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() || meta.uid() != uid || meta.len() > MAX_CACHE_FILE {
        return Err(not_theirs());
    }
    // Sized once, so that reading never reallocates and leaves an unwiped copy behind.
    let mut contents = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    file.take(MAX_CACHE_FILE)
        .read_to_end(&mut contents)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((contents, meta.gid()))
}

/// A new file beside `target`, never following a link: 0600, the user's, holding `contents`.
/// Not fsynced: the callers rename it into place, so a reader sees the old file or the new one
/// whole, and a ticket cache or a session entry describes only the running system (libkrb5
/// never fsyncs a FILE cache either). A sync cost a login 0.2-0.8 ms on a disk-backed /tmp.
pub(crate) fn write_users_file(path: &Path, contents: &[u8], uid: u32, gid: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    file.write_all(contents)
}

/// `DIR/.NAME.ktbroker-RANDOM`: where the session cache is written before it takes its name.
fn staging_path(target: &Path) -> std::io::Result<PathBuf> {
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("krb5cc");
    Ok(target.with_file_name(format!(".{name}.ktbroker-{}", random_hex(6)?)))
}

/// Whether `path` is a regular file owned by `uid` (a symlink is not).
pub fn is_users_file(path: &Path, uid: u32) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file() && meta.uid() == uid)
}

/// Removes `path` if it is a regular file owned by `uid`; anything else is left alone.
pub fn remove_users_file(path: &Path, uid: u32) -> bool {
    is_users_file(path, uid) && std::fs::remove_file(path).is_ok()
}

pub(crate) fn random_hex(bytes: usize) -> std::io::Result<String> {
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
    fn only_the_users_regular_files_are_installed_or_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let uid = crate::ffi::euid();
        let ticket = dir.path().join("ticket");
        std::fs::write(&ticket, "t").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        assert!(
            install_ticket(&ticket, &link, uid).is_err(),
            "a symlink target is refused"
        );
        assert!(!dir.path().join("elsewhere").exists());
        let ticket_link = dir.path().join("ticket-link");
        std::os::unix::fs::symlink(&ticket, &ticket_link).unwrap();
        let session = dir.path().join("session");
        assert!(
            install_ticket(&ticket_link, &session, uid).is_err(),
            "a symlinked source is refused"
        );
        assert!(install_ticket(&ticket, &session, uid + 1).is_err(), "not that user's");
        assert!(!session.exists());

        install_ticket(&ticket, &session, uid).unwrap();
        assert_eq!(std::fs::read(&session).unwrap(), b"t");
        assert_eq!(std::fs::metadata(&session).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!ticket.exists(), "the pending file is gone");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 3, "no staging file is left: {names:?}");

        // An existing cache of the user's is replaced whole.
        std::fs::write(&ticket, "newer").unwrap();
        install_ticket(&ticket, &session, uid).unwrap();
        assert_eq!(std::fs::read(&session).unwrap(), b"newer");
        assert!(!remove_users_file(&link, uid), "symlinks are never removed");
        assert!(remove_users_file(&session, uid));
    }

    #[test]
    fn the_session_cache_is_written_where_it_will_live() {
        let target = Path::new("/run/user/1000/krb5cc_abc");
        let staged = staging_path(target).unwrap();
        assert_eq!(
            staged.parent(),
            target.parent(),
            "same directory, so the rename never crosses filesystems"
        );
        assert!(
            staged
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".krb5cc_abc.ktbroker-")
        );
        assert_ne!(staged, staging_path(target).unwrap());
        let pending = temporary_path(Path::new("/var/tmp"), 7).unwrap();
        assert!(pending.starts_with("/var/tmp") && pending.to_str().unwrap().contains("krb5cc_ktbroker_pam_7_"));
    }
}
