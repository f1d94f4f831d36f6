//! ktbroker's shared vocabulary, with no dependencies so that every crate can link it: why the
//! broker refused ([`RefusalCode`], carried on the wire as data, never parsed from text), what
//! `ktbroker-kinit`'s exit status means ([`HelperExit`], read by the PAM module), and the limits
//! both sides of the wire enforce.
#![forbid(unsafe_code)]

/// Longest password accepted anywhere (hashing DoS; pam-krb5 uses the same bound), in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Largest keytab the broker serves and the helper accepts. A user's keytab holds a few keys of
/// ~100 bytes each; the bound keeps a hostile peer from making the other side allocate without end.
pub const MAX_KEYTAB_SIZE: u64 = 64 * 1024;

/// Why the broker said no. The numbers are those of `ktbroker.v1.RefusalCode` on the wire and of
/// the `KTB-NNN` tags people see in messages and logs; they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalCode {
    /// Wrong password, unknown user, not authorized, locked: one answer for all of them.
    AuthFailed = 101,
    InvalidUsername = 102,
    PrincipalNotAllowed = 103,
    NoPrincipal = 104,
    NoUsableEnctype = 105,
    UnknownTenant = 106,
    HostNotRegistered = 107,
    NotAdmin = 108,
    CannotRotate = 109,
    /// The right directory password, but one that must be changed first (reset, expired, grace).
    PasswordChangeRequired = 110,
    /// A new password the directory's policy refused (too short, too simple, reused, too soon).
    NewPasswordRejected = 111,
    /// The right password, one that must be changed, but not one the broker can change (e.g.
    /// OpenLDAP's ppolicy: expired with no grace login left, so no bind to change it on).
    PasswordChangeElsewhere = 112,
    /// The delivery asked for (a keytab, say) is not one the tenant's policy allows.
    DeliveryNotAllowed = 113,
    /// A provider sign-in (`--sso`) for a tenant whose identity source offers none.
    SsoNotOffered = 114,
    /// A password for a tenant whose people sign in only at its identity provider (`--sso`).
    PasswordLoginNotOffered = 115,
    DirectoryUnavailable = 201,
    KeysUnavailable = 202,
    AuditUnavailable = 203,
    DeadlineExceeded = 204,
    Busy = 205,
    Internal = 900,
}

impl RefusalCode {
    pub const ALL: [Self; 21] = [
        Self::AuthFailed,
        Self::InvalidUsername,
        Self::PrincipalNotAllowed,
        Self::NoPrincipal,
        Self::NoUsableEnctype,
        Self::UnknownTenant,
        Self::HostNotRegistered,
        Self::NotAdmin,
        Self::CannotRotate,
        Self::PasswordChangeRequired,
        Self::NewPasswordRejected,
        Self::PasswordChangeElsewhere,
        Self::DeliveryNotAllowed,
        Self::SsoNotOffered,
        Self::PasswordLoginNotOffered,
        Self::DirectoryUnavailable,
        Self::KeysUnavailable,
        Self::AuditUnavailable,
        Self::DeadlineExceeded,
        Self::Busy,
        Self::Internal,
    ];

    /// The wire number (also the `KTB-NNN` tag).
    pub fn number(self) -> i32 {
        self as i32
    }

    pub fn from_number(number: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.number() == number)
    }

    /// `KTB-NNN`, the tag that starts the message.
    pub fn tag(self) -> &'static str {
        let message = self.message();
        message.split_once(' ').map_or(message, |(tag, _)| tag)
    }

    /// The message people see, `KTB-NNN` first so that it can be searched for in the docs.
    pub fn message(self) -> &'static str {
        match self {
            Self::AuthFailed => "KTB-101 authentication failed",
            Self::InvalidUsername => "KTB-102 invalid username",
            Self::PrincipalNotAllowed => "KTB-103 principal not allowed by policy",
            Self::NoPrincipal => "KTB-104 no Kerberos principal for this user",
            Self::NoUsableEnctype => "KTB-105 no key of an allowed enctype",
            Self::UnknownTenant => "KTB-106 unknown tenant",
            Self::HostNotRegistered => "KTB-107 client host not registered for this tenant",
            Self::NotAdmin => "KTB-108 not an admin identity",
            Self::CannotRotate => "KTB-109 this tenant's key source cannot rotate keys",
            Self::PasswordChangeRequired => "KTB-110 the directory password must be changed first",
            Self::NewPasswordRejected => "KTB-111 the directory refused the new password",
            Self::PasswordChangeElsewhere => "KTB-112 the directory password must be changed elsewhere first",
            Self::DeliveryNotAllowed => "KTB-113 this delivery (keytab or ticket) is not allowed here",
            Self::SsoNotOffered => "KTB-114 this tenant offers no sign-in at an identity provider",
            Self::PasswordLoginNotOffered => "KTB-115 this tenant signs people in at its identity provider only",
            Self::DirectoryUnavailable => "KTB-201 directory unavailable",
            Self::KeysUnavailable => "KTB-202 key source unavailable",
            Self::AuditUnavailable => "KTB-203 audit unavailable",
            Self::DeadlineExceeded => "KTB-204 request deadline exceeded",
            Self::Busy => "KTB-205 broker busy, retry later",
            Self::Internal => "KTB-900 internal error",
        }
    }

    /// The broker is (for now) unable, not unwilling: another replica, or a later try, may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::DirectoryUnavailable
                | Self::KeysUnavailable
                | Self::AuditUnavailable
                | Self::DeadlineExceeded
                | Self::Busy
        )
    }
}

