//! What every kind's HTTP client shares: its timeouts ([`ClientOptions`]) and the wait for a
//! reply's head under them, how a base URL is read, and the reqwest client that carries an
//! optional API key.
use std::{sync::Arc, time::Duration};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use url::Url;

use futures::StreamExt;

use super::{error::describe, BackendError, ChatStream};

/// How many characters of a body without a readable error the message quotes.
const QUOTED_CHARS: usize = 200;

/// Timeouts of a model server's client.
///
/// A model server may send nothing, not even the response head, until the first token (Ollama
/// does): loading a model can take tens of seconds to minutes on a cold start. So there is
/// deliberately no short read timeout; `stall_timeout` is the only bound on silence, before the
/// first token too, and it must stay generous (the default is 5 minutes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Time to open the TCP connection (and the TLS session); past it the server counts as
    /// unreachable.
    pub connect_timeout: Duration,
    /// Longest silence accepted while waiting for a reply: for the response head (model load
    /// and prompt evaluation) and between two reads of the body.
    pub stall_timeout: Duration,
    /// Longest a whole reply may take, from the request to the final chunk.
    pub deadline: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(300),
            deadline: Duration::from_secs(30 * 60),
        }
    }
}

/// How long metadata calls (model lists, version) may take: they are quick, and a health
/// check must not hang.
pub(super) const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading an error body may take.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an error body read: more than any server's error needs; the rest is left
/// unread, so an endless body costs nothing.
const ERROR_BODY_MAX: usize = 64 * 1024;
/// The most of a metadata reply (a model list, a version, a model's details) accepted: a list
/// of a hundred thousand models fits.
const METADATA_BODY_MAX: usize = 16 * 1024 * 1024;

/// The reqwest client of one model server. `api_key`, when given, goes in every request as
/// `Authorization: Bearer …`, marked sensitive so that no `Debug` of the client shows it; it
/// is never logged nor put in an error. System proxy settings are ignored: model servers are
/// reached directly. `base` (from [`parse_base`]) is only for its credentials and the error.
pub(super) fn http_client(
    base: &Url,
    options: &ClientOptions,
    api_key: Option<&str>,
) -> Result<reqwest::Client, BackendError> {
    let mut headers = HeaderMap::new();
    let has_credentials = !base.username().is_empty() || base.password().is_some();
    if api_key.is_some() && has_credentials {
        // reqwest would send the URL's user and password instead of the key.
        return Err(BackendError::InvalidUrl {
            url: shown_url(base),
            reason: "it has both a user and password in its URL and an API key: give one".into(),
        });
    }
    if let Some(key) = api_key {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", key.trim())).map_err(|_| {
            BackendError::InvalidUrl {
                url: shown_url(base),
                reason: "its API key has characters an HTTP header cannot carry".into(),
            }
        })?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        // A model server answers where it is asked: a redirect is its error, never a request
        // (with the prompt) sent on to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        .no_proxy()
        .default_headers(headers)
        .build()
        .map_err(|error| BackendError::Transport(describe(&error)))
}

/// What a server's own words must never show: its API key and a password written into its
/// URL. A server may quote them back ("Incorrect API key provided: sk-…"), so every message
/// made of its words passes through [`Secrets::hide`].
#[derive(Clone, Default)]
pub(super) struct Secrets(Arc<[String]>);

impl Secrets {
    /// Shorter than this, a "secret" would only mangle messages (and guards nothing).
    const SHORTEST: usize = 4;

    pub fn of(base: &Url, api_key: Option<&str>) -> Self {
        let password = base.password().unwrap_or_default();
        let decoded = percent_encoding::percent_decode_str(password)
            .decode_utf8_lossy()
            .into_owned();
        let secrets: Vec<String> = [api_key.unwrap_or_default().trim(), password, &decoded]
            .into_iter()
            .filter(|s| s.len() >= Self::SHORTEST)
            .map(str::to_string)
            .collect();
        Secrets(secrets.into())
    }

    /// `message` with every secret replaced by `***`.
    pub fn hide(&self, message: String) -> String {
        self.0.iter().fold(message, |message, secret| {
            message.replace(secret.as_str(), "***")
        })
    }

    /// `error` with every secret hidden from the server's words it carries.
    pub fn hide_in(&self, error: BackendError) -> BackendError {
        match error {
            BackendError::Stream(message) => BackendError::Stream(self.hide(message)),
            BackendError::Protocol(message) => BackendError::Protocol(self.hide(message)),
            other => other,
        }
    }

