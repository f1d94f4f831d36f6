//! An OpenID Connect identity provider (Keycloak, Entra ID, Okta, ADFS) as a tenant's identity
//! source, in place of the directory.
//!
//! Sign-ins at the provider use the device authorization grant (RFC 8628): the broker asks for a
//! device code ([`OidcSource::start_device_login`]), the service shows the person where to go, and
//! the broker polls the token endpoint until they signed in there, with whatever second factor the
//! provider asks for ([`OidcSource::finish_device_login`]).
//!
//! Password logins use the resource-owner password grant (RFC 6749 §4.3), where the provider
//! allows it: the broker, a confidential client, posts the person's username and password to the
//! token endpoint and gets an ID token back. It is the weaker option (no second factor can be
//! asked for; `required_amr` can still refuse tokens the provider issued without one), and is
//! off unless `password_grant = true`.
//!
//! The ID token is believed only after its signature verified against the provider's published
//! keys ([`provider`]: discovery and JWKS, cached, refetched for a rotated key), and its claims
//! ([`claims`]): issuer, audience and authorized party, expiry with a small skew, freshness. The
//! person it names must be the one who logged in. No token ever comes from the caller: the
//! broker made the grant itself over its own TLS connection, so a token captured elsewhere has
//! nothing to be replayed into; and a token id (`jti`) the broker has accepted is never accepted
//! again (a provider, or a proxy in front of it, that answers twice with one token is refused).
//!
//! Failures: a wrong password is the provider's `invalid_grant`, the same answer as an unknown
//! user; a token that does not verify is refused as an authentication failure (and logged, as
//! it means misconfiguration or an attack); a provider that is down or refuses the client is
//! "directory unavailable". Nothing here logs a password or a token.

pub mod claims;
pub mod http;
pub mod jose;
pub mod provider;
mod replay;

use crate::config::OidcConfig;
use crate::directory::{AuthError, Directory, EntryPrincipal, VerifiedUser};
use crate::policy::Username;
use http::Https;
use provider::Provider;
use replay::SeenTokens;
use serde::Deserialize;
use std::time::SystemTime;
use tokio::time::Instant;
use zeroize::Zeroizing;

pub struct OidcSource {
    config: OidcConfig,
    provider: Provider,
    seen: SeenTokens,
    /// Device logins waiting for their person at once: each holds one for its whole wait, so a
    /// client that starts many and never signs in cannot tie up the broker or the provider.
    device_waits: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Device logins one tenant lets wait at once; more are refused as busy.
pub const MAX_DEVICE_WAITS: usize = 64;

/// A device login the provider has started (RFC 8628 §3.2): what the person is shown, and what
/// the broker polls with. The device code is a bearer secret until the login ends.
pub struct DeviceLogin {
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub user_code: String,
    /// How long the broker will wait: the provider's expiry, capped by `device_wait_secs`.
    pub wait: std::time::Duration,
    device_code: Zeroizing<String>,
    interval: std::time::Duration,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Deserialize)]
struct DeviceAnswer {
    device_code: String,
    user_code: String,
    verification_uri: Option<String>,
    /// Entra ID's name for verification_uri (its v1 endpoints).
    verification_url: Option<String>,
    verification_uri_complete: Option<String>,
    expires_in: u64,
    interval: Option<u64>,
}

/// Who signed in at the provider, and whether they may log in (a refusal after the person is
/// known is audited with their name).
pub type SignedIn = (Username, Result<VerifiedUser, AuthError>);

/// RFC 8628 §3.4's grant type.
const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The parts of a token endpoint's answer (RFC 6749 §5.1, §5.2) the broker reads.
#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    error: Option<String>,
}

