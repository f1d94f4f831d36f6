//! Links MIT's kadm5 client library and libkrb5 (Debian: libkrb5-dev ships both pkg-config files).

fn main() {
    for library in ["kadm-client", "krb5"] {
        if let Err(e) = pkg_config::Config::new().probe(library) {
            panic!("pkg-config cannot find {library} ({e}); install libkrb5-dev (scripts/install-deps.sh)");
        }
    }
}
