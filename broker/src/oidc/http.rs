//! The broker's HTTPS client for one identity provider: TLS 1.2+ by rustls with only the
//! configured CA, https only, no redirects, no cookies, no proxy from the environment, every
//! call bounded by the caller's deadline, and every answer bounded in size.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Discovery documents, key sets and token responses are a few KiB.
pub const MAX_RESPONSE: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: the answer is over {MAX_RESPONSE} bytes")]
    TooLarge { url: String },
    #[error("{url}: no time left for the call")]
    NoTime { url: String },
}

/// An answer: its status and (bounded) body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Wiped when dropped: a token response holds the person's access and refresh tokens.
    pub body: zeroize::Zeroizing<Vec<u8>>,
}

#[derive(Clone)]
pub struct Https {
    client: reqwest::Client,
}

impl Https {
    pub fn new(ca_pem: &[u8], connect_timeout: Duration) -> Result<Self, String> {
        let tls = crate::tls::client_config_trusting(ca_pem).map_err(|e| format!("identity provider CA: {e}"))?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(Arc::unwrap_or_clone(tls))
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("ktbrokerd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { client })
    }

    pub async fn get(&self, url: &str, deadline: Instant) -> Result<Answer, HttpError> {
        self.send(url, self.client.get(url), deadline).await
    }

    /// POSTs `form` (application/x-www-form-urlencoded), with HTTP Basic client authentication
    /// when `basic` is given (RFC 6749 §2.3.1: both parts form-encoded first).
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        deadline: Instant,
    ) -> Result<Answer, HttpError> {
        let body = zeroize::Zeroizing::new(form_encode(form));
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body.as_bytes().to_vec());
        if let Some((id, secret)) = basic {
            let id = form_encode_one(id);
            let secret = zeroize::Zeroizing::new(form_encode_one(secret));
            request = request.basic_auth(id, Some(secret.as_str()));
        }
        self.send(url, request, deadline).await
    }

    async fn send(&self, url: &str, request: reqwest::RequestBuilder, deadline: Instant) -> Result<Answer, HttpError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HttpError::NoTime { url: url.to_owned() });
        }
        let transport = |e: reqwest::Error| HttpError::Transport {
            url: url.to_owned(),
            // Without the URL again (reqwest repeats it) and without any body.
            message: error_chain(&e.without_url()),
        };
        let call = async {
            let mut response = request.timeout(left).send().await.map_err(transport)?;
            let status = response.status().as_u16();
            if response.content_length().is_some_and(|n| n > MAX_RESPONSE as u64) {
                return Err(HttpError::TooLarge { url: url.to_owned() });
            }
            let mut body = zeroize::Zeroizing::new(Vec::with_capacity(16 * 1024));
            while let Some(chunk) = response.chunk().await.map_err(transport)? {
                if body.len() + chunk.len() > MAX_RESPONSE {
                    return Err(HttpError::TooLarge { url: url.to_owned() });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Answer { status, body })
        };
        tokio::time::timeout_at(deadline, call)
            .await
            .unwrap_or_else(|_| Err(HttpError::NoTime { url: url.to_owned() }))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn form_encode_one(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_basic_credentials_are_form_encoded() {
        assert_eq!(
            form_encode(&[("grant_type", "password"), ("password", "p&s=w d+")]),
            "grant_type=password&password=p%26s%3Dw+d%2B"
        );
        assert_eq!(form_encode_one("a:b c"), "a%3Ab+c");
    }
}
