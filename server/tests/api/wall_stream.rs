//! The wall's live stream against the real binary: version 2's short deltas fold into exactly
//! the answer version 1 sends whole, and the stream, written past hyper straight to the socket,
//! keeps the middleware's headers, works on a kept-alive connection, and gives its place back
//! the moment its client leaves.
use std::{collections::HashMap, time::Duration};

use app::{
    live::apply::{self, Applied},
    types::{EventName, JobView, WallEvent},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    deadline::eventually,
    process::AppProcess,
    sse::{wall_event, SseStream},
    test_app::{ai_prompt, browser, create_ai_post, fake_ollama},
};

const WITHIN: Duration = Duration::from_secs(20);

/// What one wall stream made of a job: its text and blocks folded from the events, the final
/// answer, and how many progress events (and their bytes) came whole and in short.
#[derive(Default)]
struct Followed {
    folded: Option<JobView>,
    done: Option<(String, Vec<String>)>,
    whole: (usize, usize),
    short: (usize, usize),
}

/// Reads `stream` until job `job_id` is done, folding its events as the browser does.
async fn follow(stream: &mut SseStream, job_id: i64) -> Followed {
    let mut views: HashMap<i64, JobView> = HashMap::new();
    let mut seen = Followed::default();
    while seen.done.is_none() {
        let event = stream
            .next_within(WITHIN)
            .await
            .expect("the stream goes on");
        let size = event.data.len();
        let applied = match wall_event(&event) {
            WallEvent::Snapshot(s) => {
                views.extend(s.posts.into_iter().filter_map(|p| p.job).map(|j| (j.id, j)));
                views.extend(s.jobs.into_iter().map(|j| (j.id, j)));
                Applied::Updated
            }
            WallEvent::Job(view) => {
                views.insert(view.id, view);
                Applied::Updated
            }
            WallEvent::Post(post) => {
                views.extend(post.job.map(|j| (j.id, j)));
                Applied::Updated
            }
            WallEvent::Progress(p) if p.job_id == job_id => {
                seen.whole = (seen.whole.0 + 1, seen.whole.1 + size);
                apply::progress(views.get_mut(&job_id).expect("known job"), &p)
            }
            WallEvent::Delta(d) if d.job_id == job_id => {
                seen.short = (seen.short.0 + 1, seen.short.1 + size);
                apply::delta(views.get_mut(&job_id).expect("known job"), &d)
            }
            WallEvent::Done(d) if d.job_id == job_id => {
                seen.done = Some((d.text, d.blocks));
                Applied::Updated
            }
            _ => Applied::Updated,
        };
        assert_ne!(applied, Applied::Gap, "{} {}", event.event, event.data);
    }
    seen.folded = views.remove(&job_id);
    seen
}

#[tokio::test]
async fn version_2_sends_the_answer_in_short_deltas_that_fold_into_exactly_what_version_1_sends() {
    let fake = fake_ollama(100.0, 80).await;
    let dir = tempfile::tempdir().unwrap();
    let app = AppProcess::start(dir.path(), 0, &[("AIWALL_OLLAMA__URL", fake.url())]).await;
    let c = browser();
    let mut v1 = SseStream::open(&c, &format!("{}/api/v1/wall/events", app.url), None).await;
    let mut v2 = SseStream::open(&c, &format!("{}/api/v2/wall/events", app.url), None).await;
    let (_, job_id) = create_ai_post(&c, &app.url, &ai_prompt("a long answer")).await;

    let (v1, v2) = tokio::join!(follow(&mut v1, job_id), follow(&mut v2, job_id));
    for (version, seen) in [("v1", &v1), ("v2", &v2)] {
        let (text, blocks) = seen.done.clone().unwrap();
        let folded = seen.folded.as_ref().unwrap();
        assert!(!text.is_empty());
        assert_eq!(
            folded.text, text,
            "{version}: the text folded from its events"
        );
        assert_eq!(
            folded.blocks, blocks,
            "{version}: the blocks patched from its events"
        );
    }
    assert_eq!(v1.short.0, 0, "version 1 sends every event whole");
    assert!(v1.whole.0 >= 10, "{:?}", v1.whole);
    // Status changes go whole on v2 too; the answer's text goes in short.
    assert!(
        v2.short.0 > 2 * v2.whole.0,
        "short {:?}, whole {:?}",
        v2.short,
        v2.whole
    );
    let average = |(n, bytes): (usize, usize)| bytes / n.max(1);
    assert!(
        average(v2.short) * 2 < average(v1.whole),
        "a short event is under half a whole one: {} and {} bytes",
        average(v2.short),
        average(v1.whole)
    );
}

