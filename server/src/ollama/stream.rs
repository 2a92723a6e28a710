//! `ChatStream`: a streamed chat reply decoded from NDJSON into tokens and final statistics.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{BoxStream, Stream, StreamExt};
use tokio::time::Instant;
use tokio_util::bytes::Bytes;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::io::StreamReader;

use super::error::{describe, OllamaError};
use super::wire::ChatChunk;

/// Longest NDJSON line accepted. Chat lines are small; this only stops a runaway peer.
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// What a chat stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// A piece of the answer (`message.content`); empty chunks are skipped. A chunk is about
    /// one token: count them as a live estimate, take `eval_count` as the truth at the end.
    Token(String),
    /// A piece of a thinking model's reasoning (`message.thinking`), streamed before the answer.
    Thinking(String),
    /// The final chunk's statistics; the stream ends after it.
    Done(FinalStats),
}

/// The statistics of Ollama's final chunk. Durations are nanoseconds; a field Ollama left
/// out is 0. Decode speed in tokens/s is `eval_count / eval_duration_ns * 1e9`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalStats {
    /// `stop`, or `length` when `num_predict` cut the reply.
    pub done_reason: Option<String>,
    pub total_duration_ns: u64,
    pub load_duration_ns: u64,
    pub prompt_eval_count: u64,
    pub prompt_eval_duration_ns: u64,
    pub eval_count: u64,
    pub eval_duration_ns: u64,
}

/// A chat reply as it streams in: `Stream<Item = Result<ChatEvent, OllamaError>>`.
///
/// It ends after `Done`, or after the first error. Dropping it closes the HTTP connection,
/// which is how Ollama is told to stop generating (there is no cancel endpoint). Polling it
/// is cancel-safe: a `select!` that drops `next()` loses nothing.
pub struct ChatStream {
    events: BoxStream<'static, Result<ChatEvent, OllamaError>>,
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream").finish_non_exhaustive()
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatEvent, OllamaError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_next_unpin(cx)
    }
}

/// Why the body stopped, carried through `io::Error` so it survives the line codec.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("no data for the stall timeout")]
    Stalled,
    #[error("{0}")]
    Transport(String),
}

impl ChatStream {
    /// Decodes `response` (status already checked). `stall` bounds the silence between two
    /// reads of the body, `deadline` the whole reply (`budget` is its length, for messages).
    pub(super) fn new(
        response: reqwest::Response,
        stall: Duration,
        deadline: Instant,
        budget: Duration,
    ) -> ChatStream {
        let lines = FramedRead::new(
            StreamReader::new(body_bytes(response, stall)),
            LinesCodec::new_with_max_length(MAX_LINE_BYTES),
        );
        let decoder = Decoder {
            lines,
            pending: VecDeque::new(),
            finished: false,
            stall,
            deadline,
            budget,
        };
        let events = futures::stream::unfold(decoder, |mut decoder| async move {
            let event = decoder.next_event().await?;
            Some((event, decoder))
        });
        ChatStream {
            events: events.boxed(),
        }
    }
}

/// The response body as a byte stream that fails with `Stalled` after `stall` of silence.
fn body_bytes(
    response: reqwest::Response,
    stall: Duration,
) -> BoxStream<'static, io::Result<Bytes>> {
    futures::stream::unfold(Some(response), move |response| async move {
        let mut response = response?;
        match tokio::time::timeout(stall, response.chunk()).await {
            Ok(Ok(Some(chunk))) => Some((Ok(chunk), Some(response))),
            Ok(Ok(None)) => None,
            Ok(Err(error)) => {
                let error = BodyError::Transport(describe(&error));
                Some((Err(io::Error::other(error)), None))
            }
            // Dropping the response here closes the connection, so Ollama stops too.
            Err(_) => Some((Err(io::Error::other(BodyError::Stalled)), None)),
        }
    })
    .boxed()
}

struct Decoder<L> {
    lines: L,
    pending: VecDeque<ChatEvent>,
    finished: bool,
    stall: Duration,
    deadline: Instant,
    budget: Duration,
}

