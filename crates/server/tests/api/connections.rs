//! Connections: a client that sends its headers a line at a time is disconnected at the
//! header deadline, one that sends nothing at the idle timeout, and the cap on open
//! connections holds (one past it waits until another closes, then is served).

use crate::common::TestServer;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(s: &TestServer) -> TcpStream {
    TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or `within` passes): how long it took,
/// and what was read.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<(Duration, String)> {
    let started = Instant::now();
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => {
                return Some((started.elapsed(), String::from_utf8_lossy(&read).into()));
            }
            Ok(Ok(n)) => read.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_slow_to_send_its_headers_is_disconnected() {
    let s = TestServer::with(|c| {
        c.connections.header_read_timeout = Duration::from_secs(1);
        c.connections.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let mut stream = connect(&s).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // A header line every 300 ms, never the blank line that ends them.
    let mut closed_after = None;
    for i in 0..20 {
        let line = format!("X-Slow-{i}: x\r\n");
        if stream.write_all(line.as_bytes()).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await {
            Err(_) => continue,
            Ok(_) => {
                closed_after = Some(started.elapsed());
                break;
            }
        }
    }
    let closed_after = closed_after.expect("still connected after 6 s of headers");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(3),
        "{closed_after:?}"
    );
    // The server answers everyone else.
    let (status, _) = s.request("GET", "/healthz", None).await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_when_idle() {
    let s = TestServer::with(|c| {
        c.connections.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut silent = connect(&s).await;
    let (after, _) = until_closed(&mut silent, Duration::from_secs(5))
        .await
        .expect("a silent connection is still open after 5 s");
    assert!(after >= Duration::from_millis(900), "{after:?}");
    // One that made a request is closed the same once its answer is sent.
    let mut used = connect(&s).await;
    used.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (after, read) = until_closed(&mut used, Duration::from_secs(5))
        .await
        .expect("an idle kept-alive connection is still open after 5 s");
    assert!(read.starts_with("HTTP/1.1 200 OK"), "{read}");
    assert!(after >= Duration::from_millis(900), "{after:?}");
    s.stop().await;
}

#[tokio::test]
async fn the_cap_on_open_connections_holds() {
    let s = TestServer::with(|c| {
        c.connections.max = 2;
        c.connections.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let first = connect(&s).await;
    let _second = connect(&s).await;
    // Both are accepted before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect(&s).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut buf)).await;
    assert!(early.is_err(), "served past the cap: {early:?}");
    // One closes: the waiting one is served.
    drop(first);
    let (_, read) = until_closed(&mut third, Duration::from_secs(5))
        .await
        .expect("no answer once a connection closed");
    assert!(read.starts_with("HTTP/1.1 200 OK"), "{read}");
    s.stop().await;
}
