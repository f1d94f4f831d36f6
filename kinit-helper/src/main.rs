//! `ktbroker-kinit [login] [USER]`, `status [--json]`, `logout`, `renew`: see `--help`.
#![forbid(unsafe_code)]

use clap::Parser;
use ktbroker_kinit::cli::{Cli, Command, CommonArgs, LoginArgs};
use ktbroker_kinit::config::{ClientConfig, DEFAULT_PATH, expand_ccache};
use ktbroker_kinit::request::{chosen_ccache, login_changing_if_asked, run_async, runtime};
use ktbroker_kinit::sessions::Targets;
use ktbroker_kinit::{HelperError, LoginOutcome, describe_time, unix_now};
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    ktbroker_krb5::use_environment_locale();
    let cli = Cli::parse();
    ktbroker_kinit::init_client_logging("KTBROKER_LOG", false);
    let common = cli.common;
    let result = match cli.command.unwrap_or(Command::Login(Box::new(cli.login))) {
        Command::Login(fields) => {
            let args = LoginArgs::new(common, *fields);
            login(&args).map(|outcome| {
                if !args.common.quiet {
                    match outcome.delivered {
                        ktbroker_kinit::fetch::Delivery::Keytab => eprintln!(
                            "ktbroker-kinit: ticket for {} obtained (key version {})",
                            outcome.principal, outcome.kvno
                        ),
                        ktbroker_kinit::fetch::Delivery::Ticket => eprintln!(
                            "ktbroker-kinit: ticket for {} obtained (delivered by the broker; no key on this host)",
                            outcome.principal
                        ),
                    }
                }
            })
        }
        Command::Status { json } => status(&common, json),
        Command::Logout => logout(&common),
        Command::Renew { keep_renewed } => {
            if keep_renewed {
                keep_renewed_loop(&common)
            } else {
                renew(&common)
            }
        }
        Command::Run {
            login,
            min_lifetime,
            command,
        } => run(&LoginArgs::new(common, *login), min_lifetime, &command),
        Command::Doctor { login } => doctor(&LoginArgs::new(common, *login)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ktbroker-kinit: [{}] {e}\n  hint: {}", e.code(), e.hint());
            ExitCode::from(e.exit_code())
        }
    }
}

/// The ccache to use: the option, else client.toml's, else libkrb5's default (`None`).
fn ccache(common: &CommonArgs, config: &ClientConfig) -> Option<String> {
    chosen_ccache(common.ccache.as_deref(), config)
}

fn load_config(common: &CommonArgs) -> Result<ClientConfig, HelperError> {
    let explicit = common.config != Path::new(DEFAULT_PATH);
    ClientConfig::load(&common.config, explicit)
}

fn login(args: &LoginArgs) -> Result<LoginOutcome, HelperError> {
    // Before the password is read: it is a secret too.
    ktbroker_harden::forbid_core_dumps().map_err(|e| HelperError::Internal(format!("disabling core dumps: {e}")))?;
    let config = load_config(&args.common)?;
    let request = args.login.request(&config, args.common.ccache.as_deref())?;
    if request.who.sso {
        // The person signs in at the identity provider: no password is read here.
        if args.new_password {
            return Err(HelperError::Config("--new-password does not go with --sso".into()));
        }
        return ktbroker_kinit::request::login_blocking(&request, b"");
    }
    let source = ktbroker_kinit::password::PasswordSource::new(args.password_fd)?;
    let password = source.read(&format!("Password for {}: ", request.who.username))?;
    let password = ktbroker_kinit::password::require_non_empty(password)?;
    login_changing_if_asked(&request, &password, &source, args.common.quiet, args.new_password)
}

fn krb5_context() -> Result<ktbroker_krb5::Context, HelperError> {
    ktbroker_kinit::krb5_context()
}

