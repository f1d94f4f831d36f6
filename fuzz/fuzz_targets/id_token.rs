//! What the broker reads from an identity provider: any text as an ID token (the compact JWS) and
//! as a JWK set. Parsing and verifying never panic, and no token the fuzzer makes verifies (it
//! holds no private key of the seeds' key sets).
#![no_main]

use ktbroker_broker::oidc::jose::{Jws, JwkSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the key set, the rest the token.
    let text = String::from_utf8_lossy(data);
    let (keys, token) = text.split_once('\n').unwrap_or(("", &text));
    let keys = JwkSet::parse(keys.as_bytes()).unwrap_or_default();
    let Ok(jws) = Jws::parse(token) else {
        return;
    };
    assert!(jws.verify(&keys).is_err(), "a token verified without a signature from the key's owner");
});
