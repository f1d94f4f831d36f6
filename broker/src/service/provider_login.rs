//! `LoginWithProvider`: sign-in at the tenant's identity provider (the device authorization
//! grant). The broker asks the provider for a device code, streams the prompt to the caller at
//! once, then waits for the person on a task of its own, which ends when they sign in, refuse, the
//! wait runs out, or the caller hangs up (the stream's receiver is dropped: the task stops polling
//! the provider and audits the attempt as cancelled). The delivery that follows is FetchKeytab's.
//!
//! A waiting login holds no request permit (a person may take minutes): the identity source
//! bounds how many wait at once per tenant, [`WaitingSignIns`] how many per source address (a
//! client that starts sign-ins nobody finishes takes only its own share), and the request timeout
//! bounds the work once they signed in.

use super::{
    AuditOnce, BrokerService, Caller, Grant, KeytabStream, Refusal, answer, delivery_not_allowed, exchange, keys_for,
    refusal_of, refuse,
};
use crate::audit::Outcome;
use crate::delivery::Wanted;
use crate::directory::Directory;
use crate::hosts::{host_allowed, host_trusted};
use crate::keysource::KeySource;
use ktbroker_codes::RefusalCode;
use ktbroker_proto::v1::{DevicePrompt, FetchKeytabResponse, ProviderLoginRequest, fetch_keytab_response::Part};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use tonic::{Response, Status};
use tracing::Instrument;

/// Sign-ins one source address may have waiting at once (trusted login hosts: no limit here).
pub const MAX_WAITING_PER_SOURCE: usize = 16;

/// How many sign-ins wait, per source address.
#[derive(Default)]
pub struct WaitingSignIns {
    by_source: Mutex<HashMap<IpAddr, usize>>,
}

/// One waiting sign-in of a source; dropping it frees the place.
pub struct WaitingPlace {
    waiting: Arc<WaitingSignIns>,
    source: IpAddr,
}

impl WaitingSignIns {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.by_source.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for one more sign-in from `source`, unless it has its share waiting already.
    pub fn enter(self: &Arc<Self>, source: IpAddr) -> Option<WaitingPlace> {
        let mut counts = self.counts();
        let count = counts.entry(source).or_default();
        if *count >= MAX_WAITING_PER_SOURCE {
            return None;
        }
        *count += 1;
        Some(WaitingPlace {
            waiting: self.clone(),
            source,
        })
    }
}

