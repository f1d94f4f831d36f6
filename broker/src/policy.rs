//! Which principal a user may receive: each tenant maps user `u` through its template (by default
//! `{user}@{realm}`) and serves nothing else; service-style and KDC principals are denied unless
//! granted explicitly. Usernames are checked against a strict character set before they go
//! anywhere near the directory or kadmin.

use std::fmt;

/// Longest accepted username (POSIX login names are at most 32 on most systems; LDAP uids rarely
/// exceed 64).
pub const MAX_USERNAME_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid username")]
    InvalidUsername,
    #[error("principal not allowed by policy")]
    PrincipalNotAllowed,
    #[error("the username's @tenant and the tenant field differ")]
    TenantMismatch,
}

/// A username that passed [`validate_username`]: lowercase-led, `[a-z0-9._-]`, at most 64 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name that skipped validation, to show that downstream escaping holds on its own.
    #[cfg(test)]
    pub fn unchecked_for_tests(raw: &str) -> Self {
        Self(raw.to_owned())
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Accepts portable login names only. Everything with LDAP filter or DN meaning (`*()\,=+<>;"#`,
/// NUL, spaces) or Kerberos meaning (`/`, `@`) is refused here, and escaped again downstream.
pub fn validate_username(raw: &str) -> Result<Username, PolicyError> {
    let bytes = raw.as_bytes();
    let first_ok = bytes.first().is_some_and(|b| b.is_ascii_lowercase() || *b == b'_');
    let rest_ok = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if first_ok && rest_ok && bytes.len() <= MAX_USERNAME_LEN {
        Ok(Username(raw.to_owned()))
    } else {
        Err(PolicyError::InvalidUsername)
    }
}

/// Which tenant a request means: its `tenant` field, or the `@tenant` suffix of the username (both
/// may be given only if they agree). Returns the bare username and the tenant name, if any.
pub fn split_tenant<'a>(username: &'a str, field: Option<&'a str>) -> Result<(&'a str, Option<&'a str>), PolicyError> {
    match (username.rsplit_once('@'), field) {
        (None, field) => Ok((username, field)),
        (Some((user, suffix)), None) => Ok((user, Some(suffix))),
        (Some((user, suffix)), Some(field)) if suffix == field => Ok((user, Some(field))),
        (Some(_), Some(_)) => Err(PolicyError::TenantMismatch),
    }
}

/// Single-component names that belong to the KDC itself, never to a person.
const RESERVED_NAMES: &[&str] = &["krbtgt", "kadmin", "changepw", "K", "kiprop"];

/// Which principal a tenant's user receives: a template such as `{user}@{realm}` or
/// `{user}/netdisk@{realm}`, and the explicit grants for names that are denied by default.
///
/// Default deny: a multi-component (service-style) principal such as `krbtgt/*`, `kadmin/*`, `K/M`,
/// `*/admin` or `host/*`, or a reserved single name, is refused unless an `allow_principals`
/// pattern matches it. A foreign realm is refused always.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalPolicy {
    realm: String,
    template: String,
    allow: Vec<String>,
}

