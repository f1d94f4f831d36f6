//! What the broker reads from a directory on its kept-open bind connections: any bytes as the
//! contents of an LDAPMessage answering bind 1. Reading never panics; what reads as an answer,
//! written again, reads back the same (the code, the diagnostic text and the password policy
//! control's value are what the broker decides by), and the policy value's own parser never
//! panics either.
#![no_main]

use ktbroker_broker::directory::simple_bind::{encode_bind_answer, read_bind_answer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(answer) = read_bind_answer(data, 1) else {
        return;
    };
    let again = read_bind_answer(&encode_bind_answer(1, &answer), 1);
    assert_eq!(again.as_ref(), Some(&answer), "an answer reads back as it was written");
    if let Some(value) = &answer.ppolicy {
        let _ = ktbroker_broker::directory::ppolicy::response_error(value);
        let _ = ktbroker_broker::directory::ppolicy::grace_login(value);
    }
});
