//! `/api/v1/ai/models`: the models a post may name that the model server has, for the composer
//! to offer.
use app::types::{ErrorCode, ModelList};
use axum::{extract::State, http::StatusCode, Json};

use crate::{
    allowed_models::{same_model, AllowedModels},
    error::{HttpError, HttpResult},
    state::AppState,
};

pub async fn list(State(state): State<AppState>) -> HttpResult<Json<ModelList>> {
    let installed = state.ollama.tags().await.map_err(|e| {
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::OllamaUnavailable,
            format!(
                "Cannot list the models: {e}. AI posts will wait in the queue until it is back."
            ),
        )
    })?;
    let default_model = &state.config.generation.default_model;
    let models = AllowedModels::of(&state.config.generation)
        .names()
        .iter()
        .filter(|&name| {
            // The default model is offered even before it is pulled: its posts say what to do.
            name == default_model || installed.iter().any(|m| same_model(&m.name, name))
        })
        .cloned()
        .collect();
    Ok(Json(ModelList {
        models,
        default_model: default_model.clone(),
    }))
}
