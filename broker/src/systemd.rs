//! The systemd service protocol, sd_notify(3), without libsystemd: datagrams to `$NOTIFY_SOCKET`
//! saying READY=1 once the broker listens, RELOADING=1 / READY=1 around a SIGHUP reload,
//! STOPPING=1 on shutdown, and WATCHDOG=1 at half of `$WATCHDOG_USEC`. Outside systemd (no
//! socket) every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Notifier {
    target: Option<SocketAddr>,
    watchdog: Option<Duration>,
}

/// The variables through which systemd speaks to the service: its children must not inherit them.
pub const VARIABLES: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

impl Notifier {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`. The environment is left as it
    /// is: the processes the broker starts (kadmin) are spawned without [`VARIABLES`], so they
    /// never talk to systemd in its name.
    pub fn from_env() -> Self {
        let [socket, usec, pid] = VARIABLES.map(|name| std::env::var(name).ok());
        Self::new(socket.as_deref(), usec.as_deref(), pid.as_deref(), std::process::id())
    }

    /// From the variables' values; the watchdog applies only if `WATCHDOG_PID` is unset or ours.
    pub fn new(socket: Option<&str>, watchdog_usec: Option<&str>, watchdog_pid: Option<&str>, own_pid: u32) -> Self {
        let target = socket.and_then(|name| match address(name) {
            Ok(address) => Some(address),
            Err(e) => {
                tracing::warn!(socket = name, error = %e, "NOTIFY_SOCKET is unusable; not notifying systemd");
                None
            }
        });
        let ours = watchdog_pid.is_none_or(|pid| pid.parse() == Ok(own_pid));
        let watchdog = watchdog_usec
            .and_then(|usec| usec.parse::<u64>().ok())
            .filter(|usec| *usec > 0 && ours && target.is_some())
            .map(|usec| Duration::from_micros(usec / 2));
        Self { target, watchdog }
    }

    /// Sends one state message (e.g. `READY=1`); failures are logged, never fatal.
    pub fn notify(&self, state: &str) {
        let Some(target) = &self.target else { return };
        let sent = UnixDatagram::unbound().and_then(|socket| socket.send_to_addr(state.as_bytes(), target));
        if let Err(e) = sent {
            tracing::warn!(error = %e, state, "cannot notify systemd");
        }
    }

    /// How often to send WATCHDOG=1, if systemd asked for it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// RELOADING=1 with the monotonic timestamp systemd's notify-reload protocol wants.
    pub fn reloading(&self) {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }
}

/// A filesystem path, or `@name` for an abstract socket.
fn address(name: &str) -> std::io::Result<SocketAddr> {
    match name.strip_prefix('@') {
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name.as_bytes())
        }
        None if name.starts_with('/') => SocketAddr::from_pathname(name),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "neither an absolute path nor an abstract name",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_arrive_as_datagrams_on_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::new(path.to_str(), None, None, 1);
        notifier.notify("READY=1\nSTATUS=listening");
        let mut buffer = [0u8; 256];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=listening");

        let name = format!("ktbroker-test-{}", std::process::id());
        let abstract_listener = {
            use std::os::linux::net::SocketAddrExt;
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap()
        };
        Notifier::new(Some(&format!("@{name}")), None, None, 1).notify("STOPPING=1");
        let n = abstract_listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"STOPPING=1");
    }

    #[test]
    fn the_watchdog_runs_at_half_the_period_for_our_pid_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let _listener = UnixDatagram::bind(&path).unwrap();
        let socket = path.to_str();
        assert_eq!(
            Notifier::new(socket, Some("30000000"), None, 7).watchdog_interval(),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            Notifier::new(socket, Some("30000000"), Some("7"), 7).watchdog_interval(),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            Notifier::new(socket, Some("30000000"), Some("8"), 7).watchdog_interval(),
            None
        );
        assert_eq!(Notifier::new(None, Some("30000000"), None, 7).watchdog_interval(), None);
        assert_eq!(Notifier::new(socket, Some("0"), None, 7).watchdog_interval(), None);
    }

    #[test]
    fn without_a_socket_nothing_happens() {
        let notifier = Notifier::new(None, None, None, 1);
        notifier.notify("READY=1");
        assert!(Notifier::new(Some("relative/path"), None, None, 1).target.is_none());
    }
}
