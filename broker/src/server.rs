//! Assembles the daemon: TLS-only gRPC server with the broker service and `grpc.health.v1`.

use crate::audit::Auditor;
use crate::config::Config;
use crate::config::KeySourceKind;
use crate::directory::LdapDirectory;
use crate::keysource::{ConfiguredKeySource, Kadm5KeySource, KadminCliKeySource};
use crate::service::{BrokerService, ServiceSettings};
use crate::tls::{self, ReloadableCert};
use anyhow::Context;
use ktbroker_proto::v1::keytab_broker_server::KeytabBrokerServer;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Server;

/// Largest request accepted: a username, a password of at most 1 KiB and a principal.
const MAX_REQUEST_SIZE: usize = 8 * 1024;

/// Runs the broker until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let cert = Arc::new(ReloadableCert::load(&config.tls_cert, &config.tls_key)?);
    let tls_config = Arc::new(tls::server_config(cert.clone()));

    let directory = LdapDirectory::new(config.directory.clone()).context("setting up the directory client")?;
    let k = &config.kerberos;
    let keys = match k.key_source {
        KeySourceKind::Kadmin => {
            let source = Kadm5KeySource::new(k.admin_principal.clone(), k.admin_keytab.clone(), k.timeout);
            source.warm_up().await;
            ConfiguredKeySource::Kadm5(source)
        }
        KeySourceKind::KadminCli => ConfiguredKeySource::KadminCli(KadminCliKeySource {
            kadmin_path: k.kadmin_path.clone(),
            admin_principal: k.admin_principal.clone(),
            admin_keytab: k.admin_keytab.clone(),
            krb5_config: k.krb5_config.clone(),
            timeout: k.timeout,
        }),
    };
    let auditor = match &config.audit_file {
        Some(path) => {
            Auditor::with_file("default", path).with_context(|| format!("opening audit file {}", path.display()))?
        }
        None => Auditor::tracing_only("default"),
    };
    let settings = ServiceSettings {
        realm: k.realm.clone(),
        failure_delay: config.failure_delay,
        limits: config.limits,
        enctypes: config.enctypes.clone(),
    };
    let service = BrokerService::new(directory, keys, settings, auditor);
    let broker = KeytabBrokerServer::new(service).max_decoding_message_size(MAX_REQUEST_SIZE);

    if let Some(listen) = config.metrics_listen {
        crate::metrics::install(listen).context("starting the metrics listener")?;
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<KeytabBrokerServer<BrokerService<LdapDirectory, ConfiguredKeySource>>>()
        .await;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    // Registered before serving: SIGHUP's default action would otherwise end the process.
    let hangup =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("listening for SIGHUP")?;
    tokio::spawn(reload_certificate_on_sighup(hangup, cert));
    tracing::info!(listen = %config.listen, realm = %k.realm, "ktbrokerd listening (TLS)");
    Server::builder()
        .timeout(Duration::from_secs(60))
        .concurrency_limit_per_connection(16)
        .add_service(health_service)
        .add_service(broker)
        .serve_with_incoming_shutdown(tls::incoming(listener, tls_config), shutdown)
        .await
        .with_context(|| format!("serving on {}", config.listen))?;
    tracing::info!("ktbrokerd stopped");
    Ok(())
}

/// SIGHUP re-reads the TLS certificate and key; new handshakes use them, established connections
/// and in-flight requests are untouched. A certificate that does not load is refused and the old
/// one keeps serving.
async fn reload_certificate_on_sighup(mut hangup: tokio::signal::unix::Signal, cert: Arc<ReloadableCert>) {
    while hangup.recv().await.is_some() {
        match cert.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
            Err(e) => tracing::error!(error = %e, "SIGHUP: new TLS certificate refused; the old one keeps serving"),
        }
    }
}
