//! The fixtures under `tests/data/` were written by MIT `ktutil` 1.20 (`addent -password`, `wkt`).

use super::*;

const MIT_ALICE: &[u8] = include_bytes!("../tests/data/mit-alice-aes.kt");
const MIT_MULTI: &[u8] = include_bytes!("../tests/data/mit-multi.kt");

#[test]
fn reads_mit_keytab_of_a_user() {
    let kt = Keytab::parse(MIT_ALICE).unwrap();
    assert_eq!(kt.entries.len(), 2);
    for entry in &kt.entries {
        assert_eq!(entry.principal.to_string(), "alice@KRBTEST.COM");
        assert_eq!(entry.principal.name_type, Principal::NT_PRINCIPAL);
        assert_eq!(entry.kvno, 3);
    }
    let enctypes: Vec<_> = kt
        .entries
        .iter()
        .map(|e| (e.key.enctype, e.key.contents.len()))
        .collect();
    assert_eq!(enctypes, [(18, 32), (17, 16)]);
}

#[test]
fn reads_service_principal_and_kvno_above_255() {
    let kt = Keytab::parse(MIT_MULTI).unwrap();
    assert_eq!(kt.entries[0].principal.to_string(), "HTTP/host.example.com@KRBTEST.COM");
    assert_eq!(
        kt.entries[0].kvno, 300,
        "the 32-bit kvno wins over the truncated 8-bit copy"
    );
    assert_eq!(kt.entries[0].key.enctype, 20);
    assert_eq!(kt.entries[1].principal.to_string(), "bob@KRBTEST.COM");
    assert_eq!(kt.entries[1].key.enctype, 25);
}

#[test]
fn writes_the_same_bytes_as_mit() {
    for file in [MIT_ALICE, MIT_MULTI] {
        let encoded = Keytab::parse(file).unwrap().encode().unwrap();
        assert_eq!(encoded.as_slice(), file);
    }
}

#[test]
fn a_filtered_keytab_is_still_valid() {
    let mut kt = Keytab::parse(MIT_ALICE).unwrap();
    kt.retain(|e| e.key.enctype == 18);
    let again = Keytab::parse(&kt.encode().unwrap()).unwrap();
    assert_eq!(again, kt);
    assert_eq!(again.entries.len(), 1);
}

#[test]
fn debug_never_shows_key_bytes() {
    let kt = Keytab::parse(MIT_ALICE).unwrap();
    let shown = format!("{kt:?} {kt:#?}");
    assert!(shown.contains("<redacted 32 bytes>"), "{shown}");
    for entry in &kt.entries {
        let key = &entry.key.contents;
        assert!(!shown.contains(&format!("{:?}", key.as_slice())));
        assert!(!shown.contains(&format!("{}", key[0])) || !shown.contains(&format!("{}, {}", key[0], key[1])));
    }
}

#[test]
fn rejects_wrong_version_and_short_input() {
    assert!(matches!(Keytab::parse(b""), Err(KeytabError::BadVersion(_))));
    assert!(matches!(Keytab::parse(&[0x05]), Err(KeytabError::BadVersion(_))));
    assert!(matches!(
        Keytab::parse(&[0x05, 0x01, 0, 0, 0, 0]),
        Err(KeytabError::BadVersion(_))
    ));
    // The 6-byte input that made the rejected `kerberos_keytab` crate panic.
    assert!(Keytab::parse(&[0x05, 0x02, 0x00, 0x00, 0x00, 0x47]).is_err());
    assert_eq!(Keytab::parse(&FORMAT_0502).unwrap().entries.len(), 0);
}

#[test]
fn every_truncation_is_an_error_except_at_record_boundaries() {
    let first_record_end = 2 + 4 + 0x47;
    for len in 0..MIT_ALICE.len() {
        let result = Keytab::parse(&MIT_ALICE[..len]);
        if len == 2 || len == first_record_end {
            assert!(result.is_ok(), "prefix {len}");
        } else {
            assert!(result.is_err(), "prefix {len} parsed");
        }
    }
}

#[test]
fn a_record_that_lies_about_its_fields_is_malformed() {
    // Shrink the first record's size field so the key no longer fits inside it.
    let mut bytes = MIT_ALICE.to_vec();
    bytes[5] = 0x10;
    assert!(Keytab::parse(&bytes).is_err());
    // A zero-component principal.
    let mut bytes = MIT_ALICE.to_vec();
    bytes[7] = 0;
    assert!(matches!(Keytab::parse(&bytes), Err(KeytabError::Malformed { .. })));
}

