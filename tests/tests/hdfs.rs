//! Hadoop access with a ticket a directory password bought, against a real secure HDFS (Hadoop
//! 2.7.3 NameNode + DataNode, Kerberos RPC, permissions, block tokens), a real KDC, slapd and
//! broker. The cluster starts once for this whole test binary (see `ktbroker_tests::cluster`);
//! each test works in its own directory and credential cache.
//!
//! - `ktbroker-kinit run -- FsShell`: Hadoop's own Java client on the helper's FILE cache.
//! - `netdisk`: the Rust CLI (hdfs-native), logging in through the broker when there is no ticket.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ktbroker_tests::bins::project_binary;
use ktbroker_tests::client::{audit_reasons, stderr};
use ktbroker_tests::cluster::{NetdiskClient, SharedCluster, shared_cluster};
use ktbroker_tests::sandbox::run_with_password;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts success and returns stdout.
fn ok(out: Output) -> String {
    assert!(out.status.success(), "netdisk failed: {}", text(&out));
    stdout(&out)
}

/// Asserts exit code `code` and returns stderr.
fn fails_with(out: Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    stderr(&out)
}

/// A client for `user` whose ccache already holds a ticket (logged in by netdisk itself).
fn logged_in(cluster: &SharedCluster, name: &str, user: &str, password: &str) -> NetdiskClient {
    let client = cluster.netdisk_client(name, user);
    ok(client.run_with_password(password, &["ls", "~"]));
    client
}

/// Deterministic bytes that do not compress or repeat on a block boundary.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().to_vec()
}

