//! `ktbroker-kinit run -- CMD` against a real secure HDFS: a directory password becomes a Kerberos
//! ticket in a FILE cache, and Hadoop's own Java client uses it. The cluster takes about 12 s to
//! start and each Hadoop command about 3 s, so one test starts it once and walks through the
//! scenarios in order.

use ktbroker_tests::Sandbox;
use ktbroker_tests::bins::project_binary;
use ktbroker_tests::client::{audit_reasons, stderr};
use ktbroker_tests::hdfs::Hdfs;
use ktbroker_tests::sandbox::run_with_password;
use std::process::{Command, Output};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `ktbroker-kinit run [-c CCACHE] alice -- FsShell ARGS`, password on stdin.
fn run_as(sandbox: &Sandbox, hdfs: &Hdfs, user: &str, password: &str, ccache: &str, fs_args: &[&str]) -> Output {
    let mut command = Command::new(project_binary("ktbroker-kinit"));
    command
        .args(["run", "--broker", &sandbox.broker.url, "--ca-file"])
        .arg(&sandbox.pki.ca_cert)
        .args(["-c", ccache, user, "--"])
        .args(hdfs.fs_shell_argv())
        .args(fs_args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KRB5_CONFIG", &sandbox.realm.krb5_conf);
    run_with_password(command, password)
}

#[test]
fn hadoop_commands_run_with_the_ticket_a_directory_password_bought() {
    let sandbox = ktbroker_tests::start_sandbox();
    let mut hdfs = Hdfs::start(&sandbox.root.join("hdfs"), &sandbox.realm).expect("starting HDFS");
    hdfs.as_superuser(&["-mkdir", "-p", "/user/alice", "/user/bob"])
        .unwrap();
    hdfs.as_superuser(&["-touchz", "/user/alice/hello"]).unwrap();
    hdfs.as_superuser(&["-chown", "-R", "alice", "/user/alice"]).unwrap();
    hdfs.as_superuser(&["-chown", "bob", "/user/bob"]).unwrap();
    hdfs.as_superuser(&["-chmod", "700", "/user/alice", "/user/bob"])
        .unwrap();

    // Without a ticket Hadoop refuses.
    let nobody = format!("FILE:{}", sandbox.root.join("client").join("no-ticket").display());
    let out = hdfs
        .fs_shell_command()
        .env("KRB5CCNAME", &nobody)
        .args(["-ls", "/user/alice"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "no ticket, yet: {}", text(&out));
    assert!(
        text(&out).contains("Failed to find any Kerberos tgt") || text(&out).contains("GSS initiate failed"),
        "{}",
        text(&out)
    );

    // alice's directory password: run logs her in and Hadoop lists her home directory.
    let ccache = sandbox.ccache("alice-hdfs");
    let out = run_as(&sandbox, &hdfs, "alice", "alicepw", &ccache, &["-ls", "/user/alice"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/user/alice/hello"),
        "{}",
        text(&out)
    );
    assert_eq!(audit_reasons(&sandbox.broker.audit_file), ["granted"]);

    // With a valid ticket run logs in no more (no password, no broker request), and HDFS
    // permissions still apply: bob's directory is closed to alice.
    let out = run_as(&sandbox, &hdfs, "alice", "", &ccache, &["-ls", "/user/bob"]);
    assert!(!out.status.success(), "alice listed bob's directory: {}", text(&out));
    assert!(text(&out).contains("Permission denied: user=alice"), "{}", text(&out));
    assert_eq!(
        audit_reasons(&sandbox.broker.audit_file),
        ["granted"],
        "the ticket was reused"
    );

    // A wrong password gets no ticket and the command never runs.
    let out = run_as(
        &sandbox,
        &hdfs,
        "bob",
        "wrong",
        &sandbox.ccache("bob-hdfs"),
        &["-ls", "/user/bob"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!text(&out).contains("Found"), "{}", text(&out));
    hdfs.check_alive().unwrap();
}
