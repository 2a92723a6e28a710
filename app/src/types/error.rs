//! The error every API answers with: a status code and a sentence a person understands.
use serde::{Deserialize, Serialize};

/// The JSON body of every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

/// What kind of failure an [`ApiError`] is: stable, machine-readable, `snake_case` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// An input broke a rule (empty, too long, out of range).
    Validation,
    /// The request is not what the endpoint takes: its body, its query or its method.
    Malformed,
    /// The body is larger than the server accepts.
    TooLarge,
    NotFound,
    /// Not the author's, or a request from another site.
    Forbidden,
    /// The thing is not in a state that allows it (Stop a finished job, Retry a running one).
    Conflict,
    /// A limit was reached; `Retry-After` says when to come back.
    RateLimited,
    /// The server is shutting down and takes no new generations.
    Restarting,
    /// The server holds as many connections as it can; `Retry-After` says when to come back.
    Overloaded,
    /// The database did not answer; nothing was changed.
    Database,
    /// The model server cannot be reached.
    OllamaUnavailable,
    /// A bug on the server's side.
    Internal,
    /// Browser only: the server could not be reached at all.
    Network,
    /// Browser only: an error status without a readable body (a proxy's error page, say).
    Http,
    /// Browser only: the page must be reloaded to continue.
    Reload,
    /// A code this build does not know (a newer server): read the message.
    #[serde(other)]
    Unknown,
}

/// A failed request, as the browser receives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    /// What went wrong, in words for the person who sees it.
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// An input that broke a rule.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Validation, message)
    }

    /// For failures of the network itself, before any answer came back.
    pub fn network(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Network, message)
    }
}
