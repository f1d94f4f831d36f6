//! What an ID token must say before the broker believes it (OpenID Connect Core 1.0 §3.1.3.7),
//! and what it says about the person: who (the username claim), in which groups, and how they
//! authenticated (`acr`, `amr`).

use crate::config::OidcConfig;
use crate::policy::{Username, validate_username};
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An ID token older than this (by `iat`) is stale: the broker asked for it a moment ago.
pub const MAX_TOKEN_AGE: Duration = Duration::from_secs(600);

/// Why the claims of a correctly signed ID token are not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("issuer {0:?} is not the configured one")]
    Issuer(String),
    #[error("audience {0:?} holds no accepted audience")]
    Audience(Vec<String>),
    #[error("authorized party (azp) {0:?} is not this client")]
    AuthorizedParty(Option<String>),
    #[error("expired")]
    Expired,
    #[error("not valid yet (nbf or iat in the future)")]
    NotYetValid,
    #[error("issued too long ago (iat)")]
    Stale,
    #[error("claim `{0}` is missing or has the wrong type")]
    Missing(&'static str),
    #[error("username claim {0:?} is not a valid username here")]
    Username(String),
}

/// Why the person may not log in, though the token is genuine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insufficient {
    /// `acr` is not one of the required values, or an `amr` value is missing.
    AuthenticationContext,
    NotInGroup,
}

/// The person an accepted ID token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub username: Username,
    /// `iss` and `sub`: the provider's own stable name for the person (for the audit and logs).
    pub subject: String,
    /// `jti`, when the provider sets one (replay detection).
    pub token_id: Option<String>,
    pub expires: SystemTime,
    groups: Vec<String>,
    acr: Option<String>,
    amr: Vec<String>,
}

/// Checks the registered claims of a verified ID token at `now` and reads the person from it.
pub fn validate(config: &OidcConfig, claims: &Map<String, Value>, now: SystemTime) -> Result<Identity, ClaimError> {
    let text = |name: &'static str| claims.get(name).and_then(Value::as_str);
    let time = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_u64)
            .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
    };
    let iss = text("iss").ok_or(ClaimError::Missing("iss"))?;
    if iss != config.issuer {
        return Err(ClaimError::Issuer(iss.chars().take(200).collect()));
    }
    let audiences = strings(claims.get("aud")).ok_or(ClaimError::Missing("aud"))?;
    if !audiences.iter().any(|aud| config.audiences.contains(aud)) {
        return Err(ClaimError::Audience(audiences));
    }
    // §3.1.3.7 items 4 and 5: with several audiences the token must say it was issued to us.
    let azp = text("azp");
    if azp.is_some_and(|azp| azp != config.client_id) || (audiences.len() > 1 && azp.is_none()) {
        return Err(ClaimError::AuthorizedParty(azp.map(str::to_owned)));
    }
    let skew = config.clock_skew;
    let expires = time("exp").ok_or(ClaimError::Missing("exp"))?;
    if now >= expires + skew {
        return Err(ClaimError::Expired);
    }
    let issued = time("iat").ok_or(ClaimError::Missing("iat"))?;
    if issued > now + skew || time("nbf").is_some_and(|nbf| nbf > now + skew) {
        return Err(ClaimError::NotYetValid);
    }
    if issued + MAX_TOKEN_AGE + skew < now {
        return Err(ClaimError::Stale);
    }
    let sub = text("sub")
        .filter(|s| !s.is_empty())
        .ok_or(ClaimError::Missing("sub"))?;
    let username = username(config, claims)?;
    Ok(Identity {
        username,
        subject: format!("{iss} {sub}"),
        token_id: text("jti").map(str::to_owned),
        expires,
        groups: strings(claims.get(&config.groups_claim)).unwrap_or_default(),
        acr: text("acr").map(str::to_owned),
        amr: strings(claims.get("amr")).unwrap_or_default(),
    })
}

/// The username claim, lower-cased, with `username_domain` (if set) required and removed.
fn username(config: &OidcConfig, claims: &Map<String, Value>) -> Result<Username, ClaimError> {
    let raw = claims
        .get(&config.username_claim)
        .and_then(Value::as_str)
        .ok_or(ClaimError::Missing("username claim"))?;
    let lower = raw.to_ascii_lowercase();
    let bare = match &config.username_domain {
        None => Some(lower.as_str()),
        Some(domain) => lower
            .rsplit_once('@')
            .filter(|(_, d)| d.eq_ignore_ascii_case(domain))
            .map(|(name, _)| name),
    };
    bare.and_then(|name| validate_username(name).ok())
        .ok_or_else(|| ClaimError::Username(raw.chars().take(100).collect()))
}

/// A string or an array of strings (as `aud`, `amr` and group claims come); other values in an
/// array are ignored.
fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    match value? {
        Value::String(one) => Some(vec![one.clone()]),
        Value::Array(many) => Some(many.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
        _ => None,
    }
}

impl Identity {
    /// The tenant's authentication-context and group requirements.
    pub fn authorize(&self, config: &OidcConfig) -> Result<(), Insufficient> {
        if !config.required_acr.is_empty() && !self.acr.as_ref().is_some_and(|acr| config.required_acr.contains(acr)) {
            return Err(Insufficient::AuthenticationContext);
        }
        if !config.required_amr.iter().all(|needed| self.amr.contains(needed)) {
            return Err(Insufficient::AuthenticationContext);
        }
        if !self.in_any(&config.groups) {
            return Err(Insufficient::NotInGroup);
        }
        Ok(())
    }

