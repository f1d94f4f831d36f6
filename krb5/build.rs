//! Links MIT libkrb5 (Debian: libkrb5-dev ships its pkg-config file).

fn main() {
    if let Err(e) = pkg_config::Config::new().probe("krb5") {
        panic!("pkg-config cannot find krb5 ({e}); install libkrb5-dev (scripts/install-deps.sh)");
    }
}
