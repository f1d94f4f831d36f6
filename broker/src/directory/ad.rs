//! Active Directory's reason for a refused simple bind. AD answers every refused bind with result
//! 49 (invalidCredentials) and puts its own code into the diagnostic message:
//! `80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 775, v1db1`.
//! That hexadecimal `data` value (a Windows error code) is the only place AD says why, so it is
//! read, and nothing else of the text. The codes AD (and Samba's AD DC) send:
//!
//! | data | meaning | AD sends it |
//! |------|---------|-------------|
//! | 525 | no such user | |
//! | 52e | wrong password | |
//! | 530 | not at this time of day (logon hours) | |
//! | 531 | not from this workstation | |
//! | 532 | password expired | only for the right password |
//! | 533 | account disabled | |
//! | 701 | account expired | |
//! | 773 | password must change (reset, or "must change at next logon") | only for the right password |
//! | 775 | account locked out | |

/// Why AD refused a bind, as far as the broker distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindRefusal {
    NoSuchUser,
    WrongPassword,
    LogonRestricted,
    PasswordExpired,
    AccountDisabled,
    AccountExpired,
    PasswordMustChange,
    AccountLocked,
}

/// The reason in a refused bind's diagnostic message, if it carries AD's `data` code; an unknown
/// code counts as a wrong password (nothing is learnt from it).
pub fn bind_refusal(diagnostic: &str) -> Option<BindRefusal> {
    Some(match sub_code(diagnostic)? {
        0x525 => BindRefusal::NoSuchUser,
        0x530 | 0x531 => BindRefusal::LogonRestricted,
        0x532 => BindRefusal::PasswordExpired,
        0x533 => BindRefusal::AccountDisabled,
        0x701 => BindRefusal::AccountExpired,
        0x773 => BindRefusal::PasswordMustChange,
        0x775 => BindRefusal::AccountLocked,
        _ => BindRefusal::WrongPassword,
    })
}

/// The hexadecimal number after `, data ` (up to the next comma), as AD formats it.
fn sub_code(diagnostic: &str) -> Option<u32> {
    let (_, after) = diagnostic.split_once(", data ")?;
    // Empty, not hexadecimal, or beyond 32 bits: no code.
    u32::from_str_radix(after.split(',').next()?.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(code: &str) -> String {
        format!("80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data {code}, v1db1\0")
    }

    #[test]
    fn every_documented_code_is_told_apart() {
        for (code, expected) in [
            ("525", BindRefusal::NoSuchUser),
            ("52e", BindRefusal::WrongPassword),
            ("530", BindRefusal::LogonRestricted),
            ("531", BindRefusal::LogonRestricted),
            ("532", BindRefusal::PasswordExpired),
            ("533", BindRefusal::AccountDisabled),
            ("701", BindRefusal::AccountExpired),
            ("773", BindRefusal::PasswordMustChange),
            ("775", BindRefusal::AccountLocked),
            ("52E", BindRefusal::WrongPassword),
            // A code this table does not know: no more than a wrong password.
            ("569", BindRefusal::WrongPassword),
        ] {
            assert_eq!(bind_refusal(&message(code)), Some(expected), "data {code}");
        }
    }

    #[test]
    fn messages_without_an_ad_code_carry_no_reason() {
        for text in [
            "",
            "Invalid credentials",
            "data 775",
            ", data , v1db1",
            ", data zz9, v1db1",
            ", data 1234567890, v1db1",
        ] {
            assert_eq!(bind_refusal(text), None, "{text:?}");
        }
    }
}