impl PrincipalPolicy {
    /// Checks the template's shape; the error says what is wrong with it.
    pub fn new(realm: &str, template: &str, allow: Vec<String>) -> Result<Self, String> {
        if template.matches("{user}").count() != 1 {
            return Err(format!("{template:?} must contain {{user}} exactly once"));
        }
        let literal = template.replace("{user}", "").replace("{realm}", "");
        if literal.contains(['{', '}']) {
            return Err(format!("{template:?} may use only {{user}} and {{realm}}"));
        }
        if !literal
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b'@'))
        {
            return Err(format!("{template:?} has characters a principal name should not"));
        }
        let expanded = template.replace("{realm}", realm);
        match expanded.split_once('@') {
            Some((name, r)) if r == realm && !name.is_empty() && !r.contains('@') => {}
            _ => {
                return Err(format!(
                    "{template:?} must end in @{{realm}} (the tenant's realm {realm})"
                ));
            }
        }
        for pattern in &allow {
            if !pattern.ends_with(&format!("@{realm}")) {
                return Err(format!("allow pattern {pattern:?} must end in @{realm}"));
            }
        }
        Ok(Self {
            realm: realm.to_owned(),
            template: template.to_owned(),
            allow,
        })
    }

    /// The policy for the plain mapping `{user}@{realm}` with no grants.
    pub fn plain(realm: &str) -> Self {
        Self::new(realm, "{user}@{realm}", Vec::new()).expect("the plain template is valid")
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn template(&self) -> &str {
        &self.template
    }

    /// The `allow_principals` patterns.
    pub fn grants(&self) -> &[String] {
        &self.allow
    }

    /// Maps `user` to their principal, checks it against the default deny and the grants, and
    /// checks an optional principal the caller asked for: it must be exactly that one.
    pub fn principal_for(&self, user: &Username, requested: Option<&str>) -> Result<String, PolicyError> {
        let principal = self
            .template
            .replace("{realm}", &self.realm)
            .replace("{user}", user.as_str());
        if !self.allows(&principal) {
            return Err(PolicyError::PrincipalNotAllowed);
        }
        match requested {
            None => Ok(principal),
            Some(asked) if asked == principal => Ok(principal),
            Some(_) => Err(PolicyError::PrincipalNotAllowed),
        }
    }

    /// A principal the user's directory entry names (e.g. `userPrincipalName`): it must be in the
    /// tenant's realm, compared case-insensitively because AD writes UPN suffixes in lowercase,
    /// and is then spelt with the realm as configured; it must pass [`Self::allows`], and equal
    /// the caller's choice, if any.
    pub fn accept_from_directory(&self, named: &str, requested: Option<&str>) -> Result<String, PolicyError> {
        let (name, realm) = named.rsplit_once('@').ok_or(PolicyError::PrincipalNotAllowed)?;
        let plain = |b: u8| b.is_ascii_graphic() && !matches!(b, b'@' | b'\\');
        if name.is_empty() || !name.bytes().all(plain) || !realm.eq_ignore_ascii_case(&self.realm) {
            return Err(PolicyError::PrincipalNotAllowed);
        }
        let principal = format!("{name}@{}", self.realm);
        if !self.allows(&principal) || requested.is_some_and(|asked| asked != principal) {
            return Err(PolicyError::PrincipalNotAllowed);
        }
        Ok(principal)
    }

    /// May this principal be served at all?
    pub fn allows(&self, principal: &str) -> bool {
        let Some((name, realm)) = principal.rsplit_once('@') else {
            return false;
        };
        if realm != self.realm {
            return false;
        }
        let denied = name.contains('/') || RESERVED_NAMES.contains(&name);
        !denied || self.allow.iter().any(|pattern| glob_matches(pattern, principal))
    }
}

