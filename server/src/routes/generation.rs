//! `/api/v1/ai/generation/{jobId}`: a job's state as JSON, Stop and Retry, and the seed's SSE
//! stream of its progress.
//!
//! The stream sends `progress` events, then exactly one `done` or `error`, and ends. Every
//! event's id is `<run>.<attempt>:<bytes of text sent>` (`end` for the terminal one), so a client
//! reconnecting with `Last-Event-ID` gets exactly the text it has not seen; a reconnect after
//! the end gets 204, which tells EventSource to stop.
use std::convert::Infallible;

use app::types::{ErrorEvent, JobEvent, JobStatus, JobView};
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{sse::Event, IntoResponse, Response},
    Json,
};
use axum_extra::extract::SignedCookieJar;
use futures::{stream, Stream, StreamExt};
use tokio::sync::watch;

use super::{address::ApiPath, sse::sse_response};
use crate::metrics::StreamKind;
use crate::{
    allowed_models::AllowedModels,
    client_addr::ClientAddr,
    db::JobRow,
    error::{HttpError, HttpResult},
    hub::{progress_event, terminal_event},
    jobs::job_view,
    state::AppState,
};

async fn job_row(state: &AppState, job_id: i64) -> HttpResult<JobRow> {
    state
        .db
        .job(job_id)
        .await?
        .ok_or_else(|| HttpError::not_found("generation job"))
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath(job_id): ApiPath<i64>,
) -> HttpResult<Json<JobView>> {
    let row = job_row(&state, job_id).await?;
    Ok(Json(state.jobs.view(&row)))
}

pub async fn cancel(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    ApiPath(job_id): ApiPath<i64>,
) -> HttpResult<StatusCode> {
    let row = job_row(&state, job_id).await?;
    super::require_author(&jar, &row.author_id, "stop this generation")?;
    if state.jobs.cancel(job_id).await? {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(HttpError::conflict("This generation has already finished."))
    }
}

/// A Retry queues a generation again, so it passes the same limits as a new AI post.
pub async fn retry(
    State(state): State<AppState>,
    client: ClientAddr,
    jar: SignedCookieJar,
    ApiPath(job_id): ApiPath<i64>,
) -> HttpResult<Json<JobView>> {
    let row = job_row(&state, job_id).await?;
    super::require_author(&jar, &row.author_id, "retry this generation")?;
    let only_ended = || HttpError::conflict("Only a failed or stopped generation can be retried.");
    // Before the limits, so that a Retry that cannot happen spends no quota.
    if !row.status.ended_early() {
        return Err(only_ended());
    }
    // The list may have narrowed since the post was made.
    AllowedModels::of(&state.config.generation)
        .check(row.model.clone())
        .map_err(HttpError::invalid)?;
    let _admitted = state.jobs.admit(&row.author_id, client.key()).await?;
    state
        .jobs
        .retry(job_id, client.key())
        .await?
        .map(Json)
        .ok_or_else(only_ended)
}

/// Where a watcher is: which run's and attempt's text, and how many bytes of it it has. A run
/// number never repeats (every claim counts), so text from two runs never mixes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Cursor {
    run: u32,
    attempt: u32,
    offset: usize,
    /// How much of the reasoning the client has (not in the event id: a resumed stream sends
    /// the reasoning from its start).
    thinking: usize,
}

impl Cursor {
    fn start_of(view: &JobView) -> Self {
        Self {
            run: view.run,
            attempt: view.attempt,
            offset: 0,
            thinking: 0,
        }
    }
}

fn parse_last_event_id(headers: &HeaderMap) -> Option<Result<Cursor, ()>> {
    let value = headers.get("last-event-id")?.to_str().ok()?;
    if value == "end" {
        return Some(Err(()));
    }
    let (text, offset) = value.split_once(':')?;
    let (run, attempt) = text.split_once('.')?;
    Some(Ok(Cursor {
        run: run.parse().ok()?,
        attempt: attempt.parse().ok()?,
        offset: offset.parse().ok()?,
        thinking: 0,
    }))
}

