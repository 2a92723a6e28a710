//! Ollama's HTTP API as the server uses it: stream a chat reply, list models, read the version.
//!
//! `client` makes the calls, `stream` decodes a streamed reply, `wire` holds Ollama's JSON
//! shapes, `error` says what went wrong and `fault` what the job runner does about it. Nothing
//! here knows about jobs or HTTP routes.
mod client;
mod error;
mod fault;
mod stream;
mod wire;

pub use client::{ChatRequest, ClientOptions, ModelInfo, OllamaClient};
pub use error::OllamaError;
pub use fault::{Fault, Handling};
pub use stream::{ChatEvent, ChatStream, FinalStats};
