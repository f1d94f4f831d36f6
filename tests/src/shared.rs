//! Daemons shared by every test of a test binary (slow to start, or on fixed ports): started on
//! first use by a thread that lives as long as the process (daemons die with the thread that
//! spawned them, see [`crate::daemon::Daemon::spawn`]), and stopped by an atexit handler.

use std::sync::OnceLock;

/// The value in `cell`, started by `start` on a thread of its own on first call. `at_exit` runs
/// when the process exits: it should kill the daemons (it may read `cell`, set by then) and must
/// not panic (wrap it in `catch_unwind`).
pub fn start_once<T: Send + Sync + 'static>(
    cell: &'static OnceLock<&'static T>,
    name: &str,
    start: fn() -> anyhow::Result<T>,
    at_exit: extern "C" fn(),
) -> &'static T {
    cell.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let started = start().map(|value| &*Box::leak(Box::new(value)));
                let ok = started.is_ok();
                let _ = sender.send(started);
                // Keep the daemons' parent thread alive for the rest of the run.
                if ok {
                    loop {
                        std::thread::park();
                    }
                }
            })
            .expect("spawning the thread of the shared daemons");
        let value = receiver
            .recv()
            .expect("the shared daemons' thread answers")
            .unwrap_or_else(|e| panic!("starting {name}: {e:#}"));
        // SAFETY: atexit(3) takes a plain extern "C" function, which the caller promises does
        // not unwind; the value it reads is initialized by then.
        #[allow(unsafe_code)]
        unsafe {
            libc::atexit(at_exit)
        };
        value
    })
}
