//! Which principal a user may receive. For now one rule: user `u` gets `u@REALM`, a single-component
//! principal in the broker's realm, and nothing else. Usernames are checked against a strict
//! character set before they go anywhere near the directory or kadmin.

use std::fmt;

/// Longest accepted username (POSIX login names are at most 32 on most systems; LDAP uids rarely
/// exceed 64).
pub const MAX_USERNAME_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid username")]
    InvalidUsername,
    #[error("principal not allowed by policy")]
    PrincipalNotAllowed,
}

/// A username that passed [`validate_username`]: lowercase-led, `[a-z0-9._-]`, at most 64 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn as_str(&self) -> &str {
        &self.0
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

/// Maps a user to their principal and checks an optional principal the caller asked for: it must
/// be exactly that principal (so no `krbtgt/`, `kadmin/`, `*/admin`, service or foreign-realm name).
pub fn principal_for(user: &Username, realm: &str, requested: Option<&str>) -> Result<String, PolicyError> {
    let principal = format!("{user}@{realm}");
    match requested {
        None => Ok(principal),
        Some(asked) if asked == principal => Ok(principal),
        Some(_) => Err(PolicyError::PrincipalNotAllowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_usernames_pass() {
        for name in ["alice", "bob2", "j.doe", "svc_backup", "_x", "a-b"] {
            assert_eq!(validate_username(name).unwrap().as_str(), name);
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
        assert_eq!(principal_for(&alice, "KRBTEST.COM", None).unwrap(), "alice@KRBTEST.COM");
        assert_eq!(
            principal_for(&alice, "KRBTEST.COM", Some("alice@KRBTEST.COM")).unwrap(),
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
                principal_for(&alice, "KRBTEST.COM", Some(asked)),
                Err(PolicyError::PrincipalNotAllowed),
                "{asked}"
            );
        }
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
