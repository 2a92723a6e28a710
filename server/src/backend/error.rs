//! `BackendError`: everything that can go wrong talking to a model server, in words a person
//! understands.
//!
//! These messages are public (a failed post shows its detail, `/readyz` and the model list say
//! why the model server is away), so they say "the model server" and never its address: where
//! it is is the operator's business, and goes to the log only.

use std::{error::Error as _, time::Duration};

use app::types::Failure;

/// A failed call to a model server. Messages are written for the person reading the wall (or the
/// logs); [`BackendError::is_transient`] tells the job runner whether a retry can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The configured base URL (or the API key that goes with it) cannot be used.
    #[error("the model server at {url:?} cannot be used: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// Connection refused, DNS failure or connect timeout: the server is down or elsewhere. `url`
    /// is for the log, not for the message.
    #[error("the model server is not reachable")]
    Unreachable { url: String },
    /// The server answered that it does not know the model (Ollama's 404: not pulled there; an
    /// OpenAI-compatible server's 404 saying the model does not exist).
    #[error("model {model} is not installed on the model server")]
    ModelNotInstalled { model: String },
    /// Any other HTTP error status, with the server's own error text when it sent one, and how
    /// long it asked us to wait (`Retry-After`, read on 429 and 503 only) before trying again.
    #[error("the model server answered HTTP {status}: {message}")]
    Http {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The server reported an error in the middle of a reply (Ollama's `{"error": ...}` line,
    /// an OpenAI-compatible `data: {"error": ...}` event).
    #[error("the model server failed while generating: {0}")]
    Stream(String),
    /// No byte arrived for the stall timeout (before the first token, too).
    #[error("the model server stopped sending data for {}", seconds(after))]
    Stalled { after: Duration },
    /// The whole reply took longer than the configured deadline.
    #[error("the reply took longer than the {} deadline", seconds(after))]
    DeadlineExceeded { after: Duration },
    /// The server sent something that is not its wire format (bad JSON, a line too long, bad
    /// UTF-8, a reply that ended without its end).
    #[error("the model server sent something unexpected: {0}")]
    Protocol(String),
    /// The connection failed after it was established (reset, closed early, ...).
    #[error("the connection to the model server failed: {0}")]
    Transport(String),
}

impl BackendError {
    /// Whether trying again later can succeed without anyone changing anything: the
    /// `retried` column of the table in [`super::fault`], which gives the reasons.
    pub fn is_transient(&self) -> bool {
        self.handling().retried
    }

    /// How long the server asked us to wait before trying again (`Retry-After` on a 429 or a
    /// 503), when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BackendError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The class of the failure, which the card says in plain words.
    pub fn class(&self) -> Failure {
        match self {
            BackendError::InvalidUrl { .. } | BackendError::Unreachable { .. } => {
                Failure::Unreachable
            }
            BackendError::ModelNotInstalled { .. } => Failure::ModelMissing,
            BackendError::Http { status, .. } if *status >= 500 || matches!(status, 408 | 429) => {
                Failure::Busy
            }
            BackendError::Http { .. } => Failure::Refused,
            BackendError::Stream(_) | BackendError::Protocol(_) | BackendError::Transport(_) => {
                Failure::BrokeOff
            }
            BackendError::Stalled { .. } => Failure::Stalled,
            BackendError::DeadlineExceeded { .. } => Failure::TooSlow,
        }
    }
}

/// "300 s", or "0.25 s" for the short timeouts of tests.
fn seconds(duration: &Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} s", duration.as_secs_f64())
    }
}

/// A reqwest error with its causes ("error sending request: connection reset by peer"):
/// reqwest's own message alone rarely says what happened. Without the URL reqwest puts in it
/// ("… for url (http://gpu:11434/api/chat)"): the message may be shown in public.
pub(super) fn describe(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    if let Some(url) = error.url() {
        message = message
            .replace(&format!(" for url ({url})"), "")
            .replace(url.as_str(), "the model server");
    }
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let missing = BackendError::ModelNotInstalled {
            model: "llama3.2:1b".into(),
        };
        assert_eq!(
            missing.to_string(),
            "model llama3.2:1b is not installed on the model server"
        );
        let stalled = BackendError::Stalled {
            after: Duration::from_secs(300),
        };
        assert_eq!(
            stalled.to_string(),
            "the model server stopped sending data for 300 s"
        );
        let stalled = BackendError::Stalled {
            after: Duration::from_millis(250),
        };
        assert_eq!(
            stalled.to_string(),
            "the model server stopped sending data for 0.25 s"
        );
    }

    #[test]
    fn only_errors_that_can_pass_are_transient() {
        let http = |status| BackendError::Http {
            status,
            message: String::new(),
            retry_after: None,
        };
        assert!(http(503).is_transient());
        assert!(http(500).is_transient());
        assert!(http(429).is_transient());
        assert!(!http(400).is_transient());
        assert!(!http(499).is_transient());
        assert!(BackendError::Unreachable { url: "x".into() }.is_transient());
        assert!(!BackendError::ModelNotInstalled { model: "m".into() }.is_transient());
        assert!(!BackendError::Protocol("x".into()).is_transient());
        assert!(!BackendError::Stream("x".into()).is_transient());
    }
}
