use super::*;

fn attempt(username: &str, outcome: Outcome) -> Attempt<'_> {
    Attempt {
        request_id: 7,
        tenant: "corp",
        peer: Some("127.0.0.1:5555".parse().unwrap()),
        client_cert: None,
        username,
        principal: (outcome == Outcome::Granted).then_some("alice@EXAMPLE.COM"),
        outcome,
        kvno: (outcome == Outcome::Granted).then_some(3),
        delivery: None,
        identity: None,
        latency: Duration::from_micros(12_345),
        cancelled: false,
        suppressed: 0,
    }
}

fn write_three(path: &Path) {
    let auditor = Auditor::with_file(path).unwrap();
    auditor.record(&attempt("alice", Outcome::Granted)).unwrap();
    auditor.record(&attempt("zed", Outcome::UnknownUser)).unwrap();
    auditor.record(&attempt("alice", Outcome::InvalidCredentials)).unwrap();
}

#[test]
fn dates_are_rfc3339_utc() {
    assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_349_025_123);
    assert_eq!(rfc3339(t), "2026-11-22T12:03:45.123Z");
    let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
    assert_eq!(&rfc3339(leap)[..10], "2000-02-29");
}

#[test]
fn lines_are_json_with_the_documented_fields_and_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    write_three(&path);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["outcome"], "granted");
    assert_eq!(lines[0]["principal"], "alice@EXAMPLE.COM");
    assert_eq!(lines[0]["kvno"], 3);
    assert_eq!(lines[0]["latency_ms"], 12.3);
    assert_eq!(lines[0]["peer"], "127.0.0.1:5555");
    assert_eq!(lines[0]["prev"], "0".repeat(64));
    assert_eq!(lines[1]["outcome"], "refused");
    assert_eq!(lines[1]["reason"], "unknown_user");
    for key in ["time", "request_id", "tenant", "username", "client_cert"] {
        assert!(lines[2].get(key).is_some(), "{key}");
    }
    let summary = verify_chain(text.as_bytes()).unwrap();
    assert_eq!(summary.lines, 3);
    assert_eq!(summary.anchor, "0".repeat(64));
}

#[test]
fn a_reopened_file_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    write_three(&path);
    write_three(&path);
    let summary = verify_chain(std::fs::read(&path).unwrap().as_slice()).unwrap();
    assert_eq!(summary.lines, 6);
}

