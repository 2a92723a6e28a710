//! Ollama's JSON as the client sends and reads it (field names from Ollama's api/types.go).

use serde::{Deserialize, Serialize};

/// `POST /api/chat` body: one user message, streamed.
#[derive(Debug, Serialize)]
pub(super) struct ChatBody<'a> {
    pub model: &'a str,
    pub messages: [Message<'a>; 1],
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
    /// Only for a model whose `/api/show` lists `thinking`: Ollama refuses it otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think: Option<bool>,
}

#[derive(Debug, Serialize)]
pub(super) struct Message<'a> {
    pub role: &'static str,
    pub content: &'a str,
}

#[derive(Debug, Serialize)]
pub(super) struct Options {
    pub num_predict: u32,
}

/// One NDJSON line of a chat stream. Ollama omits empty fields (`omitempty`), so every field
/// is optional and a missing number means 0. A line with `error` ends the stream.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ChatChunk {
    pub message: Option<ChunkMessage>,
    pub done: bool,
    pub done_reason: Option<String>,
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: u64,
    pub prompt_eval_duration: u64,
    pub eval_count: u64,
    pub eval_duration: u64,
    pub error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ChunkMessage {
    pub content: String,
    pub thinking: Option<String>,
}

/// `{"error": "..."}`: Ollama's error body.
#[derive(Debug, Deserialize)]
pub(super) struct ErrorBody {
    pub error: String,
}

/// `GET /api/tags`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Tags {
    pub models: Vec<TagModel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TagModel {
    pub name: String,
    pub model: String,
    pub size: u64,
    pub details: TagDetails,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TagDetails {
    pub family: String,
    pub parameter_size: String,
    pub quantization_level: String,
}

/// `GET /api/version`.
#[derive(Debug, Deserialize)]
pub(super) struct Version {
    pub version: String,
}

/// `POST /api/show` body.
#[derive(Debug, Serialize)]
pub(super) struct ShowBody<'a> {
    pub model: &'a str,
}

/// `POST /api/show`: only what the client reads of it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Show {
    /// e.g. `["completion", "thinking"]` (Ollama 0.6.4 and later).
    pub capabilities: Vec<String>,
}
