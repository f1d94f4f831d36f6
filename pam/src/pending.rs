//! The ticket between `auth` and the session, and how it crosses processes.
//!
//! With keyboard-interactive, sshd runs pam_authenticate in a child process and setcred in its
//! monitor: data kept with pam_set_data stays in the child, but the PAM environment is copied
//! back (OpenSSH's `import_environments`). So the pending file's path also travels as
//! [`ENV_NAME`] in the PAM environment, as pam-krb5 does with `PAM_KRB5CCNAME`, and is taken back
//! out before the session's environment is built.
//!
//! That child exits without pam_end, so when authentication fails after this module succeeded
//! (a later module refuses, sshd gives up), no cleanup of ours runs there. The file's name
//! therefore says who may still pick it up: the process that created it and its parent (sshd's
//! monitor). Once both are gone, nobody can, and the next authentication on the host removes it
//! ([`sweep_orphans`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The PAM environment variable that names the pending ticket file.
pub const ENV_NAME: &str = "KTBROKER_PENDING_CCACHE";

const PREFIX: &str = "krb5cc_ktbroker_pam_";

/// At most this many directory entries are looked at per sweep (a huge /tmp costs one bounded
/// pass, not a stalled login).
const SWEEP_LIMIT: usize = 20_000;

/// Who created a pending file: its uid and the process pair that may still pick it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub uid: u32,
    /// The pid namespace the pids below belong to (0 when /proc does not say).
    pub pid_namespace: u64,
    pub pid: u32,
    pub parent: u32,
}

impl Origin {
    /// This process, creating a ticket for `uid`.
    pub fn here(uid: u32) -> Self {
        Self {
            uid,
            pid_namespace: pid_namespace(),
            pid: std::process::id(),
            parent: std::os::unix::process::parent_id(),
        }
    }
}

/// `DIR/krb5cc_ktbroker_pam_UID_NS_PID_PPID_RANDOM`.
pub fn path_for(dir: &Path, origin: Origin, random: &str) -> PathBuf {
    dir.join(format!(
        "{PREFIX}{}_{}_{}_{}_{random}",
        origin.uid, origin.pid_namespace, origin.pid, origin.parent
    ))
}

/// The origin a pending file's name records; `None` for any other name.
pub fn parse(name: &str) -> Option<Origin> {
    let fields: Vec<&str> = name.strip_prefix(PREFIX)?.split('_').collect();
    let [uid, ns, pid, parent, random] = fields.as_slice() else {
        return None;
    };
    if random.len() != 16 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(Origin {
        uid: uid.parse().ok()?,
        pid_namespace: ns.parse().ok()?,
        pid: pid.parse().ok()?,
        parent: parent.parse().ok()?,
    })
}

/// The pending file named by the PAM environment's value, if it is one of ours for `uid` in
/// `dir`: anything else (another directory, another user's name, a path with `..`) is ignored.
/// Ownership and file type are checked again when it is read.
pub fn from_environment(value: &str, dir: &Path, uid: u32) -> Option<PathBuf> {
    let path = Path::new(value);
    let name = path.file_name()?.to_str()?;
    let origin = parse(name)?;
    (path.parent() == Some(dir) && origin.uid == uid).then(|| path.to_owned())
}

/// Removes pending files in `dir` that nobody can pick up any more: the creating process and its
/// parent have both exited (in this pid namespace). Only regular files owned by the uid their
/// name gives are removed. Returns how many.
pub fn sweep_orphans(dir: &Path, alive: impl Fn(u32) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let here = pid_namespace();
    let mut removed = 0;
    for entry in entries.take(SWEEP_LIMIT).flatten() {
        let name = entry.file_name();
        let Some(origin) = name.to_str().and_then(parse) else {
            continue;
        };
        if origin.pid_namespace != here || alive(origin.pid) || alive(origin.parent) {
            continue;
        }
        let path = entry.path();
        let owned = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.uid() == origin.uid);
        if owned && crate::session::remove_users_file(&path, origin.uid) {
            removed += 1;
        }
    }
    removed
}

/// The inode of /proc/self/ns/pid: pids are compared only within one namespace.
fn pid_namespace() -> u64 {
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_record_their_origin_and_nothing_else_parses() {
        let origin = Origin {
            uid: 1000,
            pid_namespace: 4026531836,
            pid: 4242,
            parent: 17,
        };
        let path = path_for(Path::new("/tmp"), origin, "0123456789abcdef");
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse(name), Some(origin));
        for other in [
            "krb5cc_1000",
            "krb5cc_ktbroker_pam_1000_0123456789abcdef",
            "krb5cc_ktbroker_pam_1000_1_2_3_0123456789abcdeg",
            "krb5cc_ktbroker_pam_x_1_2_3_0123456789abcdef",
            "krb5cc_ktbroker_pam_1000_1_2_3_4_0123456789abcdef",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    #[test]
    fn the_environment_names_only_our_files_for_that_user_in_that_directory() {
        let origin = Origin::here(1000);
        let path = path_for(Path::new("/var/tmp"), origin, "00112233445566ff");
        let value = path.to_str().unwrap();
        assert_eq!(from_environment(value, Path::new("/var/tmp"), 1000), Some(path.clone()));
        assert_eq!(
            from_environment(value, Path::new("/var/tmp"), 1001),
            None,
            "another uid"
        );
        assert_eq!(
            from_environment(value, Path::new("/tmp"), 1000),
            None,
            "another directory"
        );
        assert_eq!(from_environment("/etc/shadow", Path::new("/etc"), 0), None);
        let sideways = format!("/var/tmp/../tmp/{}", path.file_name().unwrap().to_str().unwrap());
        assert_eq!(from_environment(&sideways, Path::new("/var/tmp"), 1000), None);
    }

    #[test]
    fn only_orphans_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let uid = crate::ffi::euid();
        let mine = Origin::here(uid);
        let orphan = Origin {
            pid: 999_999_001,
            parent: 999_999_002,
            ..mine
        };
        let half = Origin {
            pid: 999_999_003,
            ..mine
        };
        let elsewhere = Origin {
            pid_namespace: mine.pid_namespace + 1,
            ..orphan
        };
        let files: Vec<PathBuf> = [mine, orphan, half, elsewhere]
            .iter()
            .enumerate()
            .map(|(i, o)| path_for(dir.path(), *o, &format!("{i:016x}")))
            .collect();
        for file in &files {
            std::fs::write(file, "t").unwrap();
        }
        std::fs::write(dir.path().join("krb5cc_1000_abcdef"), "someone's cache").unwrap();
        let alive = |pid: u32| pid == mine.pid || pid == mine.parent;
        assert_eq!(sweep_orphans(dir.path(), alive), 1);
        let left: Vec<bool> = files.iter().map(|f| f.exists()).collect();
        assert_eq!(
            left,
            [true, false, true, true],
            "ours, the orphan, one whose parent lives, another namespace's"
        );
        assert!(dir.path().join("krb5cc_1000_abcdef").exists());
    }
}
