//! The model servers ("backends") the wall generates with, whatever API they speak.
//!
//! `reply` is what every kind's streamed reply becomes (tokens, reasoning, prompt progress,
//! the final statistics); `body` reads a response body with a bound on silence; `error` says
//! what went wrong and `fault` what the job runner does about it. `kind` is one model server's client,
//! whichever API it speaks; `ollama` speaks Ollama's.
//! Nothing here knows about jobs or HTTP routes.
mod body;
mod error;
mod fault;
mod kind;
pub mod ollama;
mod reply;

pub use error::BackendError;
pub use fault::{Fault, Handling};
pub use kind::Backend;
pub use ollama::{ClientOptions, ModelInfo, OllamaClient};
pub use reply::{ChatEvent, ChatRequest, ChatStream, ReplyStats};
