//! `/api/v1/ai/models`: the models installed in Ollama, for the composer to offer.
use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;

use crate::{
    error::{HttpError, HttpResult},
    state::AppState,
};

#[derive(Debug, Serialize)]
pub struct Models {
    pub models: Vec<String>,
    pub default_model: String,
}

pub async fn list(State(state): State<AppState>) -> HttpResult<Json<Models>> {
    let models = state.ollama.tags().await.map_err(|e| {
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ollama_unavailable",
            format!("{e}. AI posts will wait in the queue until it is back."),
        )
    })?;
    Ok(Json(Models {
        models: models.into_iter().map(|m| m.name).collect(),
        default_model: state.config.ollama.default_model.clone(),
    }))
}
