//! A minimal LDAP client that does simple binds and nothing else, for the connections kept open
//! for users' binds (see `user_binds`).
//!
//! Why not ldap3 here: ldap3 encodes each request into its connection's write buffer and leaves
//! the bytes there once sent, so a connection that lives on keeps the recent users' passwords in
//! memory in the clear (about fifty per connection after fifty logins). Here the request is
//! built in a zeroizing buffer, handed to the TLS layer (which encrypts it in place) and wiped.
//! Responses hold no secret.
//!
//! What it speaks (RFC 4511): BindRequest with the password policy request control, the
//! BindResponse and its controls, StartTLS's extended operation, the unsolicited Notice of
//! Disconnection (message 0), and UnbindRequest. Every read is bounded in size; deadlines are the
//! caller's (each call is wrapped in its budget).

use super::ber;
use crate::config::LdapTransport;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// The largest response accepted; a bind's is a few hundred bytes.
const MAX_RESPONSE: usize = 64 * 1024;
const STARTTLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";

const TAG_SEQUENCE: u8 = 0x30;
const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_ENUMERATED: u8 = 0x0a;
const TAG_BOOLEAN: u8 = 0x01;
const TAG_BIND_REQUEST: u8 = 0x60;
const TAG_BIND_RESPONSE: u8 = 0x61;
const TAG_UNBIND_REQUEST: u8 = 0x42;
const TAG_EXTENDED_REQUEST: u8 = 0x77;
const TAG_EXTENDED_RESPONSE: u8 = 0x78;
const TAG_SIMPLE_AUTH: u8 = 0x80;
const TAG_EXTENDED_NAME: u8 = 0x80;
const TAG_CONTROLS: u8 = 0xa0;

/// What the directory answered to a bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindAnswer {
    pub rc: u32,
    /// The diagnostic message (AD puts its sub-code here).
    pub text: String,
    /// The password policy response control's value, if sent.
    pub ppolicy: Option<Vec<u8>>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

pub struct BindConnection {
    stream: Stream,
    last_id: u32,
}

