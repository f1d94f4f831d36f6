//! What `check-config` needs from the broker's systemd unit when it runs outside it: where each
//! `LoadCredential=` comes from, which user the service runs as, and where it may write. Read
//! from the unit file and its drop-ins the way systemd merges them; only the settings named here
//! are understood, everything else is passed over.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The unit's name, as the package installs it.
pub const UNIT_NAME: &str = "ktbrokerd.service";

/// Where systemd looks for system units, most important first.
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Where a `LoadCredential=` with a relative path (or none) is searched, in order.
const CREDSTORE_DIRS: &[&str] = &["/etc/credstore", "/run/credstore", "/usr/lib/credstore"];

#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error("no {UNIT_NAME} in {} (pass --unit FILE or --credentials-dir DIR)", UNIT_DIRS.join(", "))]
    NotFound,
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {problem}")]
    Invalid {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// Where one credential's contents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `LoadCredential=`: a file systemd copies in as it is.
    File(PathBuf),
    /// `LoadCredentialEncrypted=`: systemd decrypts it first, so only the unit sees the contents.
    Encrypted(PathBuf),
    /// `SetCredential=`: the value is in the unit itself.
    Inline,
}

/// The settings of the broker's unit that decide whether its configuration can work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceUnit {
    /// The unit file and its drop-ins, in the order they were applied.
    pub files: Vec<PathBuf>,
    /// `User=`; `None` runs the service as root.
    pub user: Option<String>,
    pub credentials: BTreeMap<String, CredentialSource>,
    /// `ProtectSystem=strict`: the whole file system is read-only but for [`Self::writable`].
    pub read_only_system: bool,
    /// Directories the service may write: `ReadWritePaths=` and the `LogsDirectory=`,
    /// `StateDirectory=`, `CacheDirectory=` and `RuntimeDirectory=` systemd creates for it.
    pub writable: Vec<PathBuf>,
    /// The directories among [`Self::writable`] that systemd creates at start (they need not
    /// exist yet).
    pub created_at_start: Vec<PathBuf>,
}

