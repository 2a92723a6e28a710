//! The wire contract, pinned: the JSON of every SSE event and of the error body against
//! committed fixtures (`tests/fixtures`), every event name and error code as spelled on the
//! wire, and the README's API section against both.
//!
//! The server's tests read answers through these same types, so a renamed field would pass
//! them while breaking every other client; here it fails. Values are fully populated (every
//! `Option` is `Some`, so every field name appears), with one variant of Nones to pin `null`
//! against an absent key. JSON is compared as `serde_json::Value`: key order does not matter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use app::types::{
    ApiError, BackendHealth, BackendKind, BlocksPatch, Check, DoneEvent, ErrorBody, ErrorCode,
    ErrorEvent, EventName, Failure, FinalStats, HtmlPatch, JobEvent, JobStatus, JobView, Post,
    PostDeletedEvent, PostKind, Progress, ProgressDelta, ProgressEvent, PromptProgress, Readiness,
    Reasoning, SnapshotEvent, WaitingFor, WallEvent,
};
use serde_json::Value;

const README: &str = include_str!("../../README.md");

// ---- the values behind the fixtures ----

fn stats() -> FinalStats {
    FinalStats {
        input_tokens: Some(4),
        output_tokens: Some(42),
        total_tokens: Some(46),
        time_to_first_token_ms: Some(180),
        load_duration_ns: Some(1_500_000),
        prompt_eval_duration_ns: Some(2_500_000),
        eval_duration_ns: Some(3_360_000_000),
        total_duration_ns: Some(3_400_000_000),
        done_reason: "stop".into(),
        cut_at_bytes: Some(65_536),
    }
}

fn progress() -> Progress {
    Progress {
        current_tokens: 42,
        tokens_per_second: 12.5,
        elapsed_time: 3360,
        estimated_time_remaining: Some(1250),
        estimated_time_remaining_low: Some(900),
        estimated_time_remaining_high: Some(2100),
        percent: 62.5,
        last_update_at: 1_764_000_003_360,
    }
}

/// A job with every field set (whatever its status would allow).
fn job() -> JobView {
    JobView {
        id: 7,
        post_id: 3,
        status: JobStatus::Generating,
        model: "llama3.2:1b".into(),
        max_tokens: Some(200),
        queue_position: Some(2),
        expected_start_at: Some(1_764_000_010_000),
        progress: progress(),
        text: "The sea is".into(),
        blocks: vec!["<p>The sea is</p>\n".into()],
        stats: Some(stats()),
        error: Some("Ollama answered HTTP 503: server busy".into()),
        failure: Some(Failure::Busy),
        attempt: 2,
        run: 3,
        retry_at: Some(1_764_000_004_000),
        unreachable_since: Some(1_764_000_002_000),
        model_loaded: Some(true),
        seq: 1_764_000_003_360_001,
        folded: true,
        thinking: "The reader wants the sea.".into(),
        reasoning: Some(Reasoning {
            tokens: 6,
            duration_ms: 900,
            finished: true,
        }),
        prompt_progress: Some(PromptProgress {
            processed: 3,
            total: 4,
        }),
        backend: Some("gpu-1".into()),
        waiting_for: Some(WaitingFor::Slot {
            backends: vec!["gpu-1".into(), "gpu-2".into()],
        }),
    }
}

fn ai_post() -> Post {
    Post {
        id: 3,
        author_name: "Ann".into(),
        kind: PostKind::Ai,
        text: "The sea is deep.".into(),
        html: Some("<p>The sea is deep.</p>\n".into()),
        prompt: Some("Tell me about the sea".into()),
        created_at: 1_764_000_000_000,
        job: Some(job()),
        author_tag: "a1b2c3".into(),
    }
}

/// A post with every `Option` empty.
fn text_post() -> Post {
    Post {
        id: 2,
        author_name: "Bob".into(),
        kind: PostKind::Text,
        text: "Hello, wall".into(),
        html: None,
        prompt: None,
        created_at: 1_763_999_990_000,
        job: None,
        author_tag: "d4e5f6".into(),
    }
}

