//! The HTTP edge's one error type: a status code and an [`ApiError`] body a person can read.
use app::types::{ApiError, ErrorBody, ErrorCode};
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

use crate::{
    db::DbError,
    jobs::AdmissionError,
    limits::{whole_seconds, Refusal},
};

#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub error: ApiError,
    /// Seconds, for `Retry-After` on 429 and 503.
    pub retry_after: Option<u64>,
}

pub type HttpResult<T> = Result<T, HttpError>;

impl HttpError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
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
            ErrorCode::NotFound,
            format!("There is no {what} with that id."),
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }
}

impl HttpError {
    /// A bug on our side, logged with its cause; the person sees a plain sentence.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error on a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "Something went wrong on our side; nothing was lost. Try again.",
        )
    }
}

impl From<Refusal> for HttpError {
    /// 503 while shutting down (another instance, or this one in a moment, can serve); 429 for
    /// every limit; both with `Retry-After`.
    fn from(refusal: Refusal) -> Self {
        let (status, code) = match refusal {
            Refusal::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Restarting),
            _ => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
        };
        Self {
            retry_after: Some(whole_seconds(refusal.retry_after())),
            ..Self::new(status, code, refusal.to_string())
        }
    }
}

impl From<AdmissionError> for HttpError {
    fn from(e: AdmissionError) -> Self {
        match e {
            AdmissionError::Refused(refusal) => refusal.into(),
            AdmissionError::Database(e) => e.into(),
        }
    }
}

impl From<DbError> for HttpError {
    /// 503 with `Retry-After` while the database is busy or away; a value it holds that this
    /// release cannot read is a 500, since trying again cannot help.
    fn from(e: DbError) -> Self {
        if e.is_corrupt() {
            return Self::internal(e);
        }
        tracing::error!(error = %e, "database error on a request");
        Self {
            retry_after: Some(2),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Database,
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
