//! A TCP relay on loopback whose connections can be made to go dark (bytes stop flowing both ways
//! but neither side is closed, as when a firewall or NAT drops a connection's state) or be cut
//! (both sides closed at once, as when a peer dies). For testing what a long-lived session or a
//! call in flight does when its peer vanishes. It can also hold every chunk for a while each way,
//! as a peer on another host would, and counts the connections it accepted.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct DarkeningRelay {
    pub port: u16,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Every connection from now on is dark too.
    all_dark: AtomicBool,
    connections: Mutex<Vec<Relayed>>,
    accepted: AtomicUsize,
    /// How long each chunk is held before it goes on, each way.
    delay: Duration,
}

struct Relayed {
    dark: Arc<AtomicBool>,
    client: TcpStream,
    server: TcpStream,
}

impl DarkeningRelay {
    /// Relays 127.0.0.1:`port` (chosen here) to 127.0.0.1:`target`.
    pub fn start(target: u16) -> std::io::Result<Self> {
        Self::start_delayed(target, Duration::ZERO)
    }

    /// Like [`Self::start`], every chunk held for `delay` each way (a peer that far away).
    pub fn start_delayed(target: u16, delay: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            delay,
            ..Shared::default()
        });
        let relay = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                relay.accepted.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let dark = Arc::new(AtomicBool::new(relay.all_dark.load(Ordering::SeqCst)));
                let (Ok(client_copy), Ok(server_copy)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                relay.connections.lock().expect("relay registry").push(Relayed {
                    dark: dark.clone(),
                    client: client_copy,
                    server: server_copy,
                });
                for (from, to) in [(client.try_clone(), server.try_clone()), (Ok(server), Ok(client))] {
                    if let (Ok(from), Ok(to)) = (from, to) {
                        let dark = dark.clone();
                        let delay = relay.delay;
                        std::thread::spawn(move || pump(from, to, &dark, delay));
                    }
                }
            }
        });
        Ok(Self { port, shared })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Every connection open now goes dark, for good; later connections are relayed as before.
    pub fn darken_open_connections(&self) -> usize {
        let connections = self.shared.connections.lock().expect("relay registry");
        for relayed in connections.iter() {
            relayed.dark.store(true, Ordering::SeqCst);
        }
        connections.len()
    }

    /// Every connection, open now or opened later, is dark.
    pub fn go_dark(&self) {
        self.shared.all_dark.store(true, Ordering::SeqCst);
        self.darken_open_connections();
    }

    /// Closes both sides of every connection open now (the client sees its peer vanish mid-call).
    pub fn cut_open_connections(&self) -> usize {
        let mut connections = self.shared.connections.lock().expect("relay registry");
        for relayed in connections.iter() {
            let _ = relayed.client.shutdown(Shutdown::Both);
            let _ = relayed.server.shutdown(Shutdown::Both);
        }
        let cut = connections.len();
        connections.clear();
        cut
    }
}

/// Copies `from` to `to` until either ends, each chunk after `delay`; once `dark`, holds both
/// open and moves nothing.
fn pump(mut from: TcpStream, mut to: TcpStream, dark: &AtomicBool, delay: Duration) {
    let _ = to.set_nodelay(true);
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if dark.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        match from.read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) if !dark.load(Ordering::SeqCst) => {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
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