#[test]
fn hadoop_commands_run_with_the_ticket_a_directory_password_bought() {
    let cluster = shared_cluster();
    let sandbox = &cluster.sandbox;
    let hdfs = &cluster.hdfs;
    // Its own broker, so its audit file counts this test's logins only.
    let broker = sandbox.extra_broker("broker-fsshell", |c| c).unwrap();
    let run_as = |user: &str, password: &str, ccache: &str, fs_args: &[&str]| {
        let mut command = Command::new(project_binary("ktbroker-kinit"));
        command
            .args(["run", "--broker", &broker.url, "--ca-file"])
            .arg(&sandbox.pki.ca_cert)
            .args(["-c", ccache, user, "--"])
            .args(hdfs.fs_shell_argv())
            .args(fs_args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("KRB5_CONFIG", &sandbox.realm.krb5_conf);
        run_with_password(command, password)
    };

    // Without a ticket Hadoop refuses.
    let nobody = format!("FILE:{}", sandbox.root.join("client").join("no-ticket").display());
    let out = hdfs
        .fs_shell_command()
        .env("KRB5CCNAME", &nobody)
        .args(["-ls", "/user/bob"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "no ticket, yet: {}", text(&out));
    assert!(
        text(&out).contains("Failed to find any Kerberos tgt") || text(&out).contains("GSS initiate failed"),
        "{}",
        text(&out)
    );

    // bob's directory password: run logs him in and Hadoop lists his home directory.
    let ccache = sandbox.ccache("bob-fsshell");
    let out = run_as("bob", "bobpw", &ccache, &["-ls", "/user/bob"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("/user/bob/secret.txt"), "{}", text(&out));
    assert_eq!(audit_reasons(&broker.audit_file), ["granted"]);

    // With a valid ticket run logs in no more (no password, no broker request), and HDFS
    // permissions still apply: alice's directory is closed to bob.
    let out = run_as("bob", "", &ccache, &["-ls", "/user/alice"]);
    assert!(!out.status.success(), "bob listed alice's directory: {}", text(&out));
    assert!(text(&out).contains("Permission denied: user=bob"), "{}", text(&out));
    assert_eq!(audit_reasons(&broker.audit_file), ["granted"], "the ticket was reused");

    // A wrong password gets no ticket and the command never runs.
    let out = run_as(
        "alice",
        "wrong",
        &sandbox.ccache("alice-fsshell"),
        &["-ls", "/user/alice"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!text(&out).contains("Found"), "{}", text(&out));
}

#[test]
fn netdisk_session_as_alice_from_login_to_rm_over_native_rpc() {
    session_as_alice("native");
}

#[test]
fn netdisk_session_as_alice_from_login_to_rm_over_webhdfs() {
    session_as_alice("webhdfs");
}

/// The whole command set in one person's session; alice's directory for it is named after the
/// transport, so both run side by side.
fn session_as_alice(transport: &'static str) {
    let cluster = shared_cluster();
    let alice = cluster
        .netdisk_client(&format!("session-{transport}"), "alice")
        .over(transport);
    // alice's working directory for this run, relative to her home.
    let d = format!("session-{transport}");
    let p = |rest: &str| format!("{d}{rest}");
    // No ticket yet: the first command logs in with the password on stdin, then runs.
    ok(alice.run_with_password("alicepw", &["mkdir", &d]));
    assert!(
        cluster.sandbox.klist(&alice.ccache).unwrap().contains("alice@"),
        "the login left a ticket"
    );
    // From here on nothing is on stdin: the ticket is reused.
    ok(alice.run(&["mkdir", "-p", &p("/a/b")]));
    let mkdir_again = fails_with(alice.run(&["mkdir", &d]), 6);
    assert!(mkdir_again.contains("already exists"), "{mkdir_again}");

    // put a multi-block file (1 MiB blocks in the test cluster): 3 MiB and a bit.
    let content = pseudo_random((3 << 20) + 12345, 7);
    let local = alice.dir.join("big.bin");
    std::fs::write(&local, &content).unwrap();
    ok(alice.run(&["put", local.to_str().unwrap(), &p("/")]));
    let again = fails_with(alice.run(&["put", local.to_str().unwrap(), &p("/big.bin")]), 6);
    assert!(again.contains("use -f"), "{again}");
    // -f replaces a file in one step (native: an overwriting rename; WebHDFS: delete, rename).
    let note = alice.dir.join("note.txt");
    std::fs::write(&note, "first").unwrap();
    ok(alice.run(&["put", note.to_str().unwrap(), &p("/note.txt")]));
    std::fs::write(&note, "second").unwrap();
    ok(alice.run(&["put", "-f", note.to_str().unwrap(), &p("/note.txt")]));
    assert_eq!(ok(alice.run(&["cat", &p("/note.txt")])), "second");
    ok(alice.run(&["rm", &p("/note.txt")]));

    // ls: names, long lines, JSON; no temporary name left behind.
    assert_eq!(ok(alice.run(&["ls", &d])), "a\nbig.bin\n");
    let long = ok(alice.run(&["ls", "-l", &format!("/user/alice/{d}")]));
    assert!(
        long.lines().any(|l| l.starts_with("-rw-r--r--   1 alice")
            && l.contains(&format!(" {} ", content.len()))
            && l.ends_with(&format!(" /user/alice/{d}/big.bin"))),
        "{long}"
    );
    let recursive = ok(alice.run(&["ls", "-R", &d]));
    assert_eq!(recursive, "a\na/b\nbig.bin\n");
    let listed: serde_json::Value = serde_json::from_str(&ok(alice.run(&["ls", "--json", &d]))).unwrap();
    let big = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == format!("/user/alice/{d}/big.bin"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(big["type"], "file");
    assert_eq!(big["length"], content.len());
    assert_eq!(big["owner"], "alice");

    // stat: the file spans four 1 MiB blocks.
    let stat: serde_json::Value = serde_json::from_str(&ok(alice.run(&["stat", "--json", &p("/big.bin")]))).unwrap();
    assert_eq!(stat["block_size"], 1 << 20);
    assert_eq!(stat["length"], content.len());
    assert!(content.len() as u64 > 3 * (1 << 20));
    assert!(ok(alice.run(&["stat", &d])).contains("type:        directory"));

    // cat and get return the same bytes (compared by SHA-256).
    let cat = alice.run(&["cat", &p("/big.bin")]);
    assert!(cat.status.success(), "{}", stderr(&cat));
    assert_eq!(sha256(&cat.stdout), sha256(&content));
    let fetched = alice.dir.join("fetched.bin");
    ok(alice.run(&["get", &format!("~/{d}/big.bin"), fetched.to_str().unwrap()]));
    assert_eq!(sha256(&std::fs::read(&fetched).unwrap()), sha256(&content));
    let overwrite = fails_with(alice.run(&["get", &p("/big.bin"), fetched.to_str().unwrap()]), 6);
    assert!(overwrite.contains("already exists"), "{overwrite}");

    // du, df, chmod.
    let du = ok(alice.run(&["du", "-s", &d]));
    assert!(du.starts_with(&content.len().to_string()), "{du}");
    let df = ok(alice.run(&["df"]));
    assert!(df.contains("/user/alice"), "{df}");
    assert!(
        df.lines().any(|l| l.starts_with("cluster ")),
        "the cluster's capacity: {df}"
    );
    ok(alice.run(&["chmod", "750", &p("/a")]));
    assert!(ok(alice.run(&["stat", &p("/a")])).contains("rwxr-x--- (750)"));

    // mv into a directory and to a new name; the old name is gone.
    ok(alice.run(&["mv", &p("/big.bin"), &p("/a")]));
    ok(alice.run(&["mv", &p("/a/big.bin"), &p("/renamed.bin")]));
    assert_eq!(ok(alice.run(&["ls", &d])), "a\nrenamed.bin\n");
    fails_with(alice.run(&["stat", &p("/big.bin")]), 5);

    // rm: files, directories only with -r, never the home directory.
    ok(alice.run(&["rm", &p("/renamed.bin")]));
    let gone = fails_with(alice.run(&["cat", &p("/renamed.bin")]), 5);
    assert!(gone.contains("[not-found]"), "{gone}");
    let dir = fails_with(alice.run(&["rm", &d]), 6);
    assert!(dir.contains("use -r"), "{dir}");
    ok(alice.run(&["rm", "-r", &d]));
    fails_with(alice.run(&["ls", &d]), 5);
    fails_with(alice.run(&["rm", "-r", "~"]), 2);
}

#[test]
fn alice_cannot_read_or_write_bobs_home_over_native_rpc() {
    alice_cannot_read_or_write_bobs_home("native");
}

#[test]
fn alice_cannot_read_or_write_bobs_home_over_webhdfs() {
    alice_cannot_read_or_write_bobs_home("webhdfs");
}

fn alice_cannot_read_or_write_bobs_home(transport: &'static str) {
    let cluster = shared_cluster();
    let alice = logged_in(cluster, &format!("trespass-{transport}"), "alice", "alicepw").over(transport);
    for args in [
        &["ls", "/user/bob"][..],
        &["cat", "/user/bob/secret.txt"],
        &["stat", "../bob/secret.txt"],
        &["mkdir", "/user/bob/mine"],
        &["rm", "/user/bob/secret.txt"],
    ] {
        let message = fails_with(alice.run(args), 4);
        assert!(
            message.contains("[permission]") && message.contains("Permission denied: user=alice"),
            "{args:?}: {message}"
        );
        assert!(!message.contains("\tat "), "no Java stack trace: {message}");
    }
    let local = alice.dir.join("intruder.txt");
    std::fs::write(&local, "not yours").unwrap();
    let put = fails_with(
        alice.run(&["put", local.to_str().unwrap(), "/user/bob/intruder.txt"]),
        4,
    );
    assert!(
        put.contains("Permission denied") && put.contains("intruder.txt"),
        "{put}"
    );
    assert!(
        !put.contains(".part") && !put.contains("WARN"),
        "names the target, not a temporary: {put}"
    );
    // bob still sees exactly his own file.
    let bob = logged_in(cluster, &format!("owner-{transport}"), "bob", "bobpw").over(transport);
    assert_eq!(ok(bob.run(&["ls"])), "secret.txt\n");
    assert_eq!(ok(bob.run(&["cat", "secret.txt"])), "bob's secret\n");
}

#[test]
fn without_a_ticket_netdisk_needs_a_password_and_logs_in_with_one() {
    let cluster = shared_cluster();
    let alice = cluster.netdisk_client("login", "alice");
    let message = fails_with(alice.run(&["ls"]), 3);
    assert!(message.contains("login required"), "{message}");
    assert!(cluster.sandbox.klist(&alice.ccache).is_none(), "no ticket was made");

    let wrong = fails_with(alice.run_with_password("not-her-password", &["ls"]), 3);
    assert!(wrong.contains("login failed: [auth-failed]"), "{wrong}");

    ok(alice.run_with_password("alicepw", &["ls"]));
    assert!(cluster.sandbox.klist(&alice.ccache).unwrap().contains("alice@"));
    ok(alice.run(&["ls"]));
    // Her ticket does not let netdisk act for bob.
    let mut as_bob = alice.command(&["ls"]);
    as_bob.args(["--user", "bob"]);
    let message = fails_with(as_bob.output().unwrap(), 3);
    assert!(
        message.contains("is alice@") && message.contains("not bob's"),
        "{message}"
    );
}

#[test]
fn a_password_the_directory_wants_changed_is_changed_by_netdisks_login_too() {
    let cluster = shared_cluster();
    // erin's password was reset by an administrator: only the old one, no ticket.
    let erin = cluster.netdisk_client("login-reset", "erin");
    let message = fails_with(erin.run_with_password("erinpw", &["ls", "/user"]), 3);
    assert!(message.contains("[password-change-required]"), "{message}");
    // The old password, then the new one twice, on stdin: changed, logged in, the command runs.
    let listing = ok(erin.run_with_password("erinpw\nN3w-erin-pw\nN3w-erin-pw", &["ls", "/user"]));
    assert!(listing.contains("alice") && listing.contains("bob"), "{listing}");
    assert!(cluster.sandbox.klist(&erin.ccache).unwrap().contains("erin@"));
    let again = cluster.netdisk_client("login-after-reset", "erin");
    ok(again.run_with_password("N3w-erin-pw", &["ls", "/user"]));
}

#[test]
fn netdisk_logs_in_against_active_directory_and_changes_a_password_there() {
    use ktbroker_tests::active_directory::{ALICE, ActiveDirectory, BOB};
    let cluster = shared_cluster();
    let sandbox = &cluster.sandbox;
    // A real AD DC (Samba) beside the cluster's MIT realm, and a broker whose tenant uses it:
    // alice only in eng (nested in hadoop-users), bob's password must change at next logon.
    let ad = ActiveDirectory::start(&sandbox.root.join("ad"), &sandbox.pki, &[ALICE, BOB]).unwrap();
    let url = format!("url = \"{}\"", ad.url);
    let broker = ad
        .broker(&sandbox.root.join("broker-ad"), &sandbox.pki, &sandbox.realm, &url)
        .unwrap();
    let client = |name: &str, user: &str| {
        let client = cluster.netdisk_client(name, user);
        let toml = sandbox.client_toml().replace(&sandbox.broker.url, &broker.url);
        std::fs::write(client.dir.join("client.toml"), toml).unwrap();
        client
    };
    let alice = client("ad-alice", "alice");
    // Her sandbox (OpenLDAP) password means nothing here; her AD one does.
    fails_with(alice.run_with_password("alicepw", &["ls", "~"]), 3);
    ok(alice.run_with_password("Al1ce-AD-pw!", &["ls", "~"]));
    assert!(sandbox.klist(&alice.ccache).unwrap().contains("alice@"));
    let bob = client("ad-bob", "bob");
    let listing = ok(bob.run_with_password("B0b-AD-pw!x\nN3w-B0b-AD-pw!\nN3w-B0b-AD-pw!", &["ls", "~"]));
    assert!(listing.contains("secret.txt"), "{listing}");
    assert_eq!(ad.bind_as("bob", "N3w-B0b-AD-pw!").unwrap(), None);
    let reasons = ktbroker_tests::client::audit_reasons(&broker.audit_file);
    assert_eq!(
        reasons,
        [
            "invalid_credentials",
            "granted",
            "password_must_change",
            "password_changed"
        ]
    );
}

/// An upload fed from a FIFO, held open until its temporary file appears in HDFS, then stopped.
fn interrupted_put(alice: &NetdiskClient, name: &str, signal: rustix::process::Signal) -> Output {
    let fifo = alice.dir.join(format!("{name}.fifo"));
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
    let mut child = alice
        .command(&["put", fifo.to_str().unwrap(), &format!("uploads/{name}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    std::io::Write::write_all(&mut writer, &pseudo_random(2 << 20, 3)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listing = ok(alice.run(&["ls", "uploads"]));
        // This upload's own temporary (an earlier killed one may still lie there).
        if listing.contains(&format!(".{name}.netdisk-")) {
            break;
        }
        assert!(Instant::now() < deadline, "no temporary upload appeared: {listing}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    // The writer stays open: netdisk must stop even while a read of its input is pending.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("netdisk did not stop within 20 s of {signal:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(writer);
    child.wait_with_output().unwrap()
}

#[test]
fn an_interrupted_put_leaves_nothing_under_the_final_name() {
    let cluster = shared_cluster();
    let alice = logged_in(cluster, "interrupted", "alice", "alicepw");
    ok(alice.run(&["mkdir", "uploads"]));

    // Killed outright: the final name never appears (the hidden temporary may stay).
    let killed = interrupted_put(&alice, "killed.bin", rustix::process::Signal::KILL);
    assert!(!killed.status.success());
    fails_with(alice.run(&["stat", "uploads/killed.bin"]), 5);

    // Asked to stop (SIGTERM, Ctrl-C, or the ssh session dropping: SIGHUP): exit 130, and the
    // temporary is removed too.
    for (name, signal) in [
        ("stopped.bin", rustix::process::Signal::TERM),
        ("interrupted.bin", rustix::process::Signal::INT),
        ("hung-up.bin", rustix::process::Signal::HUP),
    ] {
        let stopped = interrupted_put(&alice, name, signal);
        let message = fails_with(stopped, 130);
        assert!(message.contains("interrupted"), "{signal:?}: {message}");
        fails_with(alice.run(&["stat", &format!("uploads/{name}")]), 5);
        let listing = ok(alice.run(&["ls", "uploads"]));
        assert!(!listing.contains(name), "{signal:?}: {listing}");
    }

    // An upload that completes appears under its name, and only then.
    let local = alice.dir.join("whole.bin");
    std::fs::write(&local, b"complete").unwrap();
    ok(alice.run(&["put", local.to_str().unwrap(), "uploads/whole.bin"]));
    assert_eq!(ok(alice.run(&["cat", "uploads/whole.bin"])), "complete");
}

/// A stand-in NameNode on localhost that answers every call with a redirect to 127.0.0.2, and a
/// listener there that counts connections: what a hostile or compromised NameNode would do.
struct RedirectingNameNode {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    foreign_connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl RedirectingNameNode {
    fn start() -> Self {
        use std::io::{BufRead, Write};
        let namenode = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let foreign = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let foreign_port = foreign.local_addr().unwrap().port();
        let port = namenode.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let foreign_connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in namenode.incoming() {
                let Ok(stream) = stream else { continue };
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                if head.is_empty() {
                    continue; // netdisk's reachability probe: a connect that sends nothing
                }
                let first = head.lines().next().unwrap_or_default().to_owned();
                seen.lock().unwrap().push(head.clone());
                let json = |status: &str, body: &str| {
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let file = r#"{"FileStatus":{"accessTime":0,"blockSize":1048576,"group":"g","length":5,"modificationTime":0,"owner":"alice","pathSuffix":"","permission":"644","replication":1,"type":"FILE"}}"#;
                let dir = r#"{"FileStatus":{"accessTime":0,"blockSize":0,"group":"g","length":0,"modificationTime":0,"owner":"alice","pathSuffix":"","permission":"755","replication":0,"type":"DIRECTORY"}}"#;
                let missing = r#"{"RemoteException":{"exception":"FileNotFoundException","javaClassName":"java.io.FileNotFoundException","message":"File does not exist"}}"#;
                let answer = if first.contains("op=GETFILESTATUS") && first.contains("/new.txt") {
                    json("404 Not Found", missing)
                } else if first.contains("op=GETFILESTATUS") && first.contains("/file.txt") {
                    json("200 OK", file)
                } else if first.contains("op=GETFILESTATUS") {
                    json("200 OK", dir)
                } else {
                    format!(
                        "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.2:{foreign_port}/webhdfs/v1/x?op=OPEN&delegation=SECRET-TOKEN\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                };
                let mut stream = stream;
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        let counter = foreign_connections.clone();
        std::thread::spawn(move || {
            for stream in foreign.incoming() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        Self {
            port,
            requests,
            foreign_connections,
        }
    }
}

#[test]
fn a_webhdfs_redirect_to_a_foreign_host_is_refused_before_anything_is_sent() {
    let cluster = shared_cluster();
    let alice = logged_in(cluster, "redirect", "alice", "alicepw").over("webhdfs");
    let namenode = RedirectingNameNode::start();
    let url = format!("http://localhost:{}", namenode.port);
    let local = alice.dir.join("upload.txt");
    std::fs::write(&local, "hello").unwrap();
    for args in [
        &["--webhdfs", &url, "cat", "file.txt"][..],
        &["--webhdfs", &url, "get", "file.txt", "fetched.txt"],
        &["--webhdfs", &url, "put", local.to_str().unwrap(), "new.txt"],
    ] {
        let message = fails_with(alice.run(args), 4);
        assert!(
            message.contains("refusing the NameNode's redirect to http://127.0.0.2"),
            "{args:?}: {message}"
        );
    }
    assert_eq!(
        namenode.foreign_connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "netdisk connected to the foreign host"
    );
    // The stand-in NameNode itself did get Negotiate headers: the refusal is about the redirect.
    let requests = namenode.requests.lock().unwrap();
    assert!(requests.iter().any(|r| r.contains("op=OPEN")) && requests.iter().any(|r| r.contains("op=CREATE")));
    assert!(
        requests
            .iter()
            .all(|r| r.to_ascii_lowercase().contains("authorization: negotiate "))
    );
    assert!(!alice.dir.join("fetched.txt").exists());
}

#[test]
fn quotas_are_reported_and_exceeding_one_is_its_own_error() {
    let cluster = shared_cluster();
    let alice = logged_in(cluster, "quota", "alice", "alicepw");
    ok(alice.run(&["mkdir", "quota"]));
    // A name quota of 2: the directory itself and one file.
    cluster
        .hdfs
        .dfsadmin_as_superuser(&["-setQuota", "2", "/user/alice/quota"])
        .unwrap();
    let local = alice.dir.join("small.txt");
    std::fs::write(&local, "one").unwrap();
    ok(alice.run(&["put", local.to_str().unwrap(), "quota/one.txt"]));
    let message = fails_with(alice.run(&["put", local.to_str().unwrap(), "quota/two.txt"]), 8);
    assert!(
        message.contains("[quota] ") && message.contains("quota exceeded"),
        "{message}"
    );
    assert!(!message.contains("\tat "), "no Java stack trace: {message}");
    fails_with(alice.run(&["stat", "quota/two.txt"]), 5);
    let df = ok(alice.run(&["df", "quota"]));
    assert!(
        df.lines().any(|l| l.starts_with("name quota") && l.contains(" 2 ")),
        "{df}"
    );
}

#[test]
fn transfers_draw_a_progress_bar_on_a_terminal_only() {
    let cluster = shared_cluster();
    let alice = logged_in(cluster, "progress", "alice", "alicepw");
    let local = alice.dir.join("five.bin");
    std::fs::write(&local, pseudo_random(5 << 20, 11)).unwrap();
    // Not a terminal: nothing on stderr.
    let quiet = alice.run(&["put", local.to_str().unwrap(), "five-plain.bin"]);
    assert!(quiet.status.success(), "{}", text(&quiet));
    assert_eq!(stderr(&quiet), "");
    // On a terminal (script(1) gives it a pty): a bar with byte counts.
    let netdisk = alice.command(&["put", local.to_str().unwrap(), "five-tty.bin"]);
    let line: Vec<String> = std::iter::once(netdisk.get_program())
        .chain(netdisk.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    let out = Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .current_dir(&alice.dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KRB5_CONFIG", &cluster.sandbox.realm.krb5_conf)
        .env("TERM", "xterm") // without TERM, a terminal is treated as unable to draw
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let screen = text(&out);
    assert!(
        screen.contains("put five-tty.bin") && screen.contains("MiB"),
        "{screen:?}"
    );
    ok(alice.run(&["stat", "five-tty.bin"]));
}

#[test]
fn a_configuration_error_comes_before_any_password_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("netdisk.toml");
    std::fs::write(&config, "version = 1\n").unwrap();
    let out = Command::new(project_binary("netdisk"))
        .arg("--config")
        .arg(&config)
        .args(["-c", &format!("FILE:{}", dir.path().join("none").display()), "ls"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let message = fails_with(out, 2);
    assert!(message.contains("no namenode URL: set `namenode`"), "{message}");
    assert!(!message.contains("login"), "{message}");
}

#[test]
fn a_namenode_that_refuses_connections_is_named_at_once_without_library_noise() {
    let cluster = shared_cluster();
    let alice = logged_in(cluster, "refused", "alice", "alicepw");
    let dead = format!("hdfs://127.0.0.1:{}", ktbroker_tests::daemon::free_port());
    let started = Instant::now();
    let out = alice.run(&["--namenode", &dead, "ls"]);
    let took = started.elapsed();
    let message = fails_with(out, 7);
    assert!(message.contains("refuses connections"), "{message}");
    // No raw WARN lines from the HDFS client's retries (those come with -v only).
    assert!(!message.contains("WARN"), "{message}");
    // Before: a minute of retries (the call timeout), then "did not answer within 60s".
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_delivered_ticket_serves_hadoop_through_run_and_netdisk() {
    let cluster = shared_cluster();
    let sandbox = &cluster.sandbox;
    // `run --delivery ticket`: the broker sends a ticket, and Hadoop's own client uses it.
    let ccache = sandbox.ccache("bob-ticket-run");
    let mut command = Command::new(project_binary("ktbroker-kinit"));
    command
        .args([
            "run",
            "--delivery",
            "ticket",
            "--broker",
            &sandbox.broker.url,
            "--ca-file",
        ])
        .arg(&sandbox.pki.ca_cert)
        .args(["-c", &ccache, "bob", "--"])
        .args(cluster.hdfs.fs_shell_argv())
        .args(["-ls", "/user/bob"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KRB5_CONFIG", &sandbox.realm.krb5_conf);
    let out = run_with_password(command, "bobpw");
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("/user/bob/secret.txt"), "{}", text(&out));
    assert_eq!(sandbox.status_json(&ccache)["delivery"], "ticket");

    // netdisk, with `delivery = "ticket"` in client.toml, over both transports.
    let alice = cluster.netdisk_client("ticket-delivery", "alice");
    let alice_over_webhdfs = cluster.netdisk_client("ticket-delivery", "alice").over("webhdfs");
    let toml = alice.dir.join("client.toml");
    let text_of = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("{text_of}\ndelivery = \"ticket\"\n")).unwrap();
    ok(alice.run_with_password("alicepw", &["ls"]));
    assert_eq!(sandbox.status_json(&alice.ccache)["delivery"], "ticket");
    ok(alice_over_webhdfs.run(&["ls"]));
}
