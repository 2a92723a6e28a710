//! The fake's HTTP router and Ollama's endpoints, answering (and failing) the way Ollama does;
//! `--api` decides which API's paths answer.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Failure, FakeConfig, BUSY_MESSAGE};
use crate::directives::apply_directives;
use crate::ledger::{DisconnectGuard, Ledger, RequestRecord};
use crate::length_mix::{LengthMix, Lengths};
use crate::models;
use crate::openai;
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
    pub started: SystemTime,
    /// `config.length_mix`'s lengths still to give, and the mix they come from.
    lengths: Mutex<Option<(LengthMix, Lengths)>>,
}

impl Fake {
    pub(crate) fn new(config: FakeConfig) -> Self {
        Fake {
            config: RwLock::new(config),
            ledger: Arc::default(),
            shutdown: CancellationToken::new(),
            started_at: now_rfc3339(),
            started: SystemTime::now(),
            lengths: Mutex::default(),
        }
    }

    /// The configuration one reply starts from: [`Fake::config`], with the next length of
    /// its length mix when it has one.
    pub(crate) fn reply_config(&self) -> FakeConfig {
        let mut config = self.config();
        if let Some(mix) = config.length_mix {
            let mut lengths = self.lengths.lock().unwrap_or_else(PoisonError::into_inner);
            if lengths.as_ref().is_none_or(|(of, _)| *of != mix) {
                *lengths = Some((mix, mix.lengths()));
            }
            if let Some(length) = lengths.as_mut().and_then(|(_, l)| l.next()) {
                config.length = length;
            }
        }
        config
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
        .route("/health", get(openai::health))
        .route("/v1/models", get(openai::models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .layer(middleware::from_fn_with_state(fake.clone(), gate))
        .with_state(fake)
}

/// Answers a plain 404, like a server without the route, for the paths of the API this
/// fake does not speak (`--api`, read per request so `set_config` can change it).
async fn gate(State(fake): State<Arc<Fake>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let openai_path = path == "/health" || path.starts_with("/v1/");
    let api = fake.config().api;
    let served = if openai_path {
        api.serves_openai()
    } else {
        api.serves_ollama()
    };
    if served {
        next.run(request).await
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// Adds `Retry-After: seconds` to an injected error answer when configured.
pub(crate) fn with_retry_after(mut response: Response, seconds: Option<u64>) -> Response {
    if let Some(seconds) = seconds {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
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
    /// Ollama's `think`, as sent.
    think: Option<Value>,
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
        think: request.think.filter(|t| !t.is_null()),
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
        think: request.think.filter(|t| !t.is_null()),
    };
    answer(&fake, incoming, load_only).await
}

pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("missing request body".to_string());
    }
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// Ollama's `think` as a switch: a boolean, or a level (`"high"`, `"medium"`, `"low"`) that
/// means on. `Err` for anything else, which Ollama rejects with 400.
fn think_switch(think: Option<&Value>) -> Result<Option<bool>, String> {
    match think {
        None => Ok(None),
        Some(Value::Bool(on)) => Ok(Some(*on)),
        Some(Value::String(level)) if ["high", "medium", "low"].contains(&level.as_str()) => {
            Ok(Some(true))
        }
        Some(other) => Err(format!(
            "invalid think value: {other} (must be \"high\", \"medium\", \"low\", true, or false)"
        )),
    }
}

async fn answer(fake: &Fake, incoming: Incoming, load_only: bool) -> Response {
    let started = Instant::now();
    let endpoint = match incoming.endpoint {
        Endpoint::Generate => "/api/generate",
        _ => "/api/chat",
    };
    fake.ledger.request(RequestRecord {
        endpoint: endpoint.to_string(),
        model: incoming.model.clone(),
        stream: incoming.stream,
        max_tokens: incoming.num_predict,
        think: incoming.think.clone(),
        ..RequestRecord::default()
    });
    let think = match think_switch(incoming.think.as_ref()) {
        Ok(think) => think,
        Err(message) => return fake.error(400, message),
    };
    if incoming.model.is_empty() {
        return fake.error(400, "model is required");
    }
    fake.ledger.model_requested(&incoming.model);
    let mut config = fake.reply_config();
    let Some(installed) = models::resolve(&config.models, &incoming.model) else {
        let message = format!(
            "model \"{}\" not found, try pulling it first",
            incoming.model
        );
        return fake.error(404, message);
    };
    // Like Ollama: a thinking model thinks unless told `think: false`; asking any other
    // model to think is a 400.
    let can_think = models::can_think(&config.thinking_models, &installed);
    if think == Some(true) && !can_think {
        let message = format!("{} does not support thinking", go_quote(&incoming.model));
        return fake.error(400, message);
    }
    let thinks = can_think && think != Some(false);
    let prompt_text = match apply_directives(&incoming.prompt, &mut config) {
        Ok(text) => text,
        Err(message) => return fake.error(400, format!("fake-ollama: {message}")),
    };
    if !thinks {
        config.thinking_tokens = 0;
    }
    if fake
        .ledger
        .take_planned_failure(&incoming.prompt, config.fail_first)
    {
        return with_retry_after(fake.error(503, BUSY_MESSAGE), config.retry_after);
    }
    if let Failure::HttpStatus { status, message } = &config.failure {
        return with_retry_after(fake.error(*status, message.clone()), config.retry_after);
    }
    let stream = incoming.stream;
    let reply = Reply {
        endpoint: incoming.endpoint,
        model: incoming.model,
        prompt_eval_count: (word_count(&prompt_text) + incoming.other_words).max(1),
        num_predict: incoming.num_predict,
        config,
        started,
        stream,
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

pub(crate) fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A name quoted as Go's `%q` quotes it (Ollama's messages use it): a JSON string is the same
/// for the names models have.
fn go_quote(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

async fn tags(State(fake): State<Arc<Fake>>) -> Json<ModelList> {
    fake.ledger.model_list_served();
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
    let capabilities = if models::can_think(&fake.config().thinking_models, &name) {
        vec!["completion", "thinking"]
    } else {
        vec!["completion"]
    };
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
        "capabilities": capabilities,
        "modified_at": fake.started_at,
    }))
    .into_response()
}
