//! Prometheus metrics, served over plain HTTP on their own listener (`[metrics] listen`) so that
//! scraping never touches the TLS gRPC port. They carry counts and timings only, never a name.
//!
//! - `ktbroker_requests_total{tenant, outcome, code}`: attempts by result (outcome granted /
//!   refused / error; code the `KTB-NNN` refusal code the caller was sent, `none` for a grant).
//!   Nothing finer: the audit's reasons (unknown user, wrong password, locked, ...) would let a
//!   scraper tell them apart attempt by attempt. Tenant names come from the configuration only.
//! - `ktbroker_request_duration_seconds{outcome}`: whole requests, failure floor included.
//! - `ktbroker_directory_duration_seconds`, `ktbroker_key_source_duration_seconds`: the two parts.
//! - `ktbroker_audit_write_failures_total`: audit records that could not be written (full disk).
//! - `ktbroker_connections_open`: TLS connections open now (accepted, within the caps).
//! - `ktbroker_connections_refused_total{cap}`: connections closed at accept because a cap was
//!   reached (`max_connections` or `max_connections_per_source`).
//! - `ktbroker_connections_closed_total{reason}`: connections the broker closed: `no_preface`,
//!   `idle`, `handshake_failed`, `handshake_timeout`. Connections that end normally are not counted.
//! - `ktbroker_accept_failures_total`: failed accepts (EMFILE: out of descriptors).
//!
//! Without an installed exporter every call here is a no-op (unit tests, metrics disabled).

use crate::audit::Outcome;
use ktbroker_codes::RefusalCode;
use metrics_exporter_prometheus::PrometheusBuilder;
use std::net::SocketAddr;
use std::time::Duration;

/// Seconds: from a fast cached login to a slow directory.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Starts the exporter's HTTP listener on the current tokio runtime.
pub fn install(listen: SocketAddr) -> anyhow::Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets(BUCKETS)?
        .install()?;
    tracing::info!(%listen, "metrics listening (HTTP, /metrics)");
    Ok(())
}

pub fn attempt(tenant: &str, outcome: Outcome, code: Option<RefusalCode>, latency: Duration) {
    metrics::counter!("ktbroker_requests_total", "tenant" => tenant.to_owned(), "outcome" => outcome.class().as_str(),
        "code" => code.map_or("none", RefusalCode::tag))
    .increment(1);
    metrics::histogram!("ktbroker_request_duration_seconds", "outcome" => outcome.class().as_str())
        .record(latency.as_secs_f64());
}

/// A granted login, by what it was given (`keytab` or `ticket`).
pub fn delivered(tenant: &str, delivery: &'static str) {
    metrics::counter!("ktbroker_deliveries_total", "tenant" => tenant.to_owned(), "delivery" => delivery).increment(1);
}

/// An audit record could not be written (a full disk): grants are refused meanwhile.
pub fn audit_write_failed() {
    metrics::counter!("ktbroker_audit_write_failures_total").increment(1);
}

pub fn directory_time(elapsed: Duration) {
    metrics::histogram!("ktbroker_directory_duration_seconds").record(elapsed.as_secs_f64());
}

pub fn key_source_time(elapsed: Duration) {
    metrics::histogram!("ktbroker_key_source_duration_seconds").record(elapsed.as_secs_f64());
}

pub fn connections_open(open: usize) {
    metrics::gauge!("ktbroker_connections_open").set(open as f64);
}

pub fn connection_refused(cap: crate::connections::CapReached) {
    metrics::counter!("ktbroker_connections_refused_total", "cap" => cap.as_str()).increment(1);
}

pub fn connection_closed(reason: &'static str) {
    metrics::counter!("ktbroker_connections_closed_total", "reason" => reason).increment(1);
}

pub fn accept_failed() {
    metrics::counter!("ktbroker_accept_failures_total").increment(1);
}
