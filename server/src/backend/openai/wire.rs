//! The OpenAI-compatible JSON as the client sends and reads it: OpenAI's chat completion chunk,
//! with the extensions of llama.cpp (`timings`, `prompt_progress`) and of vLLM and others
//! (`reasoning`, `reasoning_content`), and the error bodies these servers send.
//!
//! Every field read is optional: servers differ in what they send, and one that leaves a field
//! out (or sends `null`) must not fail the reply.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /chat/completions` body: one user message, streamed, with the usage at the end.
#[derive(Debug, Serialize)]
pub(super) struct ChatBody<'a> {
    pub model: &'a str,
    pub messages: [Message<'a>; 1],
    pub stream: bool,
    pub stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// llama.cpp's prompt-processing progress. Only sent to a server that said it is llama.cpp:
    /// OpenAI's own API refuses a field it does not know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_progress: Option<bool>,
}

#[derive(Debug, Serialize)]
pub(super) struct Message<'a> {
    pub role: &'static str,
    pub content: &'a str,
}

#[derive(Debug, Serialize)]
pub(super) struct StreamOptions {
    /// One last chunk with `usage` and no choices, before `[DONE]`.
    pub include_usage: bool,
}

/// One `data:` event of a streamed chat completion.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ChatChunk {
    pub choices: Vec<Choice>,
    /// The include_usage chunk's (or, with vLLM's `continuous_usage_stats`, every chunk's).
    pub usage: Option<Usage>,
    /// llama.cpp: on the last chunk (on every one with `timings_per_token`).
    pub timings: Option<Timings>,
    /// llama.cpp with `return_progress`: while it reads the prompt, before any token.
    pub prompt_progress: Option<PromptProgress>,
    /// An error in the middle of the reply: the reply ends here.
    pub error: Option<Value>,
    /// vLLM before 0.6 sent its errors flat: `{"object": "error", "message": …}`.
    pub object: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Choice {
    pub delta: Option<Delta>,
    /// `stop`, or `length` when `max_tokens` cut the reply; `null` until the last chunk.
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Delta {
    pub content: Option<String>,
    /// Reasoning, as llama.cpp, DeepSeek and vLLM before 0.10 name it.
    pub reasoning_content: Option<String>,
    /// Reasoning, as vLLM, Ollama's and OpenRouter's OpenAI-compatible APIs name it.
    pub reasoning: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

/// llama.cpp's `timings`. Counts are -1 when not measured; times are milliseconds.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Timings {
    pub prompt_n: Option<i64>,
    pub prompt_ms: Option<f64>,
    pub predicted_n: Option<i64>,
    pub predicted_ms: Option<f64>,
}

/// llama.cpp's `prompt_progress`: of `total` prompt tokens, `processed` are in the cache now
/// (those found cached, `cache`, included), after `time_ms`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct PromptProgress {
    pub total: u64,
    pub processed: u64,
}

/// `GET /models`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Models {
    pub data: Vec<ModelEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ModelEntry {
    pub id: String,
    /// `llamacpp` from llama.cpp's `llama-server`, `vllm` from vLLM.
    pub owned_by: Option<String>,
}

/// What an error body says, whichever of the shapes in use it has:
/// `{"error": {"message", "type", "code"}}` (OpenAI, llama.cpp, vLLM, LM Studio),
/// `{"error": "text"}`, `{"detail": "text" | [{"msg": …}] | {…}}` (FastAPI, vLLM's routes) and
/// `{"object": "error", "message", "type", "code"}` (vLLM before 0.6).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct ErrorInfo {
    pub message: String,
    /// `type`: e.g. `invalid_request_error`, `NotFoundError`.
    pub kind: Option<String>,
    /// `code`: a string (OpenAI's `model_not_found`) or a number (vLLM's 404).
    pub code: Option<String>,
}

impl ErrorInfo {
    /// The error in a whole JSON body, or `None` when the body is no error body.
    pub fn from_body(body: &Value) -> Option<ErrorInfo> {
        if let Some(error) = body.get("error") {
            return ErrorInfo::from_error(error);
        }
        if let Some(detail) = body.get("detail") {
            return Some(ErrorInfo {
                message: detail_text(detail),
                ..ErrorInfo::default()
            });
        }
        if body.get("object").and_then(Value::as_str) == Some("error") {
            return ErrorInfo::from_error(body);
        }
        None
    }

