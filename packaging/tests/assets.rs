//! The generated man pages render and name every subcommand; the bash completions parse.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn man_pages_render_and_completions_parse() {
    let dir = tempfile::tempdir().unwrap();
    let written = ktbroker_packaging::generate(dir.path()).unwrap();
    assert_eq!(written.len(), 3 * 4, "{written:?}");
    for (page, must_mention) in [
        ("ktbrokerd.8", &["check-config", "audit-verify"][..]),
        ("ktbroker-kinit.1", &["status", "renew", "doctor", "--password-fd"]),
        ("netdisk.1", &["put", "chmod", "--transport"]),
    ] {
        let path = dir.path().join("man").join(page);
        let out = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(&path)
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "man -l {page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        for word in must_mention {
            assert!(text.contains(word), "{page} does not mention {word}:\n{text}");
        }
    }
    for name in ["ktbrokerd", "ktbroker-kinit", "netdisk"] {
        let bash = dir.path().join("completions/bash").join(format!("{name}.bash"));
        let out = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
        assert!(
            out.status.success(),
            "bash -n {}: {}",
            bash.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(dir.path().join("completions/zsh").join(format!("_{name}")).is_file());
        assert!(
            dir.path()
                .join("completions/fish")
                .join(format!("{name}.fish"))
                .is_file()
        );
    }
}

#[test]
fn the_pam_module_page_renders_without_warnings() {
    let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pam/pam_ktbroker.8");
    let out = Command::new("man")
        .args(["--warnings", "-l", "-P", "cat"])
        .arg(&page)
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && warnings.trim().is_empty(),
        "man -l pam_ktbroker.8: {warnings}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "PAM_AUTHINFO_UNAVAIL",
        "try_first_pass",
        "pam-auth-update",
        "ccache_dir",
    ] {
        assert!(text.contains(word), "pam_ktbroker.8 does not mention {word}");
    }
}