impl Drop for WaitingPlace {
    fn drop(&mut self) {
        let mut counts = self.waiting.counts();
        if let Some(count) = counts.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

impl<D: Directory, K: KeySource> BrokerService<D, K> {
    pub(super) async fn handle_provider_login(
        &self,
        caller: Caller,
        message: ProviderLoginRequest,
    ) -> Result<Response<KeytabStream>, Status> {
        let started = Instant::now();
        let table = self.current();
        let tenant = table.tenant(message.tenant.as_deref()).cloned();
        let tenant_name = tenant.as_ref().map_or("-", |t| t.policy.name.as_str()).to_owned();
        let wanted = Wanted::of(message.delivery);
        // The person is known only once they signed in.
        let mut audit = AuditOnce::new(self.auditor.clone(), caller.clone(), &tenant_name, "-", started);
        audit.delivery = Some(wanted.label());
        // A sign-in is always at the tenant's identity provider.
        audit.identity = tenant.as_ref().map(|_| "oidc");
        let failure_delay = table.settings.failure_delay;
        let request_timeout = table.settings.request_timeout;

        let admitted = (|| {
            let tenant = tenant.ok_or_else(|| Refusal::new(Outcome::UnknownTenant, RefusalCode::UnknownTenant))?;
            if !host_allowed(&tenant.policy.clients, &caller.host) {
                return Err(Refusal::new(Outcome::HostNotAllowed, RefusalCode::HostNotRegistered));
            }
            if !tenant.directory.offers_device_login() {
                return Err(Refusal::new(Outcome::SsoNotOffered, RefusalCode::SsoNotOffered));
            }
            let by_group = wanted == Wanted::Keytab && tenant.directory.has_keytab_groups();
            if !tenant.policy.deliveries.allows(wanted) && !by_group {
                return Err(delivery_not_allowed());
            }
            // A trusted login host speaks for many people: its sign-ins are not counted as one.
            let counted = (!host_trusted(&table.settings.trusted_sources, &caller.host))
                .then_some(caller.host.address)
                .flatten();
            let place = match counted {
                Some(source) => Some(
                    self.waiting_sign_ins
                        .enter(source)
                        .ok_or_else(|| Refusal::new(Outcome::Busy, RefusalCode::Busy))?,
                ),
                None => None,
            };
            Ok((tenant, place))
        })();
        let (tenant, place) = match admitted {
            Ok(tenant) => tenant,
            Err(refusal) => return Err(refuse(&mut audit, refusal, started, failure_delay).await),
        };
        let login = match tenant.directory.start_device_login().await {
            Ok(login) => login,
            Err(e) => return Err(refuse(&mut audit, refusal_of(e), started, failure_delay).await),
        };
        tracing::info!(
            wait_secs = login.wait.as_secs(),
            "device login started; waiting for the person"
        );
        let prompt = FetchKeytabResponse {
            part: Some(Part::DevicePrompt(DevicePrompt {
                verification_uri: login.verification_uri.clone(),
                user_code: login.user_code.clone(),
                verification_uri_complete: login.verification_uri_complete.clone().unwrap_or_default(),
                expires_in_secs: u32::try_from(login.wait.as_secs()).unwrap_or(u32::MAX),
            })),
        };
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        // Room for it: the channel is new.
        let _ = sender.try_send(Ok(prompt));
        let requested = message.principal;
        let span = tracing::Span::current();
        tokio::spawn(
            async move {
                let signed_in = tenant.directory.finish_device_login(&login);
                let outcome = tokio::select! {
                    outcome = signed_in => outcome,
                    () = sender.closed() => {
                        // `audit` is dropped unwritten: recorded as cancelled, with what was decided.
                        tracing::info!("the caller hung up while the person was signing in; no more polling");
                        return;
                    }
                };
                drop(login); // the device code, and the tenant's waiting slot
                drop(place); // the source's
                let work = async {
                    let (user, verified) = outcome.map_err(refusal_of)?;
                    audit.username = user.as_str().to_owned();
                    let verified = verified.map_err(refusal_of)?;
                    let principal = tenant
                        .policy
                        .principals
                        .principal_for(&user, requested.as_deref())
                        .map_err(|_| Refusal::new(Outcome::PrincipalNotAllowed, RefusalCode::PrincipalNotAllowed))?;
                    if !tenant.policy.deliveries.allows(wanted) && !verified.in_keytab_group {
                        return Err(delivery_not_allowed());
                    }
                    let (principal, keytab, outcome) = keys_for(&tenant, principal, false).await?;
                    match wanted {
                        Wanted::Keytab => Ok(Grant::Keytab(principal, keytab, outcome)),
                        Wanted::Ticket => exchange(principal, keytab, outcome, tenant.policy.ticket).await,
                    }
                };
                let result = tokio::time::timeout(request_timeout, work)
                    .await
                    .unwrap_or_else(|_| Err(Refusal::new(Outcome::DeadlineExceeded, RefusalCode::DeadlineExceeded)));
                // The failure delay counts from the sign-in's end: the wait itself says nothing.
                match answer(&mut audit, result, Instant::now(), failure_delay).await {
                    Ok(parts) => {
                        for part in parts {
                            if sender.send(part).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(status) => {
                        let _ = sender.send(Err(status)).await;
                    }
                }
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
            receiver,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_has_its_share_of_waiting_sign_ins_and_gets_each_back_when_it_ends() {
        let waiting = Arc::new(WaitingSignIns::default());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut places: Vec<WaitingPlace> = (0..MAX_WAITING_PER_SOURCE)
            .map(|_| waiting.enter(a).expect("a place"))
            .collect();
        assert!(waiting.enter(a).is_none(), "one over the share");
        assert!(waiting.enter(b).is_some(), "another source is not affected");
        places.pop();
        assert!(waiting.enter(a).is_some(), "an ended sign-in frees its place");
        drop(places);
        assert!(waiting.counts().get(&a).is_none_or(|n| *n == 0));
    }
}