    /// `stream` with every secret hidden from its errors (a server may quote the key in an
    /// error event or line).
    pub fn hide_in_stream(&self, stream: ChatStream) -> ChatStream {
        let secrets = self.clone();
        ChatStream::new(stream.map(move |event| event.map_err(|error| secrets.hide_in(error))))
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

/// Parses a base URL: `http://host:port/prefix` or `https://…`; a bare `host:port` means http
/// (as Ollama's own clients read `OLLAMA_HOST`). Query and fragment are dropped, and the path
/// ends with '/' so that joining an endpoint keeps a reverse proxy's prefix.
pub(super) fn parse_base(base_url: &str) -> Result<Url, BackendError> {
    let invalid = |reason: String| BackendError::InvalidUrl {
        url: without_credentials(base_url),
        reason,
    };
    let trimmed = base_url.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|error| invalid(error.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(invalid(format!(
                "unsupported scheme {other:?}, use http or https"
            )))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".into()));
    }
    // "http://me:12/ab@gpu" parses as host "me", port 12: a password with '/' in it.
    if url.path().contains('@') {
        return Err(invalid(
            "'@' in its path: write a user's or password's special characters percent-encoded"
                .into(),
        ));
    }
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A configured URL as an error may quote it, even one that cannot be parsed: a user and
/// password written into it become `***`. Everything up to the last '@' goes, since a password
/// may hold '/', '?' or '#' too.
pub fn without_credentials(base_url: &str) -> String {
    let trimmed = base_url.trim();
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), trimmed),
    };
    match rest.rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => trimmed.to_string(),
    }
}

/// The base URL as the log shows it: without a trailing '/' and without any user or password
/// written into it.
pub(super) fn shown_url(base: &Url) -> String {
    let mut shown = base.clone();
    // Only fails for URLs that cannot have credentials, which then have none to hide.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.as_str().trim_end_matches('/').to_string()
}

/// How long a 429 or 503 answer asks us to wait: its `Retry-After` header, in seconds or as
/// an HTTP date (RFC 9110 §10.2.3). `None` for other statuses, without the header, or when it
/// cannot be read; a date in the past is no wait at all.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    if !matches!(response.status().as_u16(), 429 | 503) {
        return None;
    }
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// What a failure to send a request or to read its reply means: the server is unreachable
/// (its address goes to the log only: the error's message is public), a metadata call timed
/// out, or the transport failed.
pub(super) fn request_error(shown_url: &str, error: &reqwest::Error) -> BackendError {
    if error.is_connect() {
        tracing::warn!(url = %shown_url, error = %describe(error), "cannot connect to the model server");
        BackendError::Unreachable {
            url: shown_url.to_string(),
        }
    } else if error.is_timeout() {
        BackendError::Stalled {
            after: METADATA_TIMEOUT,
        }
    } else {
        BackendError::Transport(describe(error))
    }
}

/// A chat reply whose status says success but whose body is a web page: the URL points at a
/// web server or a proxy's page, not at a model server. Said so, rather than read as a reply
/// that ends early.
pub(super) fn refuse_a_page(response: &reqwest::Response) -> Result<(), BackendError> {
    let html = response
        .headers()
        .get_all(reqwest::header::CONTENT_TYPE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("text/html")
        });
    if html {
        return Err(BackendError::Protocol(
            "it answered with a web page, not a reply: is the configured URL a model server's?"
                .into(),
        ));
    }
    Ok(())
}

/// The body of a metadata reply (status already checked), refused when it is longer than
/// [`METADATA_BODY_MAX`]: a server cannot make the wall hold an endless list. `what` names the
/// request for the message ("GET /v1/models").
pub(super) async fn metadata_body(
    mut response: reqwest::Response,
    shown_url: &str,
    what: &str,
) -> Result<Vec<u8>, BackendError> {
    let mut body = Vec::new();
    let complete = read_up_to(&mut response, METADATA_BODY_MAX, &mut body)
        .await
        .map_err(|error| request_error(shown_url, &error))?;
    if !complete {
        return Err(BackendError::Protocol(format!(
            "its answer to {what} is longer than {} MB",
            METADATA_BODY_MAX / (1024 * 1024)
        )));
    }
    Ok(body)
}

/// Reads `response`'s body into `body` until its end (`true`) or until `body` holds `limit`
/// bytes (`false`: the rest is left unread).
async fn read_up_to(
    response: &mut reqwest::Response,
    limit: usize,
    body: &mut Vec<u8>,
) -> reqwest::Result<bool> {
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok(false);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(true)
}

/// A non-success reply, read for what it says: its status, how long it asks us to wait, and
/// its body (read within [`ERROR_BODY_TIMEOUT`]; empty when it cannot be read).
pub(super) struct ErrorReply {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl ErrorReply {
    pub async fn read(mut response: reqwest::Response) -> ErrorReply {
        let status = response.status().as_u16();
        let retry_after = retry_after(&response);
        let mut body = Vec::new();
        let _ = tokio::time::timeout(
            ERROR_BODY_TIMEOUT,
            read_up_to(&mut response, ERROR_BODY_MAX, &mut body),
        )
        .await;
        ErrorReply {
            status,
            retry_after,
            body,
        }
    }