impl OidcSource {
    pub fn new(config: OidcConfig) -> Result<Self, String> {
        // The connect gets a share of the whole timeout, so a frozen provider leaves time to say so.
        let http = Https::new(&config.ca_pem, config.timeout / 2)?;
        Ok(Self {
            provider: Provider::new(&config.issuer, http),
            config,
            seen: SeenTokens::default(),
            device_waits: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_DEVICE_WAITS)),
        })
    }

    /// The client authentication of every request to the token endpoints: HTTP Basic for a
    /// confidential client, `client_id` in the form for a public one.
    fn client_auth<'a>(&'a self, form: &mut Vec<(&'a str, &'a str)>) -> Option<(&'a str, &'a str)> {
        match &self.config.client_secret {
            Some(secret) => Some((self.config.client_id.as_str(), secret.0.as_str())),
            None => {
                form.push(("client_id", self.config.client_id.as_str()));
                None
            }
        }
    }

    /// [`Self::client_auth`], with `client_id` in the form for a confidential client too (once:
    /// parameters never repeat, RFC 6749 §3.1): RFC 8628's requests name the client, and some
    /// providers (django-oauth-toolkit) want it there even with HTTP Basic.
    fn client_auth_with_id<'a>(&'a self, form: &mut Vec<(&'a str, &'a str)>) -> Option<(&'a str, &'a str)> {
        let basic = self.client_auth(form);
        if basic.is_some() {
            form.push(("client_id", self.config.client_id.as_str()));
        }
        basic
    }

    /// Asks the provider for a device code (RFC 8628 §3.1), within the provider timeout.
    pub async fn start_device_login(&self) -> Result<DeviceLogin, AuthError> {
        let slot = self
            .device_waits
            .clone()
            .try_acquire_owned()
            .map_err(|_| AuthError::TooManyWaiting)?;
        let deadline = Instant::now() + self.config.timeout;
        let unavailable = |e: &dyn std::fmt::Display| AuthError::Unavailable(format!("identity provider: {e}"));
        let metadata = self.provider.metadata(deadline).await.map_err(|e| unavailable(&e))?;
        let endpoint = metadata
            .device_authorization_endpoint
            .as_deref()
            .ok_or_else(|| unavailable(&"its discovery document names no device_authorization_endpoint"))?;
        let scope = self.config.scopes.join(" ");
        let mut form = vec![("scope", scope.as_str())];
        let basic = self.client_auth_with_id(&mut form);
        let answer = self
            .provider
            .http()
            .post_form(endpoint, &form, basic, deadline)
            .await
            .map_err(|e| unavailable(&e))?;
        if answer.status != 200 {
            let code = serde_json::from_slice::<TokenAnswer>(&answer.body)
                .ok()
                .and_then(|a| a.error);
            return Err(unavailable(&format!(
                "the device authorization endpoint answered HTTP {} {}",
                answer.status,
                code.unwrap_or_default().chars().take(64).collect::<String>()
            )));
        }
        let device: DeviceAnswer = serde_json::from_slice(&answer.body)
            .map_err(|e| unavailable(&format!("not a device authorization response: {e}")))?;
        let verification_uri = device
            .verification_uri
            .or(device.verification_url)
            .filter(|u| u.starts_with("https://"))
            .ok_or_else(|| unavailable(&"the device authorization response has no https verification_uri"))?;
        Ok(DeviceLogin {
            verification_uri,
            verification_uri_complete: device.verification_uri_complete.filter(|u| u.starts_with("https://")),
            user_code: device.user_code.chars().take(64).collect(),
            wait: std::time::Duration::from_secs(device.expires_in).min(self.config.device_wait),
            device_code: Zeroizing::new(device.device_code),
            // RFC 8628 §3.2: 5 s when the provider says nothing; never faster than 1 s.
            interval: std::time::Duration::from_secs(device.interval.unwrap_or(5).clamp(1, 60)),
            _slot: slot,
        })
    }

    /// Polls the token endpoint (RFC 8628 §3.4, §3.5) until the person signed in, refused, or
    /// the wait ran out; then checks the ID token as a password login does. The person is who
    /// the token names. Dropping the future stops the polling (the caller hung up).
    pub async fn finish_device_login(&self, login: &DeviceLogin) -> Result<SignedIn, AuthError> {
        let deadline = Instant::now() + login.wait;
        let mut interval = login.interval;
        loop {
            tokio::time::sleep(interval).await;
            if Instant::now() >= deadline {
                return Err(AuthError::DeviceExpired);
            }
            let call_deadline = (Instant::now() + self.config.timeout).min(deadline);
            let mut form = vec![
                ("grant_type", DEVICE_GRANT_TYPE),
                ("device_code", login.device_code.as_str()),
            ];
            let basic = self.client_auth_with_id(&mut form);
            let metadata = self.provider.metadata(call_deadline).await;
            let answer = match metadata {
                Ok(metadata) => {
                    self.provider
                        .http()
                        .post_form(&metadata.token_endpoint, &form, basic, call_deadline)
                        .await
                }
                Err(e) => {
                    tracing::warn!(error = %e, "identity provider unreachable while waiting for a device login");
                    continue;
                }
            };
            let answer = match answer {
                Ok(answer) => answer,
                // RFC 8628 §3.5: a client may go on polling after a transient failure.
                Err(e) => {
                    tracing::warn!(error = %e, "polling the identity provider failed; polling on");
                    continue;
                }
            };
            let parsed: Result<TokenAnswer, _> = serde_json::from_slice(&answer.body);
            match (answer.status, parsed) {
                (
                    200,
                    Ok(TokenAnswer {
                        id_token: Some(token), ..
                    }),
                ) => {
                    let token = Zeroizing::new(token);
                    let identity = self.accept(&token, call_deadline).await?;
                    let username = identity.username.clone();
                    return Ok((username, self.authorized(identity).map(|(_, verified)| verified)));
                }
                (200, _) => {
                    return Err(AuthError::Unavailable(
                        "identity provider: the token endpoint sent no ID token (is \"openid\" in scopes?)".into(),
                    ));
                }
                (400 | 401, Ok(TokenAnswer { error: Some(code), .. })) => match code.as_str() {
                    "authorization_pending" => {}
                    "slow_down" => interval += std::time::Duration::from_secs(5),
                    "access_denied" => return Err(AuthError::DeviceDenied),
                    "expired_token" => return Err(AuthError::DeviceExpired),
                    other => return Err(token_error(other)),
                },
                (status, _) => {
                    tracing::warn!(
                        status,
                        "the token endpoint answered a device poll with an error; polling on"
                    );
                }
            }
        }
    }

    /// The groups and authentication context a token's person needs.
    fn authorized(&self, identity: claims::Identity) -> Result<(Username, VerifiedUser), AuthError> {
        identity
            .authorize(&self.config)
            .map_err(|insufficient| match insufficient {
                claims::Insufficient::NotInGroup => AuthError::NotInGroup,
                claims::Insufficient::AuthenticationContext => AuthError::AuthenticationContext,
            })?;
        tracing::debug!(subject = %identity.subject, "identity provider accepted the login");
        let verified = VerifiedUser {
            in_keytab_group: identity.in_any(&self.config.keytab_groups),
            dn: identity.subject,
            principal: EntryPrincipal::NotAsked,
            password_changed: false,
        };
        Ok((identity.username, verified))
    }

    /// The password grant, then the ID token's checks.
    async fn password_login(
        &self,
        user: &Username,
        password: &str,
        deadline: Instant,
    ) -> Result<VerifiedUser, AuthError> {
        let unavailable = |e: &dyn std::fmt::Display| AuthError::Unavailable(format!("identity provider: {e}"));
        let metadata = self.provider.metadata(deadline).await.map_err(|e| unavailable(&e))?;
        let login_name = match &self.config.username_domain {
            Some(domain) => format!("{}@{domain}", user.as_str()),
            None => user.as_str().to_owned(),
        };
        let scope = self.config.scopes.join(" ");
        let mut form = vec![
            ("grant_type", "password"),
            ("username", login_name.as_str()),
            ("password", password),
            ("scope", scope.as_str()),
        ];
        let basic = self.client_auth(&mut form);
        let answer = self
            .provider
            .http()
            .post_form(&metadata.token_endpoint, &form, basic, deadline)
            .await
            .map_err(|e| unavailable(&e))?;
        let parsed: Result<TokenAnswer, _> = serde_json::from_slice(&answer.body);
        let id_token = match (answer.status, parsed) {
            (
                200,
                Ok(TokenAnswer {
                    id_token: Some(token), ..
                }),
            ) => Zeroizing::new(token),
            (200, _) => {
                return Err(unavailable(
                    &"the token endpoint sent no ID token (is \"openid\" in scopes?)",
                ));
            }
            (400 | 401, Ok(TokenAnswer { error: Some(code), .. })) => return Err(token_error(&code)),
            (status, _) => return Err(unavailable(&format!("the token endpoint answered HTTP {status}"))),
        };
        let identity = self.accept(&id_token, deadline).await?;
        if identity.username != *user {
            return Err(AuthError::TokenRejected(format!(
                "the ID token names {:?}, not the user who logged in",
                identity.username.as_str()
            )));
        }
        self.authorized(identity).map(|(_, verified)| verified)
    }

    /// Verifies an ID token the provider just issued to the broker and reads the person from it.
    async fn accept(&self, token: &str, deadline: Instant) -> Result<claims::Identity, AuthError> {
        let rejected = |e: &dyn std::fmt::Display| AuthError::TokenRejected(e.to_string());
        let jws = jose::Jws::parse(token).map_err(|e| rejected(&e))?;
        let keys = self
            .provider
            .keys(jws.key_id.as_deref(), deadline)
            .await
            .map_err(|e| AuthError::Unavailable(format!("identity provider keys: {e}")))?;
        let claims = jws.verify(&keys).map_err(|e| rejected(&e))?;
        let identity = claims::validate(&self.config, &claims, SystemTime::now()).map_err(|e| rejected(&e))?;
        let token_id = identity.token_id.clone().unwrap_or_else(|| replay::digest(token));
        if !self
            .seen
            .first_use(&token_id, identity.expires + self.config.clock_skew)
        {
            return Err(rejected(&"this ID token was accepted before (replayed)"));
        }
        Ok(identity)
    }
}

