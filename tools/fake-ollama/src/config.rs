//! How the fake behaves: `FakeConfig` (also the binary's flags) and the failures it can inject.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::length_mix::LengthMix;

/// The text emitted when no `output` is configured. It mixes ASCII with multi-byte UTF-8
/// (accents, CJK, emoji) so that clients splitting bytes in the wrong place get caught.
pub const DEFAULT_OUTPUT: &str = "The wall listens before it speaks. In a small café near the \
river, someone writes 日本語 poems on napkins while the espresso machine hums ☕. A robot 🤖 \
counts the words as they arrive, one at a time, and never loses its place. Every story grows \
like this: patiently, token by token, until it is done.";

/// What a thinking model "thinks" before it answers (see [`FakeConfig::thinking_tokens`]).
pub const THINKING_TEXT: &str = "Let me think about what to write. The reader wants a short, \
friendly post.";

/// The message Ollama sends with HTTP 503 when its request queue is full.
pub const BUSY_MESSAGE: &str = "server busy, please try again.  maximum pending requests exceeded";

/// The message of a mid-stream error, as Ollama words it when the model runner dies.
pub const RUNNER_ERROR_MESSAGE: &str =
    "an error was encountered while running the model: unexpected EOF";

/// Everything the fake can be told to do. Every field is also a flag of the `fake-ollama`
/// binary (`tokens_per_second` is `--tokens-per-second`), and most can be overridden per
/// request with `#fake:` directives (see the crate documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct FakeConfig {
    /// Installed models, comma-separated; requests for other models get Ollama's 404.
    #[arg(long, value_delimiter = ',', default_values_t = default_models())]
    pub models: Vec<String>,
    /// Output pace. Tokens leave on a steady schedule; 0 means as fast as possible.
    #[arg(long, default_value_t = 20.0)]
    pub tokens_per_second: f64,
    /// Simulated model load before the first chunk, reported as `load_duration`.
    #[arg(long, default_value_t = 0)]
    pub load_delay_ms: u64,
    /// Simulated prompt evaluation before the first chunk, reported as `prompt_eval_duration`.
    #[arg(long, default_value_t = 0)]
    pub prompt_eval_ms: u64,
    /// Tokens a reply has when nothing cuts it short (`options.num_predict` can).
    #[arg(long, default_value_t = 60)]
    pub length: u32,
    /// Text to emit, split into word tokens and repeated or truncated to `length` tokens
    /// (default: a built-in text with multi-byte UTF-8).
    #[arg(long)]
    pub output: Option<String>,
    /// Injected failure: none | error-after=N | stall-after=N | status=CODE[:MESSAGE].
    #[arg(long, default_value_t = Failure::None)]
    pub failure: Failure,
    /// Write every NDJSON line in pieces of this many bytes, each its own HTTP body frame.
    #[arg(long)]
    pub split_bytes: Option<usize>,
    /// Send three NDJSON lines per HTTP body frame.
    #[arg(long)]
    pub coalesce_lines: bool,
    /// Each token's content is ` t<unix time in microseconds>` taken as it leaves.
    #[arg(long)]
    pub stamp_tokens: bool,
    /// The first N requests with the same prompt text get HTTP 503 "server busy", then succeed.
    #[arg(long, default_value_t = 0)]
    pub fail_first: u32,
    /// Thinking tokens streamed before the content: `message.thinking` on Ollama's API (only
    /// when the request's `think` asks for it), the flavor's reasoning field on OpenAI's.
    #[arg(long, default_value_t = 0)]
    pub thinking_tokens: u32,
    /// Stream the whole reply whatever `options.num_predict` says, as a broken upstream might.
    #[arg(long)]
    pub ignore_num_predict: bool,
    /// Make every content token at least this many bytes (its word repeated): giant chunks.
    #[arg(long)]
    pub token_bytes: Option<usize>,
    /// Which API the fake answers; the other's paths answer a plain 404.
    #[arg(long, value_enum, default_value_t = Api::Both)]
    pub api: Api,
    /// Whose dialect `/v1/chat/completions` speaks: llama.cpp's `llama-server` or vLLM.
    #[arg(long, value_enum, default_value_t = Flavor::Llamacpp)]
    pub openai_flavor: Flavor,
    /// The delta field reasoning goes in on `/v1/chat/completions` (default: the flavor's own,
    /// `reasoning_content` for llama.cpp, `reasoning` for vLLM).
    #[arg(long, value_enum)]
    pub reasoning_field: Option<ReasoningField>,
    /// Models with Ollama's "thinking" capability, comma-separated (`qwen3` covers every
    /// `qwen3:*`): `/api/show` lists it, only they accept `"think": true`, and they think when
    /// `think` is absent, as Ollama's do.
    #[arg(long, value_delimiter = ',')]
    pub thinking_models: Vec<String>,
    /// Seconds for a `Retry-After` header on injected HTTP error answers (`status`, `fail-first`).
    #[arg(long)]
    pub retry_after: Option<u64>,
    /// Answer lengths drawn from a seeded log-normal mix, `MEDIAN:SIGMA:SEED`, in place of
    /// `length` (a `#fake:tokens=` directive still wins): the n-th request gets the n-th length.
    #[arg(long)]
    pub length_mix: Option<LengthMix>,
}

