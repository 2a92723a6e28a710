//! The loop every kind's reply decoder shares: frames (Ollama's NDJSON lines, an
//! OpenAI-compatible server's SSE events) in, [`ChatEvent`]s out, under the reply's deadline,
//! ending at the final statistics or at the first error.

use std::collections::VecDeque;
use std::time::Duration;

use futures::stream::{Stream, StreamExt};
use tokio::time::Instant;

use super::{BackendError, ChatEvent, ChatStream};

/// How one kind reads the frames of its reply.
pub(super) trait Framing: Send + 'static {
    type Frame;
    /// The events one frame carries (often none), or the error it reports.
    fn decode(&mut self, frame: Self::Frame) -> Result<Vec<ChatEvent>, BackendError>;
    /// What the body's end before the final statistics means: a last event, or an error.
    fn end(&mut self) -> Result<ChatEvent, BackendError>;
}

/// The error of a reply whose connection closed before it was complete.
pub(super) fn closed_early() -> BackendError {
    BackendError::Transport("it closed the connection before the reply was complete".into())
}

/// The events of `frames` read by `framing`. The stream ends after [`ChatEvent::Done`] or
/// after the first error; past `deadline` it fails with [`BackendError::DeadlineExceeded`]
/// (`budget` is the deadline's length, for the message).
pub(super) fn chat_stream<S, F>(
    frames: S,
    framing: F,
    deadline: Instant,
    budget: Duration,
) -> ChatStream
where
    S: Stream<Item = Result<F::Frame, BackendError>> + Send + Unpin + 'static,
    F: Framing,
{
    ChatStream::new(events(frames, framing, deadline, budget))
}

/// [`chat_stream`]'s events, as a plain stream (for the decoders' own tests).
pub(super) fn events<S, F>(
    frames: S,
    framing: F,
    deadline: Instant,
    budget: Duration,
) -> impl Stream<Item = Result<ChatEvent, BackendError>> + Send + 'static
where
    S: Stream<Item = Result<F::Frame, BackendError>> + Send + Unpin + 'static,
    F: Framing,
{
    let decoder = Decoder {
        frames,
        framing,
        pending: VecDeque::new(),
        finished: false,
        deadline,
        budget,
    };
    futures::stream::unfold(decoder, |mut decoder| async move {
        let event = decoder.next_event().await?;
        Some((event, decoder))
    })
}

struct Decoder<S, F> {
    frames: S,
    framing: F,
    /// Events decoded from a frame and not yet given out.
    pending: VecDeque<ChatEvent>,
    finished: bool,
    deadline: Instant,
    budget: Duration,
}

impl<S, F> Decoder<S, F>
where
    S: Stream<Item = Result<F::Frame, BackendError>> + Unpin,
    F: Framing,
{
    /// The next event, error, or `None` once the stream is over.
    async fn next_event(&mut self) -> Option<Result<ChatEvent, BackendError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            let decoded = match tokio::time::timeout_at(self.deadline, self.frames.next()).await {
                Ok(Some(Ok(frame))) => self.framing.decode(frame),
                Ok(Some(Err(error))) => Err(error),
                Ok(None) => {
                    self.finished = true;
                    self.framing.end().map(|last| vec![last])
                }
                Err(_) => Err(BackendError::DeadlineExceeded { after: self.budget }),
            };
            match decoded {
                Ok(events) => {
                    self.finished |= matches!(events.last(), Some(ChatEvent::Done(_)));
                    self.pending.extend(events);
                }
                Err(error) => {
                    self.finished = true;
                    return Some(Err(error));
                }
            }
        }
    }
}
