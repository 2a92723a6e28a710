//! The site's static files (the wasm, its JS glue, the CSS, `public/`): embedded in the binary
//! in release builds, read from `target/site` in debug builds so `cargo leptos watch` stays live.
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    memory_serve::load!().index_file(None).into_router()
}
