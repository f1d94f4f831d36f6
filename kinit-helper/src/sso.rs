//! `--sso`: sign-in at the tenant's identity provider instead of a password typed here. The broker
//! starts a device login at the provider; this shows the person where to sign in and the code to
//! enter, then waits for the broker's delivery (a keytab or a ticket, as for a password login).
//! Ctrl-C, or the process ending, hangs up, and the broker stops waiting for the provider.
//!
//! What the person sees goes to stderr, and, for the PAM module, one line a program can read:
//! `ktbroker-kinit: sign-in url=URL code=CODE expires_in=SECONDS` (fields without spaces).

use crate::HelperError;
use crate::fetch::{
    BrokerEndpoint, FetchedKeytab, Who, check_server_info, connect, next_part, protocol, read_delivery, status_error,
};
use ktbroker_proto::v1::{
    DevicePrompt, ProviderLoginRequest, fetch_keytab_response::Part, keytab_broker_client::KeytabBrokerClient,
};
use std::time::Duration;

/// Tries the brokers in order until one shows a sign-in prompt; from then on that broker's
/// answer is the answer (another would show another code).
pub async fn sign_in_from_any(endpoints: &[BrokerEndpoint], who: &Who) -> Result<FetchedKeytab, HelperError> {
    let mut last = None;
    for endpoint in endpoints {
        let started = tokio::time::timeout(endpoint.timeout, start(endpoint, who))
            .await
            .unwrap_or_else(|_| Err(crate::fetch::timed_out(endpoint)));
        match started {
            Ok((prompt, mut stream)) => {
                show(&prompt);
                // The broker waits expires_in for the person, then has its own request timeout.
                let wait = Duration::from_secs(u64::from(prompt.expires_in_secs)) + endpoint.timeout * 2;
                return tokio::time::timeout(wait, async {
                    let first = next_part(&mut stream).await?;
                    read_delivery(first, &mut stream, who).await
                })
                .await
                .unwrap_or_else(|_| {
                    Err(HelperError::Unreachable(format!(
                        "{}: no answer within {wait:?} of the sign-in prompt",
                        endpoint.url
                    )))
                });
            }
            Err(e) if e.tries_elsewhere() => {
                tracing::warn!(broker = %endpoint.url, error = %e, "broker failed; trying the next one");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| HelperError::Internal("no broker was tried".into())))
}

type Stream = tonic::Streaming<ktbroker_proto::v1::FetchKeytabResponse>;

/// Connects, checks the tenant, asks for a provider sign-in and reads the prompt.
async fn start(endpoint: &BrokerEndpoint, who: &Who) -> Result<(DevicePrompt, Stream), HelperError> {
    let channel = connect(endpoint).await?;
    let mut client = KeytabBrokerClient::new(channel);
    check_server_info(&mut client, who).await?;
    let request = ProviderLoginRequest {
        tenant: who.tenant.clone(),
        principal: who.principal.clone(),
        delivery: who.delivery.wire(),
    };
    let mut stream = client
        .login_with_provider(request)
        .await
        .map_err(status_error)?
        .into_inner();
    match next_part(&mut stream).await? {
        Some(Part::DevicePrompt(prompt)) if plausible(&prompt) => Ok((prompt, stream)),
        Some(Part::DevicePrompt(_)) => Err(protocol("a sign-in prompt without an https address or a code")),
        _ => Err(protocol("the sign-in stream did not start with a prompt")),
    }
}

/// An https address and a code, with nothing in either that could garble the terminal.
fn plausible(prompt: &DevicePrompt) -> bool {
    let printable = |text: &str| !text.is_empty() && text.len() <= 2048 && text.chars().all(|c| c.is_ascii_graphic());
    prompt.verification_uri.starts_with("https://")
        && printable(&prompt.verification_uri)
        && printable(&prompt.user_code)
        && (prompt.verification_uri_complete.is_empty()
            || (prompt.verification_uri_complete.starts_with("https://")
                && printable(&prompt.verification_uri_complete)))
}

fn show(prompt: &DevicePrompt) {
    let minutes = prompt.expires_in_secs.div_ceil(60);
    eprintln!(
        "To log in, open {} in a browser and enter the code {} (within {minutes} min).",
        prompt.verification_uri, prompt.user_code
    );
    if !prompt.verification_uri_complete.is_empty() {
        eprintln!("Or open {}", prompt.verification_uri_complete);
    }
    eprintln!(
        "ktbroker-kinit: sign-in url={} code={} expires_in={}",
        prompt.verification_uri, prompt.user_code, prompt.expires_in_secs
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(uri: &str, code: &str, complete: &str) -> DevicePrompt {
        DevicePrompt {
            verification_uri: uri.into(),
            user_code: code.into(),
            verification_uri_complete: complete.into(),
            expires_in_secs: 300,
        }
    }

    #[test]
    fn only_https_addresses_and_printable_codes_are_shown() {
        assert!(plausible(&prompt("https://idp/device", "ABCD-EFGH", "")));
        assert!(plausible(&prompt(
            "https://idp/device",
            "ABCD",
            "https://idp/device?code=ABCD"
        )));
        assert!(!plausible(&prompt("http://idp/device", "ABCD", "")));
        assert!(!plausible(&prompt("https://idp/device", "", "")));
        assert!(!plausible(&prompt("https://idp/device", "AB\u{1b}[2J", "")));
        assert!(!plausible(&prompt("https://idp/device", "AB CD", "")));
        assert!(!plausible(&prompt("https://idp/device", "ABCD", "javascript:alert(1)")));
    }
}
