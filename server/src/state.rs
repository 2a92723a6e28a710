//! What every request handler can reach: configuration, database, hub, jobs and the model
//! servers.
use std::sync::Arc;

use axum::extract::FromRef;
use axum_extra::extract::cookie::Key;
use leptos::config::LeptosOptions;

use crate::{config::Config, db::Db, hub::Hub, jobs::Jobs, limits::Limits, pool::Pool};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub hub: Hub,
    pub jobs: Arc<Jobs>,
    /// The model servers.
    pub pool: Arc<Pool>,
    pub leptos: LeptosOptions,
    /// Signs the anonymous author cookie.
    pub cookie_key: Key,
    pub limits: Arc<Limits>,
    /// This instance's name (`server.instance_id`, or host name and port).
    pub instance: Arc<str>,
    /// Ends every open SSE stream when the server shuts down.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

impl FromRef<AppState> for Key {
    fn from_ref(state: &AppState) -> Self {
        state.cookie_key.clone()
    }
}

impl AppState {
    /// The input limits the composer and the API enforce alike.
    pub fn input_limits(&self) -> app::types::InputLimits {
        let l = &self.config.limits;
        app::types::InputLimits {
            post_max_chars: l.post_max_chars,
            prompt_max_chars: l.prompt_max_chars,
            name_max_chars: l.name_max_chars,
            max_tokens_limit: l.max_tokens_limit,
        }
    }
}
