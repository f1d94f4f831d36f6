//! Where the binaries are. The project's products (ktbrokerd, ktbroker-kinit, netdisk,
//! pam_ktbroker.so) come from `$KTBROKER_BIN_PATH` when it is set (a `:` list of directories,
//! searched alone: scripts/test-packages.sh points it at the installed files, and a product
//! missing there is an error, never a silent fallback to the build tree). Otherwise, and for
//! test tools always, `$KTBROKER_BIN_DIR`, else the cargo target directory of the running
//! executable (tests run from `target/debug/deps`, the sandbox from `target/debug`).

use std::path::PathBuf;

/// A product of the project: what the packages install.
pub fn project_binary(name: &str) -> PathBuf {
    let Some(path) = std::env::var_os("KTBROKER_BIN_PATH") else {
        return tool_binary(name);
    };
    let installed = match name {
        "libpam_ktbroker.so" => "pam_ktbroker.so",
        other => other,
    };
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.iter()
        .map(|dir| dir.join(installed))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{installed} not found in KTBROKER_BIN_PATH {dirs:?}"))
}

/// A binary of the build tree (test tools such as ktbroker-pam-driver, and the products when
/// `$KTBROKER_BIN_PATH` is unset).
pub fn tool_binary(name: &str) -> PathBuf {
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
