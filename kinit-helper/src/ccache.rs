//! Checking the result: a login succeeded only if the cache's default principal is the one we
//! asked for and the ticket we stored there has not already expired (a badly skewed clock).

use crate::HelperError;
use crate::handoff::KerberosTarget;

pub fn require_valid_tgt(
    context: &ktbroker_krb5::Context,
    principal: &str,
    target: &KerberosTarget,
    times: ktbroker_krb5::TicketTimes,
) -> Result<(), HelperError> {
    let ours = context
        .ccache_belongs_to(target.ccache.as_deref(), principal)
        .map_err(|e| HelperError::NoTicket(e.to_string()))?;
    if !ours {
        return Err(HelperError::NoTicket(format!(
            "the credential cache does not belong to {principal}"
        )));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if times.end <= now {
        return Err(HelperError::NoTicket(
            "the new ticket has already expired (is this host's clock right?)".into(),
        ));
    }
    Ok(())
}
