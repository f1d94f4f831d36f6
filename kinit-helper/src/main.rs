//! `ktbroker-kinit --broker https://broker:8443 --ca-file ca.pem [-c CCACHE] [USER]`

use clap::Parser;
use ktbroker_kinit::fetch::BrokerEndpoint;
use ktbroker_kinit::handoff::KerberosTarget;
use ktbroker_kinit::{HelperError, LoginRequest};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Get a Kerberos ticket with your directory password, through ktbrokerd.
///
/// The password is read from the terminal without echo, or from stdin when stdin is not a
/// terminal; never from the command line or the environment. The keytab the broker returns is
/// handed to kinit in memory and wiped; it never touches a disk.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Exit codes: 0 ticket obtained; 1 internal error; 2 usage error; 3 authentication failed; \
4 refused by policy; 5 broker unreachable or unavailable (includes TLS trust failures); \
6 invalid answer from the broker; 7 the KDC exchange failed or no valid ticket afterwards; 8 cannot read the password."
)]
struct Args {
    /// Directory user name (default: $USER).
    user: Option<String>,
    /// Broker URL, https://HOST:PORT.
    #[arg(long)]
    broker: String,
    /// PEM file with the CA that signed the broker's certificate (the only CA trusted).
    #[arg(long)]
    ca_file: PathBuf,
    /// Name to expect in the broker's certificate when it differs from the URL's host.
    #[arg(long)]
    tls_server_name: Option<String>,
    /// This host's certificate (PEM), for brokers that accept only registered hosts (mTLS).
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert; must be readable by its owner only.
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Credential cache for the ticket (default: KRB5CCNAME, else krb5.conf's default).
    #[arg(short = 'c', long)]
    ccache: Option<String>,
    /// Principal to expect (default: the one the broker maps the user to).
    #[arg(long)]
    principal: Option<String>,
    /// Seconds to wait for the broker and for each Kerberos tool.
    #[arg(long, default_value_t = 15)]
    timeout: u64,
    /// Print nothing on success.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(outcome) => {
            if !args.quiet {
                eprintln!(
                    "ktbroker-kinit: ticket for {} obtained (key version {})",
                    outcome.principal, outcome.kvno
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ktbroker-kinit: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The host certificate and key, when configured; the key file must be private.
fn client_identity(args: &Args) -> Result<Option<ktbroker_kinit::fetch::ClientIdentity>, HelperError> {
    use std::os::unix::fs::PermissionsExt;
    let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) else {
        return Ok(None);
    };
    let unreadable = |path: &std::path::Path, e: &dyn std::fmt::Display| {
        HelperError::Unreachable(format!("cannot read {}: {e}", path.display()))
    };
    let cert_pem = std::fs::read(cert).map_err(|e| unreadable(cert, &e))?;
    let mode = std::fs::metadata(key)
        .map_err(|e| unreadable(key, &e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(HelperError::Unreachable(format!(
            "{} is readable by group or others (chmod 600 it)",
            key.display()
        )));
    }
    let key_pem = zeroize::Zeroizing::new(std::fs::read(key).map_err(|e| unreadable(key, &e))?);
    Ok(Some(ktbroker_kinit::fetch::ClientIdentity { cert_pem, key_pem }))
}

fn run(args: &Args) -> Result<ktbroker_kinit::LoginOutcome, HelperError> {
    ktbroker_keytab::harden::forbid_core_dumps()
        .map_err(|e| HelperError::Internal(format!("disabling core dumps: {e}")))?;
    let user = match &args.user {
        Some(user) => user.clone(),
        None => {
            std::env::var("USER").map_err(|_| HelperError::Internal("no user given and $USER is not set".into()))?
        }
    };
    let ca_pem = std::fs::read(&args.ca_file)
        .map_err(|e| HelperError::Unreachable(format!("cannot read CA file {}: {e}", args.ca_file.display())))?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    let request = LoginRequest {
        endpoint: BrokerEndpoint {
            url: args.broker.clone(),
            ca_pem,
            tls_server_name: args.tls_server_name.clone(),
            client_identity: client_identity(args)?,
            timeout,
        },
        username: user.clone(),
        principal: args.principal.clone(),
        kerberos: KerberosTarget {
            ccache: args.ccache.clone(),
            timeout,
        },
    };
    let password = ktbroker_kinit::password::read_password(&format!("Password for {user}: "))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HelperError::Internal(format!("async runtime: {e}")))?;
    runtime.block_on(ktbroker_kinit::login(&request, &password))
}
