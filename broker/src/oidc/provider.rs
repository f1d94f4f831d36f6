//! The identity provider's published metadata (OpenID Connect Discovery 1.0) and signing keys
//! (its JWK Set), fetched on first use and cached. Keys rotate: a token signed by a key id the
//! cached set does not hold makes the broker fetch the set again, at most once per
//! [`KEY_REFETCH_INTERVAL`], so a stream of tokens with made-up key ids cannot turn the broker
//! into a load generator against the provider. No lock is held across a fetch.

use super::http::{Answer, HttpError, Https};
use super::jose::JwkSet;
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long discovery and keys are used before they are fetched again.
pub const CACHE_FOR: Duration = Duration::from_secs(3600);
/// The least time between two fetches of the keys for an unknown key id (Keycloak's adapters
/// use the same 10 s).
pub const KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {problem}")]
    Document { url: String, problem: String },
}

/// What the broker needs of the discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub device_authorization_endpoint: Option<String>,
}

#[derive(Default)]
struct Cache {
    metadata: Option<(Arc<Metadata>, Instant)>,
    keys: Option<(Arc<JwkSet>, Instant)>,
}

pub struct Provider {
    issuer: String,
    http: Https,
    cache: Mutex<Cache>,
}

impl Provider {
    pub fn new(issuer: &str, http: Https) -> Self {
        Self {
            issuer: issuer.to_owned(),
            http,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub fn http(&self) -> &Https {
        &self.http
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The discovery document, from the cache while it is fresh. When a refresh fails, the one
    /// fetched before goes on serving (the provider's endpoints rarely move; its outage should
    /// not be the broker's).
    pub async fn metadata(&self, deadline: Instant) -> Result<Arc<Metadata>, ProviderError> {
        let cached = self.cache().metadata.clone();
        if let Some((metadata, fetched)) = &cached
            && fetched.elapsed() < CACHE_FOR
        {
            return Ok(metadata.clone());
        }
        let fetched = self.fetch_metadata(deadline).await;
        fresh_or_stale(fetched, cached, "discovery document", |fresh| {
            self.cache().metadata = Some(fresh);
        })
    }

    /// The key set, from the cache while it is fresh and holds `key_id`.
    pub async fn keys(&self, key_id: Option<&str>, deadline: Instant) -> Result<Arc<JwkSet>, ProviderError> {
        let cached = self.cache().keys.clone();
        if let Some((keys, fetched)) = &cached {
            let fresh = fetched.elapsed() < CACHE_FOR;
            let known = key_id.is_none() || keys.has(key_id);
            // An unknown key id refetches, but not again within the interval: the token is then
            // refused with the keys at hand.
            let refetched_lately = fetched.elapsed() < KEY_REFETCH_INTERVAL;
            if fresh && (known || refetched_lately) {
                return Ok(keys.clone());
            }
        }
        let metadata = self.metadata(deadline).await?;
        let fetched = self.fetch_keys(&metadata.jwks_uri, deadline).await;
        fresh_or_stale(fetched, cached, "keys", |fresh| self.cache().keys = Some(fresh))
    }

    async fn fetch_metadata(&self, deadline: Instant) -> Result<Metadata, ProviderError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let body = ok_json(&url, self.http.get(&url, deadline).await?)?;
        parse_metadata(&self.issuer, &body).map_err(|problem| ProviderError::Document { url, problem })
    }

    async fn fetch_keys(&self, url: &str, deadline: Instant) -> Result<JwkSet, ProviderError> {
        let body = ok_json(url, self.http.get(url, deadline).await?)?;
        JwkSet::parse(&body).map_err(|problem| ProviderError::Document {
            url: url.to_owned(),
            problem,
        })
    }
}

/// A fetch's result, stored with its time by `store`; when the fetch failed, the copy fetched
/// before, if there is one (logged), else the error.
fn fresh_or_stale<T>(
    fetched: Result<T, ProviderError>,
    cached: Option<(Arc<T>, Instant)>,
    what: &str,
    store: impl FnOnce((Arc<T>, Instant)),
) -> Result<Arc<T>, ProviderError> {
    match (fetched, cached) {
        (Ok(fresh), _) => {
            let fresh = Arc::new(fresh);
            store((fresh.clone(), Instant::now()));
            Ok(fresh)
        }
        (Err(e), Some((stale, _))) => {
            tracing::warn!(error = %e, "refreshing the identity provider's {what} failed; using the copy fetched before");
            Ok(stale)
        }
        (Err(e), None) => Err(e),
    }
}

fn ok_json(url: &str, answer: Answer) -> Result<Vec<u8>, ProviderError> {
    match answer.status {
        200 => Ok(answer.body.to_vec()),
        status => Err(ProviderError::Status {
            url: url.to_owned(),
            status,
        }),
    }
}

/// The discovery document, checked: its `issuer` is exactly the configured one (Discovery §4.3:
/// else a document from elsewhere could name other endpoints), and its endpoints are https.
pub fn parse_metadata(issuer: &str, body: &[u8]) -> Result<Metadata, String> {
    #[derive(Deserialize)]
    struct Raw {
        issuer: String,
        token_endpoint: Option<String>,
        jwks_uri: Option<String>,
        device_authorization_endpoint: Option<String>,
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| format!("not a discovery document: {e}"))?;
    if raw.issuer.trim_end_matches('/') != issuer {
        return Err(format!(
            "it names issuer {:?}, not the configured {issuer:?}",
            raw.issuer.chars().take(200).collect::<String>()
        ));
    }
    let https = |value: Option<String>, name: &str| -> Result<String, String> {
        match value {
            Some(url) if url::Url::parse(&url).is_ok_and(|u| u.scheme() == "https") => Ok(url),
            Some(_) => Err(format!("its {name} is not an https URL")),
            None => Err(format!("it has no {name}")),
        }
    };
    Ok(Metadata {
        token_endpoint: https(raw.token_endpoint, "token_endpoint")?,
        jwks_uri: https(raw.jwks_uri, "jwks_uri")?,
        device_authorization_endpoint: match raw.device_authorization_endpoint {
            None => None,
            some => Some(https(some, "device_authorization_endpoint")?),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://idp.example.com/realms/corp";

    #[test]
    fn a_discovery_document_must_name_the_configured_issuer_and_https_endpoints() {
        let doc = |issuer: &str, token: &str| {
            serde_json::json!({"issuer": issuer, "token_endpoint": token,
                "jwks_uri": "https://idp.example.com/realms/corp/certs"})
            .to_string()
        };
        let good = parse_metadata(ISSUER, doc(ISSUER, "https://idp.example.com/token").as_bytes()).unwrap();
        assert_eq!(good.token_endpoint, "https://idp.example.com/token");
        assert_eq!(good.device_authorization_endpoint, None);
        let other = doc("https://evil.example.com/realms/corp", "https://idp.example.com/token");
        assert!(
            parse_metadata(ISSUER, other.as_bytes())
                .unwrap_err()
                .contains("not the configured")
        );
        let plain = doc(ISSUER, "http://idp.example.com/token");
        assert!(
            parse_metadata(ISSUER, plain.as_bytes())
                .unwrap_err()
                .contains("token_endpoint")
        );
        assert!(parse_metadata(ISSUER, br#"{"issuer": "https://idp.example.com/realms/corp"}"#).is_err());
        assert!(parse_metadata(ISSUER, b"<html>").is_err());
    }
}
