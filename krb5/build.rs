//! Links MIT libkrb5 and its GSSAPI library (Debian: libkrb5-dev ships both pkg-config files).

fn main() {
    for library in ["krb5", "krb5-gssapi"] {
        if let Err(e) = pkg_config::Config::new().probe(library) {
            panic!("pkg-config cannot find {library} ({e}); install libkrb5-dev (scripts/install-deps.sh)");
        }
    }
}
