//! One audit record per authentication attempt, on the `ktbroker::audit` tracing target (so a
//! subscriber can route it to its own sink). Records carry who, from where, what, and the outcome;
//! never a password or key.

use std::net::SocketAddr;

/// How an attempt ended, as written to the audit log (the caller may see less).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Granted,
    InvalidUsername,
    PrincipalNotAllowed,
    EmptyPassword,
    PasswordTooLong,
    InvalidCredentials,
    UnknownUser,
    NotInGroup,
    DirectoryUnavailable,
    NoPrincipal,
    KeySourceFailed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::InvalidUsername => "invalid_username",
            Self::PrincipalNotAllowed => "principal_not_allowed",
            Self::EmptyPassword => "empty_password",
            Self::PasswordTooLong => "password_too_long",
            Self::InvalidCredentials => "invalid_credentials",
            Self::UnknownUser => "unknown_user",
            Self::NotInGroup => "not_in_group",
            Self::DirectoryUnavailable => "directory_unavailable",
            Self::NoPrincipal => "no_principal",
            Self::KeySourceFailed => "key_source_failed",
        }
    }
}

/// Writes one audit record. `username` is printed escaped (`{:?}`) because a refused name may
/// hold control characters.
pub fn record(request_id: u64, peer: Option<SocketAddr>, username: &str, principal: Option<&str>, outcome: Outcome) {
    let peer = peer.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
    let principal = principal.unwrap_or("-");
    if outcome == Outcome::Granted {
        tracing::info!(target: "ktbroker::audit", request_id, %peer, ?username, principal, outcome = outcome.as_str(), "keytab served");
    } else {
        tracing::warn!(target: "ktbroker::audit", request_id, %peer, ?username, principal, outcome = outcome.as_str(), "keytab refused");
    }
}
