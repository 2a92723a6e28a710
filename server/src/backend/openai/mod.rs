//! The OpenAI-compatible HTTP API as the server uses it (llama.cpp's `llama-server`, vLLM,
//! LM Studio, and hosted services that speak it): stream a chat reply, list the models.
//!
//! `client` makes the calls, `stream` decodes a streamed SSE reply, `wire` holds the JSON
//! shapes (OpenAI's, with llama.cpp's and vLLM's extensions).
mod client;
mod stream;
mod wire;

pub use client::OpenAiClient;