/// Which wire protocol a fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// Ollama's `/api/*` (and `GET /`).
    Ollama,
    /// The OpenAI-compatible `/v1/*` (and `GET /health`).
    Openai,
    /// Both.
    #[default]
    Both,
}

impl Api {
    /// Whether Ollama's paths answer.
    pub fn serves_ollama(self) -> bool {
        matches!(self, Api::Ollama | Api::Both)
    }

    /// Whether the OpenAI-compatible paths answer.
    pub fn serves_openai(self) -> bool {
        matches!(self, Api::Openai | Api::Both)
    }
}

/// The OpenAI-compatible server whose habits `/v1/chat/completions` copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// llama.cpp's `llama-server`: `timings`, `prompt_progress`, `reasoning_content`, the
    /// finish reason on a chunk of its own.
    #[default]
    Llamacpp,
    /// vLLM: `reasoning`, no timings, the finish reason on the last token's chunk.
    Vllm,
}

impl Flavor {
    /// The delta field this server puts reasoning in.
    pub fn reasoning_field(self) -> ReasoningField {
        match self {
            Flavor::Llamacpp => ReasoningField::ReasoningContent,
            Flavor::Vllm => ReasoningField::Reasoning,
        }
    }
}

impl FromStr for Flavor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "llamacpp" | "llama.cpp" => Ok(Flavor::Llamacpp),
            "vllm" => Ok(Flavor::Vllm),
            _ => Err(format!("unknown flavor {s:?}: expected llamacpp or vllm")),
        }
    }
}

/// The name of the delta field that carries reasoning on `/v1/chat/completions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningField {
    /// `delta.reasoning_content` (llama.cpp, older vLLM, DeepSeek).
    #[value(name = "reasoning_content")]
    ReasoningContent,
    /// `delta.reasoning` (current vLLM).
    Reasoning,
}

impl ReasoningField {
    /// The JSON field name.
    pub fn name(self) -> &'static str {
        match self {
            ReasoningField::ReasoningContent => "reasoning_content",
            ReasoningField::Reasoning => "reasoning",
        }
    }
}

impl FromStr for ReasoningField {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reasoning_content" => Ok(ReasoningField::ReasoningContent),
            "reasoning" => Ok(ReasoningField::Reasoning),
            _ => Err(format!(
                "unknown reasoning field {s:?}: expected reasoning_content or reasoning"
            )),
        }
    }
}

fn default_models() -> Vec<String> {
    vec!["llama3.2:1b".to_string(), "qwen2.5:0.5b".to_string()]
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            models: default_models(),
            tokens_per_second: 20.0,
            load_delay_ms: 0,
            prompt_eval_ms: 0,
            length: 60,
            output: None,
            failure: Failure::None,
            split_bytes: None,
            coalesce_lines: false,
            stamp_tokens: false,
            fail_first: 0,
            thinking_tokens: 0,
            ignore_num_predict: false,
            token_bytes: None,
            api: Api::Both,
            openai_flavor: Flavor::Llamacpp,
            reasoning_field: None,
            thinking_models: Vec::new(),
            retry_after: None,
            length_mix: None,
        }
    }
}

