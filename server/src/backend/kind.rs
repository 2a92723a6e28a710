//! [`Backend`]: one model server's client, whichever API it speaks; the one place the job
//! runner and the pool reach a model server through.
use app::types::BackendKind;

use super::{BackendError, ChatRequest, ChatStream, OllamaClient, OpenAiClient};

/// A client for one model server. Cheap to clone (clones share the connection pool).
#[derive(Debug, Clone)]
pub enum Backend {
    Ollama(OllamaClient),
    /// llama.cpp's `llama-server`, vLLM, LM Studio, or any other OpenAI-compatible server.
    OpenAi(OpenAiClient),
}

impl Backend {
    pub fn kind(&self) -> BackendKind {
        match self {
            Backend::Ollama(_) => BackendKind::Ollama,
            Backend::OpenAi(_) => BackendKind::OpenAi,
        }
    }

    /// The base URL, for the log only (never for public messages).
    pub fn url(&self) -> &str {
        match self {
            Backend::Ollama(client) => client.url(),
            Backend::OpenAi(client) => client.url(),
        }
    }

    /// Starts a streamed reply. Returns once the server has answered with a success status;
    /// errors before that come back here, errors after it come out of the stream.
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, BackendError> {
        match self {
            Backend::Ollama(client) => client.chat_stream(request).await,
            Backend::OpenAi(client) => client.chat_stream(request).await,
        }
    }

    /// The names of the models it has (Ollama's `/api/tags`, OpenAI's `/v1/models`).
    pub async fn models(&self) -> Result<Vec<String>, BackendError> {
        match self {
            Backend::Ollama(client) => Ok(client
                .tags()
                .await?
                .into_iter()
                .map(|model| model.name)
                .collect()),
            Backend::OpenAi(client) => client.models().await,
        }
    }

    /// The models loaded in memory now (Ollama's `/api/ps`); `None` when the kind cannot say.
    pub async fn loaded_models(&self) -> Result<Option<Vec<String>>, BackendError> {
        match self {
            Backend::Ollama(client) => client.loaded_models().await.map(Some),
            Backend::OpenAi(_) => Ok(None),
        }
    }

    /// Whether it answers: its version when it tells one (Ollama's `/api/version`; an
    /// OpenAI-compatible server has none to tell and is asked for its models). Cheap enough to
    /// probe with.
    pub async fn check(&self) -> Result<Option<String>, BackendError> {
        match self {
            Backend::Ollama(client) => client.version().await.map(Some),
            Backend::OpenAi(client) => client.models().await.map(|_| None),
        }
    }

    /// Whether a request for `model` should ask it to reason first ([`ChatRequest::think`]).
    /// Never for an OpenAI-compatible server: a reasoning model there reasons without being
    /// asked, and its reasoning streams all the same.
    pub async fn can_think(&self, model: &str) -> Result<bool, BackendError> {
        match self {
            Backend::Ollama(client) => client.can_think(model).await,
            Backend::OpenAi(_) => Ok(false),
        }
    }
}
