//! Slow clients (loopback only): a connection that never finishes its request head is closed after the
//! header-read timeout, 300 of them do not stop `/healthz` answering, and connections past the cap are closed
//! at once rather than held.

use crate::common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection that sends half a request head and then nothing.
async fn slow_client(app: &TestApp) -> TcpStream {
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    stream
}

/// Waits until `deadline` for the server to close `stream`; true when it did.
async fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // hyper may answer 408 before closing; keep reading until the close.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn healthz_answers_under_300_slow_connections_which_are_then_dropped() {
    let app = spawn_with(|s| s.header_read_timeout = Duration::from_secs(2)).await;
    let mut slow = Vec::new();
    for _ in 0..300 {
        slow.push(slow_client(&app).await);
    }
    let started = Instant::now();
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Every slow connection is closed by the server once the header-read timeout has passed (one deadline for
    // all of them, so the test stays bounded when they are not).
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut closed = 0;
    for stream in &mut slow {
        if closed_by(stream, deadline).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 300);
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once() {
    let app = spawn_with(|s| {
        s.max_connections = 4;
        s.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(slow_client(&app).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let _ = fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_millis(900), fifth.read_to_end(&mut answer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed without an answer: {read:?} {}",
        String::from_utf8_lossy(&answer)
    );
    // Once the slow ones are dropped, the server answers again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    drop(slow);
}
