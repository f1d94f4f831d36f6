//! netdisk's errors: a kind (which fixes the exit code) and a one-line message. Hadoop's Java
//! exception names are turned into kinds here, and its stack traces are dropped.

use std::fmt;

/// What went wrong, as far as a script needs to know. The exit codes are listed in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything else Hadoop or the local system reported.
    Other,
    /// Bad arguments or configuration.
    Usage,
    /// No valid ticket and no way to log in, or the login or Kerberos authentication failed.
    Auth,
    /// HDFS permissions (AccessControlException), or a local file we may not touch.
    Permission,
    NotFound,
    /// Already exists, not empty, is a directory, not a directory.
    Conflict,
    /// The cluster is unreachable, too slow, in safe mode or on standby.
    Unavailable,
    /// A name or space quota would be exceeded.
    Quota,
    /// Stopped by SIGINT or SIGTERM.
    Interrupted,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Other => 1,
            Kind::Usage => 2,
            Kind::Auth => 3,
            Kind::Permission => 4,
            Kind::NotFound => 5,
            Kind::Conflict => 6,
            Kind::Unavailable => 7,
            Kind::Quota => 8,
            Kind::Interrupted => 130,
        }
    }

    /// The greppable name printed as `[name]`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Other => "error",
            Kind::Usage => "usage",
            Kind::Auth => "auth",
            Kind::Permission => "permission",
            Kind::NotFound => "not-found",
            Kind::Conflict => "conflict",
            Kind::Unavailable => "unavailable",
            Kind::Quota => "quota",
            Kind::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetdiskError {
    pub kind: Kind,
    pub message: String,
}

impl fmt::Display for NetdiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NetdiskError {}

pub type Result<T> = std::result::Result<T, NetdiskError>;

impl NetdiskError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    /// Prefixes what was being done, e.g. `ls /user/bob: `.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Self {
            kind: self.kind,
            message: format!("{what}: {}", self.message),
        }
    }

    /// A local file operation that failed.
    pub fn local(path: &std::path::Path, error: &std::io::Error) -> Self {
        use std::io::ErrorKind as E;
        let kind = match error.kind() {
            E::NotFound => Kind::NotFound,
            E::PermissionDenied => Kind::Permission,
            E::AlreadyExists | E::IsADirectory | E::NotADirectory | E::DirectoryNotEmpty => Kind::Conflict,
            _ => Kind::Other,
        };
        Self::new(kind, format!("{}: {error}", path.display()))
    }

    /// From a Java exception class name and its message, as a NameNode or WebHDFS reports them.
    pub fn from_java(class: &str, message: &str) -> Self {
        let simple = class.rsplit('.').next().unwrap_or(class);
        let first_line = message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(simple);
        let kind = match simple {
            "AccessControlException" if is_authentication_failure(first_line) => Kind::Auth,
            "AccessControlException" => Kind::Permission,
            "FileNotFoundException" => Kind::NotFound,
            "FileAlreadyExistsException"
            | "PathIsNotEmptyDirectoryException"
            | "ParentNotDirectoryException"
            | "PathIsNotDirectoryException"
            | "PathIsDirectoryException" => Kind::Conflict,
            "SafeModeException" => {
                return Self::new(
                    Kind::Unavailable,
                    format!(
                        "the cluster is in safe mode and accepts no changes for now; try again later ({})",
                        first_line
                    ),
                );
            }
            "StandbyException" | "RetriableException" | "ConnectException" => Kind::Unavailable,
            "DSQuotaExceededException" | "NSQuotaExceededException" | "QuotaExceededException" => Kind::Quota,
            "InvalidToken" | "SaslException" | "AuthenticationException" => Kind::Auth,
            _ => Kind::Other,
        };
        let message = match kind {
            Kind::Other => format!("{first_line} ({simple})"),
            Kind::Quota => format!("quota exceeded: {first_line}"),
            _ => first_line.to_owned(),
        };
        Self::new(kind, message)
    }
}

/// AccessControlException is also how a NameNode refuses a client it could not authenticate.
fn is_authentication_failure(message: &str) -> bool {
    message.contains("authentication is not enabled") || message.contains("Authentication failed")
}

