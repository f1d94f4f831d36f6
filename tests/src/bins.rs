//! Where the project's own binaries are: `$KTBROKER_BIN_DIR`, else the cargo target directory of
//! the running executable (tests run from `target/debug/deps`, the sandbox from `target/debug`).

use std::path::PathBuf;

pub fn project_binary(name: &str) -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("KTBROKER_BIN_DIR") {
        candidates.push(PathBuf::from(dir).join(name));
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            candidates.push(dir.join(name));
        }
    }
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!("{name} not found (looked in {candidates:?}); build it first: cargo build --workspace --bins")
        })
}