    /// The error in an `error` value: an object with a message, or a bare string.
    pub fn from_error(error: &Value) -> Option<ErrorInfo> {
        match error {
            Value::String(text) => Some(ErrorInfo {
                message: text.clone(),
                ..ErrorInfo::default()
            }),
            Value::Object(fields) => {
                let text = |name: &str| match fields.get(name) {
                    Some(Value::String(text)) => Some(text.clone()),
                    Some(Value::Number(number)) => Some(number.to_string()),
                    _ => None,
                };
                Some(ErrorInfo {
                    message: text("message").unwrap_or_else(|| error.to_string()),
                    kind: text("type"),
                    code: text("code"),
                })
            }
            Value::Null => None,
            other => Some(ErrorInfo {
                message: other.to_string(),
                ..ErrorInfo::default()
            }),
        }
    }

    /// Whether it says the requested model does not exist there (rather than, say, a wrong
    /// path): OpenAI's `model_not_found`, vLLM's `NotFoundError` ("The model `x` does not
    /// exist."), or a message that names the model as not found.
    pub fn says_model_is_unknown(&self, model: &str) -> bool {
        let message = self.message.to_lowercase();
        let unknown = [
            "not found",
            "does not exist",
            "not exist",
            "unknown model",
            "no model",
        ]
        .iter()
        .any(|words| message.contains(words));
        self.code.as_deref() == Some("model_not_found")
            || self.kind.as_deref() == Some("NotFoundError")
            || (unknown && (message.contains("model") || self.message.contains(model)))
    }
}

/// FastAPI's `detail`: a string, a list of validation errors (`msg` each), or anything else.
fn detail_text(detail: &Value) -> String {
    match detail {
        Value::String(text) => text.clone(),
        Value::Array(items) => items
            .iter()
            .map(|item| match item.get("msg").and_then(Value::as_str) {
                Some(text) => text.to_string(),
                None => item.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn info(body: Value) -> Option<ErrorInfo> {
        ErrorInfo::from_body(&body)
    }

    #[test]
    fn every_error_shape_gives_its_message() {
        let openai = info(json!({"error": {"message": "The model `gpt-x` does not exist or you do not have access to it.", "type": "invalid_request_error", "param": null, "code": "model_not_found"}})).unwrap();
        assert_eq!(openai.code.as_deref(), Some("model_not_found"));
        assert!(openai.says_model_is_unknown("gpt-x"));

        let vllm = info(json!({"error": {"message": "The model `m` does not exist.", "type": "NotFoundError", "param": null, "code": 404}})).unwrap();
        assert_eq!(vllm.code.as_deref(), Some("404"));
        assert!(vllm.says_model_is_unknown("m"));

        let old_vllm = info(json!({"object": "error", "message": "The model `m` does not exist.", "type": "NotFoundError", "code": 404})).unwrap();
        assert_eq!(old_vllm.message, "The model `m` does not exist.");

        let text = info(json!({"error": "server busy"})).unwrap();
        assert_eq!(text.message, "server busy");
        assert!(!text.says_model_is_unknown("m"));

        let fastapi = info(json!({"detail": "Not Found"})).unwrap();
        assert_eq!(fastapi.message, "Not Found");
        assert!(
            !fastapi.says_model_is_unknown("m"),
            "a wrong path, not a missing model"
        );

        let validation = info(json!({"detail": [{"loc": ["body", "messages"], "msg": "Field required"}, {"msg": "bad"}]})).unwrap();
        assert_eq!(validation.message, "Field required; bad");

        assert_eq!(info(json!({"choices": []})), None);
        assert_eq!(info(json!({"error": null})), None);
    }

    #[test]
    fn chunks_with_nulls_and_extensions_decode() {
        let chunk: ChatChunk = serde_json::from_value(json!({
            "choices": [{"finish_reason": null, "index": 0, "delta": {"role": "assistant", "content": null}}],
            "usage": null,
            "prompt_progress": {"total": 36, "cache": 0, "processed": 12, "time_ms": 57},
        }))
        .unwrap();
        assert_eq!(
            chunk.prompt_progress.map(|p| (p.processed, p.total)),
            Some((12, 36))
        );
        assert!(chunk.choices[0].delta.as_ref().unwrap().content.is_none());
    }
}
