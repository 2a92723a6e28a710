//! The security headers: a Content-Security-Policy on every response (the page's with the nonce
//! of its hydration script), `X-Content-Type-Options: nosniff` and a `Referrer-Policy`.
//!
//! The page's policy is the backstop against model output that slips past the Markdown
//! sanitiser (OWASP LLM05): no script runs but our own files and the one inline script that
//! carries this response's nonce, no inline style, no plugin, no framing.
use axum::{
    http::{header, uri::Authority, HeaderMap, HeaderValue},
    Router,
};
use leptos::config::{LeptosOptions, ReloadWSProtocol};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::AppState;

/// Every response that is not the page (JSON, SSE, static files, errors): nothing in it may
/// load or run anything, nor may it be framed.
const STRICT: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The page sends its full address only to itself: a link in a post to another site tells
/// that site nothing about where it was found. The API needs no referrer at all (the
/// cross-site check reads `Sec-Fetch-Site` and `Origin`).
const REFERRER_POLICY: &str = "same-origin";

/// Adds the fixed headers to every response of `router`; a response that set its own policy
/// (the page) keeps it.
pub fn with_security_headers(router: Router<AppState>) -> Router<AppState> {
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(STRICT),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static(REFERRER_POLICY),
        ))
}

/// The page's policy for one response, whose inline hydration script carries `nonce`.
///
/// `'wasm-unsafe-eval'` lets the app's own wasm compile, nothing more; `base-uri 'none'` keeps
/// an injected `<base>` from redirecting the hydration script's relative imports. Under
/// `cargo leptos watch` (which sets `LEPTOS_WATCH`, as Leptos's `AutoReload` reads it) the
/// live-reload script's WebSocket to the reload port on the page's host is allowed too.
pub fn page_policy(nonce: &str, options: &LeptosOptions, request: &HeaderMap) -> String {
    let live_reload = std::env::var_os("LEPTOS_WATCH")
        .and_then(|_| live_reload_source(options, request))
        .map(|source| format!(" {source}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         connect-src 'self'{live_reload}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// Where Leptos's reload script connects: the page's host name, the reload port.
fn live_reload_source(options: &LeptosOptions, request: &HeaderMap) -> Option<String> {
    let host = request.get(header::HOST)?.to_str().ok()?;
    let host = host.parse::<Authority>().ok()?;
    let port = options.reload_external_port.unwrap_or(options.reload_port);
    let scheme = match options.reload_ws_protocol {
        ReloadWSProtocol::WS => "ws",
        ReloadWSProtocol::WSS => "wss",
    };
    Some(format!("{scheme}://{}:{port}", host.host()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_reload_socket_is_allowed_on_the_page_host_and_reload_port_only() {
        let options = LeptosOptions::builder().output_name("aiwall").build();
        let mut request = HeaderMap::new();
        request.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        assert_eq!(
            live_reload_source(&options, &request).as_deref(),
            Some("ws://127.0.0.1:3001")
        );
        request.remove(header::HOST);
        assert_eq!(live_reload_source(&options, &request), None);
    }
}