fn progress_event() -> ProgressEvent {
    ProgressEvent {
        job_id: 7,
        post_id: 3,
        status: JobStatus::Generating,
        queue_position: Some(2),
        expected_start_at: Some(1_764_000_010_000),
        progress: progress(),
        text_offset: 10,
        text_delta: " deep".into(),
        html: Some(BlocksPatch {
            from: 0,
            blocks: vec!["<p>The sea is deep</p>\n".into()],
        }),
        attempt: 2,
        retry_at: Some(1_764_000_004_000),
        error: Some("Ollama answered HTTP 503: server busy".into()),
        failure: Some(Failure::Busy),
        unreachable_since: Some(1_764_000_002_000),
        model_loaded: Some(true),
        run: 3,
        seq: 1_764_000_003_360_001,
        thinking_offset: 19,
        thinking_delta: " sea.".into(),
        reasoning: Some(Reasoning {
            tokens: 6,
            duration_ms: 900,
            finished: false,
        }),
        prompt_progress: Some(PromptProgress {
            processed: 3,
            total: 4,
        }),
        backend: Some("gpu-1".into()),
        waiting_for: Some(WaitingFor::Server {
            backends: vec!["gpu-1".into()],
        }),
    }
}

/// A progress event with every `Option` empty: each is `null` on the wire, not left out, except
/// `html`, which is left out when the rendered answer did not change, and the reasoning's fields
/// (`thinking_offset`, `thinking_delta`, `reasoning`), `prompt_progress` and `waiting_for`,
/// left out when they have nothing to say.
fn progress_event_nones() -> ProgressEvent {
    ProgressEvent {
        job_id: 8,
        post_id: 4,
        status: JobStatus::Queued,
        queue_position: None,
        expected_start_at: None,
        progress: Progress {
            last_update_at: 1_764_000_000_000,
            ..Progress::default()
        },
        text_offset: 0,
        text_delta: String::new(),
        html: None,
        attempt: 0,
        retry_at: None,
        error: None,
        failure: None,
        unreachable_since: None,
        model_loaded: None,
        run: 0,
        seq: 1_764_000_000_000_001,
        thinking_offset: 0,
        thinking_delta: String::new(),
        reasoning: None,
        prompt_progress: None,
        backend: None,
        waiting_for: None,
    }
}

fn done_event() -> DoneEvent {
    DoneEvent {
        job_id: 7,
        post_id: 3,
        text: "The sea is deep.".into(),
        html: "<p>The sea is deep.</p>\n".into(),
        blocks: vec!["<p>The sea is deep.</p>\n".into()],
        stats: stats(),
        progress: Progress {
            elapsed_time: 3400,
            estimated_time_remaining: Some(0),
            estimated_time_remaining_low: None,
            estimated_time_remaining_high: None,
            percent: 100.0,
            last_update_at: 1_764_000_003_400,
            ..progress()
        },
        seq: 1_764_000_003_400_001,
    }
}

fn error_event() -> ErrorEvent {
    ErrorEvent {
        job_id: 7,
        post_id: 3,
        status: JobStatus::Failed,
        message: "the reply took longer than the 300 s deadline".into(),
        failure: Some(Failure::TooSlow),
        text: "The sea is".into(),
        blocks: vec!["<p>The sea is</p>\n".into()],
        seq: 1_764_000_003_400_001,
    }
}

// ---- comparing with the fixtures ----

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON: {e}\n{text}"))
}

fn assert_same_json(fixture_name: &str, fixture: &str, written: &str) {
    let (expected, actual) = (json(fixture), json(written));
    assert!(
        expected == actual,
        "the JSON written differs from fixtures/{fixture_name}\nwritten:\n{}\nfixture:\n{}",
        serde_json::to_string_pretty(&actual).unwrap(),
        serde_json::to_string_pretty(&expected).unwrap(),
    );
}

/// The wall stream writes `event` as the fixture says, and reads the fixture back as `event`.
fn assert_wall_event(event: WallEvent, fixture_name: &str, fixture: &str) {
    assert_same_json(fixture_name, fixture, &event.data().unwrap());
    let decoded = WallEvent::decode(event.name().as_str(), fixture).unwrap();
    assert_eq!(decoded, event, "fixtures/{fixture_name} reads back");
}

/// A job's own stream writes `event` as the fixture says, and reads the fixture back.
fn assert_job_event(event: JobEvent, fixture_name: &str, fixture: &str) {
    assert_same_json(fixture_name, fixture, &event.data().unwrap());
    let decoded = JobEvent::decode(event.name().as_str(), fixture).unwrap();
    assert_eq!(decoded, event, "fixtures/{fixture_name} reads back");
}

