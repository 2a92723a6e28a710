//! `/api/v1/ai/models`: the models a post may name, with the model servers that can run each
//! now, for the composer to offer.
use app::types::ModelList;
use axum::{extract::State, Json};

use crate::{allowed_models::AllowedModels, error::HttpResult, state::AppState};

pub async fn list(State(state): State<AppState>) -> HttpResult<Json<ModelList>> {
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
