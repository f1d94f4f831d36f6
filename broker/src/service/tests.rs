//! The service behind its traits: a fake directory and key source, tokio's paused clock (no real
//! sleeps), and the real stream framing.

use super::*;
use crate::audit::{Auditor, verify_chain};
use crate::directory::{EntryPrincipal, VerifiedUser};
use crate::limits::LimitPolicy;
use crate::policy::{PrincipalPolicy, Username};
use ktbroker_keytab::{Entry, Key, Principal};
use ktbroker_proto::v1::fetch_keytab_response::Part;
use std::sync::Mutex;
use tokio_stream::StreamExt;

/// Accepts alice/right-pw (and a few more test names); fails every other way the directory can;
/// records what reached it. `slow` never answers.
#[derive(Default)]
struct FakeDirectory {
    seen: Mutex<Vec<String>>,
}

impl Directory for FakeDirectory {
    async fn verify(&self, user: &Username, password: &str) -> Result<VerifiedUser, AuthError> {
        self.seen.lock().unwrap().push(user.to_string());
        match (user.as_str(), password) {
            (_, p) if p.trim().is_empty() => Err(AuthError::EmptyPassword),
            ("slow", _) => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Err(AuthError::Unavailable("never".into()))
            }
            ("alice" | "nokeys" | "big" | "legacy" | "fresh", "right-pw") => Ok(VerifiedUser {
                dn: format!("uid={user}"),
                principal: EntryPrincipal::NotAsked,
                password_changed: false,
                in_keytab_group: false,
            }),
            ("alice", _) => Err(AuthError::InvalidCredentials),
            ("carol", _) => Err(AuthError::NotInGroup),
            ("locked", _) => Err(AuthError::AccountLocked),
            ("disabled", _) => Err(AuthError::AccountDisabled),
            ("expired-account", _) => Err(AuthError::AccountExpired),
            ("restricted", _) => Err(AuthError::LogonRestricted),
            ("must-change", "right-pw") => Err(AuthError::PasswordMustChange),
            ("expired", "right-pw") => Err(AuthError::PasswordExpired { changeable: false }),
            ("down", _) => Err(AuthError::Unavailable("connection refused".into())),
            _ => Err(AuthError::UnknownUser),
        }
    }

    /// must-change/right-pw may change to anything but "weak"; the new password then works.
    async fn change_password(&self, user: &Username, old: &str, new: &str) -> Result<VerifiedUser, AuthError> {
        self.seen.lock().unwrap().push(format!("{user} changing"));
        match (user.as_str(), old, new) {
            ("must-change", "right-pw", "weak") => Err(AuthError::NewPasswordRejected(ktbroker_codes::PasswordRules {
                problem: ktbroker_codes::PasswordProblem::TooShort,
                min_length: 8,
                ..Default::default()
            })),
            ("must-change", "right-pw", _) => Ok(VerifiedUser {
                dn: "uid=must-change".into(),
                principal: EntryPrincipal::NotAsked,
                password_changed: true,
                in_keytab_group: false,
            }),
            _ => self.verify(user, old).await,
        }
    }
}

/// The second tenant's directory knows only lab-user.
#[derive(Default)]
struct LabDirectory {
    seen: Mutex<Vec<String>>,
}

impl Directory for LabDirectory {
    async fn verify(&self, user: &Username, password: &str) -> Result<VerifiedUser, AuthError> {
        self.seen.lock().unwrap().push(user.to_string());
        match (user.as_str(), password) {
            ("lab-user", "lab-pw") => Ok(VerifiedUser {
                dn: "uid=lab-user".into(),
                principal: EntryPrincipal::NotAsked,
                password_changed: false,
                in_keytab_group: false,
            }),
            ("lab-user", _) => Err(AuthError::InvalidCredentials),
            _ => Err(AuthError::UnknownUser),
        }
    }

    async fn change_password(&self, user: &Username, old: &str, _new: &str) -> Result<VerifiedUser, AuthError> {
        self.verify(user, old).await
    }
}

/// The third tenant's directory names each user's principal in their entry (as AD's
/// userPrincipalName would): right for alice, unusable or not allowed for the others.
#[derive(Default)]
struct NamingDirectory {
    seen: Mutex<Vec<String>>,
}

