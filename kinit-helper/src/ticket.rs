//! Turning the keytab into a ticket in this process, without a kinit process and without any file:
//! the keys go straight into libkrb5's memory (a `MEMORY:` keytab, see
//! [`ktbroker_krb5::Context::kinit_with_keys`]) for the AS exchange `kinit -k` makes, and the TGT
//! goes to the chosen cache. Our own copies are zeroizing buffers, wiped when they are dropped.

use crate::HelperError;
use ktbroker_keytab::Keytab;
use ktbroker_krb5::KeyEntry;
use std::time::Duration;

/// Where the ticket goes, how long the KDC exchange may take, and the lifetimes to ask for.
#[derive(Debug, Clone)]
pub struct KerberosTarget {
    /// The ccache for the ticket; `None` is KRB5CCNAME, else krb5.conf's default.
    pub ccache: Option<String>,
    pub timeout: Duration,
    pub lifetimes: ktbroker_krb5::Lifetimes,
}

impl Default for KerberosTarget {
    fn default() -> Self {
        Self {
            ccache: None,
            timeout: crate::DEFAULT_TIMEOUT,
            lifetimes: ktbroker_krb5::Lifetimes::default(),
        }
    }
}

/// The renewable lifetime asked for when neither client.toml nor krb5.conf names one: without
/// it the KDC issues tickets that `renew` cannot renew. The KDC caps it at its own maximum.
pub const DEFAULT_RENEW_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// `lifetimes` with the default renewable lifetime filled in unless krb5.conf sets one.
fn with_default_renewal(
    context: &ktbroker_krb5::Context,
    lifetimes: ktbroker_krb5::Lifetimes,
) -> ktbroker_krb5::Lifetimes {
    if lifetimes.renewable.is_some() || context.libdefault("renew_lifetime").ok().flatten().is_some() {
        return lifetimes;
    }
    ktbroker_krb5::Lifetimes {
        renewable: Some(DEFAULT_RENEW_LIFETIME),
        ..lifetimes
    }
}

/// Gets a TGT for `principal` with the keys of `keytab` (keytab file bytes, already verified) and
/// stores it in the target cache. Blocking (it talks to the KDC); the caller runs it off the async
/// threads, under its deadline.
pub fn kinit_from_memory(
    context: &ktbroker_krb5::Context,
    keytab: &[u8],
    principal: &str,
    target: &KerberosTarget,
) -> Result<ktbroker_krb5::TicketTimes, HelperError> {
    let keytab = Keytab::parse(keytab).map_err(|e| HelperError::Protocol(e.to_string()))?;
    let keys: Vec<KeyEntry<'_>> = keytab
        .entries
        .iter()
        .map(|entry| KeyEntry {
            kvno: entry.kvno,
            enctype: i32::from(entry.key.enctype),
            contents: &entry.key.contents,
        })
        .collect();
    let lifetimes = with_default_renewal(context, target.lifetimes);
    let cache = target.ccache.as_deref();
    let times = match context.kinit_with_keys(principal, &keys, cache, lifetimes) {
        // A KDC that insists on SPAKE, which this context left out (`Context::for_known_keys`):
        // once more with every module.
        Err(e) if context.lacks_spake() && e.needs_another_preauth() => {
            tracing::debug!(
                code = e.code,
                "the KDC asks for pre-authentication without SPAKE's module; again with it"
            );
            crate::krb5_context()?.kinit_with_keys(principal, &keys, cache, lifetimes)?
        }
        other => other?,
    };
    crate::ccache::require_valid_tgt(context, principal, target, times)?;
    Ok(times)
}

/// Stores a delivered ticket (a KRB-CRED message, see [`ktbroker_krb5::Context::store_credentials_message`])
/// in the target cache, checked to be `principal`'s TGT and valid, and records the delivery.
/// Blocking, like [`kinit_from_memory`].
pub fn store_delivered(
    context: &ktbroker_krb5::Context,
    message: &[u8],
    principal: &str,
    target: &KerberosTarget,
) -> Result<ktbroker_krb5::TicketTimes, HelperError> {
    let times = context
        .store_credentials_message(message, principal, target.ccache.as_deref())
        .map_err(|e| HelperError::Protocol(format!("the delivered ticket: {e}")))?;
    crate::ccache::require_valid_tgt(context, principal, target, times)?;
    Ok(times)
}
