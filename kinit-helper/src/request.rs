//! From command-line options and client.toml to a [`LoginRequest`]. ktbroker-kinit and netdisk
//! both log in through here, so a login means the same thing in every tool.

use crate::config::{ClientConfig, expand_ccache};
use crate::fetch::{BrokerEndpoint, ClientIdentity, Who};
use crate::ticket::KerberosTarget;
use crate::{DEFAULT_TIMEOUT, HelperError, LoginOutcome, LoginRequest};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a command line may say about a login; each set field overrides client.toml. These are
/// ktbroker-kinit's own arguments (clap reads them straight into this struct); netdisk sets the
/// few it offers.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LoginOptions {
    /// Directory user name (default: $USER).
    pub user: Option<String>,
    /// Broker URL, https://HOST:PORT; repeat to try several in order (default: client.toml's
    /// `brokers`, else DNS SRV records _ktbroker._tcp.DOMAIN).
    #[arg(long = "broker")]
    pub brokers: Vec<String>,
    /// PEM file with the CA that signed the brokers' certificates (the only CA trusted).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Name to expect in the broker's certificate when it differs from the URL's host.
    #[arg(long)]
    pub tls_server_name: Option<String>,
    /// The broker's tenant to log in to (default: client.toml's `tenant`, else the broker's default).
    #[arg(long)]
    pub tenant: Option<String>,
    /// This host's certificate (PEM), for brokers that accept only registered hosts (mTLS).
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert; must be readable by its owner only.
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Principal to expect (default: the one the broker maps the user to).
    #[arg(long)]
    pub principal: Option<String>,
    /// Seconds to wait for each broker and for the KDC (default: client.toml's, else 15).
    #[arg(long = "timeout")]
    pub timeout_secs: Option<u64>,
    /// What the broker sends: `ticket` (only a ticket; the key stays in the broker) or `keytab`
    /// (default: client.toml's `delivery`, else keytab).
    #[arg(long, value_enum)]
    pub delivery: Option<crate::fetch::Delivery>,
    /// Sign in at the tenant's identity provider (single sign-on, with its second factor) instead
    /// of typing the password here: open the address shown, enter the code, sign in there.
    #[arg(long)]
    pub sso: bool,
}

/// The ccache: `option` (-c), else client.toml's, else libkrb5's default (`None`).
pub fn chosen_ccache(option: Option<&str>, config: &ClientConfig) -> Option<String> {
    option
        .map(str::to_owned)
        .or_else(|| config.ccache.clone())
        .map(|name| expand_ccache(&name))
}

impl LoginOptions {
    /// The user to log in: the option, else $USER.
    pub fn user(&self) -> Result<String, HelperError> {
        match &self.user {
            Some(user) => Ok(user.clone()),
            None => std::env::var("USER").map_err(|_| HelperError::Config("no user given and $USER is not set".into())),
        }
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout_secs.map(|s| Duration::from_secs(s.max(1)))
    }

    /// Everything one login needs but the password; `ccache` is the -c option, if given.
    pub fn request(&self, config: &ClientConfig, ccache: Option<&str>) -> Result<LoginRequest, HelperError> {
        Ok(LoginRequest {
            endpoints: self.endpoints(config)?,
            who: Who {
                username: self.user()?,
                principal: self.principal.clone(),
                tenant: self.tenant.clone().or_else(|| config.tenant.clone()),
                delivery: self.delivery.or(config.delivery).unwrap_or_default(),
                sso: self.sso,
            },
            kerberos: KerberosTarget {
                ccache: chosen_ccache(ccache, config),
                timeout: self.timeout().or(config.kdc_timeout).unwrap_or(DEFAULT_TIMEOUT),
                lifetimes: config.lifetimes,
            },
        })
    }

    /// The brokers to try, in order, with the CA, host identity and timeout.
    pub fn endpoints(&self, config: &ClientConfig) -> Result<Vec<BrokerEndpoint>, HelperError> {
        let broker_timeout = self.timeout().or(config.broker_timeout).unwrap_or(DEFAULT_TIMEOUT);
        let ca_file = self
            .ca_file
            .clone()
            .or_else(|| config.ca_file.clone())
            .ok_or_else(|| HelperError::Config("no CA file (--ca-file or `ca_file` in client.toml)".into()))?;
        let ca_pem = std::fs::read(&ca_file)
            .map_err(|e| HelperError::Config(format!("cannot read CA file {}: {e}", ca_file.display())))?;
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(client_identity(cert, key)?),
            _ => match (&config.client_cert, &config.client_key) {
                (Some(cert), Some(key)) => Some(client_identity(cert, key)?),
                _ => None,
            },
        };
        let urls = if self.brokers.is_empty() {
            config.brokers.clone()
        } else {
            self.brokers.clone()
        };
        let urls = if urls.is_empty() {
            discover(config, broker_timeout)?
        } else {
            urls
        };
        Ok(urls
            .into_iter()
            .map(|url| BrokerEndpoint {
                url,
                ca_pem: ca_pem.clone(),
                tls_server_name: self.tls_server_name.clone().or_else(|| config.tls_server_name.clone()),
                client_identity: identity.clone(),
                timeout: broker_timeout,
            })
            .collect())
    }
}

