//! `Context::load_preauth_modules` loads libkrb5's dynamic pre-authentication module (SPAKE) into
//! the process without any exchange. Its own test binary: no other test may have loaded it first.

fn spake_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .any(|l| l.ends_with("/preauth/spake.so"))
}

#[test]
fn the_pre_authentication_modules_load_without_an_exchange() {
    let context = ktbroker_krb5::Context::new().expect("a krb5 context (krb5-config installs /etc/krb5.conf)");
    assert!(!spake_loaded(), "nothing has loaded the SPAKE module yet");
    context.load_preauth_modules();
    assert!(
        spake_loaded(),
        "the SPAKE module (libkrb5-3's preauth/spake.so) is loaded"
    );
}
