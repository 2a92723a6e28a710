//! An SSE client for the server's streams, reading events into `app::types`.
use std::{pin::Pin, time::Duration};

use app::types::{JobEvent, WallEvent};
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

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
        SseStream {
            inner: Box::pin(response.bytes_stream().eventsource()),
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

    /// Every event until the stream ends.
    pub async fn collect(mut self, timeout: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = self.next_within(timeout).await {
            events.push(e);
        }
        events
    }
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