    pub fn in_any(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> OidcConfig {
        OidcConfig::for_tests("https://idp.example.com/realms/corp", "ktbroker")
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let mut claims = json!({
            "iss": "https://idp.example.com/realms/corp", "aud": "ktbroker", "sub": "f81d4fae",
            "iat": 1_800_000_000u64 - 5, "exp": 1_800_000_000u64 + 300, "jti": "t-1",
            "preferred_username": "alice", "groups": ["hadoop-users", "eng"],
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims.as_object().unwrap().clone()
    }

    #[test]
    fn a_fresh_token_for_this_client_names_the_person_and_their_groups() {
        let identity = validate(&config(), &claims(json!({})), now()).unwrap();
        assert_eq!(identity.username.as_str(), "alice");
        assert_eq!(identity.subject, "https://idp.example.com/realms/corp f81d4fae");
        assert_eq!(identity.token_id.as_deref(), Some("t-1"));
        assert_eq!(identity.authorize(&config()), Ok(()));
    }

    #[test]
    fn issuer_audience_and_authorized_party_must_be_ours() {
        let c = config();
        let check = |extra| validate(&c, &claims(extra), now());
        assert!(matches!(
            check(json!({"iss": "https://idp.example.com/realms/other"})),
            Err(ClaimError::Issuer(_))
        ));
        assert!(matches!(check(json!({"iss": null})), Err(ClaimError::Missing("iss"))));
        assert!(matches!(
            check(json!({"aud": "another-client"})),
            Err(ClaimError::Audience(_))
        ));
        assert!(matches!(
            check(json!({"aud": ["another-client"]})),
            Err(ClaimError::Audience(_))
        ));
        // Several audiences: azp must be present and be us.
        assert!(matches!(
            check(json!({"aud": ["ktbroker", "x"]})),
            Err(ClaimError::AuthorizedParty(None))
        ));
        assert!(check(json!({"aud": ["ktbroker", "x"], "azp": "ktbroker"})).is_ok());
        assert!(matches!(
            check(json!({"azp": "x"})),
            Err(ClaimError::AuthorizedParty(_))
        ));
    }

    #[test]
    fn times_are_checked_with_the_configured_skew_only() {
        let c = config();
        let base = 1_800_000_000u64;
        let check = |extra| validate(&c, &claims(extra), now());
        assert_eq!(check(json!({"exp": base - 61})), Err(ClaimError::Expired));
        assert!(check(json!({"exp": base - 59})).is_ok(), "within the 60 s skew");
        assert!(matches!(check(json!({"exp": null})), Err(ClaimError::Missing("exp"))));
        assert_eq!(check(json!({"iat": base + 61})), Err(ClaimError::NotYetValid));
        assert_eq!(check(json!({"nbf": base + 61})), Err(ClaimError::NotYetValid));
        assert_eq!(check(json!({"iat": base - 661})), Err(ClaimError::Stale));
        assert!(check(json!({"iat": base - 600})).is_ok());
        assert!(matches!(check(json!({"exp": "soon"})), Err(ClaimError::Missing("exp"))));
    }

    #[test]
    fn the_username_claim_is_checked_as_a_username_and_its_domain_as_configured() {
        let mut c = config();
        let check = |c: &OidcConfig, extra| validate(c, &claims(extra), now()).map(|i| i.username.as_str().to_owned());
        assert_eq!(check(&c, json!({"preferred_username": "Alice"})).unwrap(), "alice");
        assert!(matches!(
            check(&c, json!({"preferred_username": "krbtgt/x"})),
            Err(ClaimError::Username(_))
        ));
        assert!(matches!(
            check(&c, json!({"preferred_username": null})),
            Err(ClaimError::Missing(_))
        ));
        c.username_claim = "upn".into();
        c.username_domain = Some("corp.example.com".into());
        assert_eq!(check(&c, json!({"upn": "Alice@CORP.example.com"})).unwrap(), "alice");
        assert!(matches!(
            check(&c, json!({"upn": "alice@evil.example.com"})),
            Err(ClaimError::Username(_))
        ));
        assert!(matches!(
            check(&c, json!({"upn": "alice"})),
            Err(ClaimError::Username(_))
        ));
    }

    #[test]
    fn groups_and_the_authentication_context_authorize() {
        let mut c = config();
        let identity = |extra| validate(&c.clone(), &claims(extra), now()).unwrap();
        assert_eq!(
            identity(json!({"groups": ["eng"]})).authorize(&c),
            Err(Insufficient::NotInGroup)
        );
        assert_eq!(
            identity(json!({"groups": null})).authorize(&c),
            Err(Insufficient::NotInGroup)
        );
        c.required_amr = vec!["otp".into()];
        let with_otp = validate(&c, &claims(json!({"amr": ["pwd", "otp"]})), now()).unwrap();
        assert_eq!(with_otp.authorize(&c), Ok(()));
        let password_only = validate(&c, &claims(json!({"amr": ["pwd"]})), now()).unwrap();
        assert_eq!(password_only.authorize(&c), Err(Insufficient::AuthenticationContext));
        c.required_amr.clear();
        c.required_acr = vec!["urn:mfa".into()];
        let acr = validate(&c, &claims(json!({"acr": "urn:mfa"})), now()).unwrap();
        assert_eq!(acr.authorize(&c), Ok(()));
        let no_acr = validate(&c, &claims(json!({})), now()).unwrap();
        assert_eq!(no_acr.authorize(&c), Err(Insufficient::AuthenticationContext));
    }
}
