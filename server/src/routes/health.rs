//! `/healthz` (the process answers) and `/readyz` (the database answers; Ollama reported).
use axum::{extract::State, http::StatusCode, Json};
use serde_json::{json, Value};

use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = state.db.ping().await;
    let ollama = state.ollama.version().await;
    let status = if database.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": database.is_ok(),
        "database": match &database { Ok(()) => json!({ "ok": true }), Err(e) => json!({ "ok": false, "error": e.to_string() }) },
        // Not required for readiness: the wall works, and jobs wait, while Ollama is away.
        "ollama": match &ollama { Ok(v) => json!({ "ok": true, "version": v }), Err(e) => json!({ "ok": false, "error": e.to_string() }) },
        "queued_jobs": state.jobs.queued_count(),
        "wall_watchers": state.hub.wall_watchers(),
    });
    (status, Json(body))
}
