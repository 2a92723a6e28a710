//! The AI Wall server as a library, so that integration tests and benchmarks start the real app.
//!
//! Imports run one way: `routes` -> `jobs`/`hub` -> `db`/`ollama` -> `app::types`.
pub mod allowed_models;
pub mod assets;
pub mod backend;
pub mod bus;
pub mod client_addr;
pub mod config;
pub mod db;
pub mod edge;
pub mod error;
pub mod hub;
pub mod identity;
pub mod jobs;
pub mod limits;
pub mod logging;
pub mod markdown;
pub mod metrics;
pub mod pool;
pub mod routes;
pub mod sse_frame;
pub mod startup;
pub mod state;
pub mod supervise;
