//! The one error type of the service: what the audit records ([`Outcome`]) and what the caller is
//! told ([`RefusalCode`], sent as a typed status detail). Everything a refusal implies (its gRPC
//! status, whether it counts towards lockout and waits out the failure delay) is derived here.

use crate::audit::Outcome;
use ktbroker_codes::{PasswordRules, RefusalCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub outcome: Outcome,
    pub code: RefusalCode,
    /// The rules a refused new password broke (with NEW_PASSWORD_REJECTED).
    pub rules: Option<PasswordRules>,
}

impl Refusal {
    pub fn new(outcome: Outcome, code: RefusalCode) -> Self {
        Self {
            outcome,
            code,
            rules: None,
        }
    }

    /// The directory refused the new password.
    pub fn new_password_rejected(rules: PasswordRules) -> Self {
        Self {
            rules: Some(rules),
            ..Self::new(Outcome::NewPasswordRejected, RefusalCode::NewPasswordRejected)
        }
    }

    /// An authentication failure: every reason gets the same answer.
    pub fn auth_failed(outcome: Outcome) -> Self {
        Self::new(outcome, RefusalCode::AuthFailed)
    }

    /// The status the caller gets: gRPC code, people's message and the typed code.
    pub fn status(&self) -> tonic::Status {
        ktbroker_proto::refusal::status_with(self.code, self.rules)
    }

    /// Counts towards lockout and answers no sooner than the failure delay. A refusal because
    /// the account is already locked out answers late too, but is not counted again.
    pub fn is_authentication_failure(&self) -> bool {
        self.code == RefusalCode::AuthFailed
    }
}
