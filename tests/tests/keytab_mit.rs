//! The keytab codec against MIT's own writer and reader: keytabs made by `kadmin.local ktadd` and
//! punched with `ktremove` (holes, and entries written into larger holes), read by our parser and
//! by libkrb5 itself, entry by entry. A real KDC database, as everywhere.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ktbroker_keytab::Keytab;
use ktbroker_tests::realm::Realm;
use std::path::Path;

/// (principal, kvno, enctype, key) of every entry, in file order.
type Entries = Vec<(String, u32, i32, Vec<u8>)>;

fn ours(bytes: &[u8]) -> Entries {
    Keytab::parse(bytes)
        .expect("our parser reads what MIT wrote")
        .entries
        .iter()
        .map(|e| {
            (
                e.principal.to_string(),
                e.kvno,
                i32::from(e.key.enctype),
                e.key.contents.to_vec(),
            )
        })
        .collect()
}

fn libkrb5s(path: &Path) -> Entries {
    ktbroker_krb5::Context::new()
        .unwrap()
        .keytab_entries(&format!("FILE:{}", path.display()))
        .expect("libkrb5 reads the keytab")
        .iter()
        .map(|e| (e.principal.clone(), e.kvno, e.enctype, e.key.to_vec()))
        .collect()
}

/// The record sizes of a keytab file, as written (negative: a hole).
fn record_sizes(bytes: &[u8]) -> Vec<i32> {
    let mut sizes = Vec::new();
    let mut at = 2;
    while at + 4 <= bytes.len() {
        let size = i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        if size == 0 {
            break;
        }
        sizes.push(size);
        at += 4 + size.unsigned_abs() as usize;
    }
    sizes
}

#[test]
fn our_parser_reads_what_libkrb5_reads_holes_padding_and_end_marker_included() {
    let dir = tempfile::tempdir().unwrap();
    let realm = Realm::start(dir.path()).unwrap();
    for name in ["alice", "bobby-with-a-long-name", "carol", "ed"] {
        realm.kadmin_local(&format!("addprinc -randkey {name}")).unwrap();
    }
    let keytab = dir.path().join("users.keytab");
    let kt = keytab.display();
    for name in ["alice", "bobby-with-a-long-name", "carol"] {
        realm.kadmin_local(&format!("ktadd -norandkey -k {kt} {name}")).unwrap();
    }
    // A hole in the middle, and a shorter entry written into it: a record larger than its entry.
    realm
        .kadmin_local(&format!("ktremove -k {kt} bobby-with-a-long-name all"))
        .unwrap();
    realm.kadmin_local(&format!("ktadd -norandkey -k {kt} ed")).unwrap();
    // A second key version of carol's, so one principal has two kvnos.
    realm.kadmin_local("cpw -randkey -keepold carol").unwrap();
    realm.kadmin_local(&format!("ktadd -norandkey -k {kt} carol")).unwrap();
    // And a hole that stays one.
    realm.kadmin_local(&format!("ktremove -k {kt} alice all")).unwrap();

    let bytes = std::fs::read(&keytab).unwrap();
    let sizes = record_sizes(&bytes);
    assert!(sizes.iter().any(|s| *s < 0), "the vector has a hole: {sizes:?}");
    let theirs = libkrb5s(&keytab);
    let names: std::collections::BTreeSet<_> = theirs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["carol@KRBTEST.COM", "ed@KRBTEST.COM"],
        "the removed principals are gone"
    );
    assert!(theirs.iter().any(|e| e.1 == 2), "carol's second kvno is there");
    assert_eq!(ours(&bytes), theirs);
    // The entry in the hole is shorter than its record: our encoding of it is exact-sized.
    let reencoded = Keytab::parse(&bytes).unwrap().encode().unwrap();
    assert!(reencoded.len() < bytes.len(), "the hole's padding is not copied");
    assert_eq!(ours(&reencoded), theirs);

    // A record of size 0 ends the keytab for libkrb5, whatever follows: for us too.
    let mut ended = bytes.clone();
    ended.extend_from_slice(&[0, 0, 0, 0]);
    ended.extend_from_slice(b"\x00\x00\x00\x20 not a keytab record at all, junk");
    let ended_path = dir.path().join("ended.keytab");
    std::fs::write(&ended_path, &ended).unwrap();
    assert_eq!(libkrb5s(&ended_path), theirs);
    assert_eq!(ours(&ended), theirs);
}
