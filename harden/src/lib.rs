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

#[cfg(test)]
mod tests {
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