impl FakeConfig {
    /// The content tokens a complete, unstamped reply consists of, in order.
    pub fn tokens(&self) -> Vec<String> {
        let text = self.output.as_deref().unwrap_or(DEFAULT_OUTPUT);
        let tokens = cycle_words(text, self.length as usize);
        match self.token_bytes {
            Some(bytes) => tokens
                .into_iter()
                .map(|t| t.repeat(bytes.div_ceil(t.len().max(1))))
                .collect(),
            None => tokens,
        }
    }

    /// The content a complete, unstamped reply concatenates to.
    pub fn text(&self) -> String {
        self.tokens().concat()
    }

    /// The thinking tokens streamed before the content.
    pub fn thinking(&self) -> Vec<String> {
        cycle_words(THINKING_TEXT, self.thinking_tokens as usize)
    }

    /// The delta field reasoning goes in on `/v1/chat/completions`.
    pub fn reasoning_field(&self) -> ReasoningField {
        self.reasoning_field
            .unwrap_or_else(|| self.openai_flavor.reasoning_field())
    }
}

/// `count` word tokens of `text`, starting over when the text runs out. A token is a word
/// with the whitespace before it, so the tokens of one pass concatenate to the text exactly.
pub(crate) fn cycle_words(text: &str, count: usize) -> Vec<String> {
    let words = split_words(text);
    if words.is_empty() {
        return Vec::new();
    }
    let mut tokens = Vec::with_capacity(count);
    let mut pass = 0;
    while tokens.len() < count {
        for (i, word) in words.iter().enumerate() {
            if tokens.len() == count {
                break;
            }
            let joins_previous_pass = pass > 0 && i == 0;
            if joins_previous_pass && !text.ends_with(char::is_whitespace) {
                tokens.push(format!(" {word}"));
            } else {
                tokens.push(word.to_string());
            }
        }
        pass += 1;
    }
    tokens
}

/// Word tokens in Ollama's style: a word with the whitespace before it (`"The"`, `" wall"`).
/// Leading whitespace stays with the first word, trailing whitespace with the last.
fn split_words(text: &str) -> Vec<&str> {
    let content_end = text.trim_end().len();
    let mut words = Vec::new();
    let mut start = 0;
    let mut seen_word = false;
    let mut previous_was_space = true;
    for (i, c) in text[..content_end].char_indices() {
        let space = c.is_whitespace();
        if space && !previous_was_space && seen_word {
            words.push(&text[start..i]);
            start = i;
        }
        seen_word |= !space;
        previous_was_space = space;
    }
    if seen_word {
        words.push(&text[start..]);
    }
    words
}

/// A failure the fake injects into a request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// Every request succeeds.
    #[default]
    None,
    /// After `tokens` chunks the stream ends with one `{"error": ...}` line (status stays 200),
    /// as Ollama does when the model runner dies mid-generation.
    ErrorAfter { tokens: u32 },
    /// After `tokens` chunks the fake keeps the connection open and sends nothing more.
    StallAfter { tokens: u32 },
    /// The request is answered at once with this HTTP status and `{"error": message}`.
    HttpStatus { status: u16, message: String },
}

impl Failure {
    /// An HTTP failure with the message Ollama would send for that status.
    pub fn http(status: u16) -> Failure {
        let message = match status {
            503 => BUSY_MESSAGE.to_string(),
            _ => format!("fake-ollama: injected HTTP {status}"),
        };
        Failure::HttpStatus { status, message }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::None => write!(f, "none"),
            Failure::ErrorAfter { tokens } => write!(f, "error-after={tokens}"),
            Failure::StallAfter { tokens } => write!(f, "stall-after={tokens}"),
            Failure::HttpStatus { status, message } => write!(f, "status={status}:{message}"),
        }
    }
}

impl FromStr for Failure {
    type Err = String;

