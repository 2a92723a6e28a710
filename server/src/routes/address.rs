//! `ApiPath` and `ApiQuery`: axum's `Path` and `Query` extractors, with an id or a query that
//! cannot be read answered as the documented JSON error instead of axum's plain text.
use std::error::Error as _;

use app::types::ErrorCode;
use axum::{
    extract::{
        path::ErrorKind,
        rejection::{PathRejection, QueryRejection},
        FromRequestParts, Path, Query,
    },
    http::{request::Parts, StatusCode},
};
use serde::de::DeserializeOwned;

use crate::error::HttpError;

pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(explain_path(rejection)),
        }
    }
}

/// Every id in an address is a whole number: one that is not names nothing, so it is a 404
/// like an id that names no post. A route that cannot read its own parameters is our bug.
fn explain_path(rejection: PathRejection) -> HttpError {
    if rejection.status().is_server_error() {
        return HttpError::internal(rejection.body_text());
    }
    let value = match &rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::ParseError { value, .. }
            | ErrorKind::ParseErrorAtKey { value, .. }
            | ErrorKind::ParseErrorAtIndex { value, .. } => Some(value.as_str()),
            _ => None,
        },
        _ => None,
    };
    let message = match value {
        Some(value) => format!("There is nothing at this address: `{value}` is not an id."),
        None => "There is nothing at this address.".to_owned(),
    };
    HttpError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
}

pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(explain_query(&rejection)),
        }
    }
}

fn explain_query(rejection: &QueryRejection) -> HttpError {
    // The cause names the parameter: "before: invalid digit found in string".
    let cause = match rejection {
        QueryRejection::FailedToDeserializeQueryString(e) => e.source().map(ToString::to_string),
        _ => None,
    }
    .unwrap_or_else(|| rejection.body_text());
    HttpError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::Malformed,
        format!("The query in the address is not valid ({cause}); correct or remove it."),
    )
}