/// `status`: every target cache (see [`Targets`]); succeeds if one holds a valid ticket.
fn status(common: &CommonArgs, json: bool) -> Result<(), HelperError> {
    let config = load_config(common)?;
    let mut outcome = Err(HelperError::NoTicket("no credential cache".into()));
    for cache in Targets::choose(common.ccache.as_deref(), &config).names() {
        let shown = status_of(common, json, cache.as_deref());
        if outcome.is_err() {
            outcome = shown;
        }
    }
    outcome
}

fn status_of(common: &CommonArgs, json: bool, cache: Option<&str>) -> Result<(), HelperError> {
    let status = krb5_context()?
        .cache_status(cache)
        .map_err(|e| HelperError::NoTicket(e.to_string()))?;
    let valid = status.tgt.is_some_and(|t| t.end > unix_now());
    let delivery = krb5_context()?.cache_delivery(cache);
    if json {
        let value = serde_json::json!({
            "cache": status.cache,
            "principal": status.principal,
            "delivery": delivery,
            "valid": valid,
            "expires": status.tgt.map(|t| t.end),
            "renew_till": status.tgt.map(|t| t.renew_till).filter(|r| *r > 0),
        });
        println!("{value}");
    } else if !common.quiet {
        println!("cache:      {}", status.cache);
        println!("principal:  {}", status.principal);
        if let Some(delivery) = &delivery {
            println!("delivery:   {delivery}");
        }
        match status.tgt {
            Some(t) => {
                println!(
                    "expires:    {}{}",
                    describe_time(t.end),
                    if valid { "" } else { ", expired" }
                );
                if t.renew_till > 0 {
                    println!("renew till: {}", describe_time(t.renew_till));
                }
            }
            None => println!("no ticket-granting ticket"),
        }
    }
    if valid {
        Ok(())
    } else {
        Err(HelperError::NoTicket(
            "no valid ticket-granting ticket in the cache".into(),
        ))
    }
}

fn logout(common: &CommonArgs) -> Result<(), HelperError> {
    let config = load_config(common)?;
    let cache = ccache(common, &config);
    krb5_context()?
        .destroy_ccache(cache.as_deref())
        .map_err(|e| HelperError::NoTicket(e.to_string()))?;
    if !common.quiet {
        eprintln!("ktbroker-kinit: credential cache destroyed");
    }
    Ok(())
}

/// `renew`: every target cache (see [`Targets`]); succeeds if one was renewed.
fn renew(common: &CommonArgs) -> Result<(), HelperError> {
    let config = load_config(common)?;
    let mut outcome = Err(HelperError::NoTicket("no credential cache".into()));
    let targets = Targets::choose(common.ccache.as_deref(), &config);
    let several = matches!(targets, Targets::Sessions(_));
    for cache in targets.names() {
        match krb5_context()?.renew(cache.as_deref()) {
            Ok(times) => {
                if !common.quiet {
                    eprintln!(
                        "ktbroker-kinit: ticket{} renewed, now valid until {}",
                        cache
                            .as_deref()
                            .filter(|_| several)
                            .map(|c| format!(" in {c}"))
                            .unwrap_or_default(),
                        describe_time(times.end)
                    );
                }
                outcome = Ok(());
            }
            Err(e) if outcome.is_err() => outcome = Err(e.into()),
            Err(_) => {}
        }
    }
    outcome
}

/// The cache for `run`: -c or client.toml's if given, else KRB5CCNAME if it is a FILE cache, else
/// MIT's traditional `FILE:/tmp/krb5cc_UID` (what Java finds by default too).
fn run_ccache(common: &CommonArgs, config: &ClientConfig) -> String {
    if let Some(chosen) = ccache(common, config) {
        return chosen;
    }
    match std::env::var("KRB5CCNAME") {
        Ok(name) if name.starts_with("FILE:") => name,
        _ => expand_ccache("FILE:/tmp/krb5cc_{uid}"),
    }
}

