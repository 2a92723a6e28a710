//! The fake's HTTP endpoints, answering (and failing) the way Ollama does.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Failure, FakeConfig, BUSY_MESSAGE};
use crate::directives::apply_directives;
use crate::ledger::{DisconnectGuard, Ledger};
use crate::models;
use crate::reply::{Endpoint, Reply};
use crate::wire::{
    now_rfc3339, rfc3339, ChatRequest, ErrorBody, GenerateRequest, ModelList, ShowRequest,
};

/// The version `GET /api/version` reports.
pub const OLLAMA_VERSION: &str = "0.12.0";

/// State shared by every request of one fake.
#[derive(Debug)]
pub(crate) struct Fake {
    pub config: RwLock<FakeConfig>,
    pub ledger: Arc<Ledger>,
    pub shutdown: CancellationToken,
    pub started_at: String,
}

impl Fake {
    pub(crate) fn new(config: FakeConfig) -> Self {
        Fake {
            config: RwLock::new(config),
            ledger: Arc::default(),
            shutdown: CancellationToken::new(),
            started_at: now_rfc3339(),
        }
    }

    pub(crate) fn config(&self) -> FakeConfig {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn error(&self, status: u16, message: impl Into<String>) -> Response {
        self.ledger.http_error();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: message.into(),
        };
        (status, Json(body)).into_response()
    }
}

pub(crate) fn router(fake: Arc<Fake>) -> Router {
    Router::new()
        .route("/", get(|| async { "Ollama is running" }))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(generate))
        .route("/api/tags", get(tags))
        .route("/api/ps", get(ps))
        .route("/api/version", get(version))
        .route("/api/show", post(show))
        .with_state(fake)
}

/// What chat and generate have in common once their bodies are parsed.
struct Incoming {
    endpoint: Endpoint,
    model: String,
    /// The last user message or the prompt: where directives are read.
    prompt: String,
    /// Words in the other messages, for `prompt_eval_count`.
    other_words: u64,
    stream: bool,
    num_predict: Option<i64>,
}

async fn chat(State(fake): State<Arc<Fake>>, body: Bytes) -> Response {
    fake.ledger.chat_request();
    let request: ChatRequest = match parse_body(&body) {
        Ok(request) => request,
        Err(message) => return fake.error(400, message),
    };
    let last_user = request.messages.iter().rposition(|m| m.role == "user");
    let prompt = last_user.map_or(String::new(), |i| request.messages[i].content.clone());
    let other_words = request
        .messages
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != last_user)
        .map(|(_, m)| word_count(&m.content))
        .sum();
    let incoming = Incoming {
        endpoint: Endpoint::Chat,
        model: request.model,
        prompt,
        other_words,
        stream: request.stream.unwrap_or(true),
        num_predict: request.options.and_then(|o| o.num_predict),
    };
    answer(&fake, incoming, request.messages.is_empty()).await
}

async fn generate(State(fake): State<Arc<Fake>>, body: Bytes) -> Response {
    fake.ledger.generate_request();
    let request: GenerateRequest = match parse_body(&body) {
        Ok(request) => request,
        Err(message) => return fake.error(400, message),
    };
    let load_only = request.prompt.is_empty();
    let incoming = Incoming {
        endpoint: Endpoint::Generate,
        model: request.model,
        prompt: request.prompt,
        other_words: 0,
        stream: request.stream.unwrap_or(true),
        num_predict: request.options.and_then(|o| o.num_predict),
    };
    answer(&fake, incoming, load_only).await
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("missing request body".to_string());
    }
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

