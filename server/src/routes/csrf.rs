//! Refuses state-changing requests that a browser sends from another site (cross-site request
//! forgery), on top of the author cookie's SameSite=Lax.
use axum::{
    extract::Request,
    http::{header, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::error::HttpError;

pub async fn same_origin_only(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || is_same_origin(&request)
    {
        next.run(request).await
    } else {
        HttpError::forbidden("This request came from another site and was refused.").into_response()
    }
}

/// Browsers say where a request comes from (`Sec-Fetch-Site`, or at least `Origin`); clients
/// that say neither (curl, scripts) are not browsers and cannot be forged by a web page.
fn is_same_origin(request: &Request) -> bool {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, origin_host)| origin_host == host)
}
