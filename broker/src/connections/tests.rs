use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn limits(max_total: usize, max_per_source: usize) -> ConnectionLimits {
    ConnectionLimits {
        max_total,
        max_per_source,
        idle_timeout: Duration::from_secs(30),
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn a_source_gets_its_cap_and_other_sources_the_rest() {
    let open = OpenConnections::new(limits(5, 2));
    let first = open.admit(ip("10.0.0.1")).unwrap();
    let _second = open.admit(ip("10.0.0.1")).unwrap();
    assert_eq!(open.admit(ip("10.0.0.1")).unwrap_err(), CapReached::Source);
    let _others: Vec<_> = ["10.0.0.2", "10.0.0.2", "10.0.0.3"]
        .iter()
        .map(|a| open.admit(ip(a)).unwrap())
        .collect();
    assert_eq!(open.total(), 5);
    assert_eq!(open.admit(ip("10.0.0.4")).unwrap_err(), CapReached::Total);
    // A closed connection gives its slot back, to its source and to the total.
    drop(first);
    assert_eq!(open.total(), 4);
    let _again = open.admit(ip("10.0.0.1")).unwrap();
}

#[test]
fn an_ipv6_slash_64_is_one_source_and_the_table_empties() {
    let open = OpenConnections::new(limits(10, 2));
    let a = open.admit(ip("2001:db8:1:2::1")).unwrap();
    let b = open.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
    assert_eq!(open.admit(ip("2001:db8:1:2::77")).unwrap_err(), CapReached::Source);
    let other_net = open.admit(ip("2001:db8:1:3::1")).unwrap();
    drop((a, b, other_net));
    assert_eq!(open.total(), 0);
    assert!(open.lock().by_source.is_empty());
}

#[test]
fn the_total_cap_fits_the_open_files_limit() {
    let configured = limits(4096, 256);
    assert_eq!(configured.within_open_files(65536), None);
    let lowered = configured.within_open_files(1024).unwrap();
    assert_eq!(lowered.max_total, 1024 - OTHER_DESCRIPTORS as usize);
    assert_eq!(lowered.max_per_source, 256);
    let tiny = configured.within_open_files(100).unwrap();
    assert_eq!((tiny.max_total, tiny.max_per_source), (1, 1));
}

/// A connection to read from, its peer, and the slot table it counts in.
fn bounded(
    idle: Duration,
) -> (
    BoundedConnection<tokio::io::DuplexStream>,
    tokio::io::DuplexStream,
    Arc<OpenConnections>,
) {
    let open = OpenConnections::new(limits(10, 10));
    let (server, client) = tokio::io::duplex(1024);
    let slot = open.admit(ip("127.0.0.1")).unwrap();
    (BoundedConnection::new(server, slot, idle), client, open)
}

async fn read_error(connection: &mut BoundedConnection<tokio::io::DuplexStream>) -> std::io::Error {
    let mut buffer = [0u8; 64];
    loop {
        match connection.read(&mut buffer).await {
            Ok(0) => panic!("end of stream instead of an error"),
            Ok(_) => continue,
            Err(e) => return e,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_speaks_is_closed_after_the_preface_deadline() {
    let (mut connection, _client, open) = bounded(Duration::from_secs(30));
    let started = Instant::now();
    let error = read_error(&mut connection).await;
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(error.to_string(), "no_preface");
    assert_eq!(started.elapsed(), PREFACE_TIMEOUT);
    drop(connection);
    assert_eq!(open.total(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let (mut connection, mut client, _open) = bounded(Duration::from_secs(30));
    let started = Instant::now();
    client.write_all(&[0u8; PREFACE_LEN]).await.unwrap();
    let error = read_error(&mut connection).await;
    assert_eq!(error.to_string(), "idle");
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_request_in_flight_keeps_its_connection_and_the_timeout_counts_from_its_end() {
    let (mut connection, mut client, _open) = bounded(Duration::from_secs(30));
    let started = Instant::now();
    client.write_all(&[0u8; PREFACE_LEN]).await.unwrap();
    let busy = connection.activity.begin();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(100)).await;
        drop(busy);
    });
    let error = read_error(&mut connection).await;
    assert_eq!(error.to_string(), "idle");
    assert_eq!(started.elapsed(), Duration::from_secs(130));
}

#[tokio::test(start_paused = true)]
async fn a_repeated_event_is_logged_once_an_interval_with_the_count_left_out() {
    let throttle = LogThrottle::new(Duration::from_secs(10));
    assert_eq!(throttle.admit(), Some(0));
    assert_eq!(throttle.admit(), None);
    assert_eq!(throttle.admit(), None);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(throttle.admit(), Some(2));
    assert_eq!(throttle.admit(), None);
}
