//! Turning the keytab into a ticket without writing it to any filesystem and without a kinit
//! process: the bytes go into a memfd that libkrb5, in this process, reads as
//! `FILE:/proc/self/fd/N` (MIT's keytab reader seeks, so a pipe would not do). The AS exchange is
//! `krb5_get_init_creds_keytab` — what `kinit -k -t` does — storing the TGT in the chosen cache.
//! The memfd is wiped and closed as soon as the exchange is over.

use crate::HelperError;
use ktbroker_keytab::memfd::KeytabMemfd;
use std::time::Duration;

/// Where the ticket goes and how long the KDC exchange may take.
#[derive(Debug, Clone)]
pub struct KerberosTarget {
    /// The ccache for the ticket; `None` is KRB5CCNAME, else krb5.conf's default.
    pub ccache: Option<String>,
    pub timeout: Duration,
}

impl Default for KerberosTarget {
    fn default() -> Self {
        Self {
            ccache: None,
            timeout: crate::DEFAULT_TIMEOUT,
        }
    }
}

/// Gets a TGT for `principal` with the keys in `keytab` and stores it in the target cache.
/// Blocking (it talks to the KDC); the caller runs it off the async threads, under its deadline.
pub fn kinit_from_memory(
    keytab: &[u8],
    principal: &str,
    target: &KerberosTarget,
) -> Result<ktbroker_krb5::TicketTimes, HelperError> {
    let memfd = KeytabMemfd::with_contents(keytab).map_err(|e| HelperError::Internal(format!("memfd: {e}")))?;
    let context = ktbroker_krb5::Context::new()?;
    // The same path a child would use: /proc/self/fd/N names our own descriptor here.
    let obtained = context.kinit_with_keytab(principal, &memfd.child_keytab_name(), target.ccache.as_deref());
    memfd
        .wipe()
        .map_err(|e| HelperError::Internal(format!("wiping the memfd: {e}")))?;
    drop(memfd);
    let times = obtained?;
    crate::ccache::require_valid_tgt(&context, principal, target, times)?;
    Ok(times)
}