impl Directory for NamingDirectory {
    async fn verify(&self, user: &Username, password: &str) -> Result<VerifiedUser, AuthError> {
        self.seen.lock().unwrap().push(user.to_string());
        let principal = match (user.as_str(), password) {
            ("alice", "right-pw") => EntryPrincipal::Found("alice.smith@ad.test".into()),
            ("kdc", "right-pw") => EntryPrincipal::Found("krbtgt/AD.TEST@AD.TEST".into()),
            ("foreign", "right-pw") => EntryPrincipal::Found("foreign@OTHER.TEST".into()),
            ("nameless", "right-pw") => EntryPrincipal::Unusable { values: 0 },
            _ => return Err(AuthError::InvalidCredentials),
        };
        Ok(VerifiedUser {
            dn: format!("CN={user}"),
            principal,
            password_changed: false,
            in_keytab_group: false,
        })
    }

    async fn change_password(&self, user: &Username, old: &str, _new: &str) -> Result<VerifiedUser, AuthError> {
        self.verify(user, old).await
    }

    fn names_principals(&self) -> bool {
        true
    }
}

/// Any tenant's directory, so one service type holds them all.
enum AnyDirectory {
    Corp(FakeDirectory),
    Lab(LabDirectory),
    Named(NamingDirectory),
}

impl AnyDirectory {
    fn seen(&self) -> Vec<String> {
        match self {
            Self::Corp(d) => d.seen.lock().unwrap().clone(),
            Self::Lab(d) => d.seen.lock().unwrap().clone(),
            Self::Named(d) => d.seen.lock().unwrap().clone(),
        }
    }
}

impl Directory for AnyDirectory {
    async fn verify(&self, user: &Username, password: &str) -> Result<VerifiedUser, AuthError> {
        match self {
            Self::Corp(d) => d.verify(user, password).await,
            Self::Lab(d) => d.verify(user, password).await,
            Self::Named(d) => d.verify(user, password).await,
        }
    }

    async fn change_password(&self, user: &Username, old: &str, new: &str) -> Result<VerifiedUser, AuthError> {
        match self {
            Self::Corp(d) => d.change_password(user, old, new).await,
            Self::Lab(d) => d.change_password(user, old, new).await,
            Self::Named(d) => d.change_password(user, old, new).await,
        }
    }

    fn names_principals(&self) -> bool {
        matches!(self, Self::Named(_))
    }
}

/// Serves one key per enctype for most principals; `nokeys` has no principal; `fresh` has none
/// until created; `big` has enough keys to need several chunks. Records what it was asked.
#[derive(Default)]
struct FakeKeys {
    fetched: Mutex<Vec<String>>,
    created: Mutex<Vec<String>>,
}

impl KeySource for FakeKeys {
    async fn fetch(&self, principal: &str) -> Result<Keytab, KeySourceError> {
        self.fetched.lock().unwrap().push(principal.to_owned());
        let (name, realm) = principal.split_once('@').unwrap();
        let user = name.split('/').next().unwrap();
        let count = match user {
            "nokeys" => return Err(KeySourceError::NoSuchPrincipal(principal.into())),
            "fresh" if !self.created.lock().unwrap().contains(&principal.to_owned()) => {
                return Err(KeySourceError::NoSuchPrincipal(principal.into()));
            }
            "big" => 400,
            "legacy" => 3,
            _ => 2,
        };
        let entries = (0..count)
            .map(|n| Entry {
                principal: Principal::new(name.split('/').map(str::to_owned).collect(), realm),
                timestamp: 1_700_000_000,
                kvno: 7,
                key: Key {
                    enctype: match n % 3 {
                        0 => 18,
                        1 => 17,
                        _ => 23,
                    },
                    contents: Zeroizing::new(vec![n as u8; 32]),
                },
            })
            .collect();
        Ok(Keytab { entries })
    }

    async fn create(&self, principal: &str) -> Result<(), KeySourceError> {
        self.created.lock().unwrap().push(principal.to_owned());
        Ok(())
    }

    async fn rotate(&self, _principal: &str) -> Result<u32, KeySourceError> {
        Ok(8)
    }
}

type Service = BrokerService<AnyDirectory, FakeKeys>;

const DELAY: Duration = Duration::from_millis(400);
const DEADLINE: Duration = Duration::from_secs(5);