fn run(args: &LoginArgs, min_lifetime: Option<Duration>, command: &[String]) -> Result<(), HelperError> {
    use std::os::unix::process::CommandExt;
    let config = load_config(&args.common)?;
    let cache = run_ccache(&args.common, &config);
    let user = args.login.user()?;
    let min_left = min_lifetime
        .or(config.min_lifetime)
        .unwrap_or(ktbroker_kinit::config::DEFAULT_MIN_LIFETIME);
    let status = krb5_context()?.cache_status(Some(&cache)).ok();
    let reusable = status.as_ref().is_some_and(|status| {
        ktbroker_kinit::ccache::principal_is_users(&status.principal, &user, args.login.principal.as_deref())
            && status
                .tgt
                .is_some_and(|t| t.end - unix_now() >= i64::try_from(min_left.as_secs()).unwrap_or(i64::MAX))
    });
    if !reusable {
        let mut login_args = args.clone();
        login_args.common.ccache = Some(cache.clone());
        login_args.common.quiet = true;
        login(&login_args)?;
    }
    let (program, rest) = command
        .split_first()
        .ok_or_else(|| HelperError::Config("run needs a command after --".into()))?;
    let error = std::process::Command::new(program)
        .args(rest)
        .env("KRB5CCNAME", &cache)
        .exec();
    Err(HelperError::Config(format!("cannot run {program}: {error}")))
}

/// `renew --keep-renewed`: a small daemon loop around [`ktbroker_krb5::Context::renew`], at
/// about half of each ticket's remaining lifetime, backing off while the KDC is away.
///
/// With one named cache (`-c`, client.toml, KRB5CCNAME) it ends when that ticket cannot be
/// renewed further (exit 0) or is gone (an error). Without one it serves the user's recorded
/// session caches (see [`Targets`]): sessions come and go, so it looks again at least every
/// minute and keeps running while none is renewable, until SIGTERM.
fn keep_renewed_loop(common: &CommonArgs) -> Result<(), HelperError> {
    let config = load_config(common)?;
    let kdc_timeout = config.kdc_timeout.unwrap_or(ktbroker_kinit::DEFAULT_TIMEOUT);
    run_async(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|e| HelperError::Internal(e.to_string()))?;
        // When each cache is next due, and the backoff of those whose renewal failed.
        let mut due: HashMap<Option<String>, tokio::time::Instant> = HashMap::new();
        let mut backoff: HashMap<Option<String>, Duration> = HashMap::new();
        loop {
            let targets = Targets::choose(common.ccache.as_deref(), &config);
            let following_sessions = matches!(targets, Targets::Sessions(_));
            let caches = targets.names();
            due.retain(|cache, _| caches.contains(cache));
            let now = unix_now();
            for cache in &caches {
                let tgt = krb5_context()?
                    .cache_status(cache.as_deref())
                    .ok()
                    .and_then(|status| status.tgt)
                    .filter(|t| t.end > now);
                match tgt {
                    Some(t) if t.renew_till > t.end => {
                        let half_life = Duration::from_secs(((t.end - now) / 2).max(1) as u64);
                        due.entry(cache.clone())
                            .or_insert_with(|| tokio::time::Instant::now() + half_life);
                    }
                    _ if following_sessions => {
                        due.remove(cache);
                    }
                    Some(_) => {
                        if !common.quiet {
                            eprintln!("ktbroker-kinit: the ticket cannot be renewed further (renew-till reached)");
                        }
                        return Ok(());
                    }
                    None => {
                        return Err(HelperError::NoTicket(
                            "no valid ticket left to renew; log in again".into(),
                        ));
                    }
                }
            }
            let next = due.values().min().copied();
            let wake = match (next, following_sessions) {
                (Some(at), true) => at.min(tokio::time::Instant::now() + SESSIONS_RESCAN),
                (Some(at), false) => at,
                (None, _) => tokio::time::Instant::now() + SESSIONS_RESCAN,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = term.recv() => return Ok(()),
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
            let ready: Vec<Option<String>> = due
                .iter()
                .filter(|(_, at)| **at <= tokio::time::Instant::now())
                .map(|(cache, _)| cache.clone())
                .collect();
            for cache in ready {
                let name = cache.clone();
                let renewal = tokio::task::spawn_blocking(move || {
                    krb5_context()?.renew(name.as_deref()).map_err(HelperError::from)
                });
                let which = cache
                    .as_deref()
                    .filter(|_| following_sessions)
                    .map(|c| format!(" in {c}"))
                    .unwrap_or_default();
                match tokio::time::timeout(kdc_timeout, renewal).await {
                    Ok(Ok(Ok(times))) => {
                        due.remove(&cache);
                        backoff.remove(&cache);
                        if !common.quiet {
                            eprintln!(
                                "ktbroker-kinit: ticket{which} renewed, now valid until {}",
                                describe_time(times.end)
                            );
                        }
                    }
                    outcome => {
                        let why = match outcome {
                            Ok(Ok(Err(e))) => e.to_string(),
                            Ok(Err(e)) => e.to_string(),
                            _ => format!("no answer within {kdc_timeout:?}"),
                        };
                        let wait = *backoff.entry(cache.clone()).or_insert(RENEW_BACKOFF_START);
                        eprintln!("ktbroker-kinit: renewal{which} failed ({why}); retrying in {wait:?}");
                        due.insert(cache.clone(), tokio::time::Instant::now() + wait);
                        backoff.insert(cache, (wait * 2).min(RENEW_BACKOFF_MAX));
                    }
                }
            }
        }
    })
}

