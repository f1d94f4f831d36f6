//! The broker's configuration parser: any text loads or is refused with an error (never a panic),
//! beside a directory of private secret files that seeds can name. A configuration that loads
//! prints an effective configuration that loads again to the same thing.
#![no_main]

use ktbroker_broker::config::{Config, Credentials};
use libfuzzer_sys::fuzz_target;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::LazyLock;

/// `pw`, `key.pem`, `admin.keytab` (all 0600), as the configuration tests' fixture.
static FIXTURE: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for file in ["pw", "key.pem", "admin.keytab"] {
        let path = dir.path().join(file);
        std::fs::write(&path, "x").expect("a fixture file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("0600");
    }
    dir
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path: PathBuf = FIXTURE.path().join("broker.toml");
    let Ok(config) = Config::from_text(text, &path, Credentials::Unset) else {
        return;
    };
    let effective = config.effective_toml();
    let again = Config::from_text(&effective, &path, Credentials::Unset)
        .unwrap_or_else(|e| panic!("the effective configuration does not load: {e}\n{effective}"));
    assert!(again.tenants == config.tenants, "{effective}");
    assert_eq!(again.effective_toml(), effective);
});
