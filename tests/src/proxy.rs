//! A TCP relay on loopback whose open connections can be made to go dark: bytes stop flowing both
//! ways but neither side is closed, as when a firewall or NAT drops a connection's state. New
//! connections still pass. For testing what a long-lived session does when its peer vanishes
//! without a word.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct DarkeningRelay {
    pub port: u16,
    connections: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
}

impl DarkeningRelay {
    /// Relays 127.0.0.1:`port` (chosen here) to 127.0.0.1:`target`.
    pub fn start(target: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let connections: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let registry = connections.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let dark = Arc::new(AtomicBool::new(false));
                registry.lock().expect("relay registry").push(dark.clone());
                for (from, to) in [(client.try_clone(), server.try_clone()), (Ok(server), Ok(client))] {
                    if let (Ok(from), Ok(to)) = (from, to) {
                        let dark = dark.clone();
                        std::thread::spawn(move || pump(from, to, &dark));
                    }
                }
            }
        });
        Ok(Self { port, connections })
    }

    /// Every connection open now goes dark, for good; later connections are relayed as before.
    pub fn darken_open_connections(&self) -> usize {
        let connections = self.connections.lock().expect("relay registry");
        for dark in connections.iter() {
            dark.store(true, Ordering::SeqCst);
        }
        connections.len()
    }
}

/// Copies `from` to `to` until either ends; once `dark`, holds both open and moves nothing.
fn pump(mut from: TcpStream, mut to: TcpStream, dark: &AtomicBool) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if dark.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        match from.read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) if !dark.load(Ordering::SeqCst) => {
                if to.write_all(&buffer[..n]).is_err() {
                    return;
                }
            }
            Ok(_) => {} // went dark while reading: the bytes are lost, as on the wire
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}
