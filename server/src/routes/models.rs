//! `/api/v1/ai/models`: the models installed in Ollama, for the composer to offer.
use app::types::{ErrorCode, ModelList};
use axum::{extract::State, http::StatusCode, Json};

use crate::{
    error::{HttpError, HttpResult},
    state::AppState,
};

pub async fn list(State(state): State<AppState>) -> HttpResult<Json<ModelList>> {
    let models = state.ollama.tags().await.map_err(|e| {
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::OllamaUnavailable,
            format!("{e}. AI posts will wait in the queue until it is back."),
        )
    })?;
    Ok(Json(ModelList {
        models: models.into_iter().map(|m| m.name).collect(),
        default_model: state.config.ollama.default_model.clone(),
    }))
}
