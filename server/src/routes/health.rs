//! `/healthz` (the process answers) and `/readyz` (the database answers; Ollama reported).
use app::types::{Check, Readiness};
use axum::{extract::State, http::StatusCode, Json};

use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = state.db.ping().await;
    let ollama = state.ollama.version().await;
    let status = if database.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready: database.is_ok(),
        database: Check::of(&database, |()| None),
        ollama: Check::of(&ollama, |version| Some(version.clone())),
        queued_jobs: state.jobs.queued_count(),
        wall_watchers: state.hub.wall_watchers(),
    };
    (status, Json(body))
}