/// `serde` writes `value` as the fixture says, and reads the fixture back as `value`.
fn assert_serde<T>(value: &T, fixture_name: &str, fixture: &str)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_same_json(
        fixture_name,
        fixture,
        &serde_json::to_string(value).unwrap(),
    );
    let decoded: T = serde_json::from_str(fixture).unwrap();
    assert_eq!(&decoded, value, "fixtures/{fixture_name} reads back");
}

// ---- the wall stream ----

#[test]
fn the_snapshot_event_is_as_committed() {
    let event = WallEvent::Snapshot(SnapshotEvent {
        posts: vec![ai_post(), text_post()],
        jobs: vec![job()],
    });
    assert_wall_event(
        event,
        "snapshot.json",
        include_str!("fixtures/snapshot.json"),
    );
}

#[test]
fn the_post_event_is_as_committed() {
    assert_wall_event(
        WallEvent::Post(ai_post()),
        "post.json",
        include_str!("fixtures/post.json"),
    );
}

#[test]
fn the_post_deleted_event_is_as_committed() {
    assert_wall_event(
        WallEvent::PostDeleted(PostDeletedEvent { post_id: 3 }),
        "post_deleted.json",
        include_str!("fixtures/post_deleted.json"),
    );
}

#[test]
fn the_job_event_is_as_committed_and_empty_fields_are_null() {
    assert_wall_event(
        WallEvent::Job(job()),
        "job.json",
        include_str!("fixtures/job.json"),
    );
    assert_wall_event(
        WallEvent::Job(JobView::fresh(8, 4, "qwen2.5:0.5b")),
        "job_fresh.json",
        include_str!("fixtures/job_fresh.json"),
    );
}

#[test]
fn the_progress_event_is_as_committed_and_empty_fields_are_null() {
    assert_wall_event(
        WallEvent::Progress(progress_event()),
        "progress.json",
        include_str!("fixtures/progress.json"),
    );
    assert_wall_event(
        WallEvent::Progress(progress_event_nones()),
        "progress_nones.json",
        include_str!("fixtures/progress_nones.json"),
    );
}

#[test]
fn the_short_progress_event_of_v2_is_as_committed() {
    let delta = ProgressDelta {
        job_id: 7,
        post_id: 3,
        seq: 1_764_000_000_123_456,
        text_offset: 12,
        text_delta: " world".into(),
        html: Some(HtmlPatch {
            from: 1,
            keep: 8,
            blocks: vec![" world</p>".into()],
        }),
        current_tokens: 42,
        tokens_per_second: 21.5,
        elapsed_time: 1950,
        estimated_time_remaining: Some(3100),
        estimated_time_remaining_low: Some(1800),
        estimated_time_remaining_high: Some(5200),
        percent: 37.5,
        last_update_at: 1_764_000_000_123,
    };
    assert_wall_event(
        WallEvent::Delta(delta.clone()),
        "delta.json",
        include_str!("fixtures/delta.json"),
    );
    let plain = ProgressDelta {
        html: None,
        text_delta: String::new(),
        estimated_time_remaining: None,
        estimated_time_remaining_low: None,
        estimated_time_remaining_high: None,
        ..delta
    };
    assert_wall_event(
        WallEvent::Delta(plain),
        "delta_plain.json",
        include_str!("fixtures/delta_plain.json"),
    );
}

#[test]
fn the_done_event_is_as_committed() {
    assert_wall_event(
        WallEvent::Done(done_event()),
        "done.json",
        include_str!("fixtures/done.json"),
    );
}

#[test]
fn the_job_error_event_is_as_committed() {
    assert_wall_event(
        WallEvent::Error(error_event()),
        "job_error.json",
        include_str!("fixtures/job_error.json"),
    );
}

// ---- a job's own stream: the same payloads, under the seed's names ----

#[test]
fn a_jobs_stream_carries_the_same_payloads() {
    assert_job_event(
        JobEvent::Progress(progress_event()),
        "progress.json",
        include_str!("fixtures/progress.json"),
    );
    assert_job_event(
        JobEvent::Progress(progress_event_nones()),
        "progress_nones.json",
        include_str!("fixtures/progress_nones.json"),
    );
    assert_job_event(
        JobEvent::Done(done_event()),
        "done.json",
        include_str!("fixtures/done.json"),
    );
    assert_job_event(
        JobEvent::Error(error_event()),
        "job_error.json",
        include_str!("fixtures/job_error.json"),
    );
}