impl BindConnection {
    /// Speaks LDAP over `tcp`, an open socket to `host`: LDAPS at once, StartTLS first, or (opted
    /// in, loopback only) plaintext.
    pub async fn open(
        mut tcp: TcpStream,
        host: &str,
        transport: &LdapTransport,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> io::Result<Self> {
        let mut last_id = 0;
        let tls = match (transport, tls) {
            (LdapTransport::PlaintextLoopback, _) => None,
            (_, None) => return Err(invalid("TLS is required but no TLS configuration was given")),
            (LdapTransport::Ldaps, Some(tls)) => Some(tls),
            (LdapTransport::StartTls, Some(tls)) => {
                last_id += 1;
                let mut request = Vec::new();
                ber::push(&mut request, TAG_EXTENDED_NAME, STARTTLS_OID);
                let mut op = Vec::new();
                ber::push(&mut op, TAG_EXTENDED_REQUEST, &request);
                tcp.write_all(&message(last_id, &op, &[])).await?;
                let answer = read_message(&mut tcp).await?;
                let (rc, text) = parse_result(&answer, last_id, TAG_EXTENDED_RESPONSE)
                    .map(|(rc, text, _)| (rc, text))
                    .ok_or_else(|| invalid("a malformed answer to StartTLS"))?;
                if rc != 0 {
                    return Err(invalid(&format!("StartTLS refused: rc={rc} {text}")));
                }
                Some(tls)
            }
        };
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| invalid(&format!("server name {host}: {e}")))?;
                let connector = tokio_rustls::TlsConnector::from(tls.clone());
                Stream::Tls(Box::new(connector.connect(name, tcp).await?))
            }
        };
        Ok(Self { stream, last_id })
    }

    /// A simple bind as `dn`, with the password policy request control. An `Err` means the
    /// connection failed (no answer, a malformed one, or the directory hung up): drop it.
    pub async fn bind(&mut self, dn: &str, password: &str) -> io::Result<BindAnswer> {
        self.last_id = self.last_id.wrapping_add(1).clamp(1, i32::MAX as u32);
        let id = self.last_id;
        let request = bind_request(id, dn, password);
        self.write_all(&request).await?;
        drop(request);
        let answer = self.read_message().await?;
        match read_bind_answer(&answer, id) {
            Some(answer) => Ok(answer),
            None if is_notice_of_disconnection(&answer) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the directory is closing the connection (notice of disconnection)",
            )),
            None => Err(invalid("a malformed or unexpected answer to a bind")),
        }
    }

    /// Whether the connection has ended: the directory closed it, broke it, or sent something
    /// unasked (its notice of disconnection). Looks without waiting.
    pub fn has_ended(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let mut context = Context::from_waker(Waker::noop());
        let polled = match &mut self.stream {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_read(&mut context, &mut buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(&mut context, &mut buf),
        };
        // Pending: open and quiet, as an idle connection should be.
        !matches!(polled, Poll::Pending)
    }

    /// Says goodbye (UnbindRequest) and closes.
    pub async fn unbind(mut self) {
        self.last_id = self.last_id.wrapping_add(1).clamp(1, i32::MAX as u32);
        let mut op = Vec::new();
        ber::push(&mut op, TAG_UNBIND_REQUEST, &[]);
        let _ = self.write_all(&message(self.last_id, &op, &[])).await;
        let _ = match &mut self.stream {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
        };
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    async fn read_message(&mut self) -> io::Result<Vec<u8>> {
        match &mut self.stream {
            Stream::Plain(s) => read_message(s).await,
            Stream::Tls(s) => read_message(s.as_mut()).await,
        }
    }
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

/// One whole LDAPMessage (its SEQUENCE's contents), at most [`MAX_RESPONSE`] bytes.
async fn read_message(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<Vec<u8>> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    if head[0] != TAG_SEQUENCE {
        return Err(invalid("the directory sent something that is not an LDAP message"));
    }
    let length = if head[1] < 0x80 {
        usize::from(head[1])
    } else {
        let count = usize::from(head[1] & 0x7f);
        if count == 0 || count > 4 {
            return Err(invalid("an LDAP message with an unusable length"));
        }
        let mut bytes = [0u8; 4];
        stream.read_exact(&mut bytes[..count]).await?;
        bytes[..count].iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    if length > MAX_RESPONSE {
        return Err(invalid("an LDAP message larger than a bind's answer can be"));
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

/// An LDAPMessage: SEQUENCE { messageID, protocolOp, controls [0] OPTIONAL } (`op` and
/// `controls` already encoded; `controls` empty for none).
fn message(id: u32, op: &[u8], controls: &[u8]) -> Zeroizing<Vec<u8>> {
    let id = ber::integer(id);
    let inner = ber::encoded_len(id.len()) + op.len() + controls.len();
    let mut out = Zeroizing::new(Vec::with_capacity(ber::encoded_len(inner)));
    let mut body = Zeroizing::new(Vec::with_capacity(inner));
    ber::push(&mut body, TAG_INTEGER, &id);
    body.extend_from_slice(op);
    body.extend_from_slice(controls);
    ber::push(&mut out, TAG_SEQUENCE, &body);
    out
}

/// BindRequest { version 3, name, simple password }, with the ppolicy request control. Every
/// buffer that holds the password is sized up front (no reallocation leaves a copy) and zeroized.
fn bind_request(id: u32, dn: &str, password: &str) -> Zeroizing<Vec<u8>> {
    let fields = ber::encoded_len(1) + ber::encoded_len(dn.len()) + ber::encoded_len(password.len());
    let mut fields_buf = Zeroizing::new(Vec::with_capacity(fields));
    ber::push(&mut fields_buf, TAG_INTEGER, &[3]);
    ber::push(&mut fields_buf, TAG_OCTET_STRING, dn.as_bytes());
    ber::push(&mut fields_buf, TAG_SIMPLE_AUTH, password.as_bytes());
    let mut op = Zeroizing::new(Vec::with_capacity(ber::encoded_len(fields)));
    ber::push(&mut op, TAG_BIND_REQUEST, &fields_buf);
    drop(fields_buf);
    let mut control = Vec::new();
    ber::push(&mut control, TAG_OCTET_STRING, super::ppolicy::OID.as_bytes());
    let mut sequence = Vec::new();
    ber::push(&mut sequence, TAG_SEQUENCE, &control);
    let mut controls = Vec::new();
    ber::push(&mut controls, TAG_CONTROLS, &sequence);
    message(id, &op, &controls)
}

/// (resultCode, diagnosticMessage, ppolicy control value) of the response `tag` to message `id`.
fn parse_result(message: &[u8], id: u32, tag: u8) -> Option<(u32, String, Option<Vec<u8>>)> {
    let (found_id, rest) = ber::expect(TAG_INTEGER, message)?;
    if ber::unsigned(found_id)? != id {
        return None;
    }
    let (result, rest) = ber::expect(tag, rest)?;
    let (rc, result) = ber::expect(TAG_ENUMERATED, result)?;
    let (_matched, result) = ber::expect(TAG_OCTET_STRING, result)?;
    let (text, _) = ber::expect(TAG_OCTET_STRING, result)?;
    let ppolicy = match ber::tlv(rest) {
        Some((TAG_CONTROLS, controls, _)) => ppolicy_value(controls),
        _ => None,
    };
    Some((ber::unsigned(rc)?, String::from_utf8_lossy(text).into_owned(), ppolicy))
}

/// The password policy response control's value among `controls` (SEQUENCE OF Control).
fn ppolicy_value(mut controls: &[u8]) -> Option<Vec<u8>> {
    while let Some((control, rest)) = ber::expect(TAG_SEQUENCE, controls) {
        controls = rest;
        let Some((oid, mut fields)) = ber::expect(TAG_OCTET_STRING, control) else {
            continue;
        };
        if oid != super::ppolicy::OID.as_bytes() {
            continue;
        }
        if let Some((_, after)) = ber::expect(TAG_BOOLEAN, fields) {
            fields = after;
        }
        return ber::expect(TAG_OCTET_STRING, fields).map(|(value, _)| value.to_vec());
    }
    None
}

/// What a directory's answer to bind number `id` says (an LDAPMessage's contents, as read off the
/// wire), or `None` if it is not that answer. For the fuzzer; the connection reads through it too.
pub fn read_bind_answer(message: &[u8], id: u32) -> Option<BindAnswer> {
    parse_result(message, id, TAG_BIND_RESPONSE).map(|(rc, text, ppolicy)| BindAnswer { rc, text, ppolicy })
}

/// A BindResponse to `id` as a directory sends it (an LDAPMessage's contents), with a password
/// policy control when `ppolicy` is given: for tests and the fuzzer's round trip.
pub fn encode_bind_answer(id: u32, answer: &BindAnswer) -> Vec<u8> {
    let mut result = Vec::new();
    ber::push(&mut result, TAG_ENUMERATED, &ber::integer(answer.rc));
    ber::push(&mut result, TAG_OCTET_STRING, b"");
    ber::push(&mut result, TAG_OCTET_STRING, answer.text.as_bytes());
    let mut body = Vec::new();
    ber::push(&mut body, TAG_INTEGER, &ber::integer(id));
    ber::push(&mut body, TAG_BIND_RESPONSE, &result);
    if let Some(value) = &answer.ppolicy {
        let mut fields = Vec::new();
        ber::push(&mut fields, TAG_OCTET_STRING, super::ppolicy::OID.as_bytes());
        ber::push(&mut fields, TAG_OCTET_STRING, value);
        let mut control = Vec::new();
        ber::push(&mut control, TAG_SEQUENCE, &fields);
        ber::push(&mut body, TAG_CONTROLS, &control);
    }
    body
}

/// An unsolicited notification (message 0, an ExtendedResponse): the directory is hanging up.
fn is_notice_of_disconnection(message: &[u8]) -> bool {
    ber::expect(TAG_INTEGER, message).is_some_and(|(id, rest)| {
        ber::unsigned(id) == Some(0) && matches!(ber::tlv(rest), Some((TAG_EXTENDED_RESPONSE, _, _)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_request_is_the_rfc_4511_encoding_with_the_ppolicy_control() {
        let request = bind_request(5, "cn=a", "pw");
        // SEQUENCE { id 5, [APPLICATION 0] { version 3, name, [0] password }, [0] { { oid } } }
        let mut expected = vec![0x30, 0x31, 0x02, 0x01, 0x05];
        expected.extend([
            0x60, 0x0d, 0x02, 0x01, 0x03, 0x04, 0x04, b'c', b'n', b'=', b'a', 0x80, 0x02, b'p', b'w',
        ]);
        expected.extend([0xa0, 0x1d, 0x30, 0x1b, 0x04, 0x19]);
        expected.extend(super::super::ppolicy::OID.as_bytes());
        assert_eq!(request.as_slice(), expected.as_slice());
    }

    /// A BindResponse to `id` as a server sends it, optionally with a ppolicy control value.
    fn response(id: u8, rc: u8, text: &str, ppolicy: Option<&[u8]>) -> Vec<u8> {
        let mut result = Vec::new();
        ber::push(&mut result, TAG_ENUMERATED, &[rc]);
        ber::push(&mut result, TAG_OCTET_STRING, b"");
        ber::push(&mut result, TAG_OCTET_STRING, text.as_bytes());
        let mut body = Vec::new();
        ber::push(&mut body, TAG_INTEGER, &[id]);
        ber::push(&mut body, TAG_BIND_RESPONSE, &result);
        if let Some(value) = ppolicy {
            let mut other = Vec::new();
            ber::push(&mut other, TAG_OCTET_STRING, b"1.2.3");
            let mut fields = Vec::new();
            ber::push(&mut fields, TAG_OCTET_STRING, super::super::ppolicy::OID.as_bytes());
            ber::push(&mut fields, TAG_BOOLEAN, &[0]);
            ber::push(&mut fields, TAG_OCTET_STRING, value);
            let mut controls = Vec::new();
            ber::push(&mut controls, TAG_SEQUENCE, &other);
            ber::push(&mut controls, TAG_SEQUENCE, &fields);
            ber::push(&mut body, TAG_CONTROLS, &controls);
        }
        body
    }

    #[test]
    fn bind_responses_give_their_code_text_and_ppolicy_value() {
        let locked = [0x30, 0x03, 0x81, 0x01, 0x01];
        assert_eq!(
            parse_result(&response(7, 49, "", Some(&locked)), 7, TAG_BIND_RESPONSE),
            Some((49, String::new(), Some(locked.to_vec())))
        );
        let ad = "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 52e, v4563";
        assert_eq!(
            parse_result(&response(2, 49, ad, None), 2, TAG_BIND_RESPONSE),
            Some((49, ad.to_owned(), None))
        );
        assert_eq!(
            parse_result(&response(2, 0, "", None), 3, TAG_BIND_RESPONSE),
            None,
            "another message's answer"
        );
        assert_eq!(
            parse_result(&response(2, 0, "", None), 2, TAG_EXTENDED_RESPONSE),
            None,
            "another operation's"
        );
    }

    #[test]
    fn truncated_or_malformed_responses_are_none_never_a_panic() {
        let whole = response(4, 0, "fine", Some(&[0x30, 0x00]));
        for cut in 0..whole.len() {
            let _ = parse_result(&whole[..cut], 4, TAG_BIND_RESPONSE);
        }
        assert_eq!(parse_result(&[], 1, TAG_BIND_RESPONSE), None);
        assert_eq!(
            parse_result(&[0x02, 0x01, 0x01, 0x61, 0x00], 1, TAG_BIND_RESPONSE),
            None
        );
    }

    #[test]
    fn encoded_answers_read_back_as_they_were() {
        for answer in [
            BindAnswer {
                rc: 0,
                text: String::new(),
                ppolicy: None,
            },
            BindAnswer {
                rc: 49,
                text: "data 775".into(),
                ppolicy: Some(vec![0x30, 0x03, 0x81, 0x01, 0x01]),
            },
            BindAnswer {
                rc: 200,
                text: "x".repeat(300),
                ppolicy: Some(Vec::new()),
            },
        ] {
            assert_eq!(read_bind_answer(&encode_bind_answer(77, &answer), 77), Some(answer));
        }
    }

    #[test]
    fn a_notice_of_disconnection_is_recognised() {
        let mut notice = Vec::new();
        ber::push(&mut notice, TAG_INTEGER, &[0]);
        ber::push(
            &mut notice,
            TAG_EXTENDED_RESPONSE,
            &[0x0a, 0x01, 0x34, 0x04, 0x00, 0x04, 0x00],
        );
        assert!(is_notice_of_disconnection(&notice));
        assert!(!is_notice_of_disconnection(&response(0, 0, "", None)));
    }

    #[tokio::test]
    async fn messages_are_read_whole_and_oversized_ones_refused() {
        let body = response(1, 0, "", None);
        let mut wire = Vec::new();
        ber::push(&mut wire, TAG_SEQUENCE, &body);
        wire.extend([0x30, 0x00]);
        let mut reader = wire.as_slice();
        assert_eq!(read_message(&mut reader).await.unwrap(), body);
        assert_eq!(read_message(&mut reader).await.unwrap(), Vec::<u8>::new());
        assert!(read_message(&mut reader).await.is_err(), "end of stream");
        let mut huge: &[u8] = &[0x30, 0x84, 0x10, 0, 0, 0];
        assert!(read_message(&mut huge).await.is_err());
        let mut not_ldap: &[u8] = &[0x16, 0x03];
        assert!(read_message(&mut not_ldap).await.is_err());
    }
}
