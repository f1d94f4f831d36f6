//! ktbroker-kinit: one directory password in, one Kerberos ticket out.
//!
//! The steps, one module each: [`password`] (read it without echo, never from argv or env) →
//! [`fetch`] (send it over TLS to ktbrokerd, receive the keytab into memory, check its SHA-256) →
//! [`handoff`] (an in-process AS exchange with libkrb5, the keytab read from a memfd, never a
//! file, then wiped) → [`ccache`] (succeed only if the cache now holds the principal's ticket).

pub mod ccache;
pub mod error;
pub mod fetch;
pub mod handoff;
pub mod password;

pub use error::HelperError;

use std::time::Duration;

/// Everything one login needs, apart from the password.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    pub endpoint: fetch::BrokerEndpoint,
    pub username: String,
    pub principal: Option<String>,
    pub kerberos: handoff::KerberosTarget,
}

/// What a successful login produced.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    pub principal: String,
    pub kvno: u32,
}

/// Fetches the keytab, runs kinit with it from memory, wipes it, and checks the ticket.
pub async fn login(request: &LoginRequest, password: &[u8]) -> Result<LoginOutcome, HelperError> {
    let keytab = fetch::fetch_keytab(
        &request.endpoint,
        &request.username,
        password,
        request.principal.as_deref(),
    )
    .await?;
    let principal = keytab.principal.clone();
    let kvno = keytab.kvno;
    let target = request.kerberos.clone();
    let timeout = target.timeout;
    let kinit_principal = principal.clone();
    // The KDC exchange blocks: keep it off the async workers, under a deadline (on expiry the
    // helper exits; the abandoned thread goes with the process).
    let exchange = tokio::task::spawn_blocking(move || {
        let result = handoff::kinit_from_memory(&keytab.bytes, &kinit_principal, &target);
        drop(keytab); // zeroizes the keytab bytes
        result
    });
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HelperError::Kinit(format!("the KDC exchange did not finish within {timeout:?}")))?
        .map_err(|e| HelperError::Internal(format!("kinit task failed: {e}")))??;
    Ok(LoginOutcome { principal, kvno })
}

/// Default per-call timeout for the broker and for each child process.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
