//! The gRPC codec of every ktbroker call: prost's encoding, and then the message that was encoded
//! is wiped. The two messages that carry secrets (a request's password, a response's keytab chunk)
//! would otherwise be freed with the secret still in them as soon as tonic has serialized them;
//! the password a server decodes is moved into a zeroizing buffer by the service at once.
//! (The serialized bytes themselves live in tonic's and h2's buffers, which the broker's
//! allocator settings wipe when freed: see `ktbroker_harden::wipe_freed_memory`.)

use prost::Message;
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use zeroize::Zeroize;

/// Overwrites what in a message is secret; nothing for messages without secrets.
pub trait Wipe {
    fn wipe(&mut self);
}

/// prost's codec with every encoded message wiped afterwards.
#[derive(Debug, Clone)]
pub struct WipingCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for WipingCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for WipingCodec<T, U>
where
    T: Message + Wipe + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = WipingEncoder<T>;
    // Decoding is prost's own, unchanged.
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        WipingEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstCodec::<T, U>::raw_decoder(tonic::codec::BufferSettings::default())
    }
}

#[derive(Debug)]
pub struct WipingEncoder<T>(PhantomData<T>);

impl<T: Message + Wipe> Encoder for WipingEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, mut item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let encoded = item.encode(buf);
        item.wipe();
        // The buffer grows as needed: encoding into it cannot run out of room.
        encoded.map_err(|e| Status::internal(format!("encoding a message: {e}")))
    }
}

impl Wipe for crate::v1::FetchKeytabRequest {
    fn wipe(&mut self) {
        self.password.zeroize();
        if let Some(new_password) = &mut self.new_password {
            new_password.zeroize();
        }
    }
}

impl Wipe for crate::v1::FetchKeytabResponse {
    fn wipe(&mut self) {
        if let Some(crate::v1::fetch_keytab_response::Part::Chunk(chunk)) = &mut self.part {
            chunk.zeroize();
        }
    }
}

/// Messages without secrets.
macro_rules! nothing_to_wipe {
    ($($message:ty),* $(,)?) => {
        $(impl Wipe for $message {
            fn wipe(&mut self) {}
        })*
    };
}

nothing_to_wipe!(
    crate::v1::ProviderLoginRequest,
    crate::v1::RotateKeyRequest,
    crate::v1::RotateKeyResponse,
    crate::v1::ServerInfoRequest,
    crate::v1::ServerInfoResponse,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{FetchKeytabRequest, FetchKeytabResponse, fetch_keytab_response::Part};

    #[test]
    fn the_secret_fields_are_wiped_and_nothing_else() {
        let mut request = FetchKeytabRequest {
            username: "alice".into(),
            password: b"s3cret".to_vec(),
            principal: None,
            tenant: Some("corp".into()),
            new_password: Some(b"n3w-s3cret".to_vec()),
            delivery: 2,
        };
        request.wipe();
        assert!(request.password.is_empty());
        assert_eq!(request.new_password.as_deref(), Some(&[][..]));
        assert_eq!(request.username, "alice");
        let mut response = FetchKeytabResponse {
            part: Some(Part::Chunk(vec![7; 64])),
        };
        response.wipe();
        assert!(matches!(response.part, Some(Part::Chunk(ref c)) if c.is_empty()));
    }
}