impl<L> Decoder<L>
where
    L: Stream<Item = Result<String, LinesCodecError>> + Unpin,
{
    /// The next event, error, or `None` once the stream is over.
    async fn next_event(&mut self) -> Option<Result<ChatEvent, OllamaError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            let line = match tokio::time::timeout_at(self.deadline, self.lines.next()).await {
                Ok(Some(Ok(line))) => line,
                Ok(Some(Err(error))) => return self.fail(self.codec_error(error)),
                Ok(None) => {
                    return self.fail(OllamaError::Transport(
                        "it closed the connection before the reply was complete".into(),
                    ))
                }
                Err(_) => return self.fail(OllamaError::DeadlineExceeded { after: self.budget }),
            };
            if line.trim().is_empty() {
                continue;
            }
            match decode_line(&line) {
                Ok(events) => {
                    self.finished = matches!(events.last(), Some(ChatEvent::Done(_)));
                    self.pending.extend(events);
                }
                Err(error) => return self.fail(error),
            }
        }
    }

    fn fail(&mut self, error: OllamaError) -> Option<Result<ChatEvent, OllamaError>> {
        self.finished = true;
        Some(Err(error))
    }

    fn codec_error(&self, error: LinesCodecError) -> OllamaError {
        match error {
            LinesCodecError::MaxLineLengthExceeded => {
                OllamaError::Protocol(format!("a line was longer than {MAX_LINE_BYTES} bytes"))
            }
            LinesCodecError::Io(error) => {
                match error.get_ref().and_then(|e| e.downcast_ref::<BodyError>()) {
                    Some(BodyError::Stalled) => OllamaError::Stalled { after: self.stall },
                    Some(BodyError::Transport(message)) => OllamaError::Transport(message.clone()),
                    None if error.kind() == io::ErrorKind::InvalidData => {
                        OllamaError::Protocol("a line was not valid UTF-8".into())
                    }
                    None => OllamaError::Transport(error.to_string()),
                }
            }
        }
    }
}

/// The events in one NDJSON line (thinking, then content, then the end), or its error.
fn decode_line(line: &str) -> Result<Vec<ChatEvent>, OllamaError> {
    let chunk: ChatChunk = serde_json::from_str(line).map_err(|error| {
        let start: String = line.chars().take(120).collect();
        OllamaError::Protocol(format!("a line is not a chat chunk ({error}): {start}"))
    })?;
    if let Some(message) = chunk.error {
        return Err(OllamaError::Stream(message));
    }
    let mut events = Vec::with_capacity(1);
    if let Some(message) = chunk.message {
        if let Some(thinking) = message.thinking.filter(|t| !t.is_empty()) {
            events.push(ChatEvent::Thinking(thinking));
        }
        if !message.content.is_empty() {
            events.push(ChatEvent::Token(message.content));
        }
    }
    if chunk.done {
        events.push(ChatEvent::Done(FinalStats {
            done_reason: chunk.done_reason.filter(|r| !r.is_empty()),
            total_duration_ns: chunk.total_duration,
            load_duration_ns: chunk.load_duration,
            prompt_eval_count: chunk.prompt_eval_count,
            prompt_eval_duration_ns: chunk.prompt_eval_duration,
            eval_count: chunk.eval_count,
            eval_duration_ns: chunk.eval_duration,
        }));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_can_carry_thinking_content_and_the_end() {
        let events = decode_line(
            r#"{"message":{"role":"assistant","content":"Hi","thinking":"hmm"},"done":true,"eval_count":3}"#,
        )
        .unwrap();
        assert_eq!(
            events,
            [
                ChatEvent::Thinking("hmm".into()),
                ChatEvent::Token("Hi".into()),
                ChatEvent::Done(FinalStats {
                    eval_count: 3,
                    ..FinalStats::default()
                }),
            ]
        );
    }

    #[test]
    fn empty_chunks_yield_nothing() {
        let line = r#"{"message":{"role":"assistant","content":""},"done":false}"#;
        assert_eq!(decode_line(line).unwrap(), []);
    }

    #[test]
    fn error_lines_and_garbage_are_errors() {
        assert_eq!(
            decode_line(r#"{"error":"out of memory"}"#),
            Err(OllamaError::Stream("out of memory".into()))
        );
        assert!(matches!(
            decode_line("<html>"),
            Err(OllamaError::Protocol(_))
        ));
    }
}