    /// Parses `none`, `error-after=N`, `stall-after=N`, `status=CODE` or `status=CODE:MESSAGE`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "none" {
            return Ok(Failure::None);
        }
        let (kind, value) = s
            .split_once('=')
            .ok_or_else(|| format!("unknown failure {s:?}: expected none, error-after=N, stall-after=N or status=CODE[:MESSAGE]"))?;
        let count = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("{kind} needs a token count, got {v:?}"))
        };
        match kind {
            "error-after" => Ok(Failure::ErrorAfter {
                tokens: count(value)?,
            }),
            "stall-after" => Ok(Failure::StallAfter {
                tokens: count(value)?,
            }),
            "status" => {
                let (code, message) = match value.split_once(':') {
                    Some((code, message)) => (code, Some(message)),
                    None => (value, None),
                };
                let status = parse_status(code)?;
                Ok(match message {
                    Some(message) => Failure::HttpStatus {
                        status,
                        message: message.to_string(),
                    },
                    None => Failure::http(status),
                })
            }
            _ => Err(format!(
                "unknown failure {kind:?}: expected none, error-after, stall-after or status"
            )),
        }
    }
}

pub(crate) fn parse_status(code: &str) -> Result<u16, String> {
    match code.parse::<u16>() {
        Ok(status) if (400..=599).contains(&status) => Ok(status),
        _ => Err(format!(
            "status needs an HTTP error code (400-599), got {code:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: FakeConfig,
    }

    #[test]
    fn flag_defaults_equal_the_default_config() {
        let cli = Cli::parse_from(["fake-ollama"]);
        assert_eq!(cli.config, FakeConfig::default());
    }

    #[test]
    fn flags_have_the_config_names() {
        let cli = Cli::parse_from([
            "fake-ollama",
            "--models",
            "a:1b,b",
            "--tokens-per-second",
            "30",
            "--failure",
            "status=500:boom",
            "--split-bytes",
            "3",
            "--coalesce-lines",
            "--fail-first",
            "2",
        ]);
        assert_eq!(cli.config.models, ["a:1b", "b"]);
        assert_eq!(cli.config.tokens_per_second, 30.0);
        assert_eq!(
            cli.config.failure,
            Failure::HttpStatus {
                status: 500,
                message: "boom".into()
            }
        );
        assert_eq!(cli.config.split_bytes, Some(3));
        assert!(cli.config.coalesce_lines);
        assert_eq!(cli.config.fail_first, 2);

        let cli = Cli::parse_from([
            "fake-ollama",
            "--api",
            "openai",
            "--openai-flavor",
            "vllm",
            "--reasoning-field",
            "reasoning_content",
            "--thinking-models",
            "qwen3:4b,deepseek-r1",
            "--retry-after",
            "7",
        ]);
        assert_eq!(cli.config.api, Api::Openai);
        assert_eq!(cli.config.openai_flavor, Flavor::Vllm);
        assert_eq!(
            cli.config.reasoning_field(),
            ReasoningField::ReasoningContent
        );
        assert_eq!(cli.config.thinking_models, ["qwen3:4b", "deepseek-r1"]);
        assert_eq!(cli.config.retry_after, Some(7));
    }

    #[test]
    fn one_pass_of_tokens_concatenates_to_the_text() {
        let text = "  Hello  wide\nworld 日本語 ☕ ";
        let words = split_words(text);
        assert_eq!(words.concat(), text);
        assert_eq!(words, ["  Hello", "  wide", "\nworld", " 日本語", " ☕ "]);
        assert_eq!(cycle_words(text, 5).concat(), text);
    }

    #[test]
    fn tokens_repeat_and_truncate_to_length() {
        assert_eq!(cycle_words("a b", 5), ["a", " b", " a", " b", " a"]);
        assert_eq!(cycle_words("a b", 1), ["a"]);
        assert!(cycle_words("   ", 3).is_empty());
        let config = FakeConfig::default();
        assert_eq!(config.tokens().len(), 60);
        assert!(config.text().contains("café"));
    }

    #[test]
    fn failures_round_trip_through_text() {
        for failure in [
            Failure::None,
            Failure::ErrorAfter { tokens: 5 },
            Failure::StallAfter { tokens: 0 },
            Failure::HttpStatus {
                status: 503,
                message: "busy: really".into(),
            },
        ] {
            assert_eq!(failure.to_string().parse::<Failure>(), Ok(failure));
        }
        assert_eq!("status=503".parse(), Ok(Failure::http(503)));
        assert!("status=200".parse::<Failure>().is_err());
        assert!("explode".parse::<Failure>().is_err());
    }
}
