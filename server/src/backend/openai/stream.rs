//! An OpenAI-compatible streamed chat reply: SSE `data:` events decoded into [`ChatEvent`]s,
//! ending at `data: [DONE]` with the statistics the server reported on the way.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::stream::{BoxStream, Stream, StreamExt};
use tokio::time::Instant;
use tokio_util::bytes::Bytes;

use super::super::body::{body_bytes, body_error};
use super::super::frames::{self, closed_early, Framing};
use super::super::{BackendError, ChatEvent, ChatStream, ReplyStats};
use super::wire::{ChatChunk, ErrorInfo, Timings};

/// Longest SSE event accepted, counted in bytes received since the last event. Chunks are
/// small; this only stops a runaway peer (the SSE decoder itself buffers without a bound).
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// Why the byte stream was cut, carried through `io::Error` and the SSE decoder.
#[derive(Debug, thiserror::Error)]
#[error("an event was longer than {MAX_EVENT_BYTES} bytes")]
struct EventTooLong;

/// Decodes `response` (status already checked). `stall` bounds the silence between two
/// reads of the body, `deadline` the whole reply (`budget` is its length, for messages).
pub(super) fn chat_stream(
    response: reqwest::Response,
    stall: Duration,
    deadline: Instant,
    budget: Duration,
) -> ChatStream {
    frames::chat_stream(
        sse_events(body_bytes(response, stall), stall),
        Reply::default(),
        deadline,
        budget,
    )
}

/// The SSE events of a body, each no longer than [`MAX_EVENT_BYTES`], its errors read as
/// [`BackendError`]s.
fn sse_events(
    bytes: impl Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    stall: Duration,
) -> BoxStream<'static, Result<Event, BackendError>> {
    // Bytes received since the last event: counted as they come, reset at each event.
    let since_event = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&since_event);
    let bytes = bytes.map(move |chunk| {
        let chunk = chunk?;
        let seen = counter.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
        if seen > MAX_EVENT_BYTES {
            return Err(io::Error::other(EventTooLong));
        }
        Ok(chunk)
    });
    bytes
        .eventsource()
        .map(move |event| {
            since_event.store(0, Ordering::Relaxed);
            event.map_err(|error| decode_error(error, stall))
        })
        .boxed()
}

fn decode_error(error: EventStreamError<io::Error>, stall: Duration) -> BackendError {
    match error {
        EventStreamError::Transport(error) => {
            match error
                .get_ref()
                .and_then(|e| e.downcast_ref::<EventTooLong>())
            {
                Some(too_long) => BackendError::Protocol(too_long.to_string()),
                None => body_error(&error, stall),
            }
        }
        EventStreamError::Utf8(_) => BackendError::Protocol("the reply was not valid UTF-8".into()),
        EventStreamError::Parser(error) => BackendError::Protocol(format!(
            "the reply is not a server-sent event stream: {error}"
        )),
    }
}

/// The OpenAI-compatible framing: one SSE event a chunk, `[DONE]` at the end.
impl Framing for Reply {
    type Frame = Event;

    fn decode(&mut self, event: Event) -> Result<Vec<ChatEvent>, BackendError> {
        self.take(&event)
    }

    fn end(&mut self) -> Result<ChatEvent, BackendError> {
        self.end_without_done()
    }
}

/// What the reply has told so far that the final statistics need.
#[derive(Debug, Default)]
struct Reply {
    finish_reason: Option<String>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    timings: Option<Timings>,
}

