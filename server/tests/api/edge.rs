//! The public edge against the real binary: slow and half-sent requests are cut off, a flood of
//! half-open sockets cannot starve real visitors even under a 1,024-file limit, a full server
//! answers 503 but still its health checks, and SIGTERM does not wait for idle clients.
use std::time::Duration;

use app::types::{ErrorBody, ErrorCode};
use futures::StreamExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use crate::process::AppProcess;

/// A request whose headers never end: the opening of a slowloris attack.
const HALF_SENT: &[u8] = b"GET / HTTP/1.1\r\nHost: wall\r\nX-Slow: ";

/// Opens a socket to `port` and sends half a request. A server that stopped accepting fails
/// the connect after 5 s, rather than hanging the test.
async fn half_open(port: u16) -> std::io::Result<TcpStream> {
    let connect = TcpStream::connect(("127.0.0.1", port));
    let mut socket = tokio::time::timeout(Duration::from_secs(5), connect).await??;
    socket.write_all(HALF_SENT).await?;
    Ok(socket)
}

/// Reads until the server closes the socket: true if it did within `within`.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        while let Ok(n) = socket.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .is_ok()
}

/// A client that opens a new connection for every request, as a fresh visitor does.
fn visitor() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_request_whose_headers_never_end_is_closed_after_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("AIWALL_SERVER__HEADER_READ_TIMEOUT_SECS", "1".to_string())];
    let app = AppProcess::start(dir.path(), 0, &env).await;

    let mut socket = half_open(app.port).await.unwrap();
    assert!(
        closed_within(&mut socket, Duration::from_secs(3)).await,
        "a half-sent request was still open after 3 s"
    );
}

#[tokio::test]
async fn a_stalled_upload_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("AIWALL_SERVER__IDLE_TIMEOUT_SECS", "1".to_string())];
    let app = AppProcess::start(dir.path(), 0, &env).await;

    let mut socket = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let head = format!(
        "POST /api/v1/posts HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{\"text\": \"and then nothing",
        app.port
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    assert!(
        closed_within(&mut socket, Duration::from_secs(3)).await,
        "a request whose body stopped coming was still open after 3 s"
    );
}

#[tokio::test]
async fn a_quiet_live_stream_outlives_the_idle_timeout_and_still_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AIWALL_SERVER__IDLE_TIMEOUT_SECS", "1".to_string()),
        ("AIWALL_SERVER__HEADER_READ_TIMEOUT_SECS", "1".to_string()),
    ];
    let app = AppProcess::start(dir.path(), 0, &env).await;

    let response = reqwest::get(format!("{}/api/v1/wall/events", app.url))
        .await
        .unwrap();
    let mut events = eventsource_stream::EventStream::new(response.bytes_stream());
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.event, "snapshot");
    // Three idle timeouts without a byte on the stream.
    let quiet = tokio::time::timeout(Duration::from_secs(3), events.next()).await;
    assert!(quiet.is_err(), "the stream ended or spoke: {quiet:?}");

    let created = reqwest::Client::new()
        .post(format!("{}/api/v1/posts", app.url))
        .json(&app::types::NewPost {
            author_name: "Ann".into(),
            text: "still there?".into(),
        })
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let next = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("the stream delivers the new post")
        .unwrap()
        .unwrap();
    assert!(next.data.contains("still there?"), "{next:?}");
}