/// A token endpoint's refusal (RFC 6749 §5.2) by its error code: only `invalid_grant` is about
/// the person's credentials; every other code is about the broker's client registration.
fn token_error(code: &str) -> AuthError {
    match code {
        "invalid_grant" => AuthError::InvalidCredentials,
        other => AuthError::Unavailable(format!(
            "identity provider: the token endpoint refused the broker's request: {}",
            other.chars().take(64).collect::<String>()
        )),
    }
}

impl Directory for OidcSource {
    async fn verify(&self, user: &Username, password: &str) -> Result<VerifiedUser, AuthError> {
        if password.trim().is_empty() {
            return Err(AuthError::EmptyPassword);
        }
        let deadline = Instant::now() + self.config.timeout;
        tokio::time::timeout_at(deadline, self.password_login(user, password, deadline))
            .await
            .unwrap_or_else(|_| Err(AuthError::Unavailable("the identity provider timeout passed".into())))
    }

    /// The broker never asks for a password change for this source (the provider has its own
    /// way): a login that sends one is checked with the old password alone.
    async fn change_password(&self, user: &Username, old: &str, _new: &str) -> Result<VerifiedUser, AuthError> {
        self.verify(user, old).await
    }

    fn has_keytab_groups(&self) -> bool {
        !self.config.keytab_groups.is_empty()
    }

