//! `ktbroker-kinit doctor`: the checks behind it, each answering with a one-line finding or the
//! error (whose code and hint say what to do).

use crate::HelperError;
use crate::fetch::{BrokerEndpoint, connect};
use ktbroker_proto::v1::{ServerInfoRequest, keytab_broker_client::KeytabBrokerClient};

/// Beyond this difference from the broker's clock (which runs next to the KDC) Kerberos fails.
pub const MAX_SKEW_SECS: i64 = 300;

/// TLS trust, gRPC health, and the clock against the broker's, all within the broker timeout (a
/// frozen broker costs that, and no more).
pub async fn check_broker(endpoint: &BrokerEndpoint) -> Result<String, HelperError> {
    tokio::time::timeout(endpoint.timeout, check_broker_unbounded(endpoint))
        .await
        .unwrap_or_else(|_| Err(crate::fetch::timed_out(endpoint)))
}

async fn check_broker_unbounded(endpoint: &BrokerEndpoint) -> Result<String, HelperError> {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let channel = connect(endpoint).await?;
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest { service: String::new() })
        .await
        .map_err(|s| HelperError::Unavailable(format!("health check: {}", s.message())))?
        .into_inner();
    if health.status != ServingStatus::Serving as i32 {
        return Err(HelperError::Unavailable(format!(
            "health check says {:?}",
            ServingStatus::try_from(health.status).unwrap_or(ServingStatus::Unknown)
        )));
    }
    let info = KeytabBrokerClient::new(channel)
        .server_info(ServerInfoRequest { tenant: None })
        .await
        .map_err(|s| HelperError::Protocol(format!("server info: {}", s.message())))?
        .into_inner();
    let skew = clock_skew(info.unix_time, crate::unix_now())?;
    Ok(format!(
        "TLS trusted, serving, ktbrokerd {}, clock {skew:+} s from this host",
        info.version
    ))
}

/// The broker's clock minus ours, or an error when Kerberos would refuse the difference.
pub fn clock_skew(broker_time: i64, local_time: i64) -> Result<i64, HelperError> {
    let skew = broker_time - local_time;
    if skew.abs() > MAX_SKEW_SECS {
        return Err(HelperError::kerberos(
            ktbroker_krb5::FailureKind::ClockSkew,
            format!("this host's clock is {} s off the broker's", -skew),
        ));
    }
    Ok(skew)
}

/// Whether the realm's KDC answers (see [`ktbroker_krb5::Context::probe_kdc`]). `realm` `None`
/// is krb5.conf's default realm.
pub fn check_kdc(realm: Option<&str>) -> Result<String, HelperError> {
    let context = crate::krb5_context()?;
    let realm = match realm {
        Some(realm) => realm.to_owned(),
        None => context
            .default_realm()
            .map_err(|e| HelperError::Config(e.to_string()))?,
    };
    context.probe_kdc(&realm)?;
    Ok(format!("the KDC of {realm} answers"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_within_five_minutes_pass_and_others_are_skew() {
        assert_eq!(clock_skew(1000, 1000).unwrap(), 0);
        assert_eq!(clock_skew(1300, 1000).unwrap(), 300);
        let err = clock_skew(1000, 1400).unwrap_err();
        assert_eq!(err.code(), "clock-skew");
        assert!(err.to_string().contains("400 s off"), "{err}");
    }
}