impl std::fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// Why the directory refused a new password, as far as it says by code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PasswordProblem {
    /// The directory said "against the policy" without saying which rule (Active Directory).
    #[default]
    Unspecified = 0,
    TooShort = 1,
    /// Not complex enough (character classes, or a quality check).
    TooSimple = 2,
    /// One of the last passwords.
    InHistory = 3,
    /// The current password is too young to be changed.
    TooYoung = 4,
}

impl PasswordProblem {
    pub fn from_number(number: i32) -> Self {
        match number {
            1 => Self::TooShort,
            2 => Self::TooSimple,
            3 => Self::InHistory,
            4 => Self::TooYoung,
            _ => Self::Unspecified,
        }
    }
}

/// A refused new password: the problem, and the directory's rules as far as the broker could
/// read them (0 / false: not known).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PasswordRules {
    pub problem: PasswordProblem,
    pub min_length: u32,
    /// Must mix character classes (AD: three of upper case, lower case, digits, symbols).
    pub complexity: bool,
    /// How many earlier passwords may not be used again.
    pub history: u32,
}

impl PasswordRules {
    /// The refusal in plain words, for the person choosing the password.
    pub fn describe(&self) -> String {
        let problem = match self.problem {
            PasswordProblem::TooShort => "it is too short",
            PasswordProblem::TooSimple => "it is too simple",
            PasswordProblem::InHistory => "it was used before",
            PasswordProblem::TooYoung => "the current password is too new to be changed yet",
            PasswordProblem::Unspecified => "it does not meet the directory's password rules",
        };
        let mut rules = Vec::new();
        if self.min_length > 0 {
            rules.push(format!("at least {} characters", self.min_length));
        }
        if self.complexity {
            rules.push("three of: upper case, lower case, digits, symbols".to_owned());
        }
        if self.history > 0 {
            rules.push(format!("none of the last {} passwords", self.history));
        }
        if rules.is_empty() {
            format!("the new password was refused: {problem}")
        } else {
            format!(
                "the new password was refused: {problem} (the rules: {})",
                rules.join("; ")
            )
        }
    }
}

/// `ktbroker-kinit`'s exit status: documented in its `--help`, and how the PAM module tells a wrong
/// password from a broker that cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HelperExit {
    Success = 0,
    Internal = 1,
    Config = 2,
    AuthFailed = 3,
    Refused = 4,
    BrokerUnavailable = 5,
    Protocol = 6,
    Kerberos = 7,
    Password = 8,
    Ccache = 9,
    /// The directory wants the password changed and no new one was given (the PAM module then
    /// asks for one through its conversation and runs the helper again).
    PasswordChangeRequired = 10,
}

impl HelperExit {
    pub const ALL: [Self; 11] = [
        Self::Success,
        Self::Internal,
        Self::Config,
        Self::AuthFailed,
        Self::Refused,
        Self::BrokerUnavailable,
        Self::Protocol,
        Self::Kerberos,
        Self::Password,
        Self::Ccache,
        Self::PasswordChangeRequired,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|e| i32::from(e.code()) == code)
    }
}

/// Default deadlines, nested: each is shorter than the one around it, so that the inner one's
/// error (a KTB-204 from the broker, a directory timeout as KTB-201) reaches the caller instead of
/// the outer one firing first. All are configurable; docs/admin-guide.md lists them together.
pub mod timeouts {
    use std::time::Duration;

    /// `ktbroker-kinit`: each broker call (TCP, TLS, HTTP/2, the call and its stream) and the KDC
    /// exchange (`--timeout`, client.toml's `broker_timeout_secs` / `kdc_timeout_secs`).
    pub const CLIENT_CALL: Duration = Duration::from_secs(15);
    /// `ktbrokerd`: one whole request (`[server] request_timeout_secs`).
    pub const BROKER_REQUEST: Duration = Duration::from_secs(12);
    /// `ktbrokerd`: one call to the key source (`[tenants.X.keys] timeout_secs`).
    pub const KEY_SOURCE: Duration = Duration::from_secs(10);
    /// `ktbrokerd`: each directory operation (`[tenants.X.directory] timeout_secs`).
    pub const DIRECTORY: Duration = Duration::from_secs(5);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_numbers_round_trip_and_tag_their_messages() {
        for code in RefusalCode::ALL {
            assert_eq!(RefusalCode::from_number(code.number()), Some(code));
            assert!(
                code.message().starts_with(&format!("KTB-{} ", code.number())),
                "{code:?}"
            );
            assert_eq!(code.tag(), format!("KTB-{}", code.number()));
        }
        assert_eq!(RefusalCode::from_number(0), None);
        assert_eq!(RefusalCode::from_number(999), None);
    }

    #[test]
    fn only_inability_is_transient() {
        let transient: Vec<_> = RefusalCode::ALL.into_iter().filter(|c| c.is_transient()).collect();
        assert_eq!(
            transient,
            [
                RefusalCode::DirectoryUnavailable,
                RefusalCode::KeysUnavailable,
                RefusalCode::AuditUnavailable,
                RefusalCode::DeadlineExceeded,
                RefusalCode::Busy
            ]
        );
    }

    #[test]
    fn default_deadlines_nest() {
        use timeouts::*;
        assert!(DIRECTORY < KEY_SOURCE && KEY_SOURCE < BROKER_REQUEST && BROKER_REQUEST < CLIENT_CALL);
    }

    #[test]
    fn exit_codes_are_distinct_and_round_trip() {
        for exit in HelperExit::ALL {
            assert_eq!(HelperExit::from_code(i32::from(exit.code())), Some(exit));
        }
        assert_eq!(HelperExit::from_code(11), None);
        assert_eq!(HelperExit::from_code(-1), None);
    }
}