impl Reply {
    /// The events in one SSE event (prompt progress, reasoning, answer, or the end), or its
    /// error. Events of another type than the default are skipped, except `error`.
    fn take(&mut self, event: &Event) -> Result<Vec<ChatEvent>, BackendError> {
        let data = event.data.trim();
        if event.event == "error" {
            return Err(BackendError::Stream(stream_error_text(data)));
        }
        if event.event != "message" || data.is_empty() {
            return Ok(Vec::new());
        }
        if data == "[DONE]" {
            // Every reply that ends well says why; llama.cpp reports an error in the middle of
            // a reply as an `error:` field (which SSE readers skip) and then `[DONE]`.
            if self.finish_reason.is_none() {
                return Err(BackendError::Stream(
                    "the reply ended without a finish reason (the model server may have reported an error in a form it cannot read)".into(),
                ));
            }
            return Ok(vec![ChatEvent::Done(self.stats())]);
        }
        let chunk: ChatChunk = serde_json::from_str(data).map_err(|error| {
            let start: String = data.chars().take(120).collect();
            BackendError::Protocol(format!("an event is not a chat chunk ({error}): {start}"))
        })?;
        if let Some(info) = chunk.error.as_ref().and_then(ErrorInfo::from_error) {
            return Err(BackendError::Stream(info.message));
        }
        if chunk.object.as_deref() == Some("error") {
            return Err(BackendError::Stream(
                chunk.message.unwrap_or_else(|| "unknown error".into()),
            ));
        }
        let mut events = Vec::with_capacity(1);
        if let Some(progress) = chunk.prompt_progress {
            events.push(ChatEvent::PromptProgress {
                processed: progress.processed,
                total: progress.total,
            });
        }
        // One choice is asked for (`n` is left at 1).
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(delta) = choice.delta {
                // A server may send both names for the same text (vLLM did while renaming):
                // take one, never both.
                let reasoning = delta
                    .reasoning_content
                    .filter(|text| !text.is_empty())
                    .or(delta.reasoning.filter(|text| !text.is_empty()));
                if let Some(reasoning) = reasoning {
                    events.push(ChatEvent::Thinking(reasoning));
                }
                if let Some(content) = delta.content.filter(|text| !text.is_empty()) {
                    events.push(ChatEvent::Token(content));
                }
            }
            if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
                self.finish_reason = Some(reason);
            }
        }
        if let Some(usage) = chunk.usage {
            self.input_tokens = usage.prompt_tokens.or(self.input_tokens);
            self.output_tokens = usage.completion_tokens.or(self.output_tokens);
        }
        if chunk.timings.is_some() {
            self.timings = chunk.timings;
        }
        Ok(events)
    }

    /// The stream closed without `[DONE]`. After a `finish_reason` the reply was complete (the
    /// server ended it in its own words and then closed the body cleanly: a broken connection
    /// comes out as an error, not as an end), so it is done with what was reported; some
    /// servers do not send `[DONE]`. Without one, the reply was cut off.
    fn end_without_done(&self) -> Result<ChatEvent, BackendError> {
        if self.finish_reason.is_some() {
            Ok(ChatEvent::Done(self.stats()))
        } else {
            Err(closed_early())
        }
    }

    /// The statistics as reported: `usage` first, llama.cpp's `timings` for the durations and
    /// for the counts when there was no usage. What nobody reported stays `None`.
    fn stats(&self) -> ReplyStats {
        let timings = self.timings.as_ref();
        let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
        ReplyStats {
            done_reason: self.finish_reason.clone(),
            input_tokens: self
                .input_tokens
                .or_else(|| count(timings.and_then(|t| t.prompt_n))),
            output_tokens: self
                .output_tokens
                .or_else(|| count(timings.and_then(|t| t.predicted_n))),
            load_duration_ns: None,
            prompt_eval_duration_ns: timings.and_then(|t| nanoseconds(t.prompt_ms)),
            eval_duration_ns: timings.and_then(|t| nanoseconds(t.predicted_ms)),
            total_duration_ns: None,
        }
    }
}

/// Milliseconds as llama.cpp reports them (a float) in nanoseconds; `None` for a negative or
/// non-finite value.
fn nanoseconds(milliseconds: Option<f64>) -> Option<u64> {
    let duration = Duration::try_from_secs_f64(milliseconds? / 1000.0).ok()?;
    u64::try_from(duration.as_nanos()).ok()
}

