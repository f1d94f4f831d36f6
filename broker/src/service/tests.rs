//! The service behind its traits: a fake directory and key source, tokio's paused clock (no real
//! sleeps), and the real stream framing.

use super::*;
use crate::audit::Auditor;
use crate::directory::VerifiedUser;
use crate::limits::LimitPolicy;
use crate::policy::Username;
use ktbroker_keytab::{Entry, Key, Principal};
use std::sync::Mutex;
use tokio_stream::StreamExt;

/// Accepts alice/right-pw; fails every other way the directory can; records what reached it.
#[derive(Default)]
struct FakeDirectory {
    seen: Mutex<Vec<String>>,
}

impl Directory for FakeDirectory {
    async fn verify(&self, user: &Username, password: &str) -> Result<VerifiedUser, AuthError> {
        self.seen.lock().unwrap().push(user.to_string());
        match (user.as_str(), password) {
            (_, p) if p.trim().is_empty() => Err(AuthError::EmptyPassword),
            ("alice" | "nokeys" | "big" | "legacy", "right-pw") => Ok(VerifiedUser {
                dn: format!("uid={user}"),
            }),
            ("alice", _) => Err(AuthError::InvalidCredentials),
            ("carol", _) => Err(AuthError::NotInGroup),
            ("down", _) => Err(AuthError::Unavailable("connection refused".into())),
            _ => Err(AuthError::UnknownUser),
        }
    }
}

/// Serves one key per enctype for most principals; `nokeys` has no principal; `big` has enough
/// keys to need several chunks.
struct FakeKeys;

impl KeySource for FakeKeys {
    async fn fetch(&self, principal: &str) -> Result<Keytab, KeySourceError> {
        let (user, realm) = principal.split_once('@').unwrap();
        let count = match user {
            "nokeys" => return Err(KeySourceError::NoSuchPrincipal(principal.into())),
            "big" => 400,
            "legacy" => 3,
            _ => 2,
        };
        let entries = (0..count)
            .map(|n| Entry {
                principal: Principal::new(vec![user.into()], realm),
                timestamp: 1_700_000_000,
                kvno: 7,
                key: Key {
                    enctype: if n % 2 == 0 { 18 } else { 17 },
                    contents: Zeroizing::new(vec![n as u8; 32]),
                },
            })
            .collect();
        Ok(Keytab { entries })
    }
}

const DELAY: Duration = Duration::from_millis(400);

fn service() -> BrokerService<FakeDirectory, FakeKeys> {
    service_with_enctypes(crate::policy::default_enctypes())
}

fn service_with_enctypes(enctypes: Vec<u16>) -> BrokerService<FakeDirectory, FakeKeys> {
    let settings = ServiceSettings {
        realm: "EXAMPLE.COM".into(),
        failure_delay: DELAY,
        limits: LimitPolicy::default(),
        enctypes,
    };
    BrokerService::new(
        FakeDirectory::default(),
        FakeKeys,
        settings,
        Auditor::tracing_only("default"),
    )
}

fn request(user: &str, password: &str, principal: Option<&str>) -> Request<FetchKeytabRequest> {
    Request::new(FetchKeytabRequest {
        username: user.into(),
        password: password.as_bytes().to_vec(),
        principal: principal.map(Into::into),
    })
}

/// The status of a request that must be refused, as (code, message).
async fn refusal(
    service: &BrokerService<FakeDirectory, FakeKeys>,
    request: Request<FetchKeytabRequest>,
) -> (tonic::Code, &'static str) {
    let status = service
        .fetch_keytab(request)
        .await
        .err()
        .expect("the request should be refused");
    let message = [
        MSG_AUTH_FAILED,
        MSG_INVALID_USERNAME,
        MSG_PRINCIPAL_NOT_ALLOWED,
        MSG_NO_PRINCIPAL,
        MSG_DIRECTORY_UNAVAILABLE,
        MSG_KEYS_UNAVAILABLE,
        MSG_NO_USABLE_ENCTYPE,
    ]
    .into_iter()
    .find(|m| *m == status.message())
    .unwrap_or("<unexpected message>");
    (status.code(), message)
}

async fn collect(service: &BrokerService<FakeDirectory, FakeKeys>, user: &str) -> Vec<Part> {
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
    ] {
        let started = Instant::now();
        let status = service.fetch_keytab(request(user, password, None)).await.err().unwrap();
        assert_eq!(
            (status.code(), status.message()),
            (tonic::Code::Unauthenticated, MSG_AUTH_FAILED),
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
    }));
    assert_eq!(status.await.err().unwrap().code(), tonic::Code::Unauthenticated);
}

#[tokio::test(start_paused = true)]
async fn refusals_before_the_directory_do_not_reach_it() {
    let service = service();
    assert_eq!(
        refusal(&service, request("al*ce", "right-pw", None)).await,
        (tonic::Code::InvalidArgument, MSG_INVALID_USERNAME)
    );
    assert_eq!(
        refusal(&service, request("alice", "right-pw", Some("krbtgt/EXAMPLE.COM"))).await,
        (tonic::Code::PermissionDenied, MSG_PRINCIPAL_NOT_ALLOWED)
    );
    let status = service
        .fetch_keytab(request("alice", &"x".repeat(2000), None))
        .await
        .err()
        .unwrap();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(
        service.directory.seen.lock().unwrap().is_empty(),
        "nothing above may reach the directory"
    );
}

#[tokio::test(start_paused = true)]
async fn unavailable_and_missing_principal_are_distinct_from_auth_failure() {
    let service = service();
    assert_eq!(
        refusal(&service, request("down", "pw", None)).await,
        (tonic::Code::Unavailable, MSG_DIRECTORY_UNAVAILABLE)
    );
    assert_eq!(
        refusal(&service, request("nokeys", "right-pw", None)).await,
        (tonic::Code::NotFound, MSG_NO_PRINCIPAL)
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
    let reached = service.directory.seen.lock().unwrap().len();
    let started = Instant::now();
    assert_eq!(
        refusal(&service, request("alice", "right-pw", None)).await,
        (tonic::Code::Unauthenticated, MSG_AUTH_FAILED)
    );
    assert_eq!(started.elapsed(), DELAY, "a locked attempt keeps the failure floor");
    assert_eq!(
        service.directory.seen.lock().unwrap().len(),
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
        (tonic::Code::FailedPrecondition, MSG_NO_USABLE_ENCTYPE)
    );
}
