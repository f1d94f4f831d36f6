//! Assembles the daemon: TLS-only gRPC server with the broker service and `grpc.health.v1`, and
//! SIGHUP handling: re-read the configuration and the certificate, swap them in if valid.

use crate::audit::Auditor;
use crate::config::IdentityConfig;
use crate::config::{Config, TenantConfig};
use crate::connections::{ConnectionLimits, OpenConnections, TrackActivityLayer};
use crate::identity::IdentitySource;
use crate::keysource::ConfiguredKeySource;
use crate::service::{BrokerService, ServiceSettings, Tenant, TenantTable};
use crate::systemd::Notifier;
use crate::tls::{self, ReloadableCert};
use anyhow::Context;
use ktbroker_proto::v1::keytab_broker_server::KeytabBrokerServer;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Server;

/// Largest request accepted: a username, a password of at most 1 KiB and a principal.
const MAX_REQUEST_SIZE: usize = 8 * 1024;

/// A connection is closed (GOAWAY, then at most the request deadline of grace) this long after it
/// opened: clients open one per login, so only a connection held open on purpose meets it.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// HTTP/2 PINGs on a quiet connection, and how long the answer may take before it is dropped.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// After SIGTERM, requests in flight get this long beyond their own deadline; then the broker
/// exits regardless (systemd's TimeoutStopSec is 45 s, the default request deadline 30 s).
const DRAIN_GRACE: Duration = Duration::from_secs(5);

type Service = BrokerService<IdentitySource, ConfiguredKeySource>;
type Table = TenantTable<IdentitySource, ConfiguredKeySource>;

/// Runs the broker until `shutdown` resolves, then lets in-flight requests finish. `config_path`
/// is re-read on SIGHUP.
/// `notifier` tells systemd when the broker is ready, reloading and stopping (see [`crate::systemd`]).
pub async fn serve(
    config: Config,
    config_path: PathBuf,
    shutdown: impl Future<Output = ()> + Send,
    notifier: Notifier,
) -> anyhow::Result<()> {
    let notifier = Arc::new(notifier);
    let cert = Arc::new(ReloadableCert::load(&config.tls_cert, &config.tls_key)?);
    let tls_config = Arc::new(tls::server_config(cert.clone(), config.client_ca.as_deref())?);

    let table = build_table(&config, None).await?;
    let audit_key = match &config.audit_key_file {
        Some(path) => Some(crate::config::read_private_file(path, "audit.key_file")?),
        None => None,
    };
    let auditor = match &config.audit_file {
        Some(path) => Auditor::with_keyed_file(path, audit_key.as_deref().map(Vec::as_slice))
            .with_context(|| format!("opening audit file {}", path.display()))?,
        None => Auditor::tracing_only(),
    };
    drop(audit_key);
    let service = Arc::new(BrokerService::new(table, auditor, config.max_concurrent_requests));
    let broker = KeytabBrokerServer::from_arc(service.clone()).max_decoding_message_size(MAX_REQUEST_SIZE);

    if let Some(listen) = config.metrics_listen {
        crate::metrics::install(listen).context("starting the metrics listener")?;
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<KeytabBrokerServer<Service>>().await;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    // Registered before serving: SIGHUP's default action would otherwise end the process.
    let hangup =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("listening for SIGHUP")?;
    let stopped_service = service.clone();
    let reloader = Reloader {
        path: config_path,
        running: config.clone(),
        service,
        cert,
        notifier: notifier.clone(),
    };
    tokio::spawn(reloader.run(hangup));
    let tenants: Vec<&String> = config.tenants.keys().collect();
    tracing::info!(listen = %config.listen, ?tenants, "ktbrokerd listening (TLS)");
    notifier.notify(&format!("READY=1\nSTATUS=listening on {} (TLS)", config.listen));
    if let Some(interval) = notifier.watchdog_interval() {
        // Proves the runtime still schedules work; a wedged runtime misses it and systemd restarts us.
        let pinger = notifier.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                pinger.notify("WATCHDOG=1");
            }
        });
    }
    let stopping = notifier.clone();
    let (stop_sender, stop_receiver) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        stopping.notify("STOPPING=1\nSTATUS=finishing requests in flight");
        let _ = stop_sender.send(true);
    };
    let drain = config.request_timeout + DRAIN_GRACE;
    let open = OpenConnections::new(connection_limits(&config));
    let serving = Server::builder()
        // The service enforces its own, configurable deadline; this is the transport's backstop.
        .timeout(config.request_timeout * 2)
        .concurrency_limit_per_connection(16)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_connection_age(CONNECTION_LIFETIME)
        .max_connection_age_grace(config.request_timeout)
        .layer(TrackActivityLayer)
        .add_service(health_service)
        .add_service(broker)
        .serve_with_incoming_shutdown(tls::incoming(listener, tls_config, open), shutdown);
    // Graceful shutdown waits for every connection; a bounded drain keeps a stop inside systemd's.
    let drained = async move {
        let mut stop = stop_receiver;
        let _ = stop.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        served = serving => served.with_context(|| format!("serving on {}", config.listen))?,
        () = drained => tracing::warn!(?drain, "drain deadline passed; exiting with connections still open"),
    }
    stopped_service.finish();
    tracing::info!("ktbrokerd stopped");
    Ok(())
}