#[test]
fn edits_deletions_and_reordering_are_found_at_the_right_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    write_three(&path);
    write_three(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    let edited: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 2 {
                l.replace("alice", "mallory")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(
        verify_chain(edited.join("\n").as_bytes()),
        Err(ChainError::Broken { line: 4, previous: 3 })
    );

    let mut deleted = lines.clone();
    deleted.remove(1);
    assert_eq!(
        verify_chain(deleted.join("\n").as_bytes()),
        Err(ChainError::Broken { line: 2, previous: 1 })
    );

    let mut swapped = lines.clone();
    swapped.swap(3, 4);
    assert_eq!(
        verify_chain(swapped.join("\n").as_bytes()),
        Err(ChainError::Broken { line: 4, previous: 3 })
    );

    assert!(matches!(
        verify_chain("not json\n".as_bytes()),
        Err(ChainError::NotARecord { line: 1, .. })
    ));
}

#[test]
fn a_rotated_file_verifies_from_its_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    write_three(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    let whole = verify_chain(text.as_bytes()).unwrap();
    let rest: Vec<&str> = text.lines().skip(1).collect();
    let tail = verify_chain(rest.join("\n").as_bytes()).unwrap();
    assert_eq!(tail.lines, 2);
    assert_eq!(tail.head, whole.head);
    assert_ne!(tail.anchor, "0".repeat(64));
}

#[test]
fn long_values_from_the_caller_are_capped_with_a_digest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let auditor = Auditor::with_file(&path).unwrap();
    let long_a = "a".repeat(8000);
    let long_b = format!("{}b", "a".repeat(7999));
    auditor.record(&attempt(&long_a, Outcome::InvalidUsername)).unwrap();
    auditor.record(&attempt(&long_b, Outcome::InvalidUsername)).unwrap();
    auditor
        .record(&attempt("é".repeat(200).as_str(), Outcome::InvalidUsername))
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let names: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["username"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(text.lines().all(|l| l.len() < 1024), "lines stay short");
    assert!(
        names[0].starts_with(&"a".repeat(128)) && names[0].contains("(8000 bytes, sha256 "),
        "{}",
        names[0]
    );
    assert_ne!(names[0], names[1], "the digest tells long values apart");
    assert!(
        names[2].contains("(400 bytes"),
        "cut on a character boundary: {}",
        names[2]
    );
    assert!(verify_chain(std::io::BufReader::new(File::open(&path).unwrap())).is_ok());
}

/// Five keyed records; returns their lines.
fn keyed_chain(path: &Path, key: &[u8]) -> Vec<String> {
    let auditor = Auditor::with_keyed_file(path, Some(key)).unwrap();
    for user in ["alice", "bob", "carol", "dave", "erin"] {
        auditor.record(&attempt(user, Outcome::InvalidCredentials)).unwrap();
    }
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn check(lines: &[String], options: &VerifyOptions) -> Result<ChainSummary, ChainError> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    verify_chain_with(std::io::Cursor::new(text), options)
}

#[test]
fn each_kind_of_tampering_is_caught_by_the_check_the_admin_guide_names() {
    let dir = tempfile::tempdir().unwrap();
    let key = b"a key from a systemd credential".to_vec();
    let lines = keyed_chain(&dir.path().join("audit.log"), &key);
    let head_of = |line: &str| hex(&sha256(line.as_bytes()));
    let zeros = "0".repeat(64);
    let full = VerifyOptions {
        key: Some(zeroize::Zeroizing::new(key.clone())),
        expect_heads: vec![head_of(&lines[4])],
        expect_anchor: Some(zeros.clone()),
    };
    assert_eq!(check(&lines, &full).unwrap().lines, 5, "intact");
    assert!(lines.iter().all(|l| l.contains("\"mac\":\"")));

    // Delete the first line: the chain still links, but no longer starts from the zero anchor.
    assert!(matches!(
        check(&lines[1..], &full),
        Err(ChainError::AnchorMismatch { .. })
    ));
    // Delete a middle line: the next line's prev no longer matches.
    let mut middle = lines.clone();
    middle.remove(2);
    assert!(matches!(check(&middle, &full), Err(ChainError::Broken { line: 3, .. })));
    // Cut the tail (delete the last line, or truncate): the logged head is missing.
    assert!(matches!(
        check(&lines[..4], &full),
        Err(ChainError::HeadNotFound { .. })
    ));
    // Edit the last line: its mac fails (and its hash is no longer the logged head).
    let mut edited = lines.clone();
    edited[4] = edited[4].replace("\"erin\"", "\"evil\"");
    assert!(matches!(check(&edited, &full), Err(ChainError::BadMac { line: 5 })));
    let unkeyed_head = VerifyOptions {
        expect_heads: full.expect_heads.clone(),
        ..VerifyOptions::default()
    };
    assert!(matches!(
        check(&edited, &unkeyed_head),
        Err(ChainError::HeadNotFound { .. })
    ));
    // Edit a line and recompute the whole chain after it: the plain chain is fooled, the key is not.
    let mut recomputed = lines.clone();
    recomputed[1] = recomputed[1].replace("\"bob\"", "\"eve\"");
    for n in 2..recomputed.len() {
        let mut value: serde_json::Value = serde_json::from_str(&recomputed[n]).unwrap();
        value["prev"] = serde_json::json!(head_of(&recomputed[n - 1]));
        recomputed[n] = serde_json::to_string(&value).unwrap();
    }
    assert!(
        check(&recomputed, &VerifyOptions::default()).is_ok(),
        "the blind spot of a plain chain"
    );
    assert!(matches!(check(&recomputed, &full), Err(ChainError::BadMac { .. })));
    // And a key that is not the broker's fails every line.
    let wrong = VerifyOptions {
        key: Some(zeroize::Zeroizing::new(b"another key".to_vec())),
        ..VerifyOptions::default()
    };
    assert!(matches!(check(&lines, &wrong), Err(ChainError::BadMac { line: 1 })));
    // An unkeyed file checked with a key: every line lacks its mac.
    let plain_path = dir.path().join("plain.log");
    write_three(&plain_path);
    let plain: Vec<String> = std::fs::read_to_string(&plain_path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(matches!(check(&plain, &full), Err(ChainError::NoMac { line: 1 })));
}