    /// The message when the body has no error the kind can read: the body's start, or the
    /// status's reason when the body is empty.
    pub fn plain_message(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text: String = text.trim().chars().take(QUOTED_CHARS).collect();
        if text.is_empty() {
            reqwest::StatusCode::from_u16(self.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("no details")
                .to_string()
        } else {
            text
        }
    }
}

/// `base` joined with a relative `path`. `base` always ends with '/', so the join keeps any
/// path prefix.
pub(super) fn endpoint(base: &Url, path: &str) -> Url {
    base.join(path).unwrap_or_else(|_| base.clone())
}

/// Awaits the head of a reply sent at `started`: a model server sends nothing, not even the
/// head, until its first token, so the stall timeout (and the deadline) bound this wait. The
/// outer error is the timeout; the inner result is the request's own.
pub(super) async fn head_within(
    sent: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    started: tokio::time::Instant,
    options: &ClientOptions,
) -> Result<reqwest::Result<reqwest::Response>, BackendError> {
    let deadline = started + options.deadline;
    let head_by = (started + options.stall_timeout).min(deadline);
    match tokio::time::timeout_at(head_by, sent).await {
        Ok(result) => Ok(result),
        Err(_) if head_by == deadline => Err(BackendError::DeadlineExceeded {
            after: options.deadline,
        }),
        Err(_) => Err(BackendError::Stalled {
            after: options.stall_timeout,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: Vec<u8>) -> reqwest::Response {
        reqwest::Response::from(axum::http::Response::new(body))
    }

    #[tokio::test]
    async fn a_metadata_reply_longer_than_its_bound_is_refused_and_one_within_it_read_whole() {
        let at_bound = metadata_body(reply(vec![b'a'; METADATA_BODY_MAX]), "gpu", "GET /x").await;
        assert_eq!(at_bound.unwrap().len(), METADATA_BODY_MAX);
        let over = metadata_body(reply(vec![b'a'; METADATA_BODY_MAX + 1]), "gpu", "GET /x").await;
        let Err(BackendError::Protocol(message)) = over else {
            panic!("{over:?}")
        };
        assert_eq!(message, "its answer to GET /x is longer than 16 MB");
    }

    #[tokio::test]
    async fn an_error_body_is_read_up_to_its_bound() {
        let error = ErrorReply::read(reply(vec![b'e'; 10 * ERROR_BODY_MAX])).await;
        assert_eq!(error.body.len(), ERROR_BODY_MAX);
    }

    #[test]
    fn an_unusable_url_is_quoted_without_its_credentials() {
        for (configured, quoted) in [
            ("ftp://me:s3cret@gpu:11434/x", "ftp://***@gpu:11434/x"),
            ("http://me:s3cret@gpu:bad-port", "http://***@gpu:bad-port"),
            ("me:s3cret@gpu:bad-port/v1?q", "***@gpu:bad-port/v1?q"),
            ("http://gpu:bad-port", "http://gpu:bad-port"),
            ("http://me:pa/ss@gpu:bad", "http://***@gpu:bad"),
            ("http://me:12/ss@gpu", "http://***@gpu"),
            ("http://me:pa?s#s@gpu:11434", "http://***@gpu:11434"),
        ] {
            let Err(BackendError::InvalidUrl { url, .. }) = parse_base(configured) else {
                panic!("{configured} is refused");
            };
            assert_eq!(url, quoted);
            let message = BackendError::InvalidUrl {
                url,
                reason: String::new(),
            }
            .to_string();
            assert!(!message.contains("s3cret"), "{message}");
        }
    }

    #[test]
    fn base_urls_are_normalised() {
        let url = |s: &str| parse_base(s).map(|u| u.to_string());
        assert_eq!(
            url("http://127.0.0.1:11434").unwrap(),
            "http://127.0.0.1:11434/"
        );
        assert_eq!(url("localhost:11434").unwrap(), "http://localhost:11434/");
        assert_eq!(url("http://gpu/ollama").unwrap(), "http://gpu/ollama/");
        assert_eq!(
            url("https://api.example.org/v1?x=1#y").unwrap(),
            "https://api.example.org/v1/"
        );
        assert!(url("ftp://gpu").is_err());
        assert!(url("http://").is_err());
    }

    #[test]
    fn the_shown_url_has_no_credentials() {
        let base = parse_base("http://me:secret@gpu:8080/v1").unwrap();
        assert_eq!(shown_url(&base), "http://gpu:8080/v1");
        assert_eq!(endpoint(&base, "models").path(), "/v1/models");
    }

    #[test]
    fn the_api_key_does_not_show_in_debug() {
        let base = parse_base("http://gpu").unwrap();
        let client = http_client(&base, &ClientOptions::default(), Some("sk-very-secret")).unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        let bad = http_client(&base, &ClientOptions::default(), Some("line\nbreak")).unwrap_err();
        assert!(!bad.to_string().contains("line"), "{bad}");
    }
}
