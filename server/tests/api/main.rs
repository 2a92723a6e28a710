//! The server's integration tests, one binary with a module per area (as zero2prod's
//! `tests/api`): the HTTP API, the generation pipeline, crashes and signals against the real
//! binary, and the Ollama client. `test_app` and `process` start the server under test.
//!
//! The helpers may panic: a test that cannot set itself up should fail loudly, at once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

mod balanced;
mod deadline;
mod edge;
mod estimates;
mod exclusive;
mod fake_process;
mod flood;
mod generation;
mod headers;
mod instances;
mod migrate;
mod nginx;
mod ollama_client;
mod openai_client;
mod outage;
mod output_cap;
mod pool;
mod postgres;
mod posts;
mod process;
mod proxy;
mod public_messages;
mod reliability;
mod secrets;
mod sse;
mod test_app;
mod upgrade;
mod wall_stream;
