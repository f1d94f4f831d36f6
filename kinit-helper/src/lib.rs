//! ktbroker-kinit: one directory password in, one Kerberos ticket out.
//!
//! The steps, one module each: [`password`] (read it without echo, never from argv or env) →
//! [`fetch`] (send it over TLS to ktbrokerd, receive the keytab into memory, check its SHA-256) →
//! [`handoff`] (give the keytab to MIT kinit through a memfd, never a file, then wipe it) →
//! [`ccache`] (succeed only if a valid TGT for the principal is in the cache).

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
    pub kerberos: handoff::KerberosTools,
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
    let tools = request.kerberos.clone();
    let kinit_principal = principal.clone();
    // kinit and klist are blocking child processes: keep them off the async workers.
    tokio::task::spawn_blocking(move || {
        handoff::kinit_from_memory(&keytab.bytes, &kinit_principal, &tools)?;
        drop(keytab); // zeroizes the keytab bytes
        ccache::require_valid_tgt(&kinit_principal, &tools)
    })
    .await
    .map_err(|e| HelperError::Internal(format!("kinit task failed: {e}")))??;
    Ok(LoginOutcome { principal, kvno })
}

/// Default per-call timeout for the broker and for each child process.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
