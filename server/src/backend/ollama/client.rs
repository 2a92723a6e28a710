//! `OllamaClient`: the HTTP calls to Ollama (stream a chat reply, list models, read the version).

use serde::Serialize;
use tokio::time::Instant;
use url::Url;

use super::super::http::{
    endpoint, head_within, http_client, metadata_body, parse_base, refuse_a_page, request_error,
    shown_url, ClientOptions, ErrorReply, Secrets, METADATA_TIMEOUT,
};
use super::super::{BackendError, ChatRequest, ChatStream};
use super::{stream, wire};

/// An installed model, from `GET /api/tags`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// The name to request it by, e.g. `llama3.2:1b`.
    pub name: String,
    /// Size on disk in bytes.
    pub size: u64,
    pub family: Option<String>,
    /// e.g. `1.2B`.
    pub parameter_size: Option<String>,
    /// e.g. `Q8_0`.
    pub quantization_level: Option<String>,
}

/// A client for one Ollama server. Cheap to clone (clones share the connection pool).
#[derive(Debug, Clone)]
pub struct OllamaClient {
    http: reqwest::Client,
    base: Url,
    /// The base URL as people read it, for the log (never for public messages).
    shown_url: String,
    options: ClientOptions,
    /// What the server's own words must not show when they become a message.
    secrets: Secrets,
}

impl OllamaClient {
    /// A client for the Ollama at `base_url`, e.g. `http://127.0.0.1:11434` (a bare
    /// `host:port` means http; https works too, for an Ollama behind a TLS proxy). System proxy
    /// settings are ignored: Ollama is reached directly.
    pub fn new(base_url: &str, options: ClientOptions) -> Result<Self, BackendError> {
        Self::with_api_key(base_url, options, None)
    }

    /// [`OllamaClient::new`] for an Ollama behind a proxy that wants a key: `api_key` goes in
    /// every request as `Authorization: Bearer …`, and never in a log, an error or a `Debug`.
    pub fn with_api_key(
        base_url: &str,
        options: ClientOptions,
        api_key: Option<String>,
    ) -> Result<Self, BackendError> {
        let base = parse_base(base_url)?;
        let http = http_client(&base, &options, api_key.as_deref())?;
        let shown_url = shown_url(&base);
        let secrets = Secrets::of(&base, api_key.as_deref());
        Ok(OllamaClient {
            http,
            base,
            shown_url,
            options,
            secrets,
        })
    }