#[test]
fn holes_are_skipped_and_kvno8_is_used_without_kvno32() {
    let kt = Keytab::parse(MIT_ALICE).unwrap();
    let record = &kt.encode().unwrap()[2..2 + 4 + 0x47];
    let mut bytes = FORMAT_0502.to_vec();
    bytes.extend_from_slice(&(-8i32).to_be_bytes()); // a deleted entry, 8 bytes of hole
    bytes.extend_from_slice(&[0xAA; 8]);
    // The same record without its trailing kvno32, size adjusted.
    bytes.extend_from_slice(&(0x47i32 - 4).to_be_bytes());
    bytes.extend_from_slice(&record[4..record.len() - 4]);
    let parsed = Keytab::parse(&bytes).unwrap();
    assert_eq!(parsed.entries.len(), 1);
    assert_eq!(parsed.entries[0].kvno, 3);
    assert_eq!(parsed.entries[0].key, kt.entries[0].key);
}

#[test]
fn a_zero_size_record_ends_the_keytab_as_in_mit() {
    let mut bytes = MIT_ALICE[..2 + 4 + 0x47].to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    bytes.extend_from_slice(&MIT_ALICE[2 + 4 + 0x47..]); // a whole valid record after the marker
    let parsed = Keytab::parse(&bytes).unwrap();
    assert_eq!(parsed.entries.len(), 1, "nothing after the marker is read");
    assert_eq!(parsed.entries[0], Keytab::parse(MIT_ALICE).unwrap().entries[0]);
}

#[test]
fn a_padded_record_is_read_up_to_its_entry() {
    // An entry written into a larger hole: the record's size covers zeros after the entry.
    let entry = &MIT_ALICE[2 + 4..2 + 4 + 0x47];
    let mut bytes = FORMAT_0502.to_vec();
    bytes.extend_from_slice(&(0x47i32 + 12).to_be_bytes());
    bytes.extend_from_slice(entry);
    bytes.extend_from_slice(&[0; 12]);
    let parsed = Keytab::parse(&bytes).unwrap();
    assert_eq!(parsed.entries, Keytab::parse(MIT_ALICE).unwrap().entries[..1]);
}

#[test]
fn empty_realms_components_and_keys_are_malformed() {
    let kt = Keytab::parse(MIT_ALICE).unwrap();
    let mut empty_key = kt.clone();
    empty_key.entries[0].key.contents = Zeroizing::new(Vec::new());
    let mut empty_realm = kt.clone();
    empty_realm.entries[0].principal.realm = String::new();
    let mut empty_component = kt;
    empty_component.entries[0].principal.components = vec![String::new()];
    for (what, keytab) in [
        ("key", empty_key),
        ("realm", empty_realm),
        ("name component", empty_component),
    ] {
        let bytes = keytab.encode().unwrap();
        assert!(
            matches!(Keytab::parse(&bytes), Err(KeytabError::Malformed { what: w, .. }) if w == what),
            "{what}"
        );
    }
}

#[test]
fn encoding_allocates_exactly_once() {
    // A short size estimate would reallocate and leave an unwiped copy of the keys behind; a long
    // one wastes nothing but shows the estimate is wrong. Either way capacity != len.
    let big = Keytab {
        entries: (0..40)
            .map(|n| Entry {
                principal: Principal::new(
                    vec!["alice".into(), format!("instance-{n}")],
                    "A-LONGER-REALM.EXAMPLE.COM",
                ),
                timestamp: n,
                kvno: 300 + n,
                key: Key {
                    enctype: 18,
                    contents: Zeroizing::new(vec![n as u8; 32 + n as usize]),
                },
            })
            .collect(),
    };
    for keytab in [
        Keytab::parse(MIT_ALICE).unwrap(),
        Keytab::parse(MIT_MULTI).unwrap(),
        big,
        Keytab::default(),
    ] {
        let encoded = keytab.encode().unwrap();
        assert_eq!(encoded.capacity(), encoded.len());
        assert_eq!(Keytab::parse(&encoded).unwrap(), keytab);
    }
}

#[test]
fn errors_name_the_offset_of_the_bad_entry_and_debug_names_the_principal() {
    // Zero the second record's component count: its entry starts after two sizes and one record.
    let mut bytes = MIT_ALICE.to_vec();
    let second = 2 + 4 + 0x47;
    bytes[second + 4] = 0;
    bytes[second + 5] = 0;
    assert_eq!(
        Keytab::parse(&bytes),
        Err(KeytabError::Malformed {
            offset: second + 4,
            what: "principal has no components"
        })
    );
    let kt = Keytab::parse(MIT_ALICE).unwrap();
    assert_eq!(format!("{:?}", kt.entries[0].principal), "Principal(alice@KRBTEST.COM)");
}
