//! `ApiJson`: axum's JSON extractor, with every way a body can be wrong answered in words.
use app::types::ErrorCode;
use axum::{
    extract::{rejection::JsonRejection, FromRequest, Request},
    http::StatusCode,
    Json,
};
use serde::de::DeserializeOwned;

use crate::{error::HttpError, state::AppState};

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, HttpError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(explain(rejection, state.config.limits.body_max_bytes)),
        }
    }
}

fn explain(rejection: JsonRejection, limit: usize) -> HttpError {
    match rejection {
        JsonRejection::JsonDataError(e) => HttpError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Malformed,
            format!(
                "The request is missing a field or has one of the wrong type: {}",
                e.body_text()
            ),
        ),
        JsonRejection::JsonSyntaxError(e) => HttpError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Malformed,
            format!("The request body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Malformed,
            "Send the request body as JSON, with Content-Type: application/json.",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!(
                "The request body is larger than the limit of {} KiB.",
                limit / 1024
            ),
        ),
        other => HttpError::new(other.status(), ErrorCode::Malformed, other.body_text()),
    }
}
