//! The FetchKeytab response stream: one header (a keytab's, or a ticket delivery's), the
//! delivered bytes in chunks, and a trailer with their SHA-256.

use ktbroker_keytab::Keytab;
use ktbroker_proto::v1::{FetchKeytabResponse, KeytabHeader, KeytabTrailer, TicketHeader, fetch_keytab_response::Part};
use tonic::Status;
use zeroize::Zeroizing;

/// The response stream: header, chunks of at most `CHUNK_SIZE`, trailer. It owns the delivered
/// bytes (a keytab, or a KRB-CRED message holding a session key) in a zeroizing buffer, wiped
/// when the stream is dropped.
pub(super) struct DeliveryParts {
    pub(super) kvno: u32,
    bytes: Zeroizing<Vec<u8>>,
    header: Option<Part>,
    sent: usize,
    trailer_sent: bool,
}

impl DeliveryParts {
    pub(super) fn keytab(principal: &str, keytab: &Keytab) -> Result<Self, ktbroker_keytab::KeytabError> {
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
        Ok(Self::new(kvno, bytes, Part::Header(header)))
    }

    /// A ticket delivery: `message` is the KRB-CRED message of the AS exchange made with the keys
    /// of version `kvno`.
    pub(super) fn ticket(
        principal: &str,
        kvno: u32,
        message: Zeroizing<Vec<u8>>,
        times: ktbroker_krb5::TicketTimes,
    ) -> Self {
        let header = TicketHeader {
            principal: principal.to_owned(),
            total_size: message.len() as u64,
            end_time: times.end,
            renew_till: times.renew_till,
        };
        Self::new(kvno, message, Part::TicketHeader(header))
    }

    fn new(kvno: u32, bytes: Zeroizing<Vec<u8>>, header: Part) -> Self {
        Self {
            kvno,
            bytes,
            header: Some(header),
            sent: 0,
            trailer_sent: false,
        }
    }
}

impl Iterator for DeliveryParts {
    type Item = Result<FetchKeytabResponse, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        let part = if let Some(header) = self.header.take() {
            header
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_stream_is_header_chunks_trailer() {
        let message = Zeroizing::new(vec![7u8; ktbroker_proto::CHUNK_SIZE + 10]);
        let times = ktbroker_krb5::TicketTimes {
            end: 100,
            renew_till: 200,
        };
        let parts: Vec<_> = DeliveryParts::ticket("alice@R", 3, message, times)
            .map(|p| p.unwrap().part.unwrap())
            .collect();
        let size = (ktbroker_proto::CHUNK_SIZE + 10) as u64;
        assert!(matches!(&parts[0], Part::TicketHeader(h) if h.total_size == size && h.end_time == 100));
        assert!(matches!(&parts[1], Part::Chunk(c) if c.len() == ktbroker_proto::CHUNK_SIZE));
        assert!(matches!(&parts[2], Part::Chunk(c) if c.len() == 10));
        assert!(matches!(&parts[3], Part::Trailer(_)));
        assert_eq!(parts.len(), 4);
    }
}
