//! `GET /`: the wall page, rendered on the server with its data already in it, then hydrated.
use app::types::WallSnapshot;
use axum::{
    extract::{Request, State},
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use axum_extra::extract::SignedCookieJar;
use leptos::{nonce::Nonce, prelude::provide_context};

use super::{posts::load_page, security};
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
        default_model: state.config.generation.default_model.clone(),
        // Never fewer than the page just rendered: the first live post must not cut it short.
        live_posts_max: state
            .config
            .limits
            .live_posts_max
            .max(state.config.limits.page_size),
        rendered_at: crate::db::now_ms(),
    };
    // A fresh nonce for every response, given to the render (Leptos puts it on the hydration
    // script; it replaces the one leptos_axum provides, which no header could name) and to
    // this response's policy.
    let nonce = Nonce::new();
    let policy = security::page_policy(&nonce, &state.leptos, request.headers());
    let options = state.leptos.clone();
    let render = leptos_axum::render_app_to_stream_with_context(
        move || {
            provide_context(snapshot.clone());
            provide_context(nonce.clone());
        },
        move || app::shell(options.clone()),
    );
    let mut response = render(request).await.into_response();
    match HeaderValue::try_from(policy) {
        Ok(policy) => {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, policy);
        }
        // Left to the strict default policy, which blocks the page's scripts: loud, not open.
        Err(e) => {
            tracing::error!(error = %e, "the page's Content-Security-Policy is not a header value")
        }
    }
    response
}
