//! The ktbroker wire protocol, generated from `ktbroker/v1/broker.proto`.
//!
//! `FetchKeytabRequest` (password) and `FetchKeytabResponse` (keytab bytes) deliberately do not
//! implement `Debug`; a compile-time check below keeps it that way. Refusals travel as
//! [`refusal`] details of the gRPC status, never as text to be parsed.
#![forbid(unsafe_code)]

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("ktbroker.v1");
}

/// The shape of `google.rpc.Status`, the envelope of `grpc-status-details-bin`.
pub mod google_rpc {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("google.rpc");
}

pub mod codec;
pub mod refusal;

/// Size of the chunks the broker splits a keytab into.
pub const CHUNK_SIZE: usize = 16 * 1024;

/// Compile-time proof that the secret-carrying messages have no `Debug`: if either implemented
/// it, the two blanket impls below would overlap for that type and the crate would not compile.
#[allow(dead_code)]
mod secret_messages_have_no_debug {
    use super::v1::{FetchKeytabRequest, FetchKeytabResponse, fetch_keytab_response::Part};

    trait NotDebug<Marker> {}
    struct ViaDebug;
    struct ViaType;
    impl<T: ?Sized + std::fmt::Debug> NotDebug<ViaDebug> for T {}
    impl NotDebug<ViaType> for FetchKeytabRequest {}
    impl NotDebug<ViaType> for FetchKeytabResponse {}
    impl NotDebug<ViaType> for Part {}

    // Inference picks the one marker only if exactly one impl applies.
    fn assert_not_debug<M, T: NotDebug<M>>() {}
    fn check() {
        assert_not_debug::<_, FetchKeytabRequest>();
        assert_not_debug::<_, FetchKeytabResponse>();
        assert_not_debug::<_, Part>();
    }
}