#[tokio::test]
async fn over_the_connection_cap_a_clear_503_while_health_checks_still_answer() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AIWALL_SERVER__MAX_CONNECTIONS", "4".to_string()),
        ("AIWALL_LIMITS__SSE_PER_CLIENT", "10".to_string()),
    ];
    let app = AppProcess::start(dir.path(), 0, &env).await;

    // Four live streams: busy connections, which are never closed to make room.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let response = visitor()
            .get(format!("{}/api/v1/wall/events", app.url))
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        let mut events = eventsource_stream::EventStream::new(response.bytes_stream());
        events.next().await.unwrap().unwrap();
        streams.push(events);
    }

    let refused = visitor()
        .get(format!("{}/api/v1/posts", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: ErrorBody = refused.json().await.unwrap();
    assert_eq!(body.error.code, ErrorCode::Overloaded);
    assert!(
        body.error.message.contains("4 connections"),
        "{}",
        body.error.message
    );

    let health = visitor()
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");

    // One stream ends: its place is free again.
    drop(streams.pop());
    crate::deadline::eventually(Duration::from_secs(5), "a place frees up", || async {
        let r = visitor()
            .get(format!("{}/api/v1/posts", app.url))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
}

/// 5,000 half-open sockets: the wall keeps answering within a second, and SIGTERM exits at
/// once. Under a 1,024-file limit (soft and hard, so the server cannot raise it) the server
/// holds at most 896 connections and makes room by closing the oldest half-open ones.
async fn slowloris_of_5000(
    dir: &std::path::Path,
    env: &[(&str, String)],
    file_limit: Option<(u64, u64)>,
) -> AppProcess {
    // One flood at a time: together they would need 10,000 of this process's files, and each
    // measures how fast the wall answers.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _alone = ONE_AT_A_TIME.lock().await;
    // This test's own sockets need room too.
    let files = rlimit::increase_nofile_limit(1 << 20).unwrap();
    assert!(
        files >= 5_500,
        "this test needs 5,500 open files; the limit is {files}"
    );
    let mut app = AppProcess::start_limited(dir, 0, env, file_limit).await;

    let port = app.port;
    let mut attackers = Vec::with_capacity(5_000);
    for _ in 0..50 {
        let batch = futures::future::join_all((0..100).map(|_| half_open(port))).await;
        attackers.extend(batch.into_iter().filter_map(Result::ok));
    }
    assert!(
        attackers.len() >= 4_900,
        "only {} of 5,000 sockets connected",
        attackers.len()
    );

    for path in ["/healthz", "/"] {
        let started = Instant::now();
        let response = visitor()
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path} did not answer within 1 s: {e}"));
        assert_eq!(response.status(), 200, "{path}");
        let body = response.text().await.unwrap();
        assert!(!body.is_empty());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{path} took {:?}",
            started.elapsed()
        );
    }

    app.sigterm().await;
    let exit = app.wait_exit(Duration::from_secs(3)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "SIGTERM with 5,000 half-open sockets: {exit:?}"
    );
    drop(attackers);
    app
}

#[tokio::test]
async fn a_slowloris_of_5000_sockets_cannot_starve_the_wall() {
    let dir = tempfile::tempdir().unwrap();
    // Room for all 5,000 (and below what a common hard file limit of 8,192 allows).
    let env = [("AIWALL_SERVER__MAX_CONNECTIONS", "6000".to_string())];
    let app = slowloris_of_5000(dir.path(), &env, None).await;
    assert!(!app.log().contains("holds only"), "{}", app.log());
}

#[tokio::test]
async fn a_slowloris_of_5000_sockets_under_a_1024_file_limit_cannot_starve_the_wall() {
    let dir = tempfile::tempdir().unwrap();
    let app = slowloris_of_5000(dir.path(), &[], Some((1_024, 1_024))).await;
    let log = app.log();
    assert!(
        log.contains("open-file limit: soft 1024 raised to 1024 (hard limit 1024)"),
        "{log}"
    );
    assert!(log.contains("holds only 896 connections"), "{log}");
}

#[tokio::test]
async fn sigterm_closes_idle_and_half_open_connections_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = AppProcess::start(dir.path(), 0, &[]).await;

    let mut half_opens = Vec::new();
    for _ in 0..300 {
        half_opens.push(half_open(app.port).await.unwrap());
    }
    // A kept-alive connection after one answered request.
    let mut kept = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: wall\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    app.sigterm().await;
    let exit = app.wait_exit(Duration::from_secs(3)).await;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    assert!(closed_within(&mut kept, Duration::from_secs(1)).await);
}

#[tokio::test]
async fn the_server_raises_its_soft_file_limit_to_the_hard_one_and_logs_both() {
    let dir = tempfile::tempdir().unwrap();
    let app = AppProcess::start_limited(dir.path(), 0, &[], Some((1_024, 4_096))).await;

    let limits = std::fs::read_to_string(format!("/proc/{}/limits", app.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["4096", "4096"], "{open_files}");
    assert!(app
        .log()
        .contains("open-file limit: soft 1024 raised to 4096 (hard limit 4096)"));
}
