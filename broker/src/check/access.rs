//! Whether the service user may read (or write, or run) a file: asked of the kernel when
//! `check-config` runs as that user (inside the unit's `ExecStartPre=`), worked out from owner,
//! group and mode bits along the whole path when it runs as root for another user. POSIX ACLs
//! are not evaluated in the second case (the broker's files need none).

use ktbroker_accounts::Account;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What the service needs to do with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    /// Run a program.
    Execute,
    /// List and open the files of a directory.
    ReadDirectory,
}

impl Need {
    fn bits(self) -> u32 {
        match self {
            Self::Read => 0o4,
            Self::Write => 0o2,
            Self::Execute => 0o1,
            Self::ReadDirectory => 0o5,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Execute => "run",
            Self::ReadDirectory => "list",
        }
    }
}

/// The account whose access is checked.
#[derive(Debug, Clone)]
pub struct ServiceUser {
    pub account: Account,
    /// This process runs as it: the kernel answers exactly.
    pub is_me: bool,
}

impl ServiceUser {
    /// The account named `name`; `None` when the user database has no such account.
    pub fn named(name: &str) -> Option<Self> {
        let account = ktbroker_accounts::account(name)?;
        let is_me = rustix::process::geteuid().as_raw() == account.uid;
        Some(Self { account, is_me })
    }

    /// This process's own identity (inside the unit: the service user). The kernel answers for
    /// it, so its groups need not be looked up.
    pub fn current() -> Self {
        let uid = rustix::process::geteuid().as_raw();
        Self {
            account: Account {
                name: format!("uid {uid}"),
                uid,
                gid: rustix::process::getegid().as_raw(),
                groups: Vec::new(),
            },
            is_me: true,
        }
    }

    /// Whether the user may do `need` with `path`; the error says why not, or that it cannot
    /// be told from here.
    pub fn may(&self, path: &Path, need: Need) -> Result<(), Denied> {
        if self.is_me {
            return self.kernel_says(path, need);
        }
        if !rustix::process::geteuid().is_root() {
            return Err(Denied::Unknown(format!(
                "cannot tell whether {} may {} {} (run check-config as root or as {0})",
                self.account.name,
                need.verb(),
                path.display()
            )));
        }
        self.mode_bits_say(path, need)
    }

    fn kernel_says(&self, path: &Path, need: Need) -> Result<(), Denied> {
        use rustix::fs::{Access, AtFlags, CWD, accessat};
        let mut mode = Access::empty();
        if need.bits() & 0o4 != 0 {
            mode |= Access::READ_OK;
        }
        if need.bits() & 0o2 != 0 {
            mode |= Access::WRITE_OK;
        }
        if need.bits() & 0o1 != 0 {
            mode |= Access::EXEC_OK;
        }
        accessat(CWD, path, mode, AtFlags::EACCESS).map_err(|e| {
            Denied::No(format!(
                "{} may not {} {}: {e}",
                self.account.name,
                need.verb(),
                path.display()
            ))
        })
    }

    /// Every directory above the file needs search (x) permission, the file itself `need`.
    fn mode_bits_say(&self, path: &Path, need: Need) -> Result<(), Denied> {
        let denied = |what: String| Denied::No(format!("{} may not {what}", self.account.name));
        let real = path
            .canonicalize()
            .map_err(|e| Denied::No(format!("{}: {e}", path.display())))?;
        for dir in real.ancestors().skip(1) {
            let meta = std::fs::metadata(dir).map_err(|e| Denied::No(format!("{}: {e}", dir.display())))?;
            if !self.granted(&meta, 0o1) {
                return Err(denied(format!(
                    "enter {} (mode {:o}, owner {}:{}), so not {} {}",
                    dir.display(),
                    meta.mode() & 0o7777,
                    meta.uid(),
                    meta.gid(),
                    need.verb(),
                    path.display()
                )));
            }
        }
        let meta = std::fs::metadata(&real).map_err(|e| Denied::No(format!("{}: {e}", path.display())))?;
        if self.granted(&meta, need.bits()) {
            Ok(())
        } else {
            Err(denied(format!(
                "{} {} (mode {:o}, owner {}:{})",
                need.verb(),
                path.display(),
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            )))
        }
    }

