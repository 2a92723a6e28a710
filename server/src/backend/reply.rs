//! A streamed reply as every kind of model server's client yields it: [`ChatRequest`] in,
//! [`ChatEvent`]s out of a [`ChatStream`], ending with the [`ReplyStats`] it reported.
use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use futures::stream::{BoxStream, Stream, StreamExt};

use super::BackendError;

/// One prompt for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    pub model: String,
    pub prompt: String,
    /// The most tokens to write (Ollama's `options.num_predict`, OpenAI's `max_tokens`): the
    /// server's only hard cap on the reply's length. Reasoning counts.
    pub num_predict: Option<u32>,
    /// Ask a thinking model to reason first (Ollama's `think`); only for a model that has the
    /// capability, since Ollama refuses it otherwise.
    pub think: bool,
}

/// What a reply stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// A piece of the answer; empty pieces are skipped. A piece is about one token: count them
    /// as a live estimate, take the server's count at the end.
    Token(String),
    /// A piece of a thinking model's reasoning, streamed before the answer.
    Thinking(String),
    /// How far the server has read the prompt (llama.cpp's `prompt_progress`), in tokens.
    PromptProgress { processed: u64, total: u64 },
    /// The reply's end with the statistics the server reported; the stream ends after it.
    Done(ReplyStats),
}

/// What a model server reported at the end of a reply. Every number is `None` when it did not
/// report it: the card shows "—" for those, never 0. Durations are nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyStats {
    /// `stop`, or `length` when the max length cut the reply.
    pub done_reason: Option<String>,
    /// Prompt tokens.
    pub input_tokens: Option<u64>,
    /// Tokens written: reasoning and answer.
    pub output_tokens: Option<u64>,
    pub load_duration_ns: Option<u64>,
    pub prompt_eval_duration_ns: Option<u64>,
    /// Time spent writing the output tokens.
    pub eval_duration_ns: Option<u64>,
    pub total_duration_ns: Option<u64>,
}

/// A reply as it streams in: `Stream<Item = Result<ChatEvent, BackendError>>`.
///
/// It ends after `Done`, or after the first error. Dropping it closes the HTTP connection,
/// which is how a model server is told to stop generating. Polling it is cancel-safe: a
/// `select!` that drops `next()` loses nothing.
pub struct ChatStream {
    events: BoxStream<'static, Result<ChatEvent, BackendError>>,
}

impl ChatStream {
    pub(super) fn new(
        events: impl Stream<Item = Result<ChatEvent, BackendError>> + Send + 'static,
    ) -> Self {
        Self {
            events: events.boxed(),
        }
    }
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream").finish_non_exhaustive()
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatEvent, BackendError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_next_unpin(cx)
    }
}
