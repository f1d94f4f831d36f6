//! A small codec for MIT keytab files, format version 0x0502 (the only one MIT has written since
//! krb5 1.0). Layout, all integers big-endian:
//!
//! ```text
//! file   := 0x05 0x02 record*
//! record := i32 size, then `size` bytes of entry (a negative size marks a hole of -size bytes)
//! entry  := u16 n_components, data realm, data component * n_components, u32 name_type,
//!           u32 timestamp, u8 kvno8, u16 enctype, data key, [u32 kvno32]
//! data   := u16 length, length bytes
//! ```
//! MIT always writes `kvno32`; readers use it when present and non-zero, else `kvno8`.
//!
//! Read as libkrb5 reads it: a record of size 0 ends the keytab (MIT's writer puts one at the end
//! while it appends), whatever follows it; a hole (negative size, left by `ktremove`) is skipped;
//! a record larger than its entry (an entry written into a bigger hole) is read up to its entry.
//! Deliberately stricter than libkrb5, which quietly ends the keytab there: bytes that end inside
//! a record, and empty realms, name components or keys, are errors, not a shorter keytab.
//!
//! Keys live in [`Zeroizing`] buffers and every `Debug` impl here prints `<redacted>` instead.

#![forbid(unsafe_code)]

use std::fmt;
use zeroize::Zeroizing;

/// The version bytes every keytab file starts with.
pub const FORMAT_0502: [u8; 2] = [0x05, 0x02];

/// Why bytes could not be read as a keytab.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeytabError {
    /// The file does not start with 0x05 0x02.
    #[error("not a keytab of format 0x0502 (starts with {0:02x?})")]
    BadVersion(Vec<u8>),
    /// The data ends inside a record.
    #[error("keytab truncated at byte {0}")]
    Truncated(usize),
    /// A record's fields do not fit the size it declares.
    #[error("keytab record at byte {offset} is malformed: {what}")]
    Malformed { offset: usize, what: &'static str },
    /// A principal name component or realm is not UTF-8.
    #[error("keytab record at byte {0} has a principal that is not UTF-8")]
    NotUtf8(usize),
    /// A value is too large for its field when writing.
    #[error("cannot encode keytab: {0} too long")]
    TooLong(&'static str),
}

/// A Kerberos principal name as stored in a keytab.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub realm: String,
    pub components: Vec<String>,
    /// KRB5_NT_PRINCIPAL (1) for users, KRB5_NT_SRV_HST (3) for host services.
    pub name_type: u32,
}

impl Principal {
    /// `KRB5_NT_PRINCIPAL`, the name type MIT's kadmin writes for user principals.
    pub const NT_PRINCIPAL: u32 = 1;

    pub fn new(components: Vec<String>, realm: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
            components,
            name_type: Self::NT_PRINCIPAL,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.components.join("/"), self.realm)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Principal({self})")
    }
}

/// A key: its enctype and its secret bytes (wiped on drop, never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    pub enctype: u16,
    pub contents: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("enctype", &self.enctype)
            .field("contents", &format_args!("<redacted {} bytes>", self.contents.len()))
            .finish()
    }
}

/// One keytab entry: a principal's key of one enctype at one kvno.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub principal: Principal,
    /// Seconds since the epoch when the entry was written.
    pub timestamp: u32,
    pub kvno: u32,
    pub key: Key,
}

/// The entries of a keytab file, in file order (holes dropped).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keytab {
    pub entries: Vec<Entry>,
}

