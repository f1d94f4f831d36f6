//! A broker refusal on the wire: the gRPC status (its code chosen here, once, for each refusal)
//! carrying a `ktbroker.v1.Refusal` inside the standard `google.rpc.Status` details envelope.
//! The status message is for people; [`code_of`] is what programs decide by.

use crate::google_rpc;
use crate::v1;
use ktbroker_codes::{PasswordProblem, PasswordRules, RefusalCode};
use prost::Message;

/// The `Any` type URL of `ktbroker.v1.Refusal`.
pub const TYPE_URL: &str = "type.googleapis.com/ktbroker.v1.Refusal";

/// The gRPC status code a refusal travels with (what generic gRPC tools and proxies see).
pub fn grpc_code(code: RefusalCode) -> tonic::Code {
    use RefusalCode::*;
    use tonic::Code;
    match code {
        AuthFailed => Code::Unauthenticated,
        InvalidUsername | UnknownTenant => Code::InvalidArgument,
        PrincipalNotAllowed | HostNotRegistered | NotAdmin | DeliveryNotAllowed => Code::PermissionDenied,
        NoPrincipal => Code::NotFound,
        NoUsableEnctype
        | CannotRotate
        | PasswordChangeRequired
        | NewPasswordRejected
        | PasswordChangeElsewhere
        | SsoNotOffered
        | PasswordLoginNotOffered => Code::FailedPrecondition,
        DirectoryUnavailable | KeysUnavailable | AuditUnavailable => Code::Unavailable,
        DeadlineExceeded => Code::DeadlineExceeded,
        Busy => Code::ResourceExhausted,
        _ => Code::Internal,
    }
}

/// The status the broker answers a refusal with: code, people's message, and the typed detail.
pub fn status(code: RefusalCode) -> tonic::Status {
    status_with(code, None)
}

/// [`status`], with the rules a new password broke (for NEW_PASSWORD_REJECTED).
pub fn status_with(code: RefusalCode, rules: Option<PasswordRules>) -> tonic::Status {
    let grpc = grpc_code(code);
    let rejection = rules.map(|r| v1::PasswordRejection {
        problem: r.problem as i32,
        min_length: r.min_length,
        complexity: r.complexity,
        history: r.history,
    });
    let envelope = google_rpc::Status {
        code: grpc as i32,
        message: code.message().to_owned(),
        details: vec![prost_types::Any {
            type_url: TYPE_URL.to_owned(),
            value: v1::Refusal {
                code: code.number(),
                rejection,
            }
            .encode_to_vec(),
        }],
    };
    tonic::Status::with_details(grpc, code.message(), envelope.encode_to_vec().into())
}

/// The refusal code a status carries, if it carries one (a transport failure, a proxy's answer or
/// a foreign server's carries none).
pub fn code_of(status: &tonic::Status) -> Option<RefusalCode> {
    refusal_of(status).and_then(|refusal| RefusalCode::from_number(refusal.code))
}

/// The rules a refused new password broke, if the status says.
pub fn rules_of(status: &tonic::Status) -> Option<PasswordRules> {
    let rejection = refusal_of(status)?.rejection?;
    Some(PasswordRules {
        problem: PasswordProblem::from_number(rejection.problem),
        min_length: rejection.min_length,
        complexity: rejection.complexity,
        history: rejection.history,
    })
}

fn refusal_of(status: &tonic::Status) -> Option<v1::Refusal> {
    let envelope = google_rpc::Status::decode(status.details()).ok()?;
    envelope
        .details
        .iter()
        .filter(|any| any.type_url == TYPE_URL)
        .find_map(|any| v1::Refusal::decode(any.value.as_slice()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_the_wire_and_matches_the_proto_enum() {
        for code in RefusalCode::ALL {
            let status = status(code);
            assert_eq!(code_of(&status), Some(code));
            assert_eq!(status.code(), grpc_code(code));
            assert_eq!(status.message(), code.message());
            let wire = v1::RefusalCode::try_from(code.number()).expect("the proto enum has this number");
            assert_ne!(wire, v1::RefusalCode::Unspecified);
        }
        // And the other way: the proto enum has no value the Rust enum lacks.
        for number in 1..=1000 {
            if v1::RefusalCode::try_from(number).is_ok() {
                assert!(RefusalCode::from_number(number).is_some(), "{number}");
            }
        }
    }

    #[test]
    fn a_refused_new_password_carries_its_rules() {
        let rules = PasswordRules {
            problem: PasswordProblem::InHistory,
            min_length: 7,
            complexity: true,
            history: 24,
        };
        let status = status_with(RefusalCode::NewPasswordRejected, Some(rules));
        assert_eq!(code_of(&status), Some(RefusalCode::NewPasswordRejected));
        assert_eq!(rules_of(&status), Some(rules));
        assert_eq!(rules_of(&super::status(RefusalCode::AuthFailed)), None);
        assert_eq!(
            rules.describe(),
            "the new password was refused: it was used before (the rules: at least 7 characters; \
             three of: upper case, lower case, digits, symbols; none of the last 24 passwords)"
        );
    }

    #[test]
    fn only_the_broker_detail_counts() {
        assert_eq!(
            code_of(&tonic::Status::unauthenticated("KTB-101 authentication failed")),
            None
        );
        let foreign = google_rpc::Status {
            code: tonic::Code::Unavailable as i32,
            message: String::new(),
            details: vec![prost_types::Any {
                type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                value: v1::Refusal {
                    code: 101,
                    rejection: None,
                }
                .encode_to_vec(),
            }],
        };
        let status = tonic::Status::with_details(tonic::Code::Unavailable, "", foreign.encode_to_vec().into());
        assert_eq!(code_of(&status), None);
        let garbage = tonic::Status::with_details(tonic::Code::Unavailable, "", vec![0xff, 0x01].into());
        assert_eq!(code_of(&garbage), None);
        let unknown = google_rpc::Status {
            code: 14,
            message: String::new(),
            details: vec![prost_types::Any {
                type_url: TYPE_URL.into(),
                value: v1::Refusal {
                    code: 777,
                    rejection: None,
                }
                .encode_to_vec(),
            }],
        };
        let status = tonic::Status::with_details(tonic::Code::Unavailable, "", unknown.encode_to_vec().into());
        assert_eq!(code_of(&status), None);
    }
}