#[test]
fn a_failure_is_error_on_a_jobs_stream_and_job_error_on_the_wall() {
    let failure = JobEvent::Error(error_event());
    assert_eq!(failure.name().as_str(), "error");
    assert_eq!(WallEvent::from(failure).name().as_str(), "job_error");
    let data = include_str!("fixtures/job_error.json");
    assert!(JobEvent::decode("job_error", data).is_err());
    assert!(WallEvent::decode("error", data).is_err());
    assert_eq!(
        JobEvent::Progress(progress_event()).name().as_str(),
        "progress"
    );
    assert_eq!(JobEvent::Done(done_event()).name().as_str(), "done");
}

// ---- names and codes ----

/// Every event name as documented. A new name fails to compile here until it is written down.
fn documented_event_name(name: EventName) -> &'static str {
    match name {
        EventName::Snapshot => "snapshot",
        EventName::Post => "post",
        EventName::PostDeleted => "post_deleted",
        EventName::Job => "job",
        EventName::Progress => "progress",
        EventName::Done => "done",
        EventName::JobError => "job_error",
        EventName::Error => "error",
        EventName::Delta => "delta",
    }
}

#[test]
fn every_event_name_is_spelled_as_documented() {
    let all = [EventName::Error].into_iter().chain(EventName::WALL_V2);
    for name in all {
        assert_eq!(name.as_str(), documented_event_name(name));
        assert_eq!(name.to_string(), documented_event_name(name));
        assert_eq!(EventName::parse(name.as_str()), Some(name));
    }
    assert_eq!(
        EventName::WALL.map(EventName::as_str),
        [
            "snapshot",
            "post",
            "post_deleted",
            "job",
            "progress",
            "done",
            "job_error"
        ]
    );
    assert_eq!(
        EventName::WALL_V2.map(EventName::as_str),
        [
            "snapshot",
            "post",
            "post_deleted",
            "job",
            "progress",
            "delta",
            "done",
            "job_error"
        ]
    );
    assert_eq!(
        EventName::JOB.map(EventName::as_str),
        ["progress", "done", "error"]
    );
    assert_eq!(EventName::parse("message"), None);
}

/// Every error code as documented. A new code fails to compile here until it is written down.
fn documented_error_code(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Validation => "validation",
        ErrorCode::Malformed => "malformed",
        ErrorCode::TooLarge => "too_large",
        ErrorCode::NotFound => "not_found",
        ErrorCode::Forbidden => "forbidden",
        ErrorCode::Conflict => "conflict",
        ErrorCode::RateLimited => "rate_limited",
        ErrorCode::Restarting => "restarting",
        ErrorCode::Overloaded => "overloaded",
        ErrorCode::Database => "database",
        ErrorCode::OllamaUnavailable => "ollama_unavailable",
        ErrorCode::Internal => "internal",
        ErrorCode::Network => "network",
        ErrorCode::Http => "http",
        ErrorCode::Reload => "reload",
        ErrorCode::Unknown => "unknown",
    }
}

#[test]
fn every_error_code_is_spelled_as_documented() {
    let all = [
        ErrorCode::Validation,
        ErrorCode::Malformed,
        ErrorCode::TooLarge,
        ErrorCode::NotFound,
        ErrorCode::Forbidden,
        ErrorCode::Conflict,
        ErrorCode::RateLimited,
        ErrorCode::Restarting,
        ErrorCode::Overloaded,
        ErrorCode::Database,
        ErrorCode::OllamaUnavailable,
        ErrorCode::Internal,
        ErrorCode::Network,
        ErrorCode::Http,
        ErrorCode::Reload,
        ErrorCode::Unknown,
    ];
    for code in all {
        let spelled = Value::from(documented_error_code(code));
        assert_eq!(serde_json::to_value(code).unwrap(), spelled, "{code:?}");
        assert_eq!(serde_json::from_value::<ErrorCode>(spelled).unwrap(), code);
    }
    let newer: ErrorCode = serde_json::from_str("\"payment_required\"").unwrap();
    assert_eq!(newer, ErrorCode::Unknown, "a code from a newer server");
}

