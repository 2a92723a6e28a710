//! `OpenAiClient`: the HTTP calls to an OpenAI-compatible server (stream a chat reply, list
//! the models), with what tells llama.cpp's `llama-server` from the others.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tokio::time::Instant;
use url::Url;

use super::super::http::{
    endpoint, head_within, http_client, metadata_body, parse_base, refuse_a_page, request_error,
    shown_url, ClientOptions, ErrorReply, Secrets, METADATA_TIMEOUT,
};
use super::super::{BackendError, ChatRequest, ChatStream};
use super::stream;
use super::wire::{self, ErrorInfo};

/// Which server it is, as far as the client needs to know: only llama.cpp gets
/// `return_progress`, since OpenAI's own API refuses a field it does not know (vLLM ignores
/// it with a warning; others vary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Dialect {
    /// Not asked yet, or the models list could not be read.
    Unknown = 0,
    /// Its models list says `owned_by: "llamacpp"`.
    LlamaCpp = 1,
    Other = 2,
}

/// A client for one OpenAI-compatible server. Cheap to clone (clones share the connection
/// pool and what was learnt of the server).
#[derive(Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    /// Ends with `/v1/`.
    base: Url,
    /// The base URL as people read it, for the log (never for public messages).
    shown_url: String,
    options: ClientOptions,
    /// What the server's own words must not show when they become a message.
    secrets: Secrets,
    dialect: Arc<AtomicU8>,
}

impl fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the reqwest client: nothing of the API key, not even that it is sensitive.
        f.debug_struct("OpenAiClient")
            .field("url", &self.shown_url)
            .field("options", &self.options)
            .field("dialect", &self.dialect())
            .finish_non_exhaustive()
    }
}

impl OpenAiClient {
    /// A client for the OpenAI-compatible API at `base_url`: `http://gpu:8080` (llama-server),
    /// `http://gpu:8000/v1` (vLLM), `https://llm.example.org/v1`. The API lives under `/v1`:
    /// a path that does not end in `/v1` gets it appended, so both spellings work (and a
    /// reverse proxy's prefix stays: `http://gw/llm` means `http://gw/llm/v1`). A bare
    /// `host:port` means http. `api_key` goes in every request as `Authorization: Bearer …`,
    /// and never in a log, an error or a `Debug`.
    pub fn new(
        base_url: &str,
        options: ClientOptions,
        api_key: Option<String>,
    ) -> Result<Self, BackendError> {
        let mut base = parse_base(base_url)?;
        if !base.path().ends_with("/v1/") {
            let path = format!("{}v1/", base.path());
            base.set_path(&path);
        }
        let http = http_client(&base, &options, api_key.as_deref())?;
        let shown_url = shown_url(&base);
        let secrets = Secrets::of(&base, api_key.as_deref());
        Ok(OpenAiClient {
            http,
            base,
            shown_url,
            options,
            secrets,
            dialect: Arc::new(AtomicU8::new(Dialect::Unknown as u8)),
        })
    }

    /// The base URL (with its `/v1`), as the log shows it.
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    /// Whether the server said it is llama.cpp's `llama-server` (in its models list); `false`
    /// until the list was read.
    pub fn is_llama_cpp(&self) -> bool {
        self.dialect() == Dialect::LlamaCpp
    }

    /// Starts a streamed chat reply (`POST /v1/chat/completions`, one user message, usage at
    /// the end, and llama.cpp's prompt progress from llama.cpp). Returns once the server has
    /// answered with a success status; errors before that (unreachable, model unknown, busy,
    /// stalled) come back here, errors after it come out of the stream.
    ///
    /// The first call reads the models list when nothing called [`OpenAiClient::models`] yet,
    /// to know whether to ask for prompt progress; if that fails, the reply goes without it.
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, BackendError> {
        if self.dialect() == Dialect::Unknown {
            if let Err(error) = self.models().await {
                tracing::debug!(url = %self.shown_url, %error, "cannot tell what the model server is; no prompt progress asked");
            }
        }
        let started = Instant::now();
        let deadline = started + self.options.deadline;
        let body = wire::ChatBody {
            model: &request.model,
            messages: [wire::Message {
                role: "user",
                content: &request.prompt,
            }],
            stream: true,
            stream_options: wire::StreamOptions {
                include_usage: true,
            },
            max_tokens: request.num_predict,
            return_progress: self.is_llama_cpp().then_some(true),
        };
        let sent = self
            .http
            .post(self.endpoint("chat/completions"))
            .json(&body)
            .send();
        let response = head_within(sent, started, &self.options)
            .await?
            .map_err(|error| request_error(&self.shown_url, &error))?;
        if !response.status().is_success() {
            return Err(self.status_error(response, Some(&request.model)).await);
        }
        refuse_a_page(&response)?;
        let stream = stream::chat_stream(
            response,
            self.options.stall_timeout,
            deadline,
            self.options.deadline,
        );
        Ok(self.secrets.hide_in_stream(stream))
    }

