//! Assembles the daemon: TLS-only gRPC server with the broker service and `grpc.health.v1`.

use crate::audit::Auditor;
use crate::config::KeySourceKind;
use crate::config::{Config, read_private_file};
use crate::directory::LdapDirectory;
use crate::keysource::{ConfiguredKeySource, Kadm5KeySource, KadminCliKeySource};
use crate::service::{BrokerService, ServiceSettings};
use anyhow::Context;
use ktbroker_proto::v1::keytab_broker_server::KeytabBrokerServer;
use std::future::Future;
use std::time::Duration;
use tonic::transport::{Identity, Server, ServerTlsConfig};

/// Largest request accepted: a username, a password of at most 1 KiB and a principal.
const MAX_REQUEST_SIZE: usize = 8 * 1024;

/// Runs the broker until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let cert = std::fs::read(&config.tls_cert)
        .with_context(|| format!("reading TLS certificate {}", config.tls_cert.display()))?;
    let key = read_private_file(&config.tls_key, "server.tls_key")?;
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key.as_slice()));

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

    tracing::info!(listen = %config.listen, realm = %k.realm, "ktbrokerd listening (TLS)");
    Server::builder()
        .tls_config(tls)
        .context("TLS configuration")?
        .timeout(Duration::from_secs(60))
        .concurrency_limit_per_connection(16)
        .add_service(health_service)
        .add_service(broker)
        .serve_with_shutdown(config.listen, shutdown)
        .await
        .with_context(|| format!("serving on {}", config.listen))?;
    tracing::info!("ktbrokerd stopped");
    Ok(())
}
