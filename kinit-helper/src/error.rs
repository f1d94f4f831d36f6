//! The helper's errors, each with a stable exit code and a one-line hint.

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HelperError {
    #[error("authentication failed (wrong username or password, or not authorized)")]
    AuthFailed,
    #[error("refused by the broker: {0}")]
    Refused(String),
    #[error("cannot reach the broker: {0}")]
    Unreachable(String),
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
    #[error("the broker's answer is invalid: {0}")]
    Protocol(String),
    #[error("getting the ticket from the KDC failed: {0}")]
    Kinit(String),
    #[error("no valid ticket: {0}")]
    NoTicket(String),
    #[error("cannot read the password: {0}")]
    Password(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("refusing the credential cache: {0}")]
    Ccache(String),
}

impl HelperError {
    /// Exit codes, documented in `ktbroker-kinit --help`.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::AuthFailed => 3,
            Self::Refused(_) => 4,
            Self::Unreachable(_) | Self::Unavailable(_) => 5,
            Self::Protocol(_) => 6,
            Self::Kinit(_) | Self::NoTicket(_) => 7,
            Self::Password(_) => 8,
            Self::Internal(_) => 1,
            Self::Config(_) => 2,
            Self::Ccache(_) => 9,
        }
    }
}
