//! ktbroker-kinit: one directory password in, one Kerberos ticket out.
//!
//! The steps, one module each: [`config`] (client.toml) → [`password`] (read it without echo,
//! never from argv or env) → [`fetch`] (send it over TLS to ktbrokerd, trying the configured
//! brokers in order, receive the keytab into memory, check its SHA-256) → [`ticket`] (an
//! in-process AS exchange with libkrb5, the keys in its MEMORY: keytab, never in a file, then
//! removed and wiped) →
//! [`ccache`] (refuse another user's cache; succeed only if the cache now holds the ticket).
#![forbid(unsafe_code)]

pub mod ccache;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod doctor;
pub mod error;
pub mod fetch;
pub mod password;
pub mod request;
pub mod sessions;
pub mod sso;
pub mod ticket;

pub use error::HelperError;

use std::time::Duration;

/// Everything one login needs, apart from the password.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// Tried in order (see [`fetch::fetch_from_any`]).
    pub endpoints: Vec<fetch::BrokerEndpoint>,
    pub who: fetch::Who,
    pub kerberos: ticket::KerberosTarget,
}

/// What a successful login produced.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    pub principal: String,
    /// The keys' version (0 for a ticket delivery).
    pub kvno: u32,
    pub delivered: fetch::Delivery,
}

/// Fetches the keytab, gets the ticket with it in memory, wipes it, and checks the ticket.
pub async fn login(request: &LoginRequest, password: &[u8]) -> Result<LoginOutcome, HelperError> {
    login_with(request, fetch::Credentials::password(password)).await
}

/// [`login`], with a new directory password when the directory wants the old one changed.
pub async fn login_with(
    request: &LoginRequest,
    credentials: fetch::Credentials<'_>,
) -> Result<LoginOutcome, HelperError> {
    // Before any network traffic: never overwrite a cache that belongs to someone else.
    let cache = ccache::refuse_foreign_cache(request.kerberos.ccache.as_deref())?;
    ccache::sweep_stranded_temporaries(&cache);
    // While the broker answers, a blocking thread readies the libkrb5 context for what follows;
    // for a keytab's AS exchange that includes loading the pre-authentication modules, the
    // slowest part of the exchange (see `load_preauth_modules` and `Context::for_known_keys`).
    let will_exchange = request.who.delivery == fetch::Delivery::Keytab;
    let readying = tokio::task::spawn_blocking(move || {
        if !will_exchange {
            return krb5_context();
        }
        // Without SPAKE, whose module costs more to load than the rest of the exchange; should
        // that context fail to come up, a default one says why (or works).
        let context = ktbroker_krb5::Context::for_known_keys().or_else(|_| krb5_context())?;
        context.load_preauth_modules();
        Ok(context)
    });
    let keytab = fetch::fetch_from_any(&request.endpoints, &request.who, credentials).await?;
    let context = readying
        .await
        .map_err(|e| HelperError::Internal(format!("krb5 context task failed: {e}")))??;
    let principal = keytab.principal.clone();
    let kvno = keytab.kvno;
    let target = request.kerberos.clone();
    let timeout = target.timeout;
    let kinit_principal = principal.clone();
    // The KDC exchange blocks: keep it off the async workers, under a deadline (on expiry the
    // helper exits; the abandoned thread goes with the process).
    let delivered = keytab.delivered;
    let exchange = tokio::task::spawn_blocking(move || {
        let result = match keytab.delivered {
            fetch::Delivery::Keytab => ticket::kinit_from_memory(&context, &keytab.bytes, &kinit_principal, &target),
            fetch::Delivery::Ticket => ticket::store_delivered(&context, &keytab.bytes, &kinit_principal, &target),
        };
        drop(keytab); // zeroizes the keytab bytes (or the ticket's session key)
        result
    });
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| {
            HelperError::kerberos(
                ktbroker_krb5::FailureKind::KdcUnreachable,
                format!("the KDC exchange did not finish within {timeout:?}"),
            )
        })?
        .map_err(|e| HelperError::Internal(format!("kinit task failed: {e}")))??;
    Ok(LoginOutcome {
        principal,
        kvno,
        delivered,
    })
}

/// The Kerberos profile libkrb5 reads: KRB5_CONFIG, else /etc/krb5.conf.
fn profile_path() -> String {
    std::env::var("KRB5_CONFIG").unwrap_or_else(|_| "/etc/krb5.conf".into())
}

/// A libkrb5 context. When the Kerberos profile cannot be read (a syntax error, a directory, no
/// permission) that is a configuration error naming the file, not a fault of this program.
pub fn krb5_context() -> Result<ktbroker_krb5::Context, HelperError> {
    ktbroker_krb5::Context::new().map_err(|e| {
        HelperError::Config(format!(
            "cannot read the Kerberos configuration {}: {e}",
            profile_path()
        ))
    })
}

/// Fails (a configuration error, exit 2) when this host's krb5 profile cannot say where the KDCs
/// of `realm` are: neither `[realms] REALM kdc` nor DNS lookups.
pub fn require_known_realm(realm: &str) -> Result<(), HelperError> {
    let context = krb5_context()?;
    if context.knows_kdcs_of(realm).unwrap_or(true) {
        return Ok(());
    }
    let profile = profile_path();
    Err(HelperError::Config(format!(
        "the Kerberos configuration {profile} does not say where the KDCs of {realm} are \
         (no [realms] {realm} kdc, and dns_lookup_kdc is off); nothing was sent"
    )))
}

/// A ticket time for people: local date and time, and how far off it is ("in 9h 59m", "2m ago").
pub fn describe_time(timestamp: i64) -> String {
    let delta = timestamp - unix_now();
    let when = if delta >= 0 {
        format!("in {}", span(delta))
    } else {
        format!("{} ago", span(-delta))
    };
    format!("{} ({when})", ktbroker_krb5::local_time(timestamp))
}

/// A non-negative number of seconds, as coarsely as people read it.
fn span(secs: i64) -> String {
    let (hours, minutes) = (secs / 3600, (secs % 3600) / 60);
    match (hours, minutes) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m"),
        (h, _) if h >= 48 => format!("{}d {}h", h / 24, h % 24),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// Seconds since the Unix epoch, the unit of ticket times.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Default per-call timeout for the broker and for the KDC exchange.
pub const DEFAULT_TIMEOUT: Duration = ktbroker_codes::timeouts::CLIENT_CALL;

/// Client tools log warnings and errors to stderr, terse and without timestamps; `env_var` (e.g.
/// `KTBROKER_LOG=debug`) raises the level.
pub fn init_client_logging(env_var: &str, verbose: bool) {
    // Without `env_var`: this program's own warnings only; the libraries' (hyper, h2, the HDFS
    // client retrying) are noise to a person unless asked for with -v.
    let default = if verbose {
        "info"
    } else {
        "off,ktbroker_kinit=warn,ktbroker_netdisk=warn,netdisk=warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env(env_var).unwrap_or_else(|_| default.into()))
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn spans_read_as_people_read_them() {
        assert_eq!(super::span(42), "42s");
        assert_eq!(super::span(90), "1m");
        assert_eq!(super::span(9 * 3600 + 59 * 60), "9h 59m");
        assert_eq!(super::span(7 * 24 * 3600), "7d 0h");
        let described = super::describe_time(super::unix_now() + 3600);
        assert!(
            described.ends_with("(in 1h 0m)") || described.ends_with("(in 59m)"),
            "{described}"
        );
    }
}