/// How often the session caches are looked for again when following them.
const SESSIONS_RESCAN: Duration = Duration::from_secs(60);
const RENEW_BACKOFF_START: Duration = Duration::from_secs(5);
const RENEW_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Prints one line per check; returns the first failure.
fn doctor(args: &LoginArgs) -> Result<(), HelperError> {
    let mut first_failure: Option<HelperError> = None;
    let mut report = |name: &str, result: Result<String, HelperError>| match result {
        Ok(finding) => println!("ok    {name}: {finding}"),
        Err(e) => {
            println!("FAIL  {name}: [{}] {e}\n      hint: {}", e.code(), e.hint());
            first_failure.get_or_insert(e);
        }
    };
    let config = load_config(&args.common);
    report(
        "config",
        config
            .as_ref()
            .map(|_| format!("{}", args.common.config.display()))
            .map_err(|e| HelperError::Config(e.to_string())),
    );
    let config = config.unwrap_or_default();
    match args.login.endpoints(&config) {
        Err(e) => report("brokers", Err(e)),
        Ok(endpoints) => {
            let urls: Vec<&str> = endpoints.iter().map(|e| e.url.as_str()).collect();
            report(
                "brokers",
                Ok(format!("{} to try, in order: {}", urls.len(), urls.join(" "))),
            );
            let runtime = runtime()?;
            for endpoint in &endpoints {
                let checked = runtime.block_on(ktbroker_kinit::doctor::check_broker(endpoint));
                report(&format!("broker {}", endpoint.url), checked);
            }
            runtime.shutdown_background();
        }
    }
    let realm = args
        .login
        .principal
        .as_deref()
        .and_then(|p| p.rsplit_once('@'))
        .map(|(_, r)| r);
    report("kdc", ktbroker_kinit::doctor::check_kdc(realm));
    let cache = ccache(&args.common, &config);
    let cache_finding = match krb5_context()?.cache_status(cache.as_deref()) {
        Ok(status) => match status.tgt {
            Some(t) if t.end > unix_now() => format!(
                "{} holds a ticket for {} until {}",
                status.cache,
                status.principal,
                describe_time(t.end)
            ),
            _ => format!("{} holds no valid ticket (log in)", status.cache),
        },
        Err(_) => "no credential cache yet (log in)".into(),
    };
    report("ccache", Ok(cache_finding));
    match first_failure {
        None => Ok(()),
        Some(e) => Err(e),
    }
}
