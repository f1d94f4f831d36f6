//! The generated man pages render without warnings, name every subcommand, and refer to no page
//! of ours that is not generated; ktbrokerd(8) has the sections an admin looks for; the bash
//! completions parse.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn man_pages_render_and_completions_parse() {
    let dir = tempfile::tempdir().unwrap();
    let written = ktbroker_packaging::generate(dir.path()).unwrap();
    let completions = written
        .iter()
        .filter(|p| p.starts_with(dir.path().join("completions")))
        .count();
    assert_eq!(completions, 3 * 3, "{written:?}");
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

/// A page rendered by man(1), with its warnings.
fn rendered(path: &std::path::Path) -> (String, String) {
    let out = Command::new("man")
        .args(["--warnings", "-l", "-P", "cat"])
        .arg(path)
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    assert!(out.status.success(), "man -l {}", path.display());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_page_refers_only_to_pages_that_exist_and_renders_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    ktbroker_packaging::generate(dir.path()).unwrap();
    let man = dir.path().join("man");
    let pages: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for sub in [
        "ktbrokerd-run.8",
        "ktbrokerd-check-config.8",
        "ktbroker-kinit-status.1",
        "netdisk-put.1",
    ] {
        assert!(pages.iter().any(|p| p == sub), "no {sub} among {pages:?}");
    }
    // Pages of ours are ktbrokerd*, ktbroker-kinit* and netdisk*; pam_ktbroker.8 is hand-written.
    let mut references = 0;
    let ours = |name: &str| name.starts_with("ktbroker") || name.starts_with("netdisk") || name == "pam_ktbroker";
    for page in &pages {
        let (text, warnings) = rendered(&man.join(page));
        assert!(warnings.trim().is_empty(), "{page}: {warnings}");
        // groff prints `\-` as U+2010 in a UTF-8 locale.
        let text = text.replace(['\u{2010}', '\u{2212}'], "-");
        for reference in text.split(|c: char| c.is_whitespace() || c == ',').filter_map(|w| {
            let (name, rest) = w.split_once('(')?;
            let section = rest.strip_suffix(')')?;
            (section.len() == 1 && section.chars().all(|c| c.is_ascii_digit())).then_some((name, section))
        }) {
            let (name, section) = reference;
            if !ours(name) || name == "pam_ktbroker" {
                continue;
            }
            references += 1;
            let target = format!("{name}.{section}");
            assert!(
                pages.contains(&target),
                "{page} refers to {name}({section}), which is not generated"
            );
        }
    }
    // Each program's SUBCOMMANDS section lists its pages: 3 + 6 + 12 of them, and SEE ALSO.
    assert!(
        references >= 21,
        "only {references} references found: is the parse blind?"
    );
    let (ktbrokerd, _) = rendered(&man.join("ktbrokerd.8"));
    for heading in [
        "FILES",
        "CONFIGURATION",
        "CREDENTIALS",
        "SIGNALS",
        "ENVIRONMENT",
        "EXIT STATUS",
        "SEE ALSO",
    ] {
        assert!(
            ktbrokerd.lines().any(|l| l == heading),
            "ktbrokerd(8) has no {heading} section:\n{ktbrokerd}"
        );
    }
    for word in [
        "SIGHUP",
        "LoadCredential=",
        "/var/log/ktbroker/audit.jsonl",
        "admin.keytab",
    ] {
        assert!(ktbrokerd.contains(word), "ktbrokerd(8) does not mention {word}");
    }
}

#[test]
fn the_pam_module_page_renders_without_warnings() {
    let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pam/pam_ktbroker.8");
    let (text, warnings) = rendered(&page);
    assert!(warnings.trim().is_empty(), "man -l pam_ktbroker.8: {warnings}");
    for word in [
        "PAM_AUTHINFO_UNAVAIL",
        "try_first_pass",
        "pam-auth-update",
        "ccache_dir",
    ] {
        assert!(text.contains(word), "pam_ktbroker.8 does not mention {word}");
    }
}
