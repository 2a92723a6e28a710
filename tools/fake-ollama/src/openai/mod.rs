//! The OpenAI-compatible endpoints (`/v1/models`, `/v1/chat/completions`, `/health`),
//! answering and failing the way llama.cpp's `llama-server` or vLLM does.

mod stream;
mod wire;

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::config::{Failure, Flavor};
use crate::directives::apply_directives;
use crate::ledger::{DisconnectGuard, RequestRecord};
use crate::models;
use crate::reply::{Endpoint, OpenAiOptions, Reply};
use crate::routes::{parse_body, with_retry_after, word_count, Fake};
use wire::{ChatCompletionRequest, ErrorEnvelope, ErrorObject};

/// What an injected 503 (`fail-first`) says on this API.
const OPENAI_BUSY_MESSAGE: &str = "fake-ollama: server busy, please try again";

/// An error answer in the OpenAI shape: `{"error": {"message", "type", "code"}}`.
fn error(fake: &Fake, flavor: Flavor, status: u16, message: impl Into<String>) -> Response {
    fake.ledger.http_error();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = ErrorEnvelope {
        error: ErrorObject {
            message: message.into(),
            kind: error_type(flavor, status),
            code: status.as_u16(),
        },
    };
    (status, Json(body)).into_response()
}

/// The error `type` each server gives a status: llama.cpp's snake_case names, vLLM's
/// exception-style ones.
fn error_type(flavor: Flavor, status: StatusCode) -> &'static str {
    match (flavor, status.as_u16()) {
        (Flavor::Llamacpp, 401) => "authentication_error",
        (Flavor::Llamacpp, 403) => "permission_error",
        (Flavor::Llamacpp, 404) => "not_found_error",
        // llama.cpp never rate-limits; this is the name its scheme would give it.
        (Flavor::Llamacpp, 429) => "rate_limit_error",
        (Flavor::Llamacpp, 501) => "not_supported_error",
        (Flavor::Llamacpp, 503) => "unavailable_error",
        (Flavor::Llamacpp, 500..) => "server_error",
        (Flavor::Llamacpp, _) => "invalid_request_error",
        (Flavor::Vllm, 404) => "NotFoundError",
        (Flavor::Vllm, 429) => "RateLimitError",
        (Flavor::Vllm, 500..) => "InternalServerError",
        (Flavor::Vllm, _) => "BadRequestError",
    }
}

/// `GET /health`, which both servers answer once the model is loaded.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /v1/models`: the fake's models in OpenAI's list shape.
pub(crate) async fn models(State(fake): State<Arc<Fake>>) -> Json<Value> {
    fake.ledger.model_list_served();
    let config = fake.config();
    let created = fake
        .started
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let owned_by = match config.openai_flavor {
        Flavor::Llamacpp => "llamacpp",
        Flavor::Vllm => "vllm",
    };
    let data: Vec<Value> = config
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": owned_by}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(State(fake): State<Arc<Fake>>, body: Bytes) -> Response {
    let started = Instant::now();
    fake.ledger.openai_chat_request();
    let mut config = fake.reply_config();
    let request: ChatCompletionRequest = match parse_body(&body) {
        Ok(request) => request,
        Err(message) => return error(&fake, config.openai_flavor, 400, message),
    };
    let options = OpenAiOptions {
        include_usage: request
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage),
        return_progress: request.return_progress,
        timings_per_token: request.timings_per_token,
    };
    let max_tokens = request.max_completion_tokens.or(request.max_tokens);
    let stream = request.stream.unwrap_or(false);
    fake.ledger.request(RequestRecord {
        endpoint: "/v1/chat/completions".to_string(),
        model: request.model.clone(),
        stream,
        max_tokens,
        include_usage: options.include_usage,
        return_progress: options.return_progress,
        timings_per_token: options.timings_per_token,
        think: None,
    });
    if request.model.is_empty() {
        return error(&fake, config.openai_flavor, 400, "model is required");
    }
    fake.ledger.model_requested(&request.model);
    if models::resolve(&config.models, &request.model).is_none() {
        let message = format!("The model `{}` does not exist.", request.model);
        return error(&fake, config.openai_flavor, 404, message);
    }
    if request.messages.is_empty() {
        return error(
            &fake,
            config.openai_flavor,
            400,
            "messages must not be empty",
        );
    }
    let last_user = request.messages.iter().rposition(|m| m.role == "user");
    let prompt = last_user.map_or(String::new(), |i| request.messages[i].text());
    let other_words: u64 = request
        .messages
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != last_user)
        .map(|(_, m)| word_count(&m.text()))
        .sum();
    let prompt_text = match apply_directives(&prompt, &mut config) {
        Ok(text) => text,
        Err(message) => {
            return error(
                &fake,
                config.openai_flavor,
                400,
                format!("fake-ollama: {message}"),
            )
        }
    };
    let flavor = config.openai_flavor;
    if fake.ledger.take_planned_failure(&prompt, config.fail_first) {
        let answer = error(&fake, flavor, 503, OPENAI_BUSY_MESSAGE);
        return with_retry_after(answer, config.retry_after);
    }
    if let Failure::HttpStatus { status, message } = &config.failure {
        let answer = error(&fake, flavor, *status, message.clone());
        return with_retry_after(answer, config.retry_after);
    }
    let reply = Reply {
        endpoint: Endpoint::OpenAiChat(options),
        model: request.model,
        prompt_eval_count: (word_count(&prompt_text) + other_words).max(1),
        num_predict: max_tokens,
        config,
        started,
        stream,
    };

    // Counts a disconnect if the client leaves while the model "loads" (this future is dropped).
    let guard = DisconnectGuard::new(fake.ledger.clone());
    let Some(warm_up) = reply.warm_up(&fake.shutdown).await else {
        guard.finish();
        return error(&fake, flavor, 503, "fake-ollama is shutting down");
    };
    fake.ledger.model_loaded(&reply.model);

    if stream {
        let body = reply.stream(warm_up, fake.ledger.clone(), guard, fake.shutdown.clone());
        let headers = [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ];
        return (headers, body).into_response();
    }
    let outcome = tokio::select! {
        outcome = reply.collect_openai(warm_up, &fake.ledger) => Some(outcome),
        _ = fake.shutdown.cancelled() => None,
    };
    guard.finish();
    match outcome {
        Some(Ok(completion)) => Json(completion).into_response(),
        Some(Err(message)) => error(&fake, flavor, 500, message),
        None => error(&fake, flavor, 503, "fake-ollama is shutting down"),
    }
}