fn corp_policy(enctypes: Vec<u16>) -> TenantPolicy {
    TenantPolicy {
        name: "corp".into(),
        principals: PrincipalPolicy::plain("EXAMPLE.COM"),
        enctypes,
        clients: Vec::new(),
        provision: false,
        deliveries: crate::delivery::Deliveries::default(),
        ticket: ktbroker_krb5::TicketRequest::default(),
    }
}

fn corp_policy_in(realm: &str) -> TenantPolicy {
    TenantPolicy {
        principals: PrincipalPolicy::plain(realm),
        ..corp_policy(crate::policy::default_enctypes())
    }
}

fn table(corp: TenantPolicy) -> TenantTable<AnyDirectory, FakeKeys> {
    let lab = TenantPolicy {
        name: "lab".into(),
        principals: PrincipalPolicy::new("LAB.TEST", "{user}/netdisk@{realm}", vec!["*/netdisk@LAB.TEST".into()])
            .unwrap(),
        enctypes: crate::policy::default_enctypes(),
        clients: Vec::new(),
        provision: true,
        ..corp_policy(crate::policy::default_enctypes())
    };
    let ad = TenantPolicy {
        name: "ad".into(),
        ..corp_policy_in("AD.TEST")
    };
    let tenant = |policy: TenantPolicy, directory| {
        Arc::new(Tenant {
            policy,
            directory: Arc::new(directory),
            keys: Arc::new(FakeKeys::default()),
        })
    };
    TenantTable {
        settings: ServiceSettings {
            failure_delay: DELAY,
            limits: LimitPolicy::default(),
            request_timeout: DEADLINE,
            default_tenant: Some("corp".into()),
            admin_identities: vec!["ops-admin".into()],
            trusted_sources: Vec::new(),
        },
        tenants: BTreeMap::from([
            (
                "corp".to_owned(),
                tenant(corp, AnyDirectory::Corp(FakeDirectory::default())),
            ),
            (
                "lab".to_owned(),
                tenant(lab, AnyDirectory::Lab(LabDirectory::default())),
            ),
            (
                "ad".to_owned(),
                tenant(ad, AnyDirectory::Named(NamingDirectory::default())),
            ),
        ]),
    }
}

fn service() -> Service {
    service_with_enctypes(crate::policy::default_enctypes())
}

/// The standard service, auditing to `audit.log` in the returned directory.
fn service_with_audit_file() -> (tempfile::TempDir, Service) {
    let dir = tempfile::tempdir().unwrap();
    let auditor = Auditor::with_file(&dir.path().join("audit.log")).unwrap();
    let service = BrokerService::new(table(corp_policy(crate::policy::default_enctypes())), auditor, 64);
    (dir, service)
}

fn service_with_enctypes(enctypes: Vec<u16>) -> Service {
    BrokerService::new(table(corp_policy(enctypes)), Auditor::tracing_only(), 64)
}

/// What reached a tenant's directory.
fn seen(service: &Service, tenant: &str) -> Vec<String> {
    service.current().tenants[tenant].directory.seen()
}

fn request(user: &str, password: &str, principal: Option<&str>) -> Request<FetchKeytabRequest> {
    Request::new(FetchKeytabRequest {
        username: user.into(),
        password: password.as_bytes().to_vec(),
        principal: principal.map(Into::into),
        tenant: None,
        new_password: None,
        delivery: 0,
    })
}

fn request_for(tenant: &str, user: &str, password: &str) -> Request<FetchKeytabRequest> {
    let mut request = request(user, password, None);
    request.get_mut().tenant = Some(tenant.into());
    request
}

/// The status of a request that must be refused, as (gRPC code, refusal code).
async fn refusal(service: &Service, request: Request<FetchKeytabRequest>) -> (tonic::Code, RefusalCode) {
    let status = service
        .fetch_keytab(request)
        .await
        .err()
        .expect("the request should be refused");
    typed(&status)
}

/// A refusal's gRPC code and the typed code it carries (which every refusal must carry).
fn typed(status: &Status) -> (tonic::Code, RefusalCode) {
    let code = ktbroker_proto::refusal::code_of(status).expect("a refusal carries its code");
    assert_eq!(status.message(), code.message(), "the message is the code's");
    (status.code(), code)
}

async fn collect(service: &Service, user: &str) -> Vec<Part> {
    let stream = service
        .fetch_keytab(request(user, "right-pw", None))
        .await
        .unwrap()
        .into_inner();
    stream.map(|m| m.unwrap().part.unwrap()).collect().await
}