impl Keytab {
    /// Parses a whole keytab file. Never panics; rejects anything but a well-formed 0x0502 file.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeytabError> {
        let mut reader = Reader { bytes, pos: 0 };
        let version = reader.take(2).map_err(|_| KeytabError::BadVersion(bytes.to_vec()))?;
        if version != FORMAT_0502 {
            return Err(KeytabError::BadVersion(version.to_vec()));
        }
        let mut entries = Vec::new();
        while !reader.at_end() {
            let offset = reader.pos;
            let size = reader.i32()?;
            match size.cmp(&0) {
                std::cmp::Ordering::Equal => break,
                std::cmp::Ordering::Less => drop(reader.take(size.unsigned_abs() as usize)?),
                std::cmp::Ordering::Greater => {
                    let body = reader.take(size.unsigned_abs() as usize)?;
                    entries.push(parse_entry(body, offset + 4)?);
                }
            }
        }
        Ok(Self { entries })
    }

    /// Writes the entries as MIT does: version, then one exactly-sized record per entry, each
    /// with both the 8-bit and the 32-bit kvno.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, KeytabError> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.encoded_len()));
        out.extend_from_slice(&FORMAT_0502);
        for entry in &self.entries {
            let start = out.len();
            out.extend_from_slice(&[0; 4]); // size, filled in below
            encode_entry(entry, &mut out)?;
            let size = i32::try_from(out.len() - start - 4).map_err(|_| KeytabError::TooLong("entry"))?;
            out[start..start + 4].copy_from_slice(&size.to_be_bytes());
        }
        Ok(out)
    }

    /// Keeps only the entries for which `keep` returns true.
    pub fn retain(&mut self, keep: impl FnMut(&Entry) -> bool) {
        self.entries.retain(keep);
    }

    fn encoded_len(&self) -> usize {
        let data = |s: &[u8]| 2 + s.len();
        2 + self
            .entries
            .iter()
            .map(|e| {
                4 + 2
                    + data(e.principal.realm.as_bytes())
                    + e.principal.components.iter().map(|c| data(c.as_bytes())).sum::<usize>()
                    + 4
                    + 4
                    + 1
                    + 2
                    + data(&e.key.contents)
                    + 4
            })
            .sum::<usize>()
    }
}

fn parse_entry(body: &[u8], offset: usize) -> Result<Entry, KeytabError> {
    let malformed = |what| KeytabError::Malformed { offset, what };
    let mut r = Reader { bytes: body, pos: 0 };
    let n_components = r.u16().map_err(|_| malformed("component count"))?;
    if n_components == 0 {
        return Err(malformed("principal has no components"));
    }
    let text = |raw: &[u8]| String::from_utf8(raw.to_vec()).map_err(|_| KeytabError::NotUtf8(offset));
    let mut field = |what| match r.data() {
        Ok([]) | Err(_) => Err(malformed(what)),
        Ok(bytes) => Ok(bytes),
    };
    let realm = text(field("realm")?)?;
    let mut components = Vec::with_capacity(usize::from(n_components));
    for _ in 0..n_components {
        components.push(text(field("name component")?)?);
    }
    let name_type = r.u32().map_err(|_| malformed("name type"))?;
    let timestamp = r.u32().map_err(|_| malformed("timestamp"))?;
    let kvno8 = r.u8().map_err(|_| malformed("kvno"))?;
    let enctype = r.u16().map_err(|_| malformed("enctype"))?;
    let contents = match r.data() {
        Ok([]) | Err(_) => return Err(malformed("key")),
        Ok(key) => Zeroizing::new(key.to_vec()),
    };
    // The 32-bit kvno is optional; MIT uses it only when it is there and non-zero.
    let kvno = match r.remaining() {
        n if n >= 4 => match r.u32()? {
            0 => u32::from(kvno8),
            kvno32 => kvno32,
        },
        _ => u32::from(kvno8),
    };
    Ok(Entry {
        principal: Principal {
            realm,
            components,
            name_type,
        },
        timestamp,
        kvno,
        key: Key { enctype, contents },
    })
}

fn encode_entry(entry: &Entry, out: &mut Vec<u8>) -> Result<(), KeytabError> {
    let n = u16::try_from(entry.principal.components.len()).map_err(|_| KeytabError::TooLong("principal"))?;
    out.extend_from_slice(&n.to_be_bytes());
    put_data(out, entry.principal.realm.as_bytes(), "realm")?;
    for component in &entry.principal.components {
        put_data(out, component.as_bytes(), "name component")?;
    }
    out.extend_from_slice(&entry.principal.name_type.to_be_bytes());
    out.extend_from_slice(&entry.timestamp.to_be_bytes());
    out.push(entry.kvno as u8); // MIT truncates the 8-bit copy the same way
    out.extend_from_slice(&entry.key.enctype.to_be_bytes());
    put_data(out, &entry.key.contents, "key")?;
    out.extend_from_slice(&entry.kvno.to_be_bytes());
    Ok(())
}

fn put_data(out: &mut Vec<u8>, data: &[u8], what: &'static str) -> Result<(), KeytabError> {
    let len = u16::try_from(data.len()).map_err(|_| KeytabError::TooLong(what))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// A bounds-checked cursor: every read either returns the bytes or `Truncated`.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], KeytabError> {
        if self.remaining() < n {
            return Err(KeytabError::Truncated(self.bytes.len()));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, KeytabError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, KeytabError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, KeytabError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> Result<i32, KeytabError> {
        self.u32().map(|v| v as i32)
    }
    fn data(&mut self) -> Result<&'a [u8], KeytabError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }
}

#[cfg(test)]
mod tests;
