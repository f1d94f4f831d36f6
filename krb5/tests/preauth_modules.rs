//! Which contexts load libkrb5's dynamic pre-authentication module (SPAKE): `load_preauth_modules`
//! loads it without any exchange on a default context, never on one from `Context::for_known_keys`,
//! which reads the user's krb5 profile as a default context does. Its own test binary: no other
//! test may have loaded the module first.

fn spake_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .any(|l| l.ends_with("/preauth/spake.so"))
}

#[test]
fn a_context_for_known_keys_reads_the_users_profile_and_never_loads_spake() {
    let context = ktbroker_krb5::Context::for_known_keys().expect("a context for known keys");
    assert!(context.lacks_spake());
    // The machine's profile (krb5-config's /etc/krb5.conf, or KRB5_CONFIG) as a default
    // context reads it.
    let default = ktbroker_krb5::Context::new().unwrap();
    let realm = default.default_realm().expect("the profile names a default realm");
    assert_eq!(context.default_realm().unwrap(), realm);
    for name in ["kdc_timesync", "forwardable", "dns_lookup_kdc", "ticket_lifetime"] {
        assert_eq!(
            context.libdefault(name).unwrap(),
            default.libdefault(name).unwrap(),
            "{name}"
        );
    }
    context.load_preauth_modules();
    assert!(!spake_loaded(), "a context for known keys loaded preauth/spake.so");

    // The control: a default context over the same profile does load it.
    assert!(!default.lacks_spake());
    default.load_preauth_modules();
    assert!(spake_loaded(), "a default context loads preauth/spake.so");
}
