//! The body of `GET /readyz`, for load balancers and operators.
use serde::{Deserialize, Serialize};

/// Whether this instance can serve the wall, and what it depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    /// Ready when the database answers (the status is 503 otherwise).
    pub ready: bool,
    pub database: Check,
    /// Reported, not required: the wall works, and AI posts wait, while Ollama is away.
    pub ollama: Check,
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