/// The configured connection limits, the total lowered to fit the open-files limit if need be.
fn connection_limits(config: &Config) -> ConnectionLimits {
    let open_files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let configured = config.connections;
    match configured.within_open_files(open_files) {
        Some(lowered) => {
            tracing::warn!(
                open_files,
                configured = configured.max_total,
                max_connections = lowered.max_total,
                "server.max_connections lowered to fit the open files limit (raise LimitNOFILE=)"
            );
            lowered
        }
        None => configured,
    }
}

/// The tenants of `config`. A tenant whose directory and key settings did not change keeps its
/// clients from `previous` (and with them the open kadm5 session and LDAP connection).
async fn build_table(config: &Config, previous: Option<(&Config, &Table)>) -> anyhow::Result<Table> {
    let mut tenants = BTreeMap::new();
    for (name, tenant_config) in &config.tenants {
        let old = previous
            .and_then(|(old_config, old_table)| Some((old_config.tenants.get(name)?, old_table.tenants.get(name)?)));
        let tenant = build_tenant(tenant_config, old)
            .await
            .with_context(|| format!("tenant {name}"))?;
        tenants.insert(name.clone(), Arc::new(tenant));
    }
    Ok(TenantTable {
        settings: ServiceSettings {
            failure_delay: config.failure_delay,
            limits: config.limits,
            request_timeout: config.request_timeout,
            default_tenant: config.default_tenant.clone(),
            admin_identities: config.admin_identities.clone(),
            trusted_sources: config.trusted_sources.clone(),
        },
        tenants,
    })
}

async fn build_tenant(
    config: &TenantConfig,
    old: Option<(&TenantConfig, &Arc<Tenant<IdentitySource, ConfiguredKeySource>>)>,
) -> anyhow::Result<Tenant<IdentitySource, ConfiguredKeySource>> {
    // Servers from DNS are looked up again at each reload.
    let from_dns = config.directory().is_some_and(|d| d.discovery.is_some());
    let directory = match old {
        Some((old_config, old)) if old_config.identity == config.identity && !from_dns => old.directory.clone(),
        _ => {
            let mut identity = config.identity.clone();
            if let IdentityConfig::Directory(directory) | IdentityConfig::DirectoryAndProvider(directory, _) =
                &mut identity
            {
                crate::directory::discover(directory)
                    .await
                    .map_err(anyhow::Error::msg)
                    .context("finding the directory servers in DNS")?;
            }
            Arc::new(IdentitySource::new(identity)?)
        }
    };
    let keys = match old {
        Some((old_config, old)) if old_config.keys == config.keys && old_config.realm == config.realm => {
            old.keys.clone()
        }
        _ => {
            let keys = ConfiguredKeySource::from_config(&config.keys, &config.realm);
            keys.warm_up().await;
            Arc::new(keys)
        }
    };
    Ok(Tenant {
        policy: config.policy.clone(),
        directory,
        keys,
    })
}

/// Re-reads the configuration on SIGHUP. A configuration that does not load or validate is
/// refused as a whole and the running one keeps serving; requests in flight finish on the table
/// they started with. Settings bound at start (listen addresses, audit file, client CA,
/// concurrency limit, connection caps, krb5 profile) need a restart; a change to them is logged
/// and ignored.
struct Reloader {
    path: PathBuf,
    running: Config,
    service: Arc<Service>,
    cert: Arc<ReloadableCert>,
    notifier: Arc<Notifier>,
}

impl Reloader {
    async fn run(mut self, mut hangup: tokio::signal::unix::Signal) {
        while hangup.recv().await.is_some() {
            self.notifier.reloading();
            let outcome = self.reload().await;
            // Ready again either way: a refused configuration leaves the running one serving.
            self.notifier.notify("READY=1");
            match outcome {
                Ok(()) => {
                    tracing::info!(config = %self.path.display(), "SIGHUP: configuration and certificate reloaded")
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"),
                    "SIGHUP: new configuration refused; the running one keeps serving"),
            }
        }
    }

    async fn reload(&mut self) -> anyhow::Result<()> {
        let path = self.path.clone();
        let fresh = tokio::task::spawn_blocking(move || Config::load(&path)).await??;
        self.warn_restart_only(&fresh);
        let current = self.service.current();
        let table = build_table(&fresh, Some((&self.running, &current))).await?;
        self.cert
            .reload_from(&fresh.tls_cert, &fresh.tls_key)
            .context("loading the TLS certificate")?;
        self.service.replace(table);
        self.running = fresh;
        Ok(())
    }

    fn warn_restart_only(&self, fresh: &Config) {
        let old = &self.running;
        let changed = [
            ("server.listen", old.listen != fresh.listen),
            ("metrics.listen", old.metrics_listen != fresh.metrics_listen),
            ("audit.file", old.audit_file != fresh.audit_file),
            (
                "server.max_connections*, idle_timeout_secs",
                old.connections != fresh.connections,
            ),
            ("server.client_ca_file", old.client_ca != fresh.client_ca),
            (
                "server.max_concurrent_requests",
                old.max_concurrent_requests != fresh.max_concurrent_requests,
            ),
            ("kerberos.krb5_config", old.krb5_config != fresh.krb5_config),
        ];
        for (key, _) in changed.iter().filter(|(_, changed)| *changed) {
            tracing::warn!(
                key,
                "SIGHUP: this setting changed but takes effect only after a restart"
            );
        }
    }
}
