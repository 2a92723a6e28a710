//! The error every API answers with: a status code and a sentence a person understands.
use serde::{Deserialize, Serialize};

/// The JSON body of every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

/// A failed request, as the browser receives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// A stable machine-readable code, e.g. `validation`, `not_found`, `rate_limited`.
    pub code: String,
    /// What went wrong, in words for the person who sees it.
    pub message: String,
}

impl ApiError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }

    /// For failures of the network itself, before any answer came back.
    pub fn network(message: impl Into<String>) -> Self {
        Self::new("network", message)
    }
}
