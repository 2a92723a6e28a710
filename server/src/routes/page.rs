//! `GET /`: the wall page, rendered on the server with its data already in it, then hydrated.
use app::types::WallSnapshot;
use axum::{
    extract::{Request, State},
    response::{IntoResponse, Response},
};
use axum_extra::extract::SignedCookieJar;
use leptos::prelude::provide_context;

use super::posts::load_page;
use crate::{identity, state::AppState};

pub async fn wall(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    request: Request,
) -> Response {
    let page = match load_page(&state, None, None).await {
        Ok(page) => page,
        Err(e) => return e.into_response(),
    };
    let snapshot = WallSnapshot {
        page,
        viewer_tag: identity::author(&jar).map(|a| a.tag()),
        limits: state.input_limits(),
        default_model: state.config.ollama.default_model.clone(),
        rendered_at: crate::db::now_ms(),
    };
    let options = state.leptos.clone();
    let render = leptos_axum::render_app_to_stream_with_context(
        move || provide_context(snapshot.clone()),
        move || app::shell(options.clone()),
    );
    render(request).await.into_response()
}