/// Waits until a stream at `wall` is granted: the one place a client has (`sse_per_client=1`)
/// was given back.
async fn place_given_back(wall: &str, within: Duration) {
    eventually(within, "the stream's place is given back", || async {
        let response = browser().get(wall).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
}

/// Reads from `socket` until `text` has arrived; everything read.
async fn read_until(socket: &mut TcpStream, text: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WITHIN, async {
        while !String::from_utf8_lossy(&got).contains(text) {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before {text:?}: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {text:?} within {WITHIN:?}"));
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn the_stream_keeps_its_headers_on_a_kept_alive_connection_and_its_place_is_free_once_its_client_leaves(
) {
    let dir = tempfile::tempdir().unwrap();
    let env = [("AIWALL_LIMITS__SSE_PER_CLIENT", "1".to_string())];
    let app = AppProcess::start(dir.path(), 0, &env).await;
    let wall = format!("{}/api/v2/wall/events", app.url);

    // A browser asks for the stream on a connection that already served a request.
    let mut socket = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: wall\r\n\r\n")
        .await
        .unwrap();
    let health = read_until(&mut socket, "\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let length: usize = health
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("a content length");
    let body_read = health.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len());
    let mut rest = vec![0u8; length - body_read];
    socket.read_exact(&mut rest).await.unwrap();
    socket
        .write_all(
            b"GET /api/v2/wall/events HTTP/1.1\r\nhost: wall\r\naccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
    let stream = read_until(&mut socket, "event: snapshot\ndata: ").await;
    let (head, body) = stream.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    for header in [
        "content-type: text/event-stream",
        "cache-control: no-cache",
        "x-accel-buffering: no",
        "connection: close",
        "content-security-policy: default-src 'none'",
        "x-content-type-options: nosniff",
    ] {
        assert!(head.contains(header), "{header} in\n{head}");
    }
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(body.starts_with("retry: 1000\n"), "{body}");

    // Its one place is taken...
    let refused = browser().get(&wall).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    // ...and given back when the client goes, without a byte sent to notice it.
    drop(socket);
    place_given_back(&wall, WITHIN).await;

    // A HEAD request gets the head only, and the place back: once the server has seen the
    // client of the stream that found the place free leave (until then, 429 is right).
    let head = eventually(WITHIN, "a HEAD answered with the head", || async {
        let head = tokio::time::timeout(WITHIN, browser().head(&wall).send())
            .await
            .expect("a HEAD answered at once")
            .ok()?;
        (head.status() != 429).then_some(head)
    })
    .await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "text/event-stream");
    let mut stream = SseStream::open(&browser(), &wall, None).await;
    let first = stream.next_within(WITHIN).await.unwrap();
    assert_eq!(first.event, EventName::Snapshot.as_str());
}

/// One paragraph growing to the most a post keeps (64 KiB) in some 1,000 events over about
/// 17 s: v1 sends it whole each time, some 19 MB in all, far more than a socket's buffers hold
/// (at most 4 MiB here for the server's).
const FLOOD: &str = "a long answer #fake:tokens=1024 #fake:rate=60 #fake:token-bytes=64";

/// A client with a small receive buffer that asks for the wall stream (v1: whole events, which
/// fill the sockets' buffers quickly), and reads only what the test reads.
async fn slow_reader(port: u16) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    stream
        .write_all(b"GET /api/v1/wall/events HTTP/1.1\r\nhost: wall\r\n\r\n")
        .await
        .unwrap();
    stream
}

/// A watcher that stops reading while the wall moves is not replayed what it missed: once it
/// reads again, after what its socket's buffers held, it gets a fresh snapshot with the finished
/// answer, where a watcher that kept reading got every event.
#[tokio::test]
async fn a_watcher_that_fell_behind_gets_a_fresh_snapshot_not_the_backlog() {
    let fake = fake_ollama(0.0, 10).await;
    let dir = tempfile::tempdir().unwrap();
    // The stalled watcher's write waits for longer than any slow machine takes for the flood.
    let env = [
        ("AIWALL_OLLAMA__URL", fake.url()),
        ("AIWALL_SERVER__IDLE_TIMEOUT_SECS", "300".to_string()),
    ];
    let app = AppProcess::start(dir.path(), 0, &env).await;
    let c = browser();
    let wall = format!("{}/api/v1/wall/events", app.url);

    // One watcher reads everything.
    let mut steady = SseStream::open(&c, &wall, None).await;
    // Another reads nothing while the answer is written: the stalled watcher falls more
    // batches behind than it may.
    let stalled = slow_reader(app.port).await;
    let (_, job_id) = create_ai_post(&c, &app.url, &ai_prompt(FLOOD)).await;
    let mut every = 0;
    let answer = loop {
        let event = steady
            .next_within(WITHIN)
            .await
            .expect("the stream goes on");
        match wall_event(&event) {
            WallEvent::Progress(p) if p.job_id == job_id => every += 1,
            WallEvent::Done(done) if done.job_id == job_id => break done.text,
            _ => {}
        }
    };
    assert!(every > 600, "{every} progress events");

    // Reading again: the snapshot it was first sent, what the buffers held, then a fresh
    // snapshot with the finished answer, not the rest of the events.
    let mut stream = SseStream::from_socket(stalled).await;
    let first = stream.next_within(WITHIN).await.unwrap();
    assert_eq!(first.event, EventName::Snapshot.as_str());
    let mut replayed = 0;
    let fresh = loop {
        let event = stream.next_within(WITHIN).await.expect("a fresh snapshot");
        match wall_event(&event) {
            WallEvent::Snapshot(snapshot) => break snapshot,
            WallEvent::Progress(_) => replayed += 1,
            WallEvent::Done(_) => panic!("the whole backlog, {replayed} progress events, replayed"),
            _ => {}
        }
    };
    assert!(replayed < every, "{replayed} of {every}");
    let job = fresh
        .posts
        .into_iter()
        .find_map(|p| p.job.filter(|j| j.id == job_id))
        .expect("the job in the fresh snapshot");
    // A finished answer that long comes folded on the wall ("Show all" fetches the rest).
    assert_eq!(job.status, app::types::JobStatus::Completed);
    assert!(job.folded && answer.starts_with(&job.text), "{job:?}");
}

/// A client that stops reading altogether is let go: once its socket has taken nothing for
/// `server.idle_timeout_secs`, its stream is closed and its place given back (it would hold the
/// wall's batches meanwhile).
#[tokio::test]
async fn a_watcher_that_never_reads_again_is_closed_and_its_place_given_back() {
    let fake = fake_ollama(0.0, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AIWALL_OLLAMA__URL", fake.url()),
        ("AIWALL_LIMITS__SSE_PER_CLIENT", "1".to_string()),
        ("AIWALL_SERVER__IDLE_TIMEOUT_SECS", "3".to_string()),
    ];
    let app = AppProcess::start(dir.path(), 0, &env).await;
    let wall = format!("{}/api/v1/wall/events", app.url);
    let mut stalled = slow_reader(app.port).await;
    read_until(&mut stalled, "event: snapshot").await;
    // Its one place is taken.
    let refused = browser().get(&wall).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    // More than the sockets' buffers hold, while the client reads nothing.
    create_ai_post(&browser(), &app.url, &ai_prompt(FLOOD)).await;
    // Once it has taken nothing for 3 s.
    place_given_back(&wall, Duration::from_secs(60)).await;
    drop(stalled);
}

/// A request sent behind the stream's on the same connection (pipelined) cannot be answered
/// once the stream has the socket: the connection is closed, and the stream's place given back.
#[tokio::test]
async fn a_request_pipelined_behind_the_streams_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("AIWALL_LIMITS__SSE_PER_CLIENT", "1".to_string())];
    let app = AppProcess::start(dir.path(), 0, &env).await;
    let mut socket = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    socket
        .write_all(
            b"GET /api/v2/wall/events HTTP/1.1\r\nhost: wall\r\n\r\nGET /healthz HTTP/1.1\r\nhost: wall\r\n\r\n",
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(WITHIN, socket.read_to_end(&mut got))
        .await
        .expect("the connection closed")
        .unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(!got.contains("event: snapshot"), "{got}");
    let wall = format!("{}/api/v2/wall/events", app.url);
    place_given_back(&wall, WITHIN).await;
}
