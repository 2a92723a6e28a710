//! Ollama's HTTP API as the server uses it: stream a chat reply, list the installed and the
//! loaded models, ask a model's capabilities, read the version.
//!
//! `client` makes the calls, `stream` decodes a streamed NDJSON reply, `wire` holds Ollama's
//! JSON shapes.
mod client;
mod stream;
mod wire;

pub use client::{ModelInfo, OllamaClient};
