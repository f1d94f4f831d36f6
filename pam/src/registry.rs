//! Where a session's cache can be found without knowing its random name:
//! `SESSIONS_DIR/UID/NAME` holds `FILE:/path/of/the/cache` for each open session, so the user's
//! renewal unit and `ktbroker-kinit status/renew` (which run outside the session and have no
//! KRB5CCNAME) find every live session cache of the user.
//!
//! Not under `$XDG_RUNTIME_DIR`: on a first login, `/run/user/UID` is created by pam_systemd,
//! which runs after this module in Debian's session stack. `SESSIONS_DIR` (default
//! `/run/ktbroker-sessions`, a tmpfs) is root's, 0755; `UID` is the user's, 0700, created by the
//! module as root. Entries are written beside their final name and renamed into place, never
//! following a link.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The entry that names `cache` for `uid`: `SESSIONS_DIR/UID/<the cache's file name>`.
pub fn entry_path(sessions_dir: &Path, uid: u32, cache: &Path) -> Option<PathBuf> {
    let name = cache.file_name()?.to_str()?;
    (!name.starts_with('.')).then(|| sessions_dir.join(uid.to_string()).join(name))
}

/// Records `cache` as a session cache of `uid` (as root). Returns the entry's path.
pub fn register(sessions_dir: &Path, uid: u32, gid: u32, cache: &Path) -> Result<PathBuf, String> {
    let entry = entry_path(sessions_dir, uid, cache).ok_or("the cache has no usable file name")?;
    let users_dir = entry.parent().ok_or("no directory")?;
    ensure_root_directory(sessions_dir)?;
    ensure_users_directory(users_dir, uid, gid)?;
    let staged = users_dir.join(format!(
        ".entry-{}",
        crate::session::random_hex(6).map_err(|e| e.to_string())?
    ));
    let written = write_entry(&staged, cache, uid, gid).and_then(|()| std::fs::rename(&staged, &entry));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&staged);
        return Err(format!("{}: {e}", entry.display()));
    }
    Ok(entry)
}

/// Removes the entry for `cache` (a regular file only).
pub fn unregister(sessions_dir: &Path, uid: u32, cache: &Path) {
    if let Some(entry) = entry_path(sessions_dir, uid, cache)
        && std::fs::symlink_metadata(&entry).is_ok_and(|m| m.is_file())
    {
        let _ = std::fs::remove_file(&entry);
    }
}

/// `SESSIONS_DIR` exists as root's directory that nobody else may write to.
fn ensure_root_directory(dir: &Path) -> Result<(), String> {
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != 0 || meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "{} is not a directory of root's that only root may write to",
            dir.display()
        ));
    }
    Ok(())
}

/// `SESSIONS_DIR/UID` exists as the user's own directory, 0700. A second login of the same user
/// at the same moment may find it just made and still root's (the first has not given it away
/// yet): then it gives it to the user itself. Only root can have made it: `SESSIONS_DIR` is
/// root's, writable by nobody else (checked before).
fn ensure_users_directory(dir: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("{}: {e}", dir.display());
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(failed(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(failed)?;
    let being_made = meta.is_dir() && meta.uid() == 0 && meta.permissions().mode() & 0o777 == 0o700;
    if meta.uid() != uid && being_made {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(failed)?;
    }
    let meta = std::fs::symlink_metadata(dir).map_err(failed)?;
    if !meta.is_dir() || meta.uid() != uid {
        return Err(format!("{} is not the user's directory", dir.display()));
    }
    Ok(())
}

fn write_entry(path: &Path, cache: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let line = format!("FILE:{}\n", cache.display());
    crate::session::write_users_file(path, line.as_bytes(), uid, gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_named_after_the_cache_and_never_hidden() {
        let dir = Path::new("/run/ktbroker-sessions");
        assert_eq!(
            entry_path(dir, 1000, Path::new("/tmp/krb5cc_1000_abc123")),
            Some(PathBuf::from("/run/ktbroker-sessions/1000/krb5cc_1000_abc123"))
        );
        assert_eq!(entry_path(dir, 1000, Path::new("/tmp/.hidden")), None);
        assert_eq!(entry_path(dir, 1000, Path::new("/")), None);
    }

    #[test]
    fn register_and_unregister_round_trip_and_refuse_a_foreign_directory() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let sessions = root.path().join("sessions");
        let uid = crate::ffi::euid();
        let gid = std::fs::metadata(root.path()).unwrap().gid();
        let cache = Path::new("/tmp/krb5cc_7_feedbeef");
        if uid == 0 {
            let entry = register(&sessions, uid, gid, cache).unwrap();
            assert_eq!(
                std::fs::read_to_string(&entry).unwrap(),
                "FILE:/tmp/krb5cc_7_feedbeef\n"
            );
            let users = std::fs::metadata(entry.parent().unwrap()).unwrap();
            assert_eq!(users.permissions().mode() & 0o777, 0o700);
            let names: Vec<_> = std::fs::read_dir(entry.parent().unwrap()).unwrap().flatten().collect();
            assert_eq!(names.len(), 1, "no staging file is left");
            unregister(&sessions, uid, cache);
            assert!(!entry.exists());
        }
        // A sessions directory others may write to is refused.
        if uid == 0 {
            // Logins of one user at the same moment: every one is recorded.
            let user = 4242;
            let logins = 32;
            let together = std::sync::Barrier::new(logins);
            let entries: Vec<Result<PathBuf, String>> = std::thread::scope(|scope| {
                let threads: Vec<_> = (0..logins)
                    .map(|n| {
                        let (sessions, together) = (&sessions, &together);
                        scope.spawn(move || {
                            together.wait();
                            register(sessions, user, user, Path::new(&format!("/tmp/krb5cc_4242_{n:06}")))
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).collect()
            });
            assert!(entries.iter().all(Result::is_ok), "{entries:?}");
            let users = std::fs::metadata(sessions.join("4242")).unwrap();
            assert_eq!((users.uid(), users.permissions().mode() & 0o777), (user, 0o700));
            let names: Vec<_> = std::fs::read_dir(sessions.join("4242")).unwrap().flatten().collect();
            assert_eq!(names.len(), logins, "{names:?}");
        }
        std::fs::create_dir_all(&sessions).unwrap();
        std::fs::set_permissions(&sessions, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(register(&sessions, uid, gid, cache).is_err());
    }
}
