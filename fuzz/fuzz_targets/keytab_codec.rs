//! The keytab codec: any bytes parse or are refused without a panic, and what parses encodes
//! back to a keytab that parses to the same entries and encodes to the same bytes.
#![no_main]

use ktbroker_keytab::Keytab;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(keytab) = Keytab::parse(data) else {
        return;
    };
    let encoded = keytab.encode().expect("a keytab that parsed encodes");
    let again = Keytab::parse(&encoded).expect("an encoded keytab parses");
    assert!(again.entries == keytab.entries, "the entries survive a round trip");
    assert!(
        *again.encode().expect("encodes again") == *encoded,
        "encoding is stable"
    );
});