async fn answer(fake: &Fake, incoming: Incoming, load_only: bool) -> Response {
    let started = Instant::now();
    if incoming.model.is_empty() {
        return fake.error(400, "model is required");
    }
    fake.ledger.model_requested(&incoming.model);
    let mut config = fake.config();
    if models::resolve(&config.models, &incoming.model).is_none() {
        let message = format!(
            "model \"{}\" not found, try pulling it first",
            incoming.model
        );
        return fake.error(404, message);
    }
    let prompt_text = match apply_directives(&incoming.prompt, &mut config) {
        Ok(text) => text,
        Err(message) => return fake.error(400, format!("fake-ollama: {message}")),
    };
    if fake
        .ledger
        .take_planned_failure(&incoming.prompt, config.fail_first)
    {
        return fake.error(503, BUSY_MESSAGE);
    }
    if let Failure::HttpStatus { status, message } = &config.failure {
        return fake.error(*status, message.clone());
    }
    let stream = incoming.stream;
    let reply = Reply {
        endpoint: incoming.endpoint,
        model: incoming.model,
        prompt_eval_count: (word_count(&prompt_text) + incoming.other_words).max(1),
        num_predict: incoming.num_predict,
        config,
        started,
    };

    // Counts a disconnect if the client leaves while the model "loads" (this future is dropped).
    let guard = DisconnectGuard::new(fake.ledger.clone());
    let Some(warm_up) = reply.warm_up(&fake.shutdown).await else {
        guard.finish();
        return fake.error(503, "fake-ollama is shutting down");
    };
    fake.ledger.model_loaded(&reply.model);

    if load_only {
        guard.finish();
        return Json(reply.load_only(&fake.ledger)).into_response();
    }
    if stream {
        // Like Ollama, the response head leaves with the first chunk, after load and prompt
        // evaluation; a client cannot tell a slow load from a slow network before then.
        let body = reply.stream(warm_up, fake.ledger.clone(), guard, fake.shutdown.clone());
        return ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response();
    }
    let outcome = tokio::select! {
        outcome = reply.collect(warm_up, &fake.ledger) => Some(outcome),
        _ = fake.shutdown.cancelled() => None,
    };
    guard.finish();
    match outcome {
        Some(Ok(value)) => Json(value).into_response(),
        Some(Err(message)) => fake.error(500, message),
        None => fake.error(503, "fake-ollama is shutting down"),
    }
}

fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

async fn tags(State(fake): State<Arc<Fake>>) -> Json<ModelList> {
    let models = fake
        .config()
        .models
        .iter()
        .map(|name| models::entry(name, &fake.started_at))
        .collect();
    Json(ModelList { models })
}

async fn ps(State(fake): State<Arc<Fake>>) -> Json<ModelList> {
    let expires_at = rfc3339(SystemTime::now() + Duration::from_secs(300));
    let models = fake
        .ledger
        .loaded_models()
        .iter()
        .map(|name| {
            let mut entry = models::entry(name, &fake.started_at);
            entry.modified_at = None;
            entry.expires_at = Some(expires_at.clone());
            entry.size_vram = Some(entry.size);
            entry
        })
        .collect();
    Json(ModelList { models })
}

async fn version() -> Json<serde_json::Value> {
    Json(json!({ "version": OLLAMA_VERSION }))
}

async fn show(State(fake): State<Arc<Fake>>, body: Bytes) -> Response {
    let request: ShowRequest = match parse_body(&body) {
        Ok(request) => request,
        Err(message) => return fake.error(400, message),
    };
    let Some(requested) = request.model.or(request.name).filter(|m| !m.is_empty()) else {
        return fake.error(400, "model is required");
    };
    let Some(name) = models::resolve(&fake.config().models, &requested) else {
        return fake.error(404, format!("model '{requested}' not found"));
    };
    let entry = models::entry(&name, &fake.started_at);
    let family = entry.details.family.clone();
    Json(json!({
        "license": "",
        "modelfile": format!("# Modelfile generated by fake-ollama\nFROM {name}\n"),
        "parameters": "",
        "template": "{{ .Prompt }}",
        "details": entry.details,
        "model_info": {
            "general.architecture": family,
            format!("{family}.context_length"): 131072,
        },
        "capabilities": ["completion"],
        "modified_at": fake.started_at,
    }))
    .into_response()
}
