//! `/api/v1/ai/models`: the models a post may name, with the model servers that can run each
//! now, for the composer to offer.
use app::types::{ErrorCode, ModelList};
use axum::{extract::State, http::StatusCode, Json};

use crate::{
    allowed_models::AllowedModels,
    error::{HttpError, HttpResult},
    state::AppState,
};

pub async fn list(State(state): State<AppState>) -> HttpResult<Json<ModelList>> {
    // Asked now, as the composer opens: a model pulled a moment ago shows.
    let errors = state.pool.refresh().await;
    if let Some(Some(error)) = errors.iter().find(|_| errors.iter().all(Option::is_some)) {
        return Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::OllamaUnavailable,
            format!(
                "Cannot list the models: {error}. AI posts will wait in the queue until it is back."
            ),
        ));
    }
    let default_model = &state.config.generation.default_model;
    let allowed = AllowedModels::of(&state.config.generation);
    let offered = state.pool.offered(allowed.names());
    // The default model is offered even before a server has it: its posts say what to do.
    let models = offered
        .iter()
        .filter(|m| &m.name == default_model || !m.backends.is_empty())
        .map(|m| m.name.clone())
        .collect();
    Ok(Json(ModelList {
        models,
        default_model: default_model.clone(),
        offered,
    }))
}