#[tokio::test(start_paused = true)]
async fn every_authentication_failure_has_one_status_after_the_floor() {
    let service = service();
    for (user, password) in [
        ("alice", "wrong"),
        ("zed", "x"),
        ("carol", "right-pw"),
        ("alice", " "),
        ("alice", ""),
        ("locked", "right-pw"),
        ("disabled", "right-pw"),
        ("expired-account", "right-pw"),
        ("restricted", "right-pw"),
    ] {
        let started = Instant::now();
        let status = service.fetch_keytab(request(user, password, None)).await.err().unwrap();
        assert_eq!(
            typed(&status),
            (tonic::Code::Unauthenticated, RefusalCode::AuthFailed),
            "{user}"
        );
        assert_eq!(
            started.elapsed(),
            DELAY,
            "{user}: the paused clock advances exactly to the floor"
        );
    }
    let status = service
        .fetch_keytab(request("alice", &"x".repeat(MAX_PASSWORD_LEN + 1), None))
        .await
        .err()
        .unwrap();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let status = service.fetch_keytab(Request::new(FetchKeytabRequest {
        username: "alice".into(),
        password: vec![0xff, 0xfe],
        principal: None,
        tenant: None,
        new_password: None,
        delivery: 0,
    }));
    assert_eq!(status.await.err().unwrap().code(), tonic::Code::Unauthenticated);
}

#[tokio::test(start_paused = true)]
async fn refusals_before_the_directory_do_not_reach_it() {
    let service = service();
    assert_eq!(
        refusal(&service, request("al*ce", "right-pw", None)).await,
        (tonic::Code::InvalidArgument, RefusalCode::InvalidUsername)
    );
    assert_eq!(
        refusal(&service, request("alice", "right-pw", Some("krbtgt/EXAMPLE.COM"))).await,
        (tonic::Code::PermissionDenied, RefusalCode::PrincipalNotAllowed)
    );
    let status = service
        .fetch_keytab(request("alice", &"x".repeat(2000), None))
        .await
        .err()
        .unwrap();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(
        seen(&service, "corp").is_empty(),
        "nothing above may reach the directory"
    );
}

#[tokio::test(start_paused = true)]
async fn unavailable_and_missing_principal_are_distinct_from_auth_failure() {
    let service = service();
    assert_eq!(
        refusal(&service, request("down", "pw", None)).await,
        (tonic::Code::Unavailable, RefusalCode::DirectoryUnavailable)
    );
    assert_eq!(
        refusal(&service, request("nokeys", "right-pw", None)).await,
        (tonic::Code::NotFound, RefusalCode::NoPrincipal)
    );
}

#[tokio::test(start_paused = true)]
async fn stream_is_header_chunks_trailer_with_matching_size_and_digest() {
    let service = service();
    for user in ["alice", "big"] {
        let parts = collect(&service, user).await;
        let Some(Part::Header(header)) = parts.first() else {
            panic!("no header first")
        };
        let Some(Part::Trailer(trailer)) = parts.last() else {
            panic!("no trailer last")
        };
        let chunks: Vec<&Vec<u8>> = parts[1..parts.len() - 1]
            .iter()
            .map(|p| match p {
                Part::Chunk(c) => c,
                _ => panic!("only chunks between header and trailer"),
            })
            .collect();
        assert!(
            chunks
                .iter()
                .all(|c| !c.is_empty() && c.len() <= ktbroker_proto::CHUNK_SIZE)
        );
        let bytes: Vec<u8> = chunks.into_iter().flatten().copied().collect();
        assert_eq!(bytes.len() as u64, header.total_size);
        assert_eq!(
            ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref(),
            trailer.sha256.as_slice()
        );
        let keytab = Keytab::parse(&bytes).unwrap();
        assert_eq!(header.principal, format!("{user}@EXAMPLE.COM"));
        assert_eq!((header.kvno, header.enctypes.as_slice()), (7, [18, 17].as_slice()));
        assert!(
            keytab
                .entries
                .iter()
                .all(|e| e.principal.to_string() == header.principal)
        );
    }
    assert!(
        collect(&service, "big").await.len() > 3,
        "the big keytab needs several chunks"
    );
}

