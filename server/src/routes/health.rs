//! `/healthz` (the process answers) and `/readyz` (the database answers; the model servers
//! reported, each by its name).
use app::types::{Check, Readiness};
use axum::{extract::State, http::StatusCode, Json};

use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = state.db.ping().await;
    let status = if database.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // Checked now, as the old single-Ollama check was: a load balancer's answer is current.
    state.pool.refresh().await;
    let backends = state.pool.health();
    // Kept from the single-Ollama releases: ok when any model server answers.
    let up = state.pool.members().iter().find(|m| m.is_up());
    let ollama = match up {
        Some(member) => Check {
            ok: true,
            version: member.version(),
            error: None,
        },
        None => Check {
            ok: false,
            version: None,
            error: Some(
                backends
                    .iter()
                    .find_map(|b| b.error.clone())
                    .unwrap_or_else(|| "no model server answers".into()),
            ),
        },
    };
    let body = Readiness {
        ready: database.is_ok(),
        instance: state.instance.to_string(),
        database: Check::of(&database, |()| None),
        ollama,
        backends,
        queued_jobs: state.jobs.queued_count(),
        wall_watchers: state.hub.wall_watchers(),
    };
    (status, Json(body))
}