    fn granted(&self, meta: &std::fs::Metadata, bits: u32) -> bool {
        self.grants(
            Owner {
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                is_dir: meta.is_dir(),
            },
            bits,
        )
    }

    /// The permission class that applies to the user (owner, group or other) grants `bits`.
    fn grants(&self, file: Owner, bits: u32) -> bool {
        let mode = file.mode;
        if self.account.uid == 0 {
            // Root reads and writes anything; it runs only what someone may run.
            return bits & 0o1 == 0 || mode & 0o111 != 0 || file.is_dir;
        }
        let class = if file.uid == self.account.uid {
            mode >> 6
        } else if self.account.groups.contains(&file.gid) || self.account.gid == file.gid {
            mode >> 3
        } else {
            mode
        };
        class & bits == bits
    }
}

/// A file's mode and owner, as far as permission goes.
#[derive(Debug, Clone, Copy)]
struct Owner {
    mode: u32,
    uid: u32,
    gid: u32,
    is_dir: bool,
}

/// Why access was not confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The user may not.
    No(String),
    /// Whether it may cannot be told by this process.
    Unknown(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn user(uid: u32, gid: u32, groups: Vec<u32>) -> ServiceUser {
        ServiceUser {
            account: Account {
                name: "svc".into(),
                uid,
                gid,
                groups,
            },
            is_me: false,
        }
    }

    fn file(mode: u32) -> Owner {
        Owner {
            mode,
            uid: 100,
            gid: 200,
            is_dir: false,
        }
    }

    #[test]
    fn the_class_that_applies_is_owner_then_group_then_other() {
        assert!(user(100, 1, vec![]).grants(file(0o640), 0o6));
        assert!(user(7, 200, vec![]).grants(file(0o640), 0o4));
        assert!(!user(7, 200, vec![]).grants(file(0o640), 0o2));
        assert!(
            user(7, 1, vec![200]).grants(file(0o640), 0o4),
            "a supplementary group counts"
        );
        assert!(!user(7, 1, vec![]).grants(file(0o640), 0o4));
        assert!(user(7, 1, vec![]).grants(file(0o644), 0o4));
        // The owner class applies even when it grants less than the others would.
        assert!(!user(100, 1, vec![]).grants(file(0o044), 0o4));
        assert!(user(7, 1, vec![]).grants(file(0o755), 0o5));
    }

    #[test]
    fn root_may_read_anything_but_runs_only_what_is_executable() {
        let root = user(0, 0, vec![0]);
        assert!(root.grants(file(0o600), 0o4) && root.grants(file(0o600), 0o2));
        assert!(!root.grants(file(0o600), 0o1));
        assert!(root.grants(file(0o700), 0o1));
    }

    #[test]
    fn a_directory_above_without_search_permission_denies_the_file_below() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("inner");
        std::fs::create_dir(&inner).unwrap();
        let target = inner.join("file");
        std::fs::write(&target, "x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).unwrap();
        let owner = std::fs::metadata(&inner).unwrap().uid();
        let stranger = user(owner.wrapping_add(4242), 4242, vec![]);
        if rustix::process::geteuid().is_root() {
            let err = stranger.may(&target, Need::Read).unwrap_err();
            assert!(matches!(&err, Denied::No(why) if why.contains("enter")), "{err:?}");
            std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o711)).unwrap();
            assert_eq!(stranger.may(&target, Need::Read), Ok(()));
        } else {
            assert!(matches!(stranger.may(&target, Need::Read), Err(Denied::Unknown(_))));
        }
    }
}
