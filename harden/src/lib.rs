//! Process hardening for anything that holds keys or passwords in memory: the broker, the helper
//! and netdisk call it first thing in `main`.
#![forbid(unsafe_code)]

/// Turns off core dumps (RLIMIT_CORE 0) and marks the process non-dumpable, which also keeps
/// other processes of the same uid from ptracing it or reading its /proc/PID/mem and fds.
/// A program exec'd afterwards (the broker's kadmin, `ktbroker-kinit run -- CMD`) gets the
/// dumpable flag back at exec; the rlimit is inherited.
pub fn forbid_core_dumps() -> std::io::Result<()> {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )?;
    Ok(())
}

/// glibc malloc settings under which freed memory is overwritten at once: every free fills the
/// block (`perturb`; a malloc fills it too, with the complement) and no block waits unwiped in a
/// per-thread cache (`tcache_count=0`; the tcache skips the fill). This reaches what zeroizing
/// types cannot: the buffers of TLS, HTTP/2 and protobuf that a password or key passed through,
/// and the C heap of libkrb5 and libkadm5 (MIT's RPC layer decrypts keys into buffers it frees
/// unwiped). The cost is one memset per malloc and free.
pub const WIPING_MALLOC_TUNABLES: &str = "glibc.malloc.tcache_count=0:glibc.malloc.perturb=165";

/// How the process's heap treats freed memory, read from `GLIBC_TUNABLES` (glibc reads it once,
/// at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreedMemory {
    /// [`WIPING_MALLOC_TUNABLES`] are in effect.
    Wiped,
    /// The administrator set `glibc.malloc.perturb` themselves (to 0, say): left as it is.
    AsConfigured,
    /// Nothing set: freed blocks keep their contents until reused.
    Kept,
}

impl FreedMemory {
    pub fn of(tunables: Option<&str>) -> Self {
        let tunables = tunables.unwrap_or("");
        let set: Vec<&str> = tunables.split(':').collect();
        if WIPING_MALLOC_TUNABLES.split(':').all(|wanted| set.contains(&wanted)) {
            Self::Wiped
        } else if set.iter().any(|t| t.starts_with("glibc.malloc.perturb=")) {
            Self::AsConfigured
        } else {
            Self::Kept
        }
    }
}

/// Makes freed heap memory be overwritten (see [`WIPING_MALLOC_TUNABLES`]): unless the
/// environment already says how, re-executes this program (its own path, same arguments,
/// same process id, so systemd's notify protocol is undisturbed) with the tunables added to
/// `GLIBC_TUNABLES`. Returns only if nothing had to change or the exec failed. Call it first
/// thing in `main`, before anything is read or started.
pub fn wipe_freed_memory() -> std::io::Result<FreedMemory> {
    use std::os::unix::process::CommandExt;
    let current = std::env::var("GLIBC_TUNABLES").ok();
    match FreedMemory::of(current.as_deref()) {
        FreedMemory::Kept => {}
        settled => return Ok(settled),
    }
    let tunables = match current.as_deref() {
        Some(other) if !other.is_empty() => format!("{other}:{WIPING_MALLOC_TUNABLES}"),
        _ => WIPING_MALLOC_TUNABLES.to_owned(),
    };
    let mut args = std::env::args_os();
    // The program's own path, so that the process keeps its name (the kernel takes it from the
    // path executed: /proc/self/exe would name it "exe"); the link itself if the file is gone
    // (replaced by an upgrade while running).
    let program = std::env::current_exe()
        .ok()
        .filter(|path| path.is_file())
        .unwrap_or_else(|| "/proc/self/exe".into());
    let mut command = std::process::Command::new(program);
    if let Some(argv0) = args.next() {
        command.arg0(argv0);
    }
    Err(command.args(args).env("GLIBC_TUNABLES", tunables).exec())
}

#[cfg(test)]
mod tests {
    use super::FreedMemory;

    #[test]
    fn the_tunables_are_recognised_and_an_admins_own_choice_kept() {
        assert_eq!(FreedMemory::of(None), FreedMemory::Kept);
        assert_eq!(FreedMemory::of(Some("glibc.malloc.arena_max=2")), FreedMemory::Kept);
        assert_eq!(FreedMemory::of(Some(super::WIPING_MALLOC_TUNABLES)), FreedMemory::Wiped);
        assert_eq!(
            FreedMemory::of(Some(
                "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0:glibc.malloc.perturb=165"
            )),
            FreedMemory::Wiped
        );
        assert_eq!(
            FreedMemory::of(Some("glibc.malloc.perturb=0")),
            FreedMemory::AsConfigured
        );
    }

    #[test]
    fn core_dumps_are_off_afterwards() {
        super::forbid_core_dumps().unwrap();
        let limit = rustix::process::getrlimit(rustix::process::Resource::Core);
        assert_eq!((limit.current, limit.maximum), (Some(0), Some(0)));
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            rustix::process::DumpableBehavior::NotDumpable
        );
    }
}
