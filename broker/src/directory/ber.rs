//! The little of BER (X.690) that the broker reads and writes itself: single-byte tags, definite
//! lengths. Reading never panics on malformed input; it answers `None`.

/// One BER element: (tag, contents, what follows). Single-byte tags; short or long lengths.
pub fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (length, rest) = length(rest)?;
    if rest.len() < length {
        return None;
    }
    Some((tag, &rest[..length], &rest[length..]))
}

/// A definite length (short or long form, at most four bytes) and what follows it.
pub fn length(input: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first < 0x80 {
        return Some((usize::from(first), rest));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 || count > 4 || rest.len() < count {
        return None;
    }
    let length = rest[..count].iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
    Some((length, &rest[count..]))
}

/// The element `tag` first in `input`, and what follows; `None` if another comes first.
pub fn expect(tag: u8, input: &[u8]) -> Option<(&[u8], &[u8])> {
    match tlv(input)? {
        (found, content, rest) if found == tag => Some((content, rest)),
        _ => None,
    }
}

/// A non-negative INTEGER or ENUMERATED's contents as a number (at most four bytes).
pub fn unsigned(content: &[u8]) -> Option<u32> {
    match content {
        [] => None,
        [first, ..] if first & 0x80 != 0 => None,
        _ if content.len() > 5 || (content.len() == 5 && content[0] != 0) => None,
        _ => Some(content.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b))),
    }
}

/// How many bytes [`push`] writes for `content_length` bytes of contents.
pub fn encoded_len(content_length: usize) -> usize {
    1 + length_len(content_length) + content_length
}

fn length_len(length: usize) -> usize {
    match length {
        0..0x80 => 1,
        0x80..0x100 => 2,
        0x100..0x1_0000 => 3,
        0x1_0000..0x100_0000 => 4,
        _ => 5,
    }
}

/// Appends the element `tag` with `content` (callers keep contents under 4 GiB).
pub fn push(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let length = content.len();
    let bytes = length_len(length) - 1;
    if bytes == 0 {
        out.push(length as u8);
    } else {
        out.push(0x80 | bytes as u8);
        out.extend((0..bytes).rev().map(|i| (length >> (8 * i)) as u8));
    }
    out.extend_from_slice(content);
}

/// A non-negative INTEGER's minimal contents.
pub fn integer(value: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take(3).take_while(|b| **b == 0).count();
    let mut content = bytes[skip..].to_vec();
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_in_short_and_long_form() {
        for size in [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x1234, 0x1_0000] {
            let content = vec![0xab; size];
            let mut out = Vec::new();
            push(&mut out, 0x04, &content);
            assert_eq!(out.len(), encoded_len(size), "{size}");
            let (tag, read, rest) = tlv(&out).unwrap();
            assert_eq!((tag, read.len(), rest.len()), (0x04, size, 0));
        }
        let mut out = Vec::new();
        push(&mut out, 0x04, &[0; 0x80]);
        assert_eq!(&out[..3], [0x04, 0x81, 0x80], "long form from 128 on");
    }

    #[test]
    fn integers_are_minimal_and_non_negative() {
        assert_eq!(integer(0), [0]);
        assert_eq!(integer(3), [3]);
        assert_eq!(integer(0x80), [0, 0x80]);
        assert_eq!(integer(0x1234), [0x12, 0x34]);
        assert_eq!(integer(u32::MAX), [0, 0xff, 0xff, 0xff, 0xff]);
        for value in [0, 1, 0x7f, 0x80, 0xffff, 0x7fff_ffff, u32::MAX] {
            assert_eq!(unsigned(&integer(value)), Some(value));
        }
        assert_eq!(unsigned(&[]), None);
        assert_eq!(unsigned(&[0xff]), None, "negative");
        assert_eq!(unsigned(&[1, 0, 0, 0, 0]), None, "too large");
    }

    #[test]
    fn malformed_elements_are_none() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x01],
            &[0x30, 0x80],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert_eq!(tlv(input), None, "{input:?}");
        }
        assert_eq!(expect(0x02, &[0x04, 0x00]), None, "another tag");
    }
}
