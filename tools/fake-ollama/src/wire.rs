//! Ollama's JSON shapes as the fake reads and writes them (field names as in Ollama's api/types.go).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /api/chat` body (fields the fake does not use are ignored, as Ollama ignores them).
#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub messages: Vec<RequestMessage>,
    pub stream: Option<bool>,
    pub options: Option<Options>,
    /// `true`, `false` or a level (`"high"`, ...); absent means the model's default.
    pub think: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RequestMessage {
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub content: String,
}

/// `POST /api/generate` body.
#[derive(Debug, Deserialize)]
pub(crate) struct GenerateRequest {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub prompt: String,
    pub stream: Option<bool>,
    pub options: Option<Options>,
    pub think: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Options {
    /// -1 (the default) means unbounded.
    pub num_predict: Option<i64>,
}

/// `POST /api/show` body: Ollama accepts `model` and the older `name`.
#[derive(Debug, Deserialize)]
pub(crate) struct ShowRequest {
    pub model: Option<String>,
    pub name: Option<String>,
}

/// The statistics of a final (`"done": true`) chunk, durations in nanoseconds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Metrics {
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: u64,
    pub prompt_eval_duration: u64,
    pub eval_count: u64,
    pub eval_duration: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct ChatChunk {
    pub model: String,
    pub created_at: String,
    pub message: ResponseMessage,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ResponseMessage {
    pub role: &'static str,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct GenerateChunk {
    pub model: String,
    pub created_at: String,
    pub response: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<u32>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
}

/// `{"error": "..."}`, Ollama's error body, also the last line of a stream that failed.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody {
    pub error: String,
}

/// `GET /api/tags`, `GET /api/ps`.
#[derive(Debug, Serialize)]
pub(crate) struct ModelList {
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ModelEntry {
    pub name: String,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<String>,
    pub size: u64,
    pub digest: String,
    pub details: ModelDetails,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_vram: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelDetails {
    pub parent_model: String,
    pub format: String,
    pub family: String,
    pub families: Vec<String>,
    pub parameter_size: String,
    pub quantization_level: String,
}

/// Now as RFC 3339 in UTC with nanoseconds, the form Go gives `created_at`.
pub(crate) fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

pub(crate) fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let second_of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        since_epoch.subsec_nanos()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`);
/// a few lines here instead of a date crate for one timestamp format.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_with_nanoseconds() {
        let at = |secs, nanos| rfc3339(UNIX_EPOCH + Duration::new(secs, nanos));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            at(1_691_176_965, 499_127_000),
            "2023-08-04T19:22:45.499127000Z"
        );
        assert_eq!(at(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(at(4_107_542_399, 0), "2100-02-28T23:59:59.000000000Z");
    }
}