/// Logs in on a runtime of its own, with core dumps off first (the keytab passes through memory).
pub fn login_blocking(request: &LoginRequest, password: &[u8]) -> Result<LoginOutcome, HelperError> {
    login_blocking_with(request, crate::fetch::Credentials::password(password))
}

/// [`login_blocking`], with a new directory password when the old one must change.
pub fn login_blocking_with(
    request: &LoginRequest,
    credentials: crate::fetch::Credentials<'_>,
) -> Result<LoginOutcome, HelperError> {
    ktbroker_harden::forbid_core_dumps().map_err(|e| HelperError::Internal(format!("disabling core dumps: {e}")))?;
    run_async(crate::login_with(request, credentials))
}

/// [`login_blocking`]; when the directory wants the password changed, [`change_and_login`]
/// (at once with `change_now`: the caller knows it does).
pub fn login_changing_if_asked(
    request: &LoginRequest,
    password: &[u8],
    source: &crate::password::PasswordSource,
    quiet: bool,
    change_now: bool,
) -> Result<LoginOutcome, HelperError> {
    if change_now {
        return change_and_login(request, password, source, quiet);
    }
    match login_blocking(request, password) {
        Err(HelperError::Refused(ktbroker_codes::RefusalCode::PasswordChangeRequired)) => {
            change_and_login(request, password, source, quiet)
        }
        other => other,
    }
}

/// The directory wants the password changed: the new one twice (the terminal, else the next two
/// lines of the password's input), then the login with it. On a terminal a new password the
/// directory refuses may be chosen again, up to three tries.
pub fn change_and_login(
    request: &LoginRequest,
    password: &[u8],
    source: &crate::password::PasswordSource,
    quiet: bool,
) -> Result<LoginOutcome, HelperError> {
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if !quiet {
        eprintln!("ktbroker-kinit: your directory password has expired or was reset; choose a new one");
    }
    let mut tries = 0;
    loop {
        tries += 1;
        let new = source.read("New password: ")?;
        // No new password to give (stdin held only the old one): the refusal stands as it was.
        if new.is_empty() {
            return Err(HelperError::Refused(
                ktbroker_codes::RefusalCode::PasswordChangeRequired,
            ));
        }
        let again = source.read("New password (again): ")?;
        let outcome = if new != again {
            Err(HelperError::Password(
                "the two new passwords differ (nothing was changed)".into(),
            ))
        } else {
            let credentials = crate::fetch::Credentials {
                password,
                new_password: Some(&new),
            };
            login_blocking_with(request, credentials)
        };
        match outcome {
            Err(e @ (HelperError::NewPasswordRejected(_) | HelperError::Password(_))) if interactive && tries < 3 => {
                eprintln!("ktbroker-kinit: {e}");
            }
            Ok(outcome) => {
                if !quiet {
                    eprintln!("ktbroker-kinit: the directory password was changed");
                }
                return Ok(outcome);
            }
            other => return other,
        }
    }
}

/// A single-threaded async runtime for one command's network work.
pub fn runtime() -> Result<tokio::runtime::Runtime, HelperError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HelperError::Internal(format!("async runtime: {e}")))
}

/// Runs `work` to its end on a fresh [`runtime`], then leaves without waiting for blocking
/// tasks: a KDC exchange abandoned at its deadline (libkrb5 cannot be interrupted) would
/// otherwise hold up the exit until libkrb5 gives up by itself, long past the deadline.
pub fn run_async<T>(work: impl std::future::Future<Output = Result<T, HelperError>>) -> Result<T, HelperError> {
    let runtime = runtime()?;
    let result = runtime.block_on(work);
    runtime.shutdown_background();
    result
}

/// Brokers from DNS SRV records, when none are configured.
fn discover(config: &ClientConfig, timeout: Duration) -> Result<Vec<String>, HelperError> {
    let urls = run_async(crate::discovery::discover_brokers(
        config.srv_domain.as_deref(),
        config.dns_server,
        timeout,
    ))?;
    tracing::info!(?urls, "brokers from DNS SRV");
    Ok(urls)
}

/// The host certificate and key; the key file must be private.
fn client_identity(cert: &Path, key: &Path) -> Result<ClientIdentity, HelperError> {
    use std::os::unix::fs::PermissionsExt;
    let unreadable =
        |path: &Path, e: &dyn std::fmt::Display| HelperError::Config(format!("cannot read {}: {e}", path.display()));
    let cert_pem = std::fs::read(cert).map_err(|e| unreadable(cert, &e))?;
    let mode = std::fs::metadata(key)
        .map_err(|e| unreadable(key, &e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(HelperError::Config(format!(
            "{} is readable by group or others (chmod 600 it)",
            key.display()
        )));
    }
    let key_pem = zeroize::Zeroizing::new(std::fs::read(key).map_err(|e| unreadable(key, &e))?);
    Ok(ClientIdentity { cert_pem, key_pem })
}
