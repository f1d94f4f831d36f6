//! The FetchKeytab response stream.

use ktbroker_keytab::Keytab;
use ktbroker_proto::v1::{FetchKeytabResponse, KeytabHeader, KeytabTrailer, fetch_keytab_response::Part};
use tonic::Status;
use zeroize::Zeroizing;

/// The response stream: header, chunks of at most `CHUNK_SIZE`, trailer. It owns the encoded
/// keytab in a zeroizing buffer, which is wiped when the stream is dropped.
pub(super) struct KeytabParts {
    pub(super) kvno: u32,
    bytes: Zeroizing<Vec<u8>>,
    header: Option<KeytabHeader>,
    sent: usize,
    trailer_sent: bool,
}

impl KeytabParts {
    pub(super) fn new(principal: &str, keytab: &Keytab) -> Result<Self, ktbroker_keytab::KeytabError> {
        let bytes = keytab.encode()?;
        // read_keys kept only the current kvno's keys, in preference order.
        let kvno = keytab.entries.iter().map(|e| e.kvno).max().unwrap_or(0);
        let mut enctypes: Vec<i32> = Vec::new();
        for entry in &keytab.entries {
            let enctype = i32::from(entry.key.enctype);
            if !enctypes.contains(&enctype) {
                enctypes.push(enctype);
            }
        }
        let header = KeytabHeader {
            principal: principal.to_owned(),
            kvno,
            enctypes,
            total_size: bytes.len() as u64,
        };
        Ok(Self {
            kvno,
            bytes,
            header: Some(header),
            sent: 0,
            trailer_sent: false,
        })
    }
}

impl Iterator for KeytabParts {
    type Item = Result<FetchKeytabResponse, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        let part = if let Some(header) = self.header.take() {
            Part::Header(header)
        } else if self.sent < self.bytes.len() {
            let end = (self.sent + ktbroker_proto::CHUNK_SIZE).min(self.bytes.len());
            // This copy is owned by tonic once yielded and freed without wiping: prost has no
            // zeroizing bytes type. Our own buffer is wiped on drop.
            let chunk = self.bytes[self.sent..end].to_vec();
            self.sent = end;
            Part::Chunk(chunk)
        } else if !self.trailer_sent {
            self.trailer_sent = true;
            let digest = ring::digest::digest(&ring::digest::SHA256, &self.bytes);
            Part::Trailer(KeytabTrailer {
                sha256: digest.as_ref().to_vec(),
            })
        } else {
            return None;
        };
        Some(Ok(FetchKeytabResponse { part: Some(part) }))
    }
}
