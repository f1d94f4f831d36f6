//! `LoginWithProvider`: sign-in at the tenant's identity provider (the device authorization
//! grant). The broker asks the provider for a device code, streams the prompt to the caller at
//! once, then waits for the person on a task of its own, which ends when they sign in, refuse, the
//! wait runs out, or the caller hangs up (the stream's receiver is dropped: the task stops polling
//! the provider and audits the attempt as cancelled). The delivery that follows is FetchKeytab's.
//!
//! A waiting login holds no request permit (a person may take minutes): the identity source
//! bounds how many wait at once, and the request timeout bounds the work once they signed in.

use super::{
    AuditOnce, BrokerService, Caller, Grant, KeytabStream, Refusal, answer, delivery_not_allowed, exchange, keys_for,
    refusal_of, refuse,
};
use crate::audit::Outcome;
use crate::delivery::Wanted;
use crate::directory::Directory;
use crate::hosts::host_allowed;
use crate::keysource::KeySource;
use ktbroker_codes::RefusalCode;
use ktbroker_proto::v1::{DevicePrompt, FetchKeytabResponse, ProviderLoginRequest, fetch_keytab_response::Part};
use tokio::time::Instant;
use tonic::{Response, Status};
use tracing::Instrument;

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
            Ok(tenant)
        })();
        let tenant = match admitted {
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
                drop(login); // the device code, and the waiting slot
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
