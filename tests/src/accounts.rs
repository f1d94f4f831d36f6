//! Local Unix accounts for the demo users: pam_ktbroker.so runs the helper as the user, so the
//! PAM tests need alice, bob, carol and dave to exist on the machine (the tests run as root).

use std::process::{Command, Stdio};
use std::sync::Once;

/// Creates the demo users' local accounts if missing (no home; /bin/sh, so that the sshd tests
/// can run a command in their sessions) and gives alice the local password `alicepw` for the
/// pam_unix stacking test. Idempotent, once per process.
pub fn local_users() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for user in ["alice", "bob", "carol", "dave", "erin", "frank", "gina"] {
            let exists = Command::new("id")
                .arg("-u")
                .arg(user)
                .output()
                .expect("running id")
                .status
                .success();
            let (tool, args): (&str, &[&str]) = if exists {
                ("usermod", &["--shell", "/bin/sh"])
            } else {
                ("useradd", &["--no-create-home", "--shell", "/bin/sh"])
            };
            let status = Command::new(tool)
                .args(args)
                .arg(user)
                .status()
                .unwrap_or_else(|e| panic!("{tool} (the tests run as root): {e}"));
            assert!(status.success(), "{tool} {user}");
        }
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("running chpasswd");
        use std::io::Write;
        chpasswd
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(b"alice:alicepw\n")
            .expect("writing to chpasswd");
        assert!(chpasswd.wait().expect("waiting for chpasswd").success());
    });
}

/// The local uid of `user`.
pub fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").arg("-u").arg(user).output().expect("running id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no local user {user}"))
}
