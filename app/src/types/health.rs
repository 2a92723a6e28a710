//! The body of `GET /readyz`, for load balancers and operators.
use serde::{Deserialize, Serialize};

/// Whether this instance can serve the wall, and what it depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    /// Ready when the database answers (the status is 503 otherwise).
    pub ready: bool,
    /// Which instance answered (`server.instance_id`, or its host name and port).
    #[serde(default)]
    pub instance: String,
    pub database: Check,
    /// Reported, not required: the wall works, and AI posts wait, while the model servers are
    /// away. Ok when at least one answers (kept from the single-Ollama releases).
    pub ollama: Check,
    /// Every model server, by its configured name (never its address).
    #[serde(default)]
    pub backends: Vec<BackendHealth>,
    pub queued_jobs: usize,
    pub wall_watchers: usize,
}

/// One dependency's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    pub fn of<T, E: std::fmt::Display>(
        result: &Result<T, E>,
        version: impl Fn(&T) -> Option<String>,
    ) -> Self {
        match result {
            Ok(value) => Self {
                ok: true,
                version: version(value),
                error: None,
            },
            Err(e) => Self {
                ok: false,
                version: None,
                error: Some(e.to_string()),
            },
        }
    }
}

/// Which API a model server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Ollama's own API (`/api/chat`).
    Ollama,
    /// The OpenAI-compatible API (`/v1/chat/completions`): llama.cpp's llama-server, vLLM, LM
    /// Studio and others.
    #[serde(rename = "openai")]
    OpenAi,
}

/// One model server as `/readyz` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendHealth {
    pub name: String,
    pub kind: BackendKind,
    /// It answered its last check.
    pub ok: bool,
    /// Why not, in words (never its address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unix ms since when it has been unreachable (marked down), while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_since: Option<i64>,
    /// The models it has, as last listed.
    pub models: Vec<String>,
    /// Generations running on it now, and how many it takes at once.
    pub running: u32,
    pub concurrency: u32,
}
