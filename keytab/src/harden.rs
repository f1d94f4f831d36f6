//! Process hardening for anything that holds keys or passwords in memory.

/// Turns off core dumps (RLIMIT_CORE 0) and marks the process non-dumpable, which also keeps
/// other processes of the same uid from ptracing it or reading its /proc/PID/mem and fds.
/// Children get a dumpable flag back at exec, so tools like kinit still work normally.
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