    /// The base URL, as the log shows it.
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    /// Starts a streamed chat reply (`POST /api/chat`, one user message). Returns once Ollama
    /// has answered with a success status, which it does with the first token; errors before
    /// that (unreachable, model not installed, busy, stalled) come back here, errors after it
    /// come out of the stream.
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, BackendError> {
        let started = Instant::now();
        let deadline = started + self.options.deadline;
        let body = wire::ChatBody {
            model: &request.model,
            messages: [wire::Message {
                role: "user",
                content: &request.prompt,
            }],
            stream: true,
            options: request
                .num_predict
                .map(|num_predict| wire::Options { num_predict }),
            think: request.think.then_some(true),
        };
        let sent = self.http.post(self.endpoint("api/chat")).json(&body).send();
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

    /// The installed models (`GET /api/tags`).
    pub async fn tags(&self) -> Result<Vec<ModelInfo>, BackendError> {
        let tags: wire::Tags = self.get_json("api/tags").await?;
        let non_empty = |text: String| (!text.is_empty()).then_some(text);
        Ok(tags
            .models
            .into_iter()
            .map(|model| ModelInfo {
                name: if model.name.is_empty() {
                    model.model
                } else {
                    model.name
                },
                size: model.size,
                family: non_empty(model.details.family),
                parameter_size: non_empty(model.details.parameter_size),
                quantization_level: non_empty(model.details.quantization_level),
            })
            .collect())
    }

    /// The models loaded in memory right now (`GET /api/ps`); one not listed must load before
    /// its first token, which can take minutes.
    pub async fn loaded_models(&self) -> Result<Vec<String>, BackendError> {
        let loaded: wire::Tags = self.get_json("api/ps").await?;
        Ok(loaded
            .models
            .into_iter()
            .map(|m| if m.name.is_empty() { m.model } else { m.name })
            .collect())
    }

    /// Whether `model` can reason before answering (`POST /api/show` lists the `thinking`
    /// capability). Ollama refuses `think` for a model without it, so ask only when this says so.
    pub async fn can_think(&self, model: &str) -> Result<bool, BackendError> {
        let response = self
            .http
            .post(self.endpoint("api/show"))
            .timeout(METADATA_TIMEOUT)
            .json(&wire::ShowBody { model })
            .send()
            .await
            .map_err(|error| request_error(&self.shown_url, &error))?;
        if !response.status().is_success() {
            return Err(self.status_error(response, Some(model)).await);
        }
        let body = metadata_body(response, &self.shown_url, "POST /api/show").await?;
        let show: wire::Show = serde_json::from_slice(&body).map_err(|error| {
            BackendError::Protocol(format!(
                "POST /api/show did not answer in Ollama's JSON: {error}"
            ))
        })?;
        Ok(show.capabilities.iter().any(|c| c == "thinking"))
    }

    /// Ollama's version (`GET /api/version`), e.g. `0.12.0`. Doubles as a health check.
    pub async fn version(&self) -> Result<String, BackendError> {
        let version: wire::Version = self.get_json("api/version").await?;
        Ok(version.version)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, BackendError> {
        let response = self
            .http
            .get(self.endpoint(path))
            .timeout(METADATA_TIMEOUT)
            .send()
            .await
            .map_err(|error| request_error(&self.shown_url, &error))?;
        if !response.status().is_success() {
            return Err(self.status_error(response, None).await);
        }
        let body = metadata_body(response, &self.shown_url, &format!("GET /{path}")).await?;
        serde_json::from_slice(&body).map_err(|error| {
            BackendError::Protocol(format!(
                "GET /{path} did not answer in Ollama's JSON: {error}"
            ))
        })
    }

    fn endpoint(&self, path: &str) -> Url {
        endpoint(&self.base, path)
    }

    /// The error for a non-success status, using Ollama's `{"error": ...}` text when present.
    async fn status_error(&self, response: reqwest::Response, model: Option<&str>) -> BackendError {
        let reply = ErrorReply::read(response).await;
        let ollama_error = serde_json::from_slice::<wire::ErrorBody>(&reply.body)
            .ok()
            .map(|body| body.error);
        let message = match (reply.status, model, ollama_error) {
            // Only Ollama's own 404 means "no such model"; a bare 404 means a wrong URL.
            (404, Some(model), Some(_)) => {
                return BackendError::ModelNotInstalled {
                    model: model.to_string(),
                }
            }
            (404, _, None) => {
                tracing::warn!(url = %self.shown_url, "the model server's URL answers 404 without Ollama's error body: is it an Ollama server?");
                "not found: is the configured URL an Ollama server?".into()
            }
            (_, _, Some(message)) => message,
            (_, _, None) => reply.plain_message(),
        };
        BackendError::Http {
            status: reply.status,
            message: self.secrets.hide(message),
            retry_after: reply.retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_a_proxy_prefix() {
        let client = OllamaClient::new("http://gpu/ollama", ClientOptions::default()).unwrap();
        assert_eq!(
            client.endpoint("api/chat").as_str(),
            "http://gpu/ollama/api/chat"
        );
        assert_eq!(client.url(), "http://gpu/ollama");
    }

    #[test]
    fn the_api_key_stays_out_of_debug() {
        let client = OllamaClient::with_api_key(
            "https://gpu/ollama",
            ClientOptions::default(),
            Some("sk-ollama-secret".into()),
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("sk-ollama-secret"));
    }
}
