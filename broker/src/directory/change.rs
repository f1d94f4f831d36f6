//! Changing a password the directory wants changed, the way each directory requires:
//!
//! - Active Directory: one modify of the user's entry, deleting `unicodePwd` with the old value
//!   and adding it with the new one (each the UTF-16LE bytes of the password in double quotes),
//!   over LDAPS. It is sent as the service account: AD lets any account change a password whose
//!   old value it supplies (the "Change Password" right), and the user cannot bind while the
//!   password must change. AD answers a refused change with result 19 and a Windows error code
//!   first in the message: 0000052D for "against the policy", 00000056 for a wrong old password.
//!   The policy's rules (length, complexity, history) are then read from the domain object.
//! - OpenLDAP (ppolicy): the RFC 3062 Password Modify operation, with the password policy control,
//!   on the connection bound as the user with the old password (ppolicy lets a reset or grace
//!   login bind for just this). The response control says which rule a refusal broke.
//!
//! The whole change, and the check with the new password after it, is one directory budget.

use super::{AuthError, Budget, LdapDirectory, VerifiedUser, ppolicy, template_dn};
use crate::config::{Schema, UserLookup};
use crate::policy::Username;
use ktbroker_codes::{PasswordProblem, PasswordRules};
use ldap3::controls::RawControl;
use ldap3::exop::PasswordModify;
use ldap3::{Ldap, Mod, Scope};
use std::collections::HashSet;
use zeroize::Zeroizing;

/// LDAP result code constraintViolation (RFC 4511).
const RC_CONSTRAINT_VIOLATION: u32 = 19;
/// ERROR_PASSWORD_RESTRICTION: the new password breaks the policy.
const AD_PASSWORD_RESTRICTION: u32 = 0x52D;
/// ERROR_INVALID_PASSWORD: the old password given with the change is wrong.
const AD_INVALID_PASSWORD: u32 = 0x56;

impl LdapDirectory {
    pub(super) async fn change_within(
        &self,
        user: &Username,
        old: &str,
        new: &str,
        budget: Budget,
    ) -> Result<VerifiedUser, AuthError> {
        if old.trim().is_empty() {
            return Err(AuthError::EmptyPassword);
        }
        if new.trim().is_empty() {
            return Err(AuthError::NewPasswordRejected(PasswordRules {
                problem: PasswordProblem::TooShort,
                ..PasswordRules::default()
            }));
        }
        let dn = match &self.config.lookup {
            UserLookup::Search { user_base, .. } => self.find_entry(user_base, user, budget).await?.dn,
            UserLookup::Template { template } => template_dn(template, user),
        };
        let mut as_user = self.connect(budget).await?.ldap;
        let result = async {
            match self.bind_user(&mut as_user, &dn, old, budget).await {
                // Nothing to change: an ordinary login with the password it has.
                Ok(()) => return Ok(false),
                Err(AuthError::PasswordMustChange | AuthError::PasswordExpired { changeable: true }) => {}
                Err(other) => return Err(other),
            }
            match self.config.schema {
                Schema::ActiveDirectory => self.change_unicode_pwd(&dn, old, new, budget).await?,
                Schema::Rfc2307 => password_modify(&mut as_user, &dn, old, new, budget).await?,
            }
            Ok(true)
        }
        .await;
        let _ = as_user.unbind().await;
        let changed = result?;
        if changed {
            tracing::info!(user = %user, "the directory password was changed");
        }
        let mut verified = self
            .verify_within(user, if changed { new } else { old }, budget)
            .await?;
        verified.password_changed = changed;
        Ok(verified)
    }

    /// AD's change: delete the old value, add the new one, as the service account.
    async fn change_unicode_pwd(&self, dn: &str, old: &str, new: &str, budget: Budget) -> Result<(), AuthError> {
        let index = self.next_slot.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.service.len();
        let mut pooled = self.service_connection(index, budget).await?;
        let attribute = Secret::from(b"unicodePwd".to_vec());
        let mods = vec![
            Mod::Delete(attribute.clone(), HashSet::from([quoted_utf16(old)])),
            Mod::Add(attribute, HashSet::from([quoted_utf16(new)])),
        ];
        let result = pooled
            .ldap
            .with_timeout(budget.left()?)
            .modify(dn, mods)
            .await
            .map_err(|e| AuthError::Unavailable(format!("password change: {e}")))?;
        match (result.rc, windows_error(&result.text)) {
            (0, _) => Ok(()),
            (RC_CONSTRAINT_VIOLATION, Some(AD_PASSWORD_RESTRICTION)) => {
                Err(AuthError::NewPasswordRejected(self.domain_rules(dn, budget).await))
            }
            (RC_CONSTRAINT_VIOLATION, Some(AD_INVALID_PASSWORD)) => Err(AuthError::InvalidCredentials),
            (rc, _) => Err(AuthError::Unavailable(format!(
                "password change answered rc={rc} {}",
                result.text
            ))),
        }
    }

