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

impl HelperError {
    /// A stable, greppable name for what went wrong (printed as `[name]`; documented in --help).
    pub fn code(&self) -> &'static str {
        match self {
            Self::AuthFailed => "auth-failed",
            Self::Refused(m) if m.contains("KTB-104") => "no-principal",
            Self::Refused(m) if m.contains("KTB-105") => "no-usable-enctype",
            Self::Refused(m) if m.contains("KTB-106") => "unknown-tenant",
            Self::Refused(m) if m.contains("KTB-107") => "host-not-registered",
            Self::Refused(_) => "refused",
            Self::Unreachable(m) if is_tls_trust(m) => "tls-trust",
            Self::Unreachable(_) => "broker-unreachable",
            Self::Unavailable(_) => "broker-unavailable",
            Self::Protocol(_) => "protocol",
            Self::Kinit(m) if m.contains("Clock skew") => "clock-skew",
            Self::Kinit(m) if m.contains("Cannot contact any KDC") || m.contains("did not finish within") => {
                "kdc-unreachable"
            }
            Self::Kinit(_) => "kdc-failed",
            Self::NoTicket(_) => "no-ticket",
            Self::Password(_) => "password",
            Self::Internal(_) => "internal",
            Self::Config(_) => "config",
            Self::Ccache(_) => "ccache-not-yours",
        }
    }

    /// One line on what to do about it.
    pub fn hint(&self) -> &'static str {
        match self.code() {
            "auth-failed" => {
                "check the directory username and password; after repeated failures the account is locked for a while"
            }
            "no-principal" => {
                "the directory knows you but the KDC has no principal for you: ask the Kerberos administrators"
            }
            "no-usable-enctype" => "your principal has no AES key: ask the Kerberos administrators to re-key it",
            "unknown-tenant" => "the broker has no such tenant: check --tenant or `tenant` in client.toml",
            "host-not-registered" => {
                "this host is not registered for the tenant: use --client-cert/--client-key, or ask to register it"
            }
            "refused" => "the broker's policy does not allow this request",
            "tls-trust" => {
                "the broker's certificate does not chain to --ca-file (or its name differs: see --tls-server-name)"
            }
            "broker-unreachable" => "check the broker URL, that ktbrokerd runs, and the network path to it",
            "broker-unavailable" => {
                "the broker cannot reach its directory or KDC right now: retry, or use another broker"
            }
            "protocol" => "the broker and this client disagree: check that their versions match",
            "clock-skew" => "this host's clock is off by more than the KDC allows: synchronize it (chrony or ntp)",
            "kdc-unreachable" => "the KDC does not answer: check krb5.conf [realms] and that port 88 is open",
            "kdc-failed" => "the KDC refused the ticket request: see the message above",
            "no-ticket" => "log in first: ktbroker-kinit [USER]",
            "password" => "give the password on the terminal, on stdin, or with --password-fd",
            "config" => "see ktbroker-kinit --help and /etc/ktbroker/client.toml",
            "ccache-not-yours" => "choose another cache with -c (or remove a stale one that is yours)",
            _ => "this is a bug in ktbroker-kinit; run again with KTBROKER_LOG=debug",
        }
    }
}

/// rustls' words for a certificate the client does not trust.
fn is_tls_trust(message: &str) -> bool {
    message.contains("invalid peer certificate")
        || message.contains("UnknownIssuer")
        || message.contains("NotValidForName")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_code_and_a_hint() {
        let cases = [
            (HelperError::AuthFailed, "auth-failed", 3),
            (HelperError::Refused("KTB-105 no key".into()), "no-usable-enctype", 4),
            (HelperError::Refused("KTB-107 host".into()), "host-not-registered", 4),
            (
                HelperError::Unreachable("invalid peer certificate: UnknownIssuer".into()),
                "tls-trust",
                5,
            ),
            (
                HelperError::Unreachable("Connection refused".into()),
                "broker-unreachable",
                5,
            ),
            (
                HelperError::Kinit("krb5_get_init_creds_keytab: Clock skew too great".into()),
                "clock-skew",
                7,
            ),
            (
                HelperError::Kinit("Cannot contact any KDC for realm 'R'".into()),
                "kdc-unreachable",
                7,
            ),
            (HelperError::Ccache("x".into()), "ccache-not-yours", 9),
        ];
        for (error, code, exit) in cases {
            assert_eq!(error.code(), code, "{error}");
            assert_eq!(error.exit_code(), exit, "{error}");
            assert!(!error.hint().contains("bug"), "{code} has its own hint");
        }
    }
}
