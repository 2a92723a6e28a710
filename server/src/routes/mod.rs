//! The HTTP surface: the page, the JSON API, the SSE streams, health checks and static files.
mod address;
mod csrf;
mod generation;
mod health;
mod json;
mod models;
mod page;
mod posts;
pub use posts::to_post;
mod security;
mod sse;
mod wall;

use app::types::ErrorCode;
use axum::{
    extract::DefaultBodyLimit,
    http::StatusCode,
    middleware,
    response::IntoResponse,
    routing::{get, post},
    Router,
};
use axum_extra::extract::SignedCookieJar;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};

use crate::{
    error::{HttpError, HttpResult},
    identity,
    state::AppState,
};

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/posts", get(posts::list).post(posts::create_text))
        .route("/posts/{id}", get(posts::get).delete(posts::delete))
        .route("/ai/posts", post(posts::create_ai))
        .route("/ai/models", get(models::list))
        .route("/ai/generation/{job_id}", get(generation::get))
        .route(
            "/ai/generation/{job_id}/progress",
            get(generation::progress),
        )
        .route("/ai/generation/{job_id}/cancel", post(generation::cancel))
        .route("/ai/generation/{job_id}/retry", post(generation::retry))
        .route("/wall/events", get(wall::events))
        // axum answers a method a path does not take with an empty 405; `Allow` is kept.
        .method_not_allowed_fallback(|| async {
            HttpError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::Malformed,
                "This API endpoint does not take that method; the Allow header lists the ones it takes.",
            )
        })
        .fallback(|| async {
            HttpError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "There is no such API endpoint.",
            )
        });

    let site = Router::new()
        .route("/", get(page::wall))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .nest("/api/v1", api)
        .route("/api/v2/wall/events", get(wall::events_v2))
        .merge(crate::assets::router())
        .layer(DefaultBodyLimit::max(state.config.limits.body_max_bytes))
        .layer(middleware::from_fn(csrf::same_origin_only))
        .layer(CatchPanicLayer::custom(|_| {
            HttpError::internal("a request handler panicked").into_response()
        }));
    security::with_security_headers(site)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// What a connection over the cap is served: the health checks, and a 503 for the rest.
pub fn at_capacity(state: AppState, cap: usize) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(move || async move {
            HttpError {
                retry_after: Some(AT_CAPACITY_RETRY_SECS),
                ..HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Overloaded,
                    format!(
                        "The wall is full: it holds {cap} connections, the most it can. \
                         Try again in a few seconds."
                    ),
                )
            }
        })
        .with_state(state)
}

/// When a full wall is worth trying again: viewers come and go all the time.
const AT_CAPACITY_RETRY_SECS: u64 = 5;

/// Only the post's author (by their cookie) may change it.
fn require_author(jar: &SignedCookieJar, author_id: &str, action: &str) -> HttpResult<()> {
    match identity::author(jar) {
        Some(a) if a.id == author_id => Ok(()),
        _ => Err(HttpError::forbidden(format!(
            "Only the author of this post may {action}."
        ))),
    }
}
