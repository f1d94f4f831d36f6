//! An OpenID Connect identity provider (Keycloak, Entra ID, Okta, ADFS) as a tenant's identity
//! source, in place of the directory.
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
}

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
        })
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
        let basic = match &self.config.client_secret {
            Some(secret) => Some((self.config.client_id.as_str(), secret.0.as_str())),
            None => {
                form.push(("client_id", self.config.client_id.as_str()));
                None
            }
        };
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
        identity
            .authorize(&self.config)
            .map_err(|insufficient| match insufficient {
                claims::Insufficient::NotInGroup => AuthError::NotInGroup,
                claims::Insufficient::AuthenticationContext => AuthError::AuthenticationContext,
            })?;
        tracing::debug!(subject = %identity.subject, "identity provider accepted the login");
        Ok(VerifiedUser {
            in_keytab_group: identity.in_any(&self.config.keytab_groups),
            dn: identity.subject,
            principal: EntryPrincipal::NotAsked,
            password_changed: false,
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
