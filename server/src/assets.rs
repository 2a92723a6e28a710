//! The site's static files (the wasm, its JS glue, the CSS, `public/`): embedded in the binary
//! in release builds, read from `target/site` in debug builds so `cargo leptos watch` stays live.
use axum::Router;
use memory_serve::CacheControl;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    memory_serve::load!()
        .index_file(None)
        // The file names carry no content hash, and the page and its wasm must come from the
        // same build: browsers revalidate every time (a cheap 304, thanks to the ETag).
        .cache_control(CacheControl::NoCache)
        .into_router()
}