    fn kind(&self) -> &'static str {
        "oidc"
    }

    fn offers_password_login(&self) -> bool {
        self.config.password_grant
    }

    fn offers_device_login(&self) -> bool {
        self.config.device_grant
    }

    async fn start_device_login(&self) -> Result<DeviceLogin, AuthError> {
        OidcSource::start_device_login(self).await
    }

    async fn finish_device_login(&self, login: &DeviceLogin) -> Result<SignedIn, AuthError> {
        OidcSource::finish_device_login(self, login).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(secret: Option<&str>) -> OidcSource {
        let ca = rcgen::generate_simple_self_signed(vec!["idp.example.com".to_owned()]).unwrap();
        let mut config = OidcConfig::for_tests("https://idp.example.com", "ktbroker");
        config.ca_pem = ca.cert.pem().into_bytes();
        config.client_secret = secret.map(|s| crate::config::Secret(Zeroizing::new(s.to_owned())));
        OidcSource::new(config).unwrap()
    }

    #[test]
    fn the_client_is_named_once_in_every_device_request_and_its_secret_only_in_basic() {
        for (secret, basic) in [(None, None), (Some("s3cret"), Some(("ktbroker", "s3cret")))] {
            let source = source(secret);
            let mut form = vec![("scope", "openid")];
            assert_eq!(source.client_auth_with_id(&mut form), basic);
            let ids = form.iter().filter(|(name, _)| *name == "client_id").count();
            assert_eq!(ids, 1, "{form:?}");
            assert!(form.iter().all(|(_, value)| *value != "s3cret"), "{form:?}");
        }
    }

    #[test]
    fn only_invalid_grant_is_the_persons_fault() {
        assert!(matches!(token_error("invalid_grant"), AuthError::InvalidCredentials));
        for code in [
            "invalid_client",
            "unauthorized_client",
            "unsupported_grant_type",
            "invalid_scope",
            "x",
        ] {
            assert!(matches!(token_error(code), AuthError::Unavailable(_)), "{code}");
        }
    }
}
