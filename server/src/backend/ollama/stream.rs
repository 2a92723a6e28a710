//! Ollama's streamed chat reply: NDJSON lines decoded into [`ChatEvent`]s.

use std::time::Duration;

use futures::stream::StreamExt;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::io::StreamReader;

use super::super::body::{body_bytes, body_error};
use super::super::frames::{self, closed_early, Framing};
use super::super::{BackendError, ChatEvent, ChatStream, ReplyStats};
use super::wire::ChatChunk;

/// Longest NDJSON line accepted. Chat lines are small; this only stops a runaway peer.
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// Decodes `response` (status already checked). `stall` bounds the silence between two
/// reads of the body, `deadline` the whole reply (`budget` is its length, for messages).
pub(super) fn chat_stream(
    response: reqwest::Response,
    stall: Duration,
    deadline: Instant,
    budget: Duration,
) -> ChatStream {
    let lines = FramedRead::new(
        StreamReader::new(body_bytes(response, stall)),
        LinesCodec::new_with_max_length(MAX_LINE_BYTES),
    )
    .map(move |line| line.map_err(|error| codec_error(error, stall)));
    frames::chat_stream(lines, Lines, deadline, budget)
}

/// Ollama's framing: one chat chunk a line; the body ends only after the chunk that is done.
struct Lines;

impl Framing for Lines {
    type Frame = String;

    fn decode(&mut self, line: String) -> Result<Vec<ChatEvent>, BackendError> {
        if line.trim().is_empty() {
            return Ok(Vec::new());
        }
        decode_line(&line)
    }

    fn end(&mut self) -> Result<ChatEvent, BackendError> {
        Err(closed_early())
    }
}

fn codec_error(error: LinesCodecError, stall: Duration) -> BackendError {
    match error {
        LinesCodecError::MaxLineLengthExceeded => {
            BackendError::Protocol(format!("a line was longer than {MAX_LINE_BYTES} bytes"))
        }
        LinesCodecError::Io(error) => body_error(&error, stall),
    }
}

/// The events in one NDJSON line (thinking, then content, then the end), or its error.
fn decode_line(line: &str) -> Result<Vec<ChatEvent>, BackendError> {
    let chunk: ChatChunk = serde_json::from_str(line).map_err(|error| {
        let start: String = line.chars().take(120).collect();
        BackendError::Protocol(format!("a line is not a chat chunk ({error}): {start}"))
    })?;
    if let Some(message) = chunk.error {
        return Err(BackendError::Stream(message));
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
        // Ollama leaves out a zero (`omitempty`) but always measures all of these.
        events.push(ChatEvent::Done(ReplyStats {
            done_reason: chunk.done_reason.filter(|r| !r.is_empty()),
            input_tokens: Some(chunk.prompt_eval_count),
            output_tokens: Some(chunk.eval_count),
            load_duration_ns: Some(chunk.load_duration),
            prompt_eval_duration_ns: Some(chunk.prompt_eval_duration),
            eval_duration_ns: Some(chunk.eval_duration),
            total_duration_ns: Some(chunk.total_duration),
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
                ChatEvent::Done(ReplyStats {
                    input_tokens: Some(0),
                    output_tokens: Some(3),
                    load_duration_ns: Some(0),
                    prompt_eval_duration_ns: Some(0),
                    eval_duration_ns: Some(0),
                    total_duration_ns: Some(0),
                    done_reason: None,
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
            Err(BackendError::Stream("out of memory".into()))
        );
        assert!(matches!(
            decode_line("<html>"),
            Err(BackendError::Protocol(_))
        ));
    }
}