/// `*` matches any run of characters other than `@`; everything else matches itself.
fn glob_matches(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .take_while(|&i| !rest[..i].contains('@'))
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| glob_matches(tail, &rest[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_from_the_directory_must_be_in_the_realm_and_allowed() {
        let policy = PrincipalPolicy::plain("AD.TEST");
        // AD's lowercase UPN suffix is the realm; the answer is spelt with the configured realm.
        assert_eq!(
            policy.accept_from_directory("alice.smith@ad.test", None).unwrap(),
            "alice.smith@AD.TEST"
        );
        assert_eq!(
            policy
                .accept_from_directory("alice@AD.TEST", Some("alice@AD.TEST"))
                .unwrap(),
            "alice@AD.TEST"
        );
        for (named, requested) in [
            ("alice@AD.TEST", Some("bob@AD.TEST")),
            ("alice@OTHER.TEST", None),
            ("alice", None),
            ("@AD.TEST", None),
            ("krbtgt/AD.TEST@AD.TEST", None),
            ("kadmin/admin@AD.TEST", None),
            ("K@AD.TEST", None),
            ("al ice@AD.TEST", None),
            ("al\\@ice@AD.TEST", None),
        ] {
            assert_eq!(
                policy.accept_from_directory(named, requested),
                Err(PolicyError::PrincipalNotAllowed),
                "{named}"
            );
        }
    }

    #[test]
    fn ordinary_usernames_pass() {
        for name in ["alice", "bob2", "j.doe", "svc_backup", "_x", "a-b"] {
            let user = validate_username(name).unwrap();
            assert_eq!(user.as_str(), name);
            // Logs show the name as it is, both ways (it passed validation: nothing to escape).
            assert_eq!(
                (format!("{user}"), format!("{user:?}")),
                (name.to_owned(), name.to_owned())
            );
        }
    }

    #[test]
    fn metacharacters_and_odd_names_are_refused() {
        let long = "a".repeat(MAX_USERNAME_LEN + 1);
        for name in [
            "",
            "*",
            "alice)(uid=*",
            "alice*",
            "a\\b",
            "a,b",
            "a=b",
            "alice\0",
            "Alice",
            "alice@REALM",
            "alice/admin",
            " alice",
            "1alice",
            "-alice",
            "al ice",
            "ålice",
            long.as_str(),
        ] {
            assert_eq!(validate_username(name), Err(PolicyError::InvalidUsername), "{name:?}");
        }
    }

    #[test]
    fn only_the_users_own_principal_is_served() {
        let alice = validate_username("alice").unwrap();
        let policy = PrincipalPolicy::plain("KRBTEST.COM");
        assert_eq!(policy.principal_for(&alice, None).unwrap(), "alice@KRBTEST.COM");
        assert_eq!(
            policy.principal_for(&alice, Some("alice@KRBTEST.COM")).unwrap(),
            "alice@KRBTEST.COM"
        );
        for asked in [
            "krbtgt/KRBTEST.COM@KRBTEST.COM",
            "krbtgt/KRBTEST.COM",
            "kadmin/admin",
            "alice/admin",
            "alice@OTHER.REALM",
            "bob@KRBTEST.COM",
            "alice",
            "K/M@KRBTEST.COM",
            "host/x@KRBTEST.COM",
        ] {
            assert_eq!(
                policy.principal_for(&alice, Some(asked)),
                Err(PolicyError::PrincipalNotAllowed),
                "{asked}"
            );
        }
    }

    #[test]
    fn service_style_and_reserved_principals_are_denied_unless_granted() {
        let policy = PrincipalPolicy::plain("R.COM");
        for name in [
            "krbtgt/R.COM@R.COM",
            "kadmin/admin@R.COM",
            "K/M@R.COM",
            "alice/admin@R.COM",
            "host/h.r.com@R.COM",
            "HTTP/h@R.COM",
            "krbtgt@R.COM",
            "kadmin@R.COM",
            "alice@OTHER.COM",
        ] {
            assert!(!policy.allows(name), "{name}");
        }
        assert!(policy.allows("alice@R.COM"));
        let kadmin = validate_username("kadmin").unwrap();
        assert_eq!(
            policy.principal_for(&kadmin, None),
            Err(PolicyError::PrincipalNotAllowed)
        );

        // A per-service template needs an explicit grant, and the grant covers only its pattern.
        let netdisk = PrincipalPolicy::new("R.COM", "{user}/netdisk@{realm}", Vec::new()).unwrap();
        let alice = validate_username("alice").unwrap();
        assert_eq!(
            netdisk.principal_for(&alice, None),
            Err(PolicyError::PrincipalNotAllowed)
        );
        let granted = PrincipalPolicy::new("R.COM", "{user}/netdisk@{realm}", vec!["*/netdisk@R.COM".into()]).unwrap();
        assert_eq!(granted.principal_for(&alice, None).unwrap(), "alice/netdisk@R.COM");
        assert!(!granted.allows("alice/admin@R.COM"));
        assert!(!granted.allows("a/b/netdisk@OTHER.COM"));
    }

    #[test]
    fn templates_are_checked() {
        for bad in [
            "{user}",
            "{user}@OTHER.COM",
            "{user}{user}@{realm}",
            "alice@{realm}",
            "{user}@{realm}@{realm}",
            "{user} x@{realm}",
            "{user}/{host}@{realm}",
            "@{realm}{user}",
        ] {
            assert!(PrincipalPolicy::new("R.COM", bad, Vec::new()).is_err(), "{bad}");
        }
        assert!(PrincipalPolicy::new("R.COM", "{user}@R.COM", Vec::new()).is_ok());
        assert!(PrincipalPolicy::new("R.COM", "{user}@{realm}", vec!["*@OTHER.COM".into()]).is_err());
    }

    #[test]
    fn glob_stars_stay_inside_the_name() {
        assert!(glob_matches("*/netdisk@R", "alice/netdisk@R"));
        assert!(!glob_matches("*@R", "a@X@R"));
        assert!(glob_matches("svc-*/*@R", "svc-a/h1@R"));
        assert!(!glob_matches("svc-*@R", "svc-a@RX"));
    }
}

/// Kerberos enctypes the broker knows by name (RFC 3961/3962/8009 and MIT's names).
const ENCTYPE_NAMES: &[(&str, u16)] = &[
    ("aes256-cts-hmac-sha1-96", 18),
    ("aes128-cts-hmac-sha1-96", 17),
    ("aes256-cts-hmac-sha384-192", 20),
    ("aes128-cts-hmac-sha256-128", 19),
    ("camellia256-cts-cmac", 26),
    ("camellia128-cts-cmac", 25),
];

/// DES (1, 2, 3), 3DES (16) and RC4 (23, 24): never served, whatever the configuration says.
const FORBIDDEN_ENCTYPES: &[(&str, u16)] = &[
    ("des-cbc-crc", 1),
    ("des-cbc-md4", 2),
    ("des-cbc-md5", 3),
    ("des3-cbc-sha1", 16),
    ("arcfour-hmac", 23),
    ("rc4-hmac", 23),
    ("arcfour-hmac-exp", 24),
];

/// The name of an enctype number (numbers the broker does not know print as such).
pub fn enctype_name(number: u16) -> String {
    ENCTYPE_NAMES
        .iter()
        .chain(FORBIDDEN_ENCTYPES)
        .find(|(_, n)| *n == number)
        .map_or_else(|| format!("enctype-{number}"), |(name, _)| (*name).to_owned())
}

/// The default allow-list: the four AES enctypes.
pub fn default_enctypes() -> Vec<u16> {
    vec![18, 17, 20, 19]
}

/// Parses configured enctype names; forbidden (DES, 3DES, RC4) and unknown names are errors.
pub fn parse_enctypes(names: &[String]) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for name in names {
        if FORBIDDEN_ENCTYPES.iter().any(|(n, _)| n == name) {
            return Err(format!("{name} is a broken enctype and is never served"));
        }
        let (_, number) = ENCTYPE_NAMES
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("{name:?} is not a known enctype"))?;
        if !out.contains(number) {
            out.push(*number);
        }
    }
    if out.is_empty() {
        return Err("must name at least one enctype".into());
    }
    Ok(out)
}

#[cfg(test)]
mod enctype_tests {
    use super::*;

    #[test]
    fn names_map_to_numbers_and_broken_enctypes_are_refused() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_enctypes(&names(&["aes256-cts-hmac-sha1-96", "aes128-cts-hmac-sha1-96"])).unwrap(),
            [18, 17]
        );
        for bad in ["rc4-hmac", "arcfour-hmac", "des-cbc-crc", "des3-cbc-sha1"] {
            assert!(
                parse_enctypes(&names(&[bad])).unwrap_err().contains("never served"),
                "{bad}"
            );
        }
        assert!(parse_enctypes(&names(&["aes512"])).is_err());
        assert!(parse_enctypes(&[]).is_err());
        assert!(default_enctypes().iter().all(|e| [17, 18, 19, 20].contains(e)));
    }
}
