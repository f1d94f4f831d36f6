//! Single login: if the credential cache holds no valid ticket, log in through the broker the way
//! `ktbroker-kinit` does (password, keys in libkrb5's MEMORY: keytab, in-process kinit, wipe), then go on.

use crate::error::{Kind, NetdiskError, Result};
use ktbroker_kinit::HelperError;
use ktbroker_kinit::config::ClientConfig;
use ktbroker_kinit::password::PasswordSource;
use ktbroker_kinit::request::{LoginOptions, chosen_ccache, login_changing_if_asked};
use std::io::IsTerminal;
use std::path::PathBuf;

/// A ticket must outlive the command by this much, or netdisk logs in again first.
const MIN_TICKET_LIFE_SECS: i64 = 60;

/// Where the login settings come from.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// The helper's client.toml.
    pub client_config: PathBuf,
    /// Whether that path was named on the command line (then it must exist).
    pub explicit: bool,
    pub options: LoginOptions,
    /// `-c`: the credential cache, if given.
    pub ccache: Option<String>,
    pub password_fd: Option<i32>,
}

/// The ticket a command runs with.
#[derive(Debug, Clone)]
pub struct Session {
    /// Full name of the credential cache, e.g. `FILE:/tmp/krb5cc_1000`.
    pub cache: String,
    pub principal: String,
    /// The principal's first component: the name Hadoop's usual auth_to_local rules map it to.
    pub user: String,
}

/// A session on a valid ticket, logging in first if there is none.
pub fn ensure_ticket(settings: &LoginSettings) -> Result<Session> {
    let config = ClientConfig::load(&settings.client_config, settings.explicit).map_err(login_error)?;
    let cache = chosen_ccache(settings.ccache.as_deref(), &config);
    if let Some(session) = valid_session(cache.as_deref())? {
        // Never act as someone else than the person asked for, even with a valid ticket.
        if let Some(user) = &settings.options.user
            && *user != session.user
        {
            return Err(NetdiskError::new(
                Kind::Auth,
                format!(
                    "the ticket in {} is {}'s, not {user}'s; log out (ktbroker-kinit logout) or choose another cache with -c",
                    session.cache, session.principal
                ),
            ));
        }
        return Ok(session);
    }
    tracing::info!(cache = ?cache, "no valid ticket; logging in through the broker");
    let request = settings
        .options
        .request(&config, settings.ccache.as_deref())
        .map_err(login_error)?;
    if request.who.sso {
        // The person signs in at the identity provider; the helper shows where.
        ktbroker_kinit::request::login_blocking(&request, b"").map_err(login_error)?;
    } else {
        let source = PasswordSource::new(settings.password_fd).map_err(login_error)?;
        let password = read_password(&source, settings.password_fd.is_some(), &request.who.username)?;
        // A password the directory wants changed: the new one twice, from the same place.
        login_changing_if_asked(&request, &password, &source, false, false).map_err(login_error)?;
    }
    valid_session(cache.as_deref())?
        .ok_or_else(|| NetdiskError::new(Kind::Auth, "logged in, yet the credential cache holds no valid ticket"))
}

fn valid_session(cache: Option<&str>) -> Result<Option<Session>> {
    let context = ktbroker_krb5::Context::new().map_err(|e| NetdiskError::new(Kind::Other, e.to_string()))?;
    let Ok(status) = context.cache_status(cache) else {
        return Ok(None);
    };
    let now = ktbroker_kinit::unix_now();
    if status.tgt.is_none_or(|t| t.end <= now + MIN_TICKET_LIFE_SECS) {
        return Ok(None);
    }
    Ok(Some(Session {
        user: short_name(&status.principal).to_owned(),
        cache: status.cache,
        principal: status.principal,
    }))
}

/// The password from `--password-fd`, the terminal, or stdin; none at all means no login.
fn read_password(source: &PasswordSource, from_fd: bool, user: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let interactive = !from_fd && std::io::stdin().is_terminal();
    let password = source.read(&format!("Password for {user}: ")).map_err(login_error)?;
    if password.is_empty() {
        let how = if interactive {
            "no password was typed"
        } else {
            "no password on stdin"
        };
        return Err(NetdiskError::new(
            Kind::Auth,
            format!(
                "login required: no valid Kerberos ticket, and {how}; run ktbroker-kinit first, or pipe your \
                 directory password to netdisk (or pass --password-fd)"
            ),
        ));
    }
    Ok(password)
}

/// `alice/netdisk@REALM` → `alice`.
pub fn short_name(principal: &str) -> &str {
    let name = principal.rsplit_once('@').map_or(principal, |(name, _)| name);
    name.split('/').next().unwrap_or(name)
}

fn login_error(error: HelperError) -> NetdiskError {
    let kind = match error {
        HelperError::Config(_) => Kind::Usage,
        _ => Kind::Auth,
    };
    NetdiskError::new(
        kind,
        format!("login failed: [{}] {error} (hint: {})", error.code(), error.hint()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_drop_instance_and_realm() {
        assert_eq!(short_name("alice@KRBTEST.COM"), "alice");
        assert_eq!(short_name("alice/netdisk@KRBTEST.COM"), "alice");
        assert_eq!(short_name("bob"), "bob");
    }
}