#[test]
fn job_statuses_and_post_kinds_are_spelled_in_lowercase() {
    let statuses = JobStatus::ALL.map(|s| serde_json::to_value(s).unwrap());
    assert_eq!(
        statuses,
        [
            "queued",
            "loading",
            "generating",
            "completed",
            "failed",
            "cancelled"
        ]
        .map(Value::from)
    );
    for status in JobStatus::ALL {
        assert_eq!(
            Value::from(status.as_str()),
            serde_json::to_value(status).unwrap()
        );
    }
    let classes = Failure::ALL.map(|f| serde_json::to_value(f).unwrap());
    assert_eq!(
        classes,
        [
            "unreachable",
            "model_missing",
            "busy",
            "refused",
            "broke_off",
            "stalled",
            "too_slow",
            "interrupted",
            "stopped",
            "other"
        ]
        .map(Value::from)
    );
    let newer: Failure = serde_json::from_str("\"quota\"").unwrap();
    assert_eq!(newer, Failure::Other, "a class from a newer server");
    assert_eq!(serde_json::to_value(PostKind::Text).unwrap(), "text");
    assert_eq!(serde_json::to_value(PostKind::Ai).unwrap(), "ai");
}

// ---- bodies of plain responses ----

#[test]
fn the_error_body_is_as_committed() {
    let body = ErrorBody {
        error: ApiError::new(
            ErrorCode::RateLimited,
            "You can create 2 AI posts per minute. Try again in 30 s.",
        ),
    };
    assert_serde(
        &body,
        "error_body.json",
        include_str!("fixtures/error_body.json"),
    );
}

#[test]
fn readiness_leaves_out_what_a_check_did_not_say() {
    let readiness = Readiness {
        ready: false,
        instance: "web-1:3000".into(),
        database: Check {
            ok: false,
            version: None,
            error: Some("database is locked".into()),
        },
        ollama: Check {
            ok: true,
            version: Some("0.12.0".into()),
            error: None,
        },
        backends: vec![BackendHealth {
            name: "gpu-1".into(),
            kind: BackendKind::Ollama,
            ok: false,
            error: Some("connection refused".into()),
            down_since: Some(1_764_000_002_000),
            models: vec!["llama3.2:1b".into()],
            running: 0,
            concurrency: 2,
        }],
        queued_jobs: 2,
        wall_watchers: 5,
    };
    assert_serde(
        &readiness,
        "readiness.json",
        include_str!("fixtures/readiness.json"),
    );
}

// ---- the README's API section says the same ----

/// The `code spans` of a piece of Markdown, in order.
fn code_spans(markdown: &str) -> Vec<&str> {
    markdown.split('`').skip(1).step_by(2).collect()
}

/// The README line that documents `endpoint`.
fn readme_line(endpoint: &str) -> &'static str {
    README
        .lines()
        .find(|line| line.starts_with(&format!("| `{endpoint}`")))
        .unwrap_or_else(|| panic!("the README documents {endpoint}"))
}

#[test]
fn the_readme_names_the_events_of_each_stream() {
    let wall = code_spans(readme_line("GET /api/v1/wall/events"));
    assert_eq!(wall[1..], EventName::WALL.map(EventName::as_str));
    let wall = code_spans(readme_line("GET /api/v2/wall/events"));
    assert_eq!(wall[1..], EventName::WALL_V2.map(EventName::as_str));
    let job = code_spans(readme_line("GET /api/v1/ai/generation/{jobId}/progress"));
    assert_eq!(job[1..], EventName::JOB.map(EventName::as_str));
}

#[test]
fn the_readme_progress_fields_are_at_the_top_of_a_progress_event() {
    let start = README
        .find("A `progress` event carries")
        .expect("the README describes a progress event");
    let paragraph = README[start..].split("\n\n").next().unwrap();
    let described = paragraph.split("Event ids").next().unwrap();
    let fields: Vec<&str> = code_spans(described)
        .into_iter()
        .filter(|name| *name != "progress")
        .collect();
    for seed in [
        "current_tokens",
        "tokens_per_second",
        "elapsed_time",
        "estimated_time_remaining",
        "last_update_at",
    ] {
        assert!(
            fields.contains(&seed),
            "the README lists {seed}: {fields:?}"
        );
    }
    let fixture = json(include_str!("fixtures/progress.json"));
    let event = fixture.as_object().unwrap();
    for field in fields {
        assert!(
            event.contains_key(field),
            "the README's `{field}` is a top-level key of a progress event"
        );
    }
}

#[test]
fn the_readme_error_body_has_the_fixtures_shape() {
    let start = README
        .find("Errors are `")
        .expect("the README describes the error body");
    let documented = json(code_spans(&README[start..])[0]);
    let fixture = json(include_str!("fixtures/error_body.json"));
    let keys = |v: &Value| -> std::collections::BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(keys(&documented), keys(&fixture));
    assert_eq!(keys(&documented["error"]), keys(&fixture["error"]));
}