/// The message of an `event: error` event's data: an error body, or its text as it is.
fn stream_error_text(data: &str) -> String {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|body| ErrorInfo::from_body(&body).or_else(|| ErrorInfo::from_error(&body)))
        .map(|info| info.message)
        .unwrap_or_else(|| data.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;

    /// Decodes `sse` cut into pieces of `piece` bytes, as a byte stream would bring it.
    async fn decode(sse: &str, piece: usize) -> Vec<Result<ChatEvent, BackendError>> {
        let pieces: Vec<io::Result<Bytes>> = sse
            .as_bytes()
            .chunks(piece)
            .map(|bytes| Ok(Bytes::copy_from_slice(bytes)))
            .collect();
        let stall = Duration::from_secs(1);
        let budget = Duration::from_secs(10);
        frames::events(
            sse_events(stream::iter(pieces), stall),
            Reply::default(),
            Instant::now() + budget,
            budget,
        )
        .collect()
        .await
    }

    fn data(lines: &[&str]) -> String {
        lines
            .iter()
            .map(|line| format!("data: {line}\n\n"))
            .collect()
    }

    const LLAMA_CPP: &[&str] = &[
        r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"object":"chat.completion.chunk","prompt_progress":{"total":40,"cache":8,"processed":24,"time_ms":31}}"#,
        r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"object":"chat.completion.chunk","prompt_progress":{"total":40,"cache":8,"processed":40,"time_ms":52}}"#,
        r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"reasoning_content":"Hmm"}}],"object":"chat.completion.chunk"}"#,
        r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Héllo"}}],"object":"chat.completion.chunk"}"#,
        r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":" wörld"}}],"object":"chat.completion.chunk"}"#,
        r#"{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"object":"chat.completion.chunk","timings":{"cache_n":8,"prompt_n":32,"prompt_ms":52.5,"prompt_per_second":609.5,"predicted_n":3,"predicted_ms":30.25,"predicted_per_second":99.2}}"#,
        r#"{"choices":[],"object":"chat.completion.chunk","usage":{"completion_tokens":3,"prompt_tokens":40,"total_tokens":43}}"#,
        "[DONE]",
    ];

    fn llama_cpp_events() -> Vec<Result<ChatEvent, BackendError>> {
        vec![
            Ok(ChatEvent::PromptProgress {
                processed: 24,
                total: 40,
            }),
            Ok(ChatEvent::PromptProgress {
                processed: 40,
                total: 40,
            }),
            Ok(ChatEvent::Thinking("Hmm".into())),
            Ok(ChatEvent::Token("Héllo".into())),
            Ok(ChatEvent::Token(" wörld".into())),
            Ok(ChatEvent::Done(ReplyStats {
                done_reason: Some("stop".into()),
                input_tokens: Some(40),
                output_tokens: Some(3),
                load_duration_ns: None,
                prompt_eval_duration_ns: Some(52_500_000),
                eval_duration_ns: Some(30_250_000),
                total_duration_ns: None,
            })),
        ]
    }

    #[tokio::test]
    async fn a_llama_cpp_reply_decodes_split_at_every_byte() {
        let sse = data(LLAMA_CPP);
        for piece in [1, 2, 3, 7, sse.len()] {
            assert_eq!(decode(&sse, piece).await, llama_cpp_events(), "{piece}");
        }
    }

    #[tokio::test]
    async fn timings_give_the_counts_when_there_is_no_usage() {
        let without_usage: Vec<&str> = LLAMA_CPP
            .iter()
            .copied()
            .filter(|l| !l.contains("usage"))
            .collect();
        let events = decode(&data(&without_usage), 5).await;
        let Some(Ok(ChatEvent::Done(stats))) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(
            (stats.input_tokens, stats.output_tokens),
            (Some(32), Some(3))
        );
    }

    #[tokio::test]
    async fn a_vllm_reply_reports_usage_and_nothing_it_did_not_measure() {
        let sse = data(&[
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"reasoning":"think"},"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"reasoning_content":"same","reasoning":"same"},"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"length","stop_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"total_tokens":11,"completion_tokens":2}}"#,
            "[DONE]",
        ]);
        assert_eq!(
            decode(&sse, 4).await,
            [
                Ok(ChatEvent::Thinking("think".into())),
                Ok(ChatEvent::Thinking("same".into())),
                Ok(ChatEvent::Token("Hi".into())),
                Ok(ChatEvent::Done(ReplyStats {
                    done_reason: Some("length".into()),
                    input_tokens: Some(9),
                    output_tokens: Some(2),
                    ..ReplyStats::default()
                })),
            ]
        );
    }

    #[tokio::test]
    async fn a_reply_without_done_is_complete_only_after_its_finish_reason() {
        let finished = data(&[
            r#"{"choices":[{"delta":{"content":"a"}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
        ]);
        let events = decode(&finished, 3).await;
        assert_eq!(
            events.last(),
            Some(&Ok(ChatEvent::Done(ReplyStats {
                done_reason: Some("stop".into()),
                ..ReplyStats::default()
            })))
        );

        let cut = data(&[r#"{"choices":[{"delta":{"content":"a"}}]}"#]);
        let events = decode(&cut, 3).await;
        assert_eq!(events[0], Ok(ChatEvent::Token("a".into())));
        assert!(
            matches!(&events[1], Err(BackendError::Transport(m)) if m.contains("before the reply was complete")),
            "{events:?}"
        );
        assert_eq!(events.len(), 2);
    }

    #[tokio::test]
    async fn an_error_event_ends_the_reply_with_the_servers_message() {
        let sse = data(&[
            r#"{"choices":[{"delta":{"content":"a"}}]}"#,
            r#"{"error":{"code":500,"message":"out of memory","type":"server_error"}}"#,
            r#"{"choices":[{"delta":{"content":"never"}}]}"#,
        ]);
        assert_eq!(
            decode(&sse, 1).await,
            [
                Ok(ChatEvent::Token("a".into())),
                Err(BackendError::Stream("out of memory".into())),
            ]
        );
        let flat = data(&[
            r#"{"object":"error","message":"engine dead","type":"InternalServerError","code":500}"#,
        ]);
        assert_eq!(
            decode(&flat, 64).await,
            [Err(BackendError::Stream("engine dead".into()))]
        );
        let typed = "event: error\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\n";
        assert_eq!(
            decode(typed, 64).await,
            [Err(BackendError::Stream("overloaded".into()))]
        );
        let text = data(&[r#"{"error":"plain words"}"#]);
        assert_eq!(
            decode(&text, 64).await,
            [Err(BackendError::Stream("plain words".into()))]
        );
    }

    #[tokio::test]
    async fn comments_crlf_and_other_events_are_not_chunks() {
        let sse = ": keep-alive\r\n\r\nevent: ping\r\ndata: {}\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\r\n\r\ndata: [DONE]\r\n\r\n";
        let events = decode(sse, 2).await;
        assert_eq!(events[0], Ok(ChatEvent::Token("x".into())));
        assert!(matches!(events[1], Ok(ChatEvent::Done(_))));
        assert_eq!(events.len(), 2);
    }

    #[tokio::test]
    async fn llama_cpps_error_field_then_done_is_an_error_not_a_finished_answer() {
        // llama-server reports a failure in the middle of a reply as an `error:` field (which
        // SSE readers skip) and then `[DONE]`, with no finish reason.
        let sse = "data: {\"choices\":[{\"delta\":{\"content\":\"Half\"}}]}\n\nerror: {\"code\":500,\"message\":\"the request exceeds the available context size\"}\n\ndata: [DONE]\n\n";
        let events = decode(sse, 3).await;
        assert_eq!(events[0], Ok(ChatEvent::Token("Half".into())));
        assert!(
            matches!(&events[1], Err(BackendError::Stream(message)) if message.contains("without a finish reason")),
            "{events:?}"
        );
        assert_eq!(events.len(), 2);
    }

    #[tokio::test]
    async fn garbage_is_a_protocol_error() {
        let events = decode("data: <html>\n\n", 64).await;
        assert!(
            matches!(&events[..], [Err(BackendError::Protocol(_))]),
            "{events:?}"
        );
    }

    #[test]
    fn milliseconds_become_nanoseconds_and_nonsense_none() {
        assert_eq!(nanoseconds(Some(1.5)), Some(1_500_000));
        assert_eq!(nanoseconds(Some(-1.0)), None);
        assert_eq!(nanoseconds(Some(f64::NAN)), None);
        assert_eq!(nanoseconds(None), None);
    }
}