#[tokio::test(start_paused = true)]
async fn a_locked_user_gets_the_same_answer_without_reaching_the_directory() {
    let service = service();
    for _ in 0..LimitPolicy::default().max_failures {
        let status = service
            .fetch_keytab(request("alice", "wrong", None))
            .await
            .err()
            .unwrap();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
    let reached = seen(&service, "corp").len();
    let started = Instant::now();
    assert_eq!(
        refusal(&service, request("alice", "right-pw", None)).await,
        (tonic::Code::Unauthenticated, RefusalCode::AuthFailed)
    );
    assert_eq!(started.elapsed(), DELAY, "a locked attempt keeps the failure floor");
    assert_eq!(
        seen(&service, "corp").len(),
        reached,
        "a locked user must not reach the directory"
    );
    // After the lockout the right password works again.
    tokio::time::advance(LimitPolicy::default().lockout).await;
    assert!(service.fetch_keytab(request("alice", "right-pw", None)).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn keys_outside_the_enctype_allow_list_are_stripped_and_the_rest_ordered() {
    let parts = collect(&service(), "legacy").await;
    let Some(Part::Header(header)) = parts.first() else {
        panic!("no header")
    };
    assert_eq!(header.enctypes, [18, 17], "rc4 stripped, AES in preference order");

    let aes128_only = service_with_enctypes(vec![17]);
    let parts = collect(&aes128_only, "alice").await;
    let Some(Part::Header(header)) = parts.first() else {
        panic!("no header")
    };
    assert_eq!(header.enctypes, [17]);

    let camellia_only = service_with_enctypes(vec![25]);
    assert_eq!(
        refusal(&camellia_only, request("alice", "right-pw", None)).await,
        (tonic::Code::FailedPrecondition, RefusalCode::NoUsableEnctype)
    );
}

#[tokio::test(start_paused = true)]
async fn the_tenant_comes_from_the_field_or_the_username_suffix() {
    let service = service();
    for request in [
        request_for("lab", "lab-user", "lab-pw"),
        request("lab-user@lab", "lab-pw", None),
    ] {
        let parts: Vec<Part> = service
            .fetch_keytab(request)
            .await
            .unwrap()
            .into_inner()
            .map(|m| m.unwrap().part.unwrap())
            .collect()
            .await;
        let Some(Part::Header(header)) = parts.first() else {
            panic!("no header")
        };
        assert_eq!(
            header.principal, "lab-user/netdisk@LAB.TEST",
            "the lab tenant's template"
        );
    }
    let mut conflicting = request("lab-user@lab", "lab-pw", None);
    conflicting.get_mut().tenant = Some("corp".into());
    assert_eq!(
        refusal(&service, conflicting).await,
        (tonic::Code::InvalidArgument, RefusalCode::UnknownTenant)
    );
    assert_eq!(
        refusal(&service, request_for("nope", "alice", "right-pw")).await,
        (tonic::Code::InvalidArgument, RefusalCode::UnknownTenant)
    );
    assert!(
        seen(&service, "corp").is_empty(),
        "no lab request reached corp's directory"
    );
}

#[tokio::test(start_paused = true)]
async fn no_request_reaches_another_tenants_directory_or_keys() {
    let service = service();
    // alice exists only in corp's directory: through lab she is unknown, and lab's keys are untouched.
    assert_eq!(
        refusal(&service, request_for("lab", "alice", "right-pw")).await,
        (tonic::Code::Unauthenticated, RefusalCode::AuthFailed)
    );
    assert_eq!(seen(&service, "lab"), ["alice"]);
    assert!(seen(&service, "corp").is_empty());
    // A lab user cannot ask for a corp principal, nor a corp user for a lab one.
    let mut cross = request_for("lab", "lab-user", "lab-pw");
    cross.get_mut().principal = Some("lab-user@EXAMPLE.COM".into());
    assert_eq!(
        refusal(&service, cross).await,
        (tonic::Code::PermissionDenied, RefusalCode::PrincipalNotAllowed)
    );
    assert_eq!(
        refusal(&service, request("alice", "right-pw", Some("alice/netdisk@LAB.TEST"))).await,
        (tonic::Code::PermissionDenied, RefusalCode::PrincipalNotAllowed)
    );
    let current = service.current();
    assert!(current.tenants["lab"].keys.fetched.lock().unwrap().is_empty());
    assert!(current.tenants["corp"].keys.fetched.lock().unwrap().is_empty());
    // Failure counters are per tenant: locking corp's alice leaves lab's alice alone.
    for _ in 0..LimitPolicy::default().max_failures {
        let _ = service.fetch_keytab(request("alice", "wrong", None)).await;
    }
    let before = seen(&service, "lab").len();
    let _ = service.fetch_keytab(request_for("lab", "alice", "x")).await;
    assert_eq!(seen(&service, "lab").len(), before + 1, "lab's alice is not locked");
}

#[tokio::test(start_paused = true)]
async fn host_rules_refuse_unregistered_hosts_before_the_directory() {
    let mut corp = corp_policy(crate::policy::default_enctypes());
    corp.clients = vec![crate::hosts::ClientRule {
        cidr: Some(crate::hosts::Cidr::parse("10.0.0.0/8").unwrap()),
        cert: None,
    }];
    let service = BrokerService::new(table(corp), Auditor::tracing_only(), 64);
    // A unit-test request has no peer address, so it matches no rule.
    assert_eq!(
        refusal(&service, request("alice", "right-pw", None)).await,
        (tonic::Code::PermissionDenied, RefusalCode::HostNotRegistered)
    );
    assert!(seen(&service, "corp").is_empty());
    // The lab tenant has no rules: any host.
    assert!(
        service
            .fetch_keytab(request_for("lab", "lab-user", "lab-pw"))
            .await
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_past_its_deadline_is_abandoned_and_a_full_broker_refuses_at_once() {
    let service = service();
    let started = Instant::now();
    assert_eq!(
        refusal(&service, request("slow", "pw", None)).await,
        (tonic::Code::DeadlineExceeded, RefusalCode::DeadlineExceeded)
    );
    assert_eq!(started.elapsed(), DEADLINE);

    let full = BrokerService::new(
        table(corp_policy(crate::policy::default_enctypes())),
        Auditor::tracing_only(),
        0,
    );
    let started = Instant::now();
    assert_eq!(
        refusal(&full, request("alice", "right-pw", None)).await,
        (tonic::Code::ResourceExhausted, RefusalCode::Busy)
    );
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(seen(&full, "corp").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_missing_principal_is_created_only_where_provisioning_is_on() {
    let service = service();
    assert_eq!(
        refusal(&service, request("fresh", "right-pw", None)).await,
        (tonic::Code::NotFound, RefusalCode::NoPrincipal),
        "corp does not provision"
    );
    assert!(
        service.current().tenants["corp"]
            .keys
            .created
            .lock()
            .unwrap()
            .is_empty()
    );

    let mut lab_table = table(corp_policy(crate::policy::default_enctypes()));
    let lab = Arc::get_mut(lab_table.tenants.get_mut("lab").unwrap()).unwrap();
    lab.directory = Arc::new(AnyDirectory::Corp(FakeDirectory::default()));
    service.replace(lab_table);
    let parts = service
        .fetch_keytab(request_for("lab", "fresh", "right-pw"))
        .await
        .unwrap()
        .into_inner()
        .map(|m| m.unwrap().part.unwrap())
        .collect::<Vec<_>>()
        .await;
    assert!(matches!(parts.first(), Some(Part::Header(h)) if h.principal == "fresh/netdisk@LAB.TEST"));
    assert_eq!(
        *service.current().tenants["lab"].keys.created.lock().unwrap(),
        ["fresh/netdisk@LAB.TEST"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_replaced_table_serves_the_next_request_and_keeps_lockouts() {
    let service = service();
    for _ in 0..LimitPolicy::default().max_failures {
        let _ = service.fetch_keytab(request("alice", "wrong", None)).await;
    }
    let mut lab_default = table(corp_policy(crate::policy::default_enctypes()));
    lab_default.settings.default_tenant = Some("lab".into());
    service.replace(lab_default);
    assert!(
        service.fetch_keytab(request("lab-user", "lab-pw", None)).await.is_ok(),
        "the new default tenant answers"
    );
    assert_eq!(
        refusal(&service, request_for("corp", "alice", "right-pw")).await,
        (tonic::Code::Unauthenticated, RefusalCode::AuthFailed)
    );
    assert!(seen(&service, "corp").is_empty(), "the lockout survived the reload");
}

#[tokio::test(start_paused = true)]
async fn rotation_needs_an_admin_certificate() {
    let service = service();
    let status = service
        .rotate_key(Request::new(RotateKeyRequest {
            tenant: None,
            principal: "alice@EXAMPLE.COM".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(typed(&status), (tonic::Code::PermissionDenied, RefusalCode::NotAdmin));
}

#[tokio::test]
async fn server_info_tells_the_time_version_and_realm() {
    let service = service();
    let info = service
        .server_info(Request::new(ServerInfoRequest { tenant: None }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.realm, "EXAMPLE.COM", "the default tenant's");
    let unknown = service
        .server_info(Request::new(ServerInfoRequest {
            tenant: Some("no-such-tenant".into()),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unknown.realm, "");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((info.unix_time - now).abs() <= 5, "{}", info.unix_time);
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        info.deliveries,
        [
            ktbroker_proto::v1::Delivery::Keytab as i32,
            ktbroker_proto::v1::Delivery::Ticket as i32
        ],
        "both, by default"
    );
    assert!(unknown.deliveries.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_delivery_the_tenant_does_not_allow_is_refused_before_the_directory() {
    let ticket_only = TenantPolicy {
        deliveries: crate::delivery::Deliveries::parse(&["ticket".into()]).unwrap(),
        ..corp_policy(crate::policy::default_enctypes())
    };
    let (_dir, service) = service_with_audit_file();
    service.replace(table(ticket_only));
    // No delivery named is a keytab: what clients from before ticket delivery ask for.
    for delivery in [0, ktbroker_proto::v1::Delivery::Keytab as i32] {
        let mut asked = request("alice", "right-pw", None);
        asked.get_mut().delivery = delivery;
        assert_eq!(
            refusal(&service, asked).await,
            (tonic::Code::PermissionDenied, RefusalCode::DeliveryNotAllowed)
        );
    }
    assert!(seen(&service, "corp").is_empty(), "the password was never checked");
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_hangs_up_is_audited_once_with_what_was_decided() {
    let (dir, service) = service_with_audit_file();
    let path = dir.path().join("audit.log");
    // Hangs up during the failure delay: the verdict was reached, so its real reason is recorded.
    let early = tokio::time::timeout(DELAY / 2, service.fetch_keytab(request("alice", "wrong", None))).await;
    assert!(early.is_err(), "the caller gave up before the answer");
    // Hangs up while the directory has not answered: nothing was decided.
    let hung = tokio::time::timeout(DEADLINE / 2, service.fetch_keytab(request("slow", "x", None))).await;
    assert!(hung.is_err());
    // Waits for its answer: recorded once, not cancelled.
    assert!(service.fetch_keytab(request("zed", "x", None)).await.is_err());
    let records: Vec<(String, bool)> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                record["reason"].as_str().unwrap().to_owned(),
                record["cancelled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        records,
        [
            ("invalid_credentials".to_owned(), true),
            ("abandoned".to_owned(), true),
            ("unknown_user".to_owned(), false)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_rotation_is_audited_even_when_its_caller_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let hung_up = HangUpFlag::default();
    let task = RotationTask {
        keys: Arc::new(FakeKeys::default()),
        auditor: Arc::new(Auditor::with_file(&path).unwrap()),
        caller: Caller {
            request_id: 9,
            peer: None,
            host: ClientHost::default(),
        },
        tenant: "corp".into(),
        admin: "ops-admin".into(),
        principal: "alice@EXAMPLE.COM".into(),
        timeout: DEADLINE,
        started: Instant::now(),
        hung_up: hung_up.0.clone(),
    };
    drop(hung_up); // the handler went away: its caller hung up
    assert_eq!(task.run().await, Ok(8), "the rotation itself goes on");
    let record: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&path).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            &record["reason"],
            &record["cancelled"],
            &record["kvno"],
            &record["username"]
        ),
        (
            &serde_json::json!("rotated"),
            &serde_json::json!(true),
            &serde_json::json!(8),
            &serde_json::json!("ops-admin")
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_rotate_calls_without_an_admin_certificate_is_summarised_not_written_out() {
    let (dir, service) = service_with_audit_file();
    let path = dir.path().join("audit.log");
    let rotate = || {
        service.rotate_key(Request::new(RotateKeyRequest {
            tenant: None,
            principal: "alice@EXAMPLE.COM".into(),
        }))
    };
    for _ in 0..25 {
        assert_eq!(
            typed(&rotate().await.unwrap_err()).1,
            RefusalCode::NotAdmin,
            "every caller is refused"
        );
    }
    let reasons = |path: &std::path::Path| -> Vec<(String, u64)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let r: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    r["reason"].as_str().unwrap().to_owned(),
                    r["suppressed"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    assert_eq!(reasons(&path).len(), 10, "ten a minute are audited one by one");
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(rotate().await.is_err());
    let lines = reasons(&path);
    assert_eq!(lines.len(), 12);
    assert_eq!(
        lines[10],
        ("not_admin_suppressed".to_owned(), 15),
        "the rest in one line"
    );
    assert_eq!(lines[11], ("rotate_refused".to_owned(), 0));
    // A flood still counting when the broker stops is summarised at the stop.
    for _ in 0..12 {
        assert!(rotate().await.is_err());
    }
    assert_eq!(reasons(&path).len(), 21);
    service.finish();
    assert_eq!(reasons(&path)[21], ("not_admin_suppressed".to_owned(), 3));
    service.finish();
    assert_eq!(reasons(&path).len(), 22, "and only once");
    assert!(verify_chain(std::io::BufReader::new(std::fs::File::open(&path).unwrap())).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_principal_named_by_the_users_entry_is_served_only_inside_policy() {
    let service = service();
    let in_ad = |user: &str, principal: Option<&str>| {
        let mut request = request(user, "right-pw", principal);
        request.get_mut().tenant = Some("ad".into());
        request
    };
    // The UPN's lowercase suffix is the realm; the principal is spelt with the configured realm.
    let stream = service.fetch_keytab(in_ad("alice", None)).await.unwrap().into_inner();
    let parts: Vec<Part> = stream.map(|m| m.unwrap().part.unwrap()).collect().await;
    let Some(Part::Header(header)) = parts.first() else {
        panic!("the stream does not start with a header");
    };
    assert_eq!(header.principal, "alice.smith@AD.TEST");
    assert!(
        service
            .fetch_keytab(in_ad("alice", Some("alice.smith@AD.TEST")))
            .await
            .is_ok()
    );
    // The caller's choice is checked against the entry's, after the password.
    let not_allowed = (tonic::Code::PermissionDenied, RefusalCode::PrincipalNotAllowed);
    assert_eq!(
        refusal(&service, in_ad("alice", Some("alice@AD.TEST"))).await,
        not_allowed
    );
    for user in ["kdc", "foreign", "nameless"] {
        assert_eq!(refusal(&service, in_ad(user, None)).await, not_allowed, "{user}");
    }
    // A wrong password is still just that.
    let mut wrong = request("alice", "wrong", None);
    wrong.get_mut().tenant = Some("ad".into());
    assert_eq!(
        refusal(&service, wrong).await,
        (tonic::Code::Unauthenticated, RefusalCode::AuthFailed)
    );
}

#[tokio::test(start_paused = true)]
async fn a_password_that_must_change_is_changed_then_the_login_completes() {
    let (dir, service) = service_with_audit_file();
    let changing = |new: Option<&str>| {
        let mut request = request("must-change", "right-pw", None);
        request.get_mut().new_password = new.map(|n| n.as_bytes().to_vec());
        request
    };
    assert_eq!(
        refusal(&service, changing(None)).await,
        (tonic::Code::FailedPrecondition, RefusalCode::PasswordChangeRequired)
    );
    // The directory's refusal travels with its rules.
    let status = service.fetch_keytab(changing(Some("weak"))).await.err().unwrap();
    assert_eq!(typed(&status).1, RefusalCode::NewPasswordRejected);
    let rules = ktbroker_proto::refusal::rules_of(&status).unwrap();
    assert_eq!(
        (rules.problem, rules.min_length),
        (ktbroker_codes::PasswordProblem::TooShort, 8)
    );
    assert!(service.fetch_keytab(changing(Some("N3w-password!"))).await.is_ok());
    // An expired password the directory offers no way to change is told as such.
    assert_eq!(
        refusal(&service, request("expired", "right-pw", None)).await,
        (tonic::Code::FailedPrecondition, RefusalCode::PasswordChangeElsewhere)
    );
    let reasons: Vec<String> = std::fs::read_to_string(dir.path().join("audit.log"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "password_must_change",
            "new_password_rejected",
            "password_changed",
            "password_expired"
        ]
    );
}
