//! The HTTP edge's one error type: a status code and an [`ApiError`] body a person can read.
use app::types::{ApiError, ErrorBody};
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

use crate::db::DbError;

#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub error: ApiError,
    /// Seconds, for `Retry-After` on 429 and 503.
    pub retry_after: Option<u64>,
}

pub type HttpResult<T> = Result<T, HttpError>;

impl HttpError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            error: ApiError::new(code, message),
            retry_after: None,
        }
    }

    pub fn invalid(error: ApiError) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            retry_after: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("There is no {what} with that id."),
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// The server is shutting down and takes no new generations.
    pub fn restarting() -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "restarting",
                "The server is restarting and takes no new AI posts right now. Try again in a few seconds.",
            )
        }
    }

    pub fn rate_limited(retry_after_secs: u64, message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }
}

impl From<DbError> for HttpError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "database error on a request");
        Self {
            retry_after: Some(2),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database",
                "The database is not answering right now; nothing was changed. Try again in a moment.",
            )
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody { error: self.error })).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
