//! The LDAP password policy controls (draft-behera-ldap-password-policy, OpenLDAP's ppolicy
//! overlay): the broker sends the request control with each user bind, and reads from the
//! response control whether a refused bind was refused because the account is locked or the
//! password expired, and whether an accepted one was accepted only to change the password (after
//! an administrator's reset) or on a grace login.

use super::ber::tlv;

/// OID of the password policy request and response controls.
pub const OID: &str = "1.3.6.1.4.1.42.2.27.8.5.1";

/// The password policy response control's value in an LDAP result, if the server sent one.
pub fn response_value(result: &ldap3::LdapResult) -> Option<&[u8]> {
    result
        .ctrls
        .iter()
        .filter(|c| c.1.ctype == OID)
        .find_map(|c| c.1.val.as_deref())
}

/// `error` values of PasswordPolicyResponseValue that the broker acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyError {
    /// `passwordExpired` (0): the password was right but is past its maximum age.
    PasswordExpired,
    AccountLocked,
    /// `changeAfterReset` (2): the password was right, and must be changed before anything else.
    ChangeAfterReset,
    Other(u8),
}

/// Parses a PasswordPolicyResponseValue:
///
/// ```text
/// SEQUENCE { warning [0] CHOICE {...} OPTIONAL, error [1] ENUMERATED {...} OPTIONAL }
/// ```
///
/// Returns the `error` field, if present; `None` for anything malformed (never a panic).
pub fn response_error(value: &[u8]) -> Option<PolicyError> {
    let (tag, body, _) = tlv(value)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = body;
    while !rest.is_empty() {
        let (tag, content, after) = tlv(rest)?;
        // [1] IMPLICIT ENUMERATED: context-specific, primitive, tag number 1.
        if tag == 0x81 {
            return match content {
                [0] => Some(PolicyError::PasswordExpired),
                [1] => Some(PolicyError::AccountLocked),
                [2] => Some(PolicyError::ChangeAfterReset),
                [code] => Some(PolicyError::Other(*code)),
                _ => None,
            };
        }
        rest = after;
    }
    None
}

/// Whether the response carries the warning `graceAuthNsRemaining` (`warning [0] { [1] n }`): the
/// password has expired and this bind used up one of its grace logins.
pub fn grace_login(value: &[u8]) -> bool {
    let Some((0x30, body, _)) = tlv(value) else {
        return false;
    };
    let mut rest = body;
    while let Some((tag, content, after)) = tlv(rest) {
        if tag == 0xa0 {
            return matches!(tlv(content), Some((0x81, _, _)));
        }
        rest = after;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_locked_and_other_errors_are_read() {
        // SEQUENCE { error [1] accountLocked(1) }, as slapd sends it.
        assert_eq!(
            response_error(&[0x30, 0x03, 0x81, 0x01, 0x01]),
            Some(PolicyError::AccountLocked)
        );
        // With a warning first: timeBeforeExpiration [0] { [0] 300 }.
        let warned = [0x30, 0x09, 0xa0, 0x04, 0x80, 0x02, 0x01, 0x2c, 0x81, 0x01, 0x02];
        assert_eq!(response_error(&warned), Some(PolicyError::ChangeAfterReset));
        assert!(!grace_login(&warned), "time before expiration is no grace login");
        assert_eq!(
            response_error(&[0x30, 0x03, 0x81, 0x01, 0x00]),
            Some(PolicyError::PasswordExpired)
        );
        assert_eq!(
            response_error(&[0x30, 0x03, 0x81, 0x01, 0x05]),
            Some(PolicyError::Other(5))
        );
        // graceAuthNsRemaining [0] { [1] 2 }, no error.
        let grace = [0x30, 0x05, 0xa0, 0x03, 0x81, 0x01, 0x02];
        assert!(grace_login(&grace));
        assert_eq!(response_error(&grace), None);
        assert!(!grace_login(&[0x30, 0x00]) && !grace_login(&[]));
        // Long-form length.
        assert_eq!(
            response_error(&[0x30, 0x81, 0x03, 0x81, 0x01, 0x01]),
            Some(PolicyError::AccountLocked)
        );
    }

    #[test]
    fn empty_or_malformed_values_mean_no_error() {
        for value in [
            &[][..],
            &[0x30, 0x00],
            &[0x30, 0x05, 0x81, 0x01],
            &[0x31, 0x03, 0x81, 0x01, 0x01],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x03, 0x81, 0x02, 0x01],
        ] {
            assert_eq!(response_error(value), None, "{value:?}");
        }
    }
}