/// The message a person sees when the cluster did not accept their Kerberos credentials.
pub fn no_ticket_accepted(detail: &str) -> NetdiskError {
    NetdiskError::new(
        Kind::Auth,
        format!("the cluster did not accept your Kerberos ticket ({detail}); log in again with ktbroker-kinit"),
    )
}

impl From<hdfs_native::HdfsError> for NetdiskError {
    fn from(error: hdfs_native::HdfsError) -> Self {
        use hdfs_native::HdfsError as H;
        match error {
            H::RPCError(class, message) | H::FatalRPCError(class, message) => Self::from_java(&class, &message),
            // The caller's context names the path.
            H::FileNotFound(_) => Self::new(Kind::NotFound, "no such file or directory"),
            H::AlreadyExists(path) => Self::new(Kind::Conflict, format!("already exists: {path}")),
            H::IsADirectoryError(path) => Self::new(Kind::Conflict, format!("is a directory: {path}")),
            H::InvalidPath(path) => Self::new(Kind::Usage, format!("invalid path: {path}")),
            H::GSSAPIError(..) | H::SASLError(_) | H::NoSASLMechanism => no_ticket_accepted(&error.to_string()),
            H::IOError(io) => Self::new(Kind::Unavailable, format!("cannot talk to the cluster: {io}")),
            other => Self::new(Kind::Other, other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_exceptions_become_kinds_and_one_line() {
        let denied = NetdiskError::from_java(
            "org.apache.hadoop.security.AccessControlException",
            "Permission denied: user=alice, access=READ_EXECUTE, inode=\"/user/bob\":bob:supergroup:drwx------\n\tat org.apache...\n",
        );
        assert_eq!(denied.kind, Kind::Permission);
        assert_eq!(
            denied.message,
            "Permission denied: user=alice, access=READ_EXECUTE, inode=\"/user/bob\":bob:supergroup:drwx------"
        );
        for (class, kind) in [
            ("java.io.FileNotFoundException", Kind::NotFound),
            ("org.apache.hadoop.fs.FileAlreadyExistsException", Kind::Conflict),
            ("org.apache.hadoop.fs.PathIsNotEmptyDirectoryException", Kind::Conflict),
            (
                "org.apache.hadoop.hdfs.server.namenode.SafeModeException",
                Kind::Unavailable,
            ),
            ("org.apache.hadoop.hdfs.protocol.DSQuotaExceededException", Kind::Quota),
            ("org.apache.hadoop.hdfs.protocol.NSQuotaExceededException", Kind::Quota),
            (
                "org.apache.hadoop.security.token.SecretManager$InvalidToken",
                Kind::Other,
            ),
            ("org.apache.hadoop.ipc.StandbyException", Kind::Unavailable),
            ("java.lang.IllegalArgumentException", Kind::Other),
        ] {
            assert_eq!(NetdiskError::from_java(class, "x").kind, kind, "{class}");
        }
        let safe = NetdiskError::from_java(
            "org.apache.hadoop.hdfs.server.namenode.SafeModeException",
            "Cannot create directory /user/alice/x. Name node is in safe mode.",
        );
        assert!(
            safe.message.starts_with("the cluster is in safe mode"),
            "{}",
            safe.message
        );
        let other = NetdiskError::from_java("java.lang.IllegalArgumentException", "bad\nstack");
        assert_eq!(other.message, "bad (IllegalArgumentException)");
        let auth = NetdiskError::from_java(
            "org.apache.hadoop.security.AccessControlException",
            "SIMPLE authentication is not enabled.  Available:[TOKEN, KERBEROS]",
        );
        assert_eq!(auth.kind, Kind::Auth);
    }

    #[test]
    fn exit_codes_are_distinct() {
        let kinds = [
            Kind::Other,
            Kind::Usage,
            Kind::Auth,
            Kind::Permission,
            Kind::NotFound,
            Kind::Conflict,
            Kind::Unavailable,
            Kind::Quota,
            Kind::Interrupted,
        ];
        let mut codes: Vec<u8> = kinds.iter().map(|k| k.exit_code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len());
        assert!(!codes.contains(&0));
    }
}
