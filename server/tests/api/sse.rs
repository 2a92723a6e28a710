//! An SSE client for the server's streams, reading events into `app::types`; and waiting for
//! a job's state the way a browser learns it, from the job's own stream.
use std::{pin::Pin, time::Duration};

use app::types::{JobEvent, JobView, ProgressEvent, WallEvent};
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

use crate::test_app::job_at;

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<std::io::Error>>> + Send>>;

pub struct SseStream {
    inner: Events,
}

impl SseStream {
    /// Opens the stream at `url` (optionally resuming after `last_event_id`); it must answer 200.
    pub async fn open(client: &reqwest::Client, url: &str, last_event_id: Option<&str>) -> Self {
        let mut request = client.get(url);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {url}");
        let bytes = response
            .bytes_stream()
            .map(|b| b.map_err(std::io::Error::other));
        SseStream {
            inner: Box::pin(bytes.eventsource()),
        }
    }

    /// The stream on a socket its request was written to: its head, which must say 200, then
    /// its events (a close-delimited body, as the wall stream's).
    pub async fn from_socket(mut socket: tokio::net::TcpStream) -> Self {
        use tokio::io::AsyncReadExt;
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(socket.read_u8().await.expect("the response's head"));
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{head}"
        );
        let bytes = tokio_util::io::ReaderStream::new(socket);
        SseStream {
            inner: Box::pin(bytes.eventsource()),
        }
    }

    /// The next event, or `None` when the stream ended; panics after `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Event> {
        match tokio::time::timeout(timeout, self.inner.next()).await {
            Ok(Some(Ok(event))) => Some(event),
            Ok(Some(Err(e))) => panic!("SSE error: {e}"),
            Ok(None) => None,
            Err(_) => panic!("no SSE event within {timeout:?}"),
        }
    }

    /// The next event, or `None` when the stream ended or broke (its server was killed, say).
    pub async fn next_or_end(&mut self) -> Option<Event> {
        self.inner.next().await.and_then(Result::ok)
    }

    /// Every event until the stream ends.
    pub async fn collect(mut self, timeout: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = self.next_within(timeout).await {
            events.push(e);
        }
        events
    }

    /// Reads events until `found` picks one out, and returns what it gave; panics, saying
    /// `what` was awaited, if the stream ends first or `within` passes.
    pub async fn until<T>(
        &mut self,
        within: Duration,
        what: &str,
        mut found: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let search = async {
            while let Some(event) = self.inner.next().await {
                let event = event.unwrap_or_else(|e| panic!("SSE error awaiting {what}: {e}"));
                if let Some(value) = found(&event) {
                    return value;
                }
            }
            panic!("the stream ended before {what}");
        };
        tokio::time::timeout(within, search)
            .await
            .unwrap_or_else(|_| panic!("{what}: not within {within:?}"))
    }

    /// Every event until the connection ends, cleanly or broken (its server was killed).
    pub async fn until_broken(mut self, within: Duration) -> Vec<Event> {
        let read = async {
            let mut events = Vec::new();
            while let Some(Ok(event)) = self.inner.next().await {
                events.push(event);
            }
            events
        };
        tokio::time::timeout(within, read)
            .await
            .unwrap_or_else(|_| panic!("the stream still open after {within:?}"))
    }
}

/// The URL of a job's own stream on the server at `base`.
pub fn progress_url(base: &str, job_id: i64) -> String {
    format!("{base}/api/v1/ai/generation/{job_id}/progress")
}

/// Follows the job's stream until a progress event `shows` something, and returns that event;
/// panics if the job ends first.
pub async fn wait_progress_at(
    client: &reqwest::Client,
    base: &str,
    job_id: i64,
    within: Duration,
    what: &str,
    shows: impl Fn(&ProgressEvent) -> bool,
) -> ProgressEvent {
    let mut stream = SseStream::open(client, &progress_url(base, job_id), None).await;
    let what = format!("job {job_id} {what}");
    stream
        .until(within, &what, |e| match job_event(e) {
            JobEvent::Progress(p) => shows(&p).then_some(p),
            end => panic!("{what}: the job ended first: {end:?}"),
        })
        .await
}

/// Follows the job's stream to its terminal event, and returns the job's state then.
pub async fn wait_terminal_at(
    client: &reqwest::Client,
    base: &str,
    job_id: i64,
    within: Duration,
) -> JobView {
    let mut stream = SseStream::open(client, &progress_url(base, job_id), None).await;
    let what = format!("the end of job {job_id}");
    stream
        .until(within, &what, |e| job_event(e).is_terminal().then_some(()))
        .await;
    let job = job_at(client, base, job_id).await;
    assert!(
        job.status.is_terminal(),
        "after its terminal event, job {job_id} is {job:?}"
    );
    job
}

/// An event of a job's own stream, as the browser reads it.
pub fn job_event(event: &Event) -> JobEvent {
    JobEvent::decode(&event.event, &event.data)
        .unwrap_or_else(|e| panic!("not a job stream event: {e}: {event:?}"))
}

/// An event of the wall's stream, as the browser reads it.
pub fn wall_event(event: &Event) -> WallEvent {
    WallEvent::decode(&event.event, &event.data)
        .unwrap_or_else(|e| panic!("not a wall stream event: {e}: {event:?}"))
}