impl ServiceUnit {
    /// The installed unit: the first `ktbrokerd.service` in systemd's unit directories, with
    /// its drop-ins from all of them.
    pub fn installed() -> Result<Self, UnitError> {
        let file = UNIT_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(UNIT_NAME))
            .find(|path| path.is_file())
            .ok_or(UnitError::NotFound)?;
        let drop_in_dirs: Vec<PathBuf> = UNIT_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(format!("{UNIT_NAME}.d")))
            .collect();
        Self::read(&file, &drop_in_dirs)
    }

    /// The unit in `file` with the drop-ins in `FILE.d/` beside it only (a unit kept outside
    /// systemd's directories, or a test's).
    pub fn from_file(file: &Path) -> Result<Self, UnitError> {
        let mut drop_ins = file.as_os_str().to_owned();
        drop_ins.push(".d");
        Self::read(file, &[PathBuf::from(drop_ins)])
    }

    /// `file`, then each `*.conf` in `drop_in_dirs` in file-name order; a name in an earlier
    /// directory hides the same name in later ones.
    fn read(file: &Path, drop_in_dirs: &[PathBuf]) -> Result<Self, UnitError> {
        let mut drop_ins = BTreeMap::new();
        for dir in drop_in_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if Path::new(&name).extension().is_some_and(|e| e == "conf") {
                    drop_ins.entry(name).or_insert_with(|| entry.path());
                }
            }
        }
        let mut unit = Self::default();
        for path in std::iter::once(file.to_owned()).chain(drop_ins.into_values()) {
            let text = std::fs::read_to_string(&path).map_err(|source| UnitError::Read {
                path: path.clone(),
                source,
            })?;
            unit.apply(&path, &text)?;
            unit.files.push(path);
        }
        Ok(unit)
    }

    /// Applies one file's `[Service]` settings on top of what came before.
    fn apply(&mut self, path: &Path, text: &str) -> Result<(), UnitError> {
        let mut in_service = false;
        for (line_number, line) in logical_lines(text) {
            let invalid = |problem: String| UnitError::Invalid {
                path: path.to_owned(),
                line: line_number,
                problem,
            };
            if line.starts_with('[') {
                in_service = line == "[Service]";
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(invalid(format!("{line:?} is not KEY=VALUE")));
            };
            if in_service {
                self.set(key.trim(), value.trim()).map_err(invalid)?;
            }
        }
        Ok(())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "User" => self.user = Some(value.to_owned()).filter(|v| !v.is_empty()),
            // An empty assignment resets the list, as for every list setting.
            "LoadCredential" | "LoadCredentialEncrypted" | "SetCredential" | "SetCredentialEncrypted"
                if value.is_empty() =>
            {
                self.credentials.clear();
            }
            "LoadCredential" | "LoadCredentialEncrypted" => {
                let (name, source) = value.split_once(':').unwrap_or((value, value));
                let path = credential_path(source);
                let source = if key == "LoadCredential" {
                    CredentialSource::File(path)
                } else {
                    CredentialSource::Encrypted(path)
                };
                self.credentials.insert(name.to_owned(), source);
            }
            "SetCredential" | "SetCredentialEncrypted" => {
                let name = value.split_once(':').map_or(value, |(name, _)| name);
                // A LoadCredential= of the same name wins over SetCredential=.
                self.credentials
                    .entry(name.to_owned())
                    .or_insert(CredentialSource::Inline);
            }
            "ProtectSystem" => self.read_only_system = value == "strict",
            "ReadWritePaths" if value.is_empty() => self.writable.clear(),
            "ReadWritePaths" => {
                for path in value.split_whitespace() {
                    // A leading '-' ignores a missing path; '+' is relative to RootDirectory=.
                    let path = path.trim_start_matches(['-', '+']);
                    if !path.starts_with('/') {
                        return Err(format!("ReadWritePaths={path} is not an absolute path"));
                    }
                    self.writable.push(PathBuf::from(path));
                }
            }
            "LogsDirectory" | "StateDirectory" | "CacheDirectory" | "RuntimeDirectory" => {
                let root = match key {
                    "LogsDirectory" => "/var/log",
                    "StateDirectory" => "/var/lib",
                    "CacheDirectory" => "/var/cache",
                    _ => "/run",
                };
                for name in value.split_whitespace() {
                    // NAME or NAME:SYMLINK; the directory is NAME under the root.
                    let name = name.split(':').next().unwrap_or(name);
                    let dir = Path::new(root).join(name);
                    self.writable.push(dir.clone());
                    self.created_at_start.push(dir);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The `LoadCredential=` files, for `Credentials::Sources`. Encrypted and inline credentials
    /// are left out: their contents exist only inside the unit.
    pub fn credential_files(&self) -> BTreeMap<String, PathBuf> {
        self.credentials
            .iter()
            .filter_map(|(name, source)| match source {
                CredentialSource::File(path) => Some((name.clone(), path.clone())),
                CredentialSource::Encrypted(_) | CredentialSource::Inline => None,
            })
            .collect()
    }

    /// Whether the service may write under `path`.
    pub fn may_write(&self, path: &Path) -> bool {
        !self.read_only_system || self.writable.iter().any(|dir| path.starts_with(dir))
    }

    /// Whether systemd creates `dir` (or a directory above it) when the service starts.
    pub fn creates(&self, dir: &Path) -> bool {
        self.created_at_start.iter().any(|created| dir.starts_with(created))
    }
}

/// An absolute source is itself; a relative one (or a bare name) is the first match in the
/// credential stores, or the first store's path if none has it (so the error names a path).
fn credential_path(source: &str) -> PathBuf {
    if source.starts_with('/') {
        return PathBuf::from(source);
    }
    CREDSTORE_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(source))
        .find(|path| path.exists())
        .unwrap_or_else(|| Path::new(CREDSTORE_DIRS[0]).join(source))
}

/// The file's settings one per item, with their first line's number: comments and blank lines
/// dropped, lines ending in a backslash joined with the next.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if pending.is_none() && (trimmed.is_empty() || trimmed.starts_with(['#', ';'])) {
            continue;
        }
        let (number, mut line) = pending.take().unwrap_or((index + 1, String::new()));
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                line.push_str(start);
                line.push(' ');
                pending = Some((number, line));
            }
            None => {
                line.push_str(trimmed);
                lines.push((number, line));
            }
        }
    }
    lines.extend(pending);
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn the_shipped_unit_loads_three_credentials_as_its_own_user() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/ktbrokerd.service");
        let unit = ServiceUnit::from_file(&shipped).unwrap();
        assert_eq!(unit.user.as_deref(), Some("_ktbroker"));
        assert_eq!(
            unit.credential_files(),
            BTreeMap::from([
                ("admin-keytab".to_owned(), PathBuf::from("/etc/ktbroker/admin.keytab")),
                ("ldap-password".to_owned(), PathBuf::from("/etc/ktbroker/ldap-password")),
                ("tls-key".to_owned(), PathBuf::from("/etc/ktbroker/tls.key")),
            ])
        );
        assert!(unit.read_only_system);
        assert!(unit.may_write(Path::new("/var/log/ktbroker/audit.jsonl")));
        assert!(unit.creates(Path::new("/var/log/ktbroker")));
        assert!(!unit.may_write(Path::new("/etc/ktbroker/audit.jsonl")));
    }

    #[test]
    fn drop_ins_apply_in_name_order_and_an_empty_assignment_resets() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ktbrokerd.service");
        write(
            &file,
            "[Unit]\nDescription=x\n\n[Service]\n# a comment\nUser=_ktbroker\n\
             LoadCredential=tls-key:/etc/ktbroker/tls.key\nLoadCredential=admin-keytab:/etc/ktbroker/admin.keytab\n",
        );
        write(
            &dir.path().join("ktbrokerd.service.d/20-creds.conf"),
            "[Service]\nLoadCredential=\nLoadCredential=tls-key:/srv/tls.key\n\
             LoadCredentialEncrypted=ldap-password:/srv/ldap.cred\nReadWritePaths=-/srv/audit \\\n  /srv/more\n",
        );
        write(
            &dir.path().join("ktbrokerd.service.d/10-user.conf"),
            "[Service]\nUser=broker\n[Install]\nUser=not-this\n",
        );
        write(
            &dir.path().join("ktbrokerd.service.d/ignored.txt"),
            "[Service]\nUser=nobody\n",
        );
        let unit = ServiceUnit::from_file(&file).unwrap();
        assert_eq!(unit.user.as_deref(), Some("broker"));
        assert_eq!(
            unit.credentials,
            BTreeMap::from([
                (
                    "ldap-password".to_owned(),
                    CredentialSource::Encrypted("/srv/ldap.cred".into())
                ),
                ("tls-key".to_owned(), CredentialSource::File("/srv/tls.key".into())),
            ])
        );
        assert_eq!(
            unit.writable,
            vec![PathBuf::from("/srv/audit"), PathBuf::from("/srv/more")]
        );
        assert_eq!(unit.files.len(), 3);
    }

    #[test]
    fn a_line_that_is_not_a_setting_is_an_error_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ktbrokerd.service");
        write(&file, "[Service]\nUser=x\nnonsense\n");
        let err = ServiceUnit::from_file(&file).unwrap_err().to_string();
        assert!(err.contains("ktbrokerd.service:3"), "{err}");
    }
}