    /// The models it serves (`GET /v1/models`, `data[].id`). Also learns whether the server is
    /// llama.cpp. Doubles as a health check: there is no version to read.
    pub async fn models(&self) -> Result<Vec<String>, BackendError> {
        let response = self
            .http
            .get(self.endpoint("models"))
            .timeout(METADATA_TIMEOUT)
            .send()
            .await
            .map_err(|error| request_error(&self.shown_url, &error))?;
        if !response.status().is_success() {
            return Err(self.status_error(response, None).await);
        }
        let body = metadata_body(response, &self.shown_url, "GET /v1/models").await?;
        let models: wire::Models = serde_json::from_slice(&body).map_err(|error| {
            BackendError::Protocol(format!(
                "GET /v1/models did not answer with an OpenAI models list: {error}"
            ))
        })?;
        let llama_cpp = models
            .data
            .iter()
            .any(|model| model.owned_by.as_deref() == Some("llamacpp"));
        let dialect = if llama_cpp {
            Dialect::LlamaCpp
        } else {
            Dialect::Other
        };
        self.dialect.store(dialect as u8, Ordering::Relaxed);
        Ok(models
            .data
            .into_iter()
            .map(|model| model.id)
            .filter(|id| !id.is_empty())
            .collect())
    }

    fn dialect(&self) -> Dialect {
        match self.dialect.load(Ordering::Relaxed) {
            1 => Dialect::LlamaCpp,
            2 => Dialect::Other,
            _ => Dialect::Unknown,
        }
    }

    fn endpoint(&self, path: &str) -> Url {
        endpoint(&self.base, path)
    }

    /// The error for a non-success status, with the server's own message when its body has
    /// one (see [`ErrorInfo`] for the shapes read).
    async fn status_error(&self, response: reqwest::Response, model: Option<&str>) -> BackendError {
        let reply = ErrorReply::read(response).await;
        let status = reply.status;
        let info = serde_json::from_slice::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|body| ErrorInfo::from_body(&body));
        let message = match (status, model, info) {
            // A hosted server's words may quote part of the key ("Incorrect API key provided:
            // sk-…abcd"); the message is public.
            (401 | 403, _, _) => {
                tracing::warn!(url = %self.shown_url, status, "the model server refused the API key");
                "the model server refused the API key".into()
            }
            (404 | 400, Some(model), Some(info)) if info.says_model_is_unknown(model) => {
                return BackendError::ModelNotInstalled {
                    model: model.to_string(),
                }
            }
            (_, _, Some(info)) => info.message,
            (404, _, None) => {
                tracing::warn!(url = %self.shown_url, "the model server's URL answers 404 without an error body: is it an OpenAI-compatible server, and is its /v1 where the URL says?");
                "not found: is the configured URL an OpenAI-compatible server?".into()
            }
            (_, _, None) => reply.plain_message(),
        };
        BackendError::Http {
            status,
            message: self.secrets.hide(message),
            retry_after: reply.retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_of(base: &str) -> String {
        OpenAiClient::new(base, ClientOptions::default(), None)
            .unwrap()
            .endpoint("chat/completions")
            .to_string()
    }

    #[test]
    fn the_api_is_under_v1_however_the_url_is_written() {
        let expected = "http://gpu:8080/v1/chat/completions";
        assert_eq!(url_of("http://gpu:8080"), expected);
        assert_eq!(url_of("http://gpu:8080/"), expected);
        assert_eq!(url_of("http://gpu:8080/v1"), expected);
        assert_eq!(url_of("gpu:8080/v1/"), expected);
        assert_eq!(
            url_of("https://gw.example.org/llm"),
            "https://gw.example.org/llm/v1/chat/completions"
        );
        let client =
            OpenAiClient::new("http://gpu:8000/v1", ClientOptions::default(), None).unwrap();
        assert_eq!(client.url(), "http://gpu:8000/v1");
    }

    #[test]
    fn the_api_key_stays_out_of_debug() {
        let client = OpenAiClient::new(
            "https://gpu/v1",
            ClientOptions::default(),
            Some("sk-openai-secret".into()),
        )
        .unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("sk-openai-secret"), "{shown}");
        assert!(shown.contains("https://gpu/v1"), "{shown}");
    }
}
