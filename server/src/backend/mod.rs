//! The model servers ("backends") the wall generates with, whatever API they speak.
//!
//! `reply` is what every kind's streamed reply becomes (tokens, reasoning, prompt progress,
//! the final statistics); `body` reads a response body with a bound on silence; `error` says
//! what went wrong and `fault` what the job runner does about it; `frames` is the loop that
//! turns any kind's decoded frames into a reply, under its deadline; `http` is what every kind's
//! HTTP client shares (timeouts, base URL, API key). `kind` is one model server's client,
//! whichever API it speaks; `ollama` speaks Ollama's, `openai` the OpenAI-compatible one
//! (llama.cpp's `llama-server`, vLLM, LM Studio).
//! Nothing here knows about jobs or HTTP routes.
mod body;
mod error;
mod fault;
mod frames;
mod http;
mod kind;
pub mod ollama;
pub mod openai;
mod reply;

pub use error::BackendError;
pub use fault::{Fault, Handling};
pub use http::{without_credentials, ClientOptions};
pub use kind::Backend;
pub use ollama::{ModelInfo, OllamaClient};
pub use openai::OpenAiClient;
pub use reply::{ChatEvent, ChatRequest, ChatStream, ReplyStats};
