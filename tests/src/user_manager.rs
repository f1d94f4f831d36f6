//! A real systemd user manager (`systemd --user`, Debian's systemd) for one user, so that a test
//! can `systemctl --user start` the project's user units.
//!
//! The machine's PID 1 need not be systemd (it is not in the test containers): the manager then
//! refuses to start ("the system has not been booted with systemd"), and it needs a cgroup of its
//! own to put its units in. So it runs in a private mount namespace with an empty
//! `/run/systemd/system` (what "booted with systemd" is checked by), in a cgroup made for it and
//! delegated to the user, with the test's own runtime directory (`XDG_RUNTIME_DIR`) and home.

use crate::daemon::{Daemon, run_checked};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub struct UserManager {
    pub user: String,
    pub uid: u32,
    gid: u32,
    /// `XDG_RUNTIME_DIR`; units in `RUNTIME/systemd/user/` are found by the manager.
    pub runtime_dir: PathBuf,
    cgroups: Vec<PathBuf>,
    daemon: Option<Daemon>,
}

impl UserManager {
    /// Starts `user`'s manager with its runtime directory and home under `dir`.
    pub fn start(dir: &Path, user: &str, uid: u32) -> anyhow::Result<Self> {
        let runtime_dir = dir.join("runtime");
        let home = dir.join("home");
        for d in [&runtime_dir, &home] {
            std::fs::create_dir_all(d)?;
            run_checked(Command::new("chown").arg(format!("{user}:")).arg(d))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
        }
        let gid = gid_of(user)?;
        let name = format!("ktbroker-test-{user}-{}", std::process::id());
        let cgroups = delegated_cgroups(&name);
        anyhow::ensure!(
            !cgroups.is_empty(),
            "no cgroup2 hierarchy to delegate to the user manager"
        );
        for cgroup in &cgroups {
            std::fs::create_dir_all(cgroup)?;
            run_checked(Command::new("chown").arg("-R").arg(format!("{user}:")).arg(cgroup))?;
        }
        let join: String = cgroups
            .iter()
            .map(|c| format!("echo $$ > {}/cgroup.procs\n", c.display()))
            .collect();
        let script = format!(
            "set -e
             mount -t tmpfs tmpfs /run/systemd 2>/dev/null || {{ mkdir -p /run/systemd; mount -t tmpfs tmpfs /run/systemd; }}
             mkdir /run/systemd/system
             {join}
             exec setpriv --reuid {uid} --regid {user_gid} --init-groups env -i XDG_RUNTIME_DIR={runtime} HOME={home} \
               PATH=/usr/bin:/bin /lib/systemd/systemd --user",
            user_gid = gid,
            runtime = runtime_dir.display(),
            home = home.display(),
        );
        let log = dir.join("systemd-user.log");
        let mut command = Command::new("unshare");
        command.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
        let mut daemon = Daemon::spawn("systemd --user", &mut command, &log)?;
        let private = runtime_dir.join("systemd/private");
        daemon.wait_ready(Duration::from_secs(20), || private.exists())?;
        let manager = Self {
            user: user.to_owned(),
            uid,
            gid,
            runtime_dir,
            cgroups,
            daemon: Some(daemon),
        };
        // Ready once it answers.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !manager.systemctl(&["list-units", "--no-pager"]).status.success() {
            anyhow::ensure!(std::time::Instant::now() < deadline, "systemd --user does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(manager)
    }

    /// Installs a unit file (as the user's runtime unit) and reloads the manager.
    pub fn install_unit(&self, name: &str, text: &str) -> anyhow::Result<()> {
        let units = self.runtime_dir.join("systemd/user");
        std::fs::create_dir_all(&units)?;
        std::fs::write(units.join(name), text)?;
        run_checked(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{}:", self.user))
                .arg(&units),
        )?;
        let reload = self.systemctl(&["daemon-reload"]);
        anyhow::ensure!(reload.status.success(), "daemon-reload: {reload:?}");
        Ok(())
    }

    /// `systemctl --user ARGS` as the user, talking to this manager.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        Command::new("setpriv")
            .args([
                "--reuid",
                &self.uid.to_string(),
                "--regid",
                &self.gid.to_string(),
                "--clear-groups",
            ])
            .args(["env", "-i"])
            .arg(format!("XDG_RUNTIME_DIR={}", self.runtime_dir.display()))
            .args(["PATH=/usr/bin:/bin", "systemctl", "--user"])
            .args(args)
            .output()
            .expect("running systemctl")
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        let _ = self.systemctl(&["exit"]);
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.terminate(Duration::from_secs(5));
        }
        // Whatever the manager left, then the cgroups themselves (innermost first).
        for cgroup in &self.cgroups {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "find {c} -name cgroup.procs -exec cat {{}} + | xargs -r kill -9; sleep 0.2; \
                     find {c} -depth -type d -exec rmdir {{}} + 2>/dev/null",
                    c = cgroup.display()
                ))
                .status();
        }
    }
}

/// The cgroup directories to make for the manager: one in the cgroup2 hierarchy, and one in the
/// named `systemd` v1 hierarchy where the machine has that (a hybrid layout).
fn delegated_cgroups(name: &str) -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut found = Vec::new();
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, path, kind, options, ..] = fields.as_slice() else {
            continue;
        };
        let v1_systemd = *kind == "cgroup" && options.split(',').any(|o| o == "name=systemd");
        if *kind == "cgroup2" || v1_systemd {
            found.push(Path::new(path).join(name));
        }
    }
    found
}

fn gid_of(user: &str) -> anyhow::Result<u32> {
    let out = run_checked(Command::new("id").arg("-g").arg(user))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}