    /// The domain's password rules (minPwdLength, pwdProperties' complexity bit, pwdHistoryLength),
    /// read from the domain object the entry `dn` is under; unknown parts stay 0.
    async fn domain_rules(&self, dn: &str, budget: Budget) -> PasswordRules {
        let domain = domain_of(dn);
        let attributes = ["minPwdLength", "pwdProperties", "pwdHistoryLength"];
        let read = self
            .service_search(&domain, Scope::Base, "(objectClass=*)", &attributes, budget)
            .await;
        let entry = match read {
            Ok(mut entries) if !entries.is_empty() => entries.remove(0),
            Ok(_) | Err(_) => {
                tracing::warn!(domain = %domain, "cannot read the domain's password rules");
                return PasswordRules::default();
            }
        };
        let number = |name: &str| -> u32 {
            entry
                .attrs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, values)| values.first())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        PasswordRules {
            problem: PasswordProblem::Unspecified,
            min_length: number("minPwdLength"),
            // DOMAIN_PASSWORD_COMPLEX
            complexity: number("pwdProperties") & 1 == 1,
            history: number("pwdHistoryLength"),
        }
    }
}

/// RFC 3062 on the user's own connection, with the password policy control.
async fn password_modify(ldap: &mut Ldap, dn: &str, old: &str, new: &str, budget: Budget) -> Result<(), AuthError> {
    let request = RawControl {
        ctype: ppolicy::OID.into(),
        crit: false,
        val: None,
    };
    let exop = PasswordModify {
        user_id: Some(dn),
        old_pass: Some(old),
        new_pass: Some(new),
    };
    let result = ldap
        .with_controls(request)
        .with_timeout(budget.left()?)
        .extended(exop)
        .await
        .map_err(|e| AuthError::Unavailable(format!("password modify: {e}")))?
        .1;
    if result.rc == 0 {
        return Ok(());
    }
    let policy = ppolicy::response_value(&result).and_then(ppolicy::response_error);
    let problem = match policy {
        Some(ppolicy::PolicyError::Other(5)) => PasswordProblem::TooSimple,
        Some(ppolicy::PolicyError::Other(6)) => PasswordProblem::TooShort,
        Some(ppolicy::PolicyError::Other(7)) => PasswordProblem::TooYoung,
        Some(ppolicy::PolicyError::Other(8)) => PasswordProblem::InHistory,
        _ if result.rc == RC_CONSTRAINT_VIOLATION => PasswordProblem::Unspecified,
        _ => {
            return Err(AuthError::Unavailable(format!(
                "password modify answered rc={} {}",
                result.rc, result.text
            )));
        }
    };
    Err(AuthError::NewPasswordRejected(PasswordRules {
        problem,
        ..PasswordRules::default()
    }))
}

/// An attribute value that is wiped when dropped (ldap3 takes its values by value).
#[derive(Clone, PartialEq, Eq)]
struct Secret(Zeroizing<Vec<u8>>);

impl std::hash::Hash for Secret {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_slice().hash(state);
    }
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }
}

impl AsRef<[u8]> for Secret {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// `"password"` in UTF-16LE, as AD's `unicodePwd` takes it.
fn quoted_utf16(password: &str) -> Secret {
    let mut bytes = Vec::with_capacity((password.len() + 2) * 2);
    for unit in std::iter::once('"')
        .chain(password.chars())
        .chain(std::iter::once('"'))
        .flat_map(|c| {
            let mut buffer = [0u16; 2];
            c.encode_utf16(&mut buffer).to_vec()
        })
    {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    Secret::from(bytes)
}

/// The Windows error code AD puts first in a diagnostic message: `0000052D: Constraint ...`.
fn windows_error(diagnostic: &str) -> Option<u32> {
    let (code, _) = diagnostic.split_once(':')?;
    if code.len() != 8 {
        return None;
    }
    u32::from_str_radix(code, 16).ok()
}

/// The `DC=` components that end `dn`: the domain object it lives under.
fn domain_of(dn: &str) -> String {
    let parts: Vec<&str> = dn.split(',').map(str::trim).collect();
    let first_dc = parts
        .iter()
        .position(|p| p.get(..3).is_some_and(|head| head.eq_ignore_ascii_case("dc=")))
        .unwrap_or(parts.len());
    parts[first_dc..].join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_pwd_is_the_quoted_password_in_utf16le() {
        assert_eq!(quoted_utf16("ab").as_ref(), b"\"\0a\0b\0\"\0");
        // Outside the BMP: a surrogate pair.
        assert_eq!(quoted_utf16("\u{1F511}").as_ref(), b"\"\0=\xd8\x11\xdd\"\0");
    }

    #[test]
    fn ad_error_codes_and_domains_are_read_from_their_places() {
        assert_eq!(
            windows_error("0000052D: Constraint violation - check_password_restrictions: too short"),
            Some(0x52D)
        );
        assert_eq!(windows_error("00000056: Constraint violation"), Some(0x56));
        assert_eq!(windows_error("Constraint violation: 52D"), None);
        assert_eq!(windows_error(""), None);
        assert_eq!(
            domain_of("CN=alice,CN=Users,DC=ad,DC=corp,DC=test"),
            "DC=ad,DC=corp,DC=test"
        );
        assert_eq!(domain_of("uid=a,ou=people"), "");
    }
}
