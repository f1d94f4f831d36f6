//! The helper's errors, each with a stable exit code ([`HelperExit`]), a stable name and a
//! one-line hint. Errors are told apart by codes only: the broker's [`RefusalCode`], libkrb5's
//! `krb5_error_code` (as [`FailureKind`]) and rustls' typed errors; their text is for people.

use ktbroker_codes::{HelperExit, RefusalCode};
use ktbroker_krb5::{FailureKind, Krb5Error};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HelperError {
    #[error("authentication failed (wrong username or password, or not authorized)")]
    AuthFailed,
    #[error("refused by the broker: {0}")]
    Refused(RefusalCode),
    /// The directory refused the new password; the rules say why in plain words.
    #[error("{}", .0.describe())]
    NewPasswordRejected(ktbroker_codes::PasswordRules),
    #[error("cannot reach the broker: {0}")]
    Unreachable(String),
    /// The TLS handshake failed because the broker's certificate is not trusted (or not its name).
    #[error("cannot reach the broker: {0}")]
    UntrustedBroker(String),
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
    /// At its concurrency limit (after the retries, every broker was).
    #[error("the broker is busy: {0}")]
    Busy(String),
    #[error("the broker's answer is invalid: {0}")]
    Protocol(String),
    #[error("getting the ticket from the KDC failed: {message}")]
    Kerberos { kind: FailureKind, message: String },
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

impl From<Krb5Error> for HelperError {
    fn from(error: Krb5Error) -> Self {
        Self::Kerberos {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

impl HelperError {
    /// A Kerberos failure the helper itself detected (a deadline, a clock compared with the broker's).
    pub fn kerberos(kind: FailureKind, message: impl Into<String>) -> Self {
        Self::Kerberos {
            kind,
            message: message.into(),
        }
    }

    /// The exit status, documented in `ktbroker-kinit --help` (and read by the PAM module).
    pub fn exit(&self) -> HelperExit {
        match self {
            Self::AuthFailed => HelperExit::AuthFailed,
            Self::Refused(RefusalCode::PasswordChangeRequired) => HelperExit::PasswordChangeRequired,
            Self::Refused(_) | Self::NewPasswordRejected(_) => HelperExit::Refused,
            Self::Unreachable(_) | Self::UntrustedBroker(_) | Self::Unavailable(_) | Self::Busy(_) => {
                HelperExit::BrokerUnavailable
            }
            Self::Protocol(_) => HelperExit::Protocol,
            Self::Kerberos { .. } | Self::NoTicket(_) => HelperExit::Kerberos,
            Self::Password(_) => HelperExit::Password,
            Self::Internal(_) => HelperExit::Internal,
            Self::Config(_) => HelperExit::Config,
            Self::Ccache(_) => HelperExit::Ccache,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.exit().code()
    }

    /// A stable, greppable name for what went wrong (printed as `[name]`; documented in --help).
    pub fn code(&self) -> &'static str {
        match self {
            Self::AuthFailed => "auth-failed",
            Self::Refused(RefusalCode::NoPrincipal) => "no-principal",
            Self::Refused(RefusalCode::NoUsableEnctype) => "no-usable-enctype",
            Self::Refused(RefusalCode::UnknownTenant) => "unknown-tenant",
            Self::Refused(RefusalCode::HostNotRegistered) => "host-not-registered",
            Self::Refused(RefusalCode::PasswordChangeRequired) => "password-change-required",
            Self::Refused(RefusalCode::PasswordChangeElsewhere) => "password-change-elsewhere",
            Self::Refused(RefusalCode::DeliveryNotAllowed) => "delivery-not-allowed",
            Self::Refused(RefusalCode::SsoNotOffered) => "sso-not-offered",
            Self::Refused(RefusalCode::PasswordLoginNotOffered) => "sso-only",
            Self::NewPasswordRejected(_) => "new-password-rejected",
            Self::Refused(_) => "refused",
            Self::UntrustedBroker(_) => "tls-trust",
            Self::Unreachable(_) => "broker-unreachable",
            Self::Unavailable(_) => "broker-unavailable",
            Self::Busy(_) => "broker-busy",
            Self::Protocol(_) => "protocol",
            Self::Kerberos { kind, .. } => match kind {
                FailureKind::ClockSkew => "clock-skew",
                FailureKind::KdcUnreachable => "kdc-unreachable",
                FailureKind::RealmUnknown => "realm-unknown",
                _ => "kdc-failed",
            },
            Self::NoTicket(_) => "no-ticket",
            Self::Password(_) => "password",
            Self::Internal(_) => "internal",
            Self::Config(_) => "config",
            Self::Ccache(_) => "ccache-not-yours",
        }
    }

    /// Whether another broker may be asked: this one gave no authentication answer (it was not
    /// reached, timed out, lost the connection, was busy or unavailable). Never after a verdict.
    pub fn tries_elsewhere(&self) -> bool {
        matches!(
            self,
            Self::Unreachable(_) | Self::UntrustedBroker(_) | Self::Unavailable(_) | Self::Busy(_)
        )
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
            "password-change-required" => {
                "your directory password was reset or has expired: log in on a terminal to choose a new one (or give the new one twice on stdin, after the old)"
            }
            "password-change-elsewhere" => {
                "your directory password has expired and cannot be changed here: change it where you change it for the company directory (its password portal), then log in again"
            }
            "delivery-not-allowed" => {
                "this tenant hands out only tickets (or only keytabs): use --delivery ticket, or `delivery = \"ticket\"` in client.toml"
            }
            "new-password-rejected" => "choose a password that meets the rules above, then try again",
            "sso-not-offered" => "this tenant checks passwords: log in without --sso",
            "sso-only" => "this tenant signs people in at its identity provider: log in with --sso",
            "tls-trust" => {
                "the broker's certificate does not chain to --ca-file (or its name differs: see --tls-server-name)"
            }
            "broker-unreachable" => "check the broker URL, that ktbrokerd runs, and the network path to it",
            "broker-unavailable" => {
                "the broker gave no complete answer (restarting, or cannot reach its directory or KDC right now): retry, or use another broker"
            }
            "broker-busy" => "every broker is at its concurrency limit: retry in a moment, or add a replica",
            "protocol" => {
                "the broker's answer broke the protocol: check that client and broker versions match, and that nothing in between alters TLS"
            }
            "clock-skew" => "this host's clock is off by more than the KDC allows: synchronize it (chrony or ntp)",
            "kdc-unreachable" => "the KDC does not answer: check krb5.conf [realms] and that port 88 is open",
            "realm-unknown" => "krb5.conf does not say where the realm's KDCs are: check [libdefaults] and [realms]",
            "kdc-failed" => "the KDC refused the ticket request: see the message above",
            "no-ticket" => "log in first: ktbroker-kinit [USER]",
            "password" => "give the password on the terminal, on stdin, or with --password-fd",
            "config" => "see ktbroker-kinit --help and /etc/ktbroker/client.toml",
            "ccache-not-yours" => "choose another cache with -c (or remove a stale one that is yours)",
            _ => "this is a bug in ktbroker-kinit; run again with KTBROKER_LOG=debug",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krb5(code: i32) -> HelperError {
        HelperError::from(Krb5Error {
            code,
            message: "any text at all".into(),
            during: "krb5_get_init_creds_keytab",
        })
    }

    #[test]
    fn every_error_has_a_code_and_a_hint() {
        let cases = [
            (HelperError::AuthFailed, "auth-failed", 3),
            (
                HelperError::Refused(RefusalCode::NoUsableEnctype),
                "no-usable-enctype",
                4,
            ),
            (
                HelperError::Refused(RefusalCode::HostNotRegistered),
                "host-not-registered",
                4,
            ),
            (HelperError::Refused(RefusalCode::PrincipalNotAllowed), "refused", 4),
            (HelperError::UntrustedBroker("any".into()), "tls-trust", 5),
            (HelperError::Unreachable("any".into()), "broker-unreachable", 5),
            (HelperError::Unavailable("any".into()), "broker-unavailable", 5),
            (HelperError::Busy("any".into()), "broker-busy", 5),
            // KRB5KRB_AP_ERR_SKEW, KRB5_KDC_UNREACH, KRB5_REALM_UNKNOWN: by code, whatever the text.
            (krb5(-1_765_328_347), "clock-skew", 7),
            (krb5(-1_765_328_228), "kdc-unreachable", 7),
            (krb5(-1_765_328_230), "realm-unknown", 7),
            (krb5(-1_765_328_360), "kdc-failed", 7),
            (HelperError::Ccache("x".into()), "ccache-not-yours", 9),
        ];
        for (error, code, exit) in cases {
            assert_eq!(error.code(), code, "{error}");
            assert_eq!(error.exit_code(), exit, "{error}");
            assert!(!error.hint().contains("bug"), "{code} has its own hint");
        }
    }

    #[test]
    fn english_text_decides_nothing() {
        let error = HelperError::from(Krb5Error {
            code: -1_765_328_353,
            message: "Clock skew too great; Cannot contact any KDC".into(),
            during: "krb5_get_init_creds_keytab",
        });
        assert_eq!(error.code(), "kdc-failed");
    }
}
