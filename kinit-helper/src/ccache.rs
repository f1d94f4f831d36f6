//! Checking the result: a login succeeded only if the ccache now holds a valid (unexpired) TGT
//! and its default principal is the one we asked for.

use crate::HelperError;
use crate::handoff::{KerberosTools, run_with_deadline};

/// `klist -s` (valid, unexpired tickets) and `klist`'s "Default principal" must both agree.
pub fn require_valid_tgt(principal: &str, tools: &KerberosTools) -> Result<(), HelperError> {
    let mut check = tools.command(&tools.klist);
    check.arg("-s").args(tools.ccache_args());
    let status = run_with_deadline(check, tools.timeout)
        .map_err(HelperError::NoTicket)?
        .status;
    if !status.success() {
        return Err(HelperError::NoTicket(
            "klist -s found no valid ticket in the cache".into(),
        ));
    }
    let mut list = tools.command(&tools.klist);
    list.args(tools.ccache_args());
    let output = run_with_deadline(list, tools.timeout).map_err(HelperError::NoTicket)?;
    let listing = String::from_utf8_lossy(&output.stdout);
    match default_principal(&listing) {
        Some(found) if found == principal => Ok(()),
        Some(found) => Err(HelperError::NoTicket(format!(
            "the cache belongs to {found}, not {principal}"
        ))),
        None => Err(HelperError::NoTicket("klist did not name the cache's principal".into())),
    }
}

fn default_principal(klist_output: &str) -> Option<&str> {
    klist_output
        .lines()
        .find_map(|line| line.strip_prefix("Default principal: "))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_default_principal_in_klist_output() {
        let out = "Ticket cache: FILE:/tmp/cc\nDefault principal: alice@KRBTEST.COM\n\nValid starting ...\n";
        assert_eq!(super::default_principal(out), Some("alice@KRBTEST.COM"));
        assert_eq!(super::default_principal("klist: No credentials cache found"), None);
    }
}