pub async fn progress(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiPath(job_id): ApiPath<i64>,
    headers: HeaderMap,
) -> HttpResult<Response> {
    let mut rx = state.hub.watch(job_id);
    let first = match &rx {
        Some(rx) => rx.borrow().clone(),
        None => {
            let row = job_row(&state, job_id).await?;
            // Made on another instance a moment ago: this one follows it from now on.
            match state.jobs.follow(row).await? {
                Ok(following) => {
                    let first = following.borrow().clone();
                    rx = Some(following);
                    first
                }
                Err(row) => job_view(&row, None),
            }
        }
    };
    let resume = parse_last_event_id(&headers);
    if first.status.is_terminal() && matches!(resume, Some(Err(()))) {
        // The client already has the terminal event: 204 tells EventSource to stop.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let cursor = match resume {
        Some(Ok(c)) => c,
        _ => Cursor::start_of(&first),
    };
    let slot = state.limits.open_stream(client.key())?;
    let events = job_events(rx, first, cursor).map(move |event| {
        let _held_while_streaming = &slot;
        event
    });
    Ok(sse_response(
        StreamKind::Job,
        events.take_until(state.shutdown.clone().cancelled_owned()),
    ))
}

/// The events for one watcher: its cursor moves with what it has been sent.
fn job_events(
    rx: Option<watch::Receiver<JobView>>,
    first: JobView,
    cursor: Cursor,
) -> impl Stream<Item = Result<Event, Infallible>> {
    struct Watcher {
        rx: Option<watch::Receiver<JobView>>,
        first: Option<JobView>,
        cursor: Cursor,
        ended: bool,
    }
    let watcher = Watcher {
        rx,
        first: Some(first),
        cursor,
        ended: false,
    };
    stream::unfold(watcher, |mut w| async move {
        if w.ended {
            return None;
        }
        let event = match w.first.take() {
            Some(view) => next_event(&view, &mut w.cursor),
            None => {
                let rx = w.rx.as_mut()?;
                match rx.changed().await {
                    Ok(()) => next_event(&rx.borrow_and_update(), &mut w.cursor),
                    Err(_) => {
                        // The hub let go of the job: its last value is the terminal state,
                        // unless the post was deleted.
                        let view = rx.borrow().clone();
                        if view.status.is_terminal() {
                            next_event(&view, &mut w.cursor)
                        } else {
                            deleted_event(&view)
                        }
                    }
                }
            }
        };
        w.ended = event.1;
        Some((Ok(event.0), w))
    })
}

/// The event that brings a watcher at `cursor` up to `view`, and whether it is the last one.
fn next_event(view: &JobView, cursor: &mut Cursor) -> (Event, bool) {
    if view.status.is_terminal() {
        return (to_sse(&terminal_event(view), "end".into()), true);
    }
    // Another attempt restarted the text, or the client's offset is not a valid point in it.
    if (cursor.run, cursor.attempt) != (view.run, view.attempt)
        || cursor.offset > view.text.len()
        || !view.text.is_char_boundary(cursor.offset)
    {
        *cursor = Cursor::start_of(view);
    }
    if cursor.thinking > view.thinking.len() || !view.thinking.is_char_boundary(cursor.thinking) {
        cursor.thinking = 0;
    }
    let event = JobEvent::Progress(progress_event(view, cursor.offset, cursor.thinking));
    cursor.offset = view.text.len();
    cursor.thinking = view.thinking.len();
    let id = format!("{}.{}:{}", cursor.run, cursor.attempt, cursor.offset);
    (to_sse(&event, id), false)
}

/// The end of the stream of a job whose post was deleted while it ran.
fn deleted_event(view: &JobView) -> (Event, bool) {
    let event = JobEvent::Error(ErrorEvent {
        job_id: view.id,
        post_id: view.post_id,
        status: JobStatus::Cancelled,
        message: "The post was deleted.".into(),
        failure: None,
        text: String::new(),
        blocks: Vec::new(),
        seq: view.seq + 1,
    });
    (to_sse(&event, "end".into()), true)
}

fn to_sse(event: &JobEvent, id: String) -> Event {
    let data = event.data().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialise a job event");
        String::new()
    });
    Event::default()
        .event(event.name().as_str())
        .id(id)
        .data(data)
}
