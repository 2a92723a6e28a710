//! `AIGenerationProgress`: the live card of an AI post. A compact line while it waits; then a
//! head (phase, model, the author's Stop), the answer as it is written ([`Answer`]), and
//! one line of live numbers (tokens, speed, elapsed ticking on the client, time remaining);
//! once done a check mark and one muted line of statistics that opens the details; on a
//! failure a plain sentence with the technical detail behind a toggle.
//!
//! The bar is determinate only when a max length or the model's history gives an honest
//! basis; otherwise it is an indeterminate "writing" bar beside the live count. The head
//! keeps its height and the bar takes no room, so the answer never moves when the job ends.
use leptos::{
    either::{Either, EitherOf4},
    prelude::*,
};

use super::{answer::Answer, failure, reason, request};
use crate::{
    api, format,
    live::{LiveJob, WallStore},
    types::{JobStatus, JobView},
};

/// The phase in words, at `now` (0 on the server, where no clock runs).
fn phase(job: &LiveJob, now: f64, reconnecting: bool) -> String {
    let view = &job.view;
    let running = matches!(view.status, JobStatus::Loading | JobStatus::Generating);
    if running && reconnecting {
        return "Reconnecting…".into();
    }
    match view.status {
        JobStatus::Queued => match view.queue_position {
            Some(1) => "Queued · next".into(),
            Some(n) => format!("Queued · {}", format::ordinal(n)),
            None => "Queued".into(),
        },
        JobStatus::Loading => match view.retry_at {
            Some(at) => {
                let why = reason::sentence(view.status, view.failure);
                // The server renders before any clock runs: no countdown there.
                if now <= 0.0 {
                    return format!("{why} Trying again soon");
                }
                // Unix milliseconds stay below 2^53: exact in an f64.
                #[allow(clippy::cast_precision_loss)]
                let at = at as f64;
                // Whole seconds, never negative: truncation is the intent.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let secs = ((at - now) / 1000.0).ceil().max(0.0) as u64;
                format!("{why} Trying again in {}", format::clock(secs * 1000))
            }
            // Nothing arrives before the first token: a cold model load, or a long prompt.
            None if view.model_loaded == Some(true) => "Reading the prompt…".into(),
            None => "Loading the model…".into(),
        },
        JobStatus::Generating => match job.stalled_for(now) {
            Some(ms) => {
                // Whole seconds: truncation is the intent.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let ms = ms as u64;
                format!("No new tokens for {}…", format::clock(ms))
            }
            // A thinking model streams its reasoning (not shown) before the answer.
            None if view.text.is_empty() => "Thinking…".into(),
            None => "Writing…".into(),
        },
        JobStatus::Completed => "Done".into(),
        JobStatus::Failed => "Couldn't finish".into(),
        JobStatus::Cancelled => "Stopped".into(),
    }
}

/// Whether the bar can honestly show a percent: while writing, with a max length or a time
/// remaining from the model's history.
fn determinate(view: &JobView) -> bool {
    view.status == JobStatus::Generating
        && (view.max_tokens.is_some() || view.progress.estimated_time_remaining.is_some())
}

/// The live numbers: "25 tokens · 10 tok/s · 3 s · about 7 s left" (the elapsed time alone
/// while the model loads).
fn numbers(job: &LiveJob, elapsed: u64) -> Vec<(&'static str, String)> {
    let view = &job.view;
    let mut parts = Vec::with_capacity(4);
    if view.status == JobStatus::Generating {
        parts.push(("tokens", format::tokens(view.progress.current_tokens)));
        parts.push(("speed", format::speed(job.speed)));
    }
    parts.push(("elapsed", format::clock(elapsed)));
    if let Some(eta) = view.progress.estimated_time_remaining {
        if view.status == JobStatus::Generating {
            parts.push(("eta", format::remaining(eta)));
        }
    }
    parts
}

/// The finished job in one line: "80 tokens · 10 tok/s · 11 s · first token 0.4 s".
fn summary(view: &JobView) -> String {
    let Some(stats) = &view.stats else {
        return format::seconds(view.progress.elapsed_time);
    };
    format!(
        "{} · {} · {} · first token {}",
        format::tokens(stats.output_tokens),
        format::speed(stats.tokens_per_second()),
        format::seconds(view.progress.elapsed_time),
        format::seconds(stats.time_to_first_token_ms),
    )
}

/// The details behind the summary: (label, test id, value).
fn details(view: &JobView) -> Vec<(&'static str, &'static str, String)> {
    let Some(s) = &view.stats else {
        return Vec::new();
    };
    let ns = |n: u64| format::seconds(n / 1_000_000);
    let mut rows = vec![
        ("Answer", "output", format::tokens(s.output_tokens)),
        ("Prompt", "input", format::tokens(s.input_tokens)),
        ("Speed", "speed", format::speed(s.tokens_per_second())),
        (
            "First token",
            "ttft",
            format::seconds(s.time_to_first_token_ms),
        ),
        ("Loading the model", "load", ns(s.load_duration_ns)),
        (
            "Reading the prompt",
            "prompt-eval",
            ns(s.prompt_eval_duration_ns),
        ),
        ("Writing", "eval", ns(s.eval_duration_ns)),
        (
            "Total time",
            "time",
            format::seconds(view.progress.elapsed_time),
        ),
    ];
    if s.done_reason == "length" {
        rows.push(("Ended", "done-reason", "at the max length".into()));
    }
    rows
}

/// What the author asks of a job.
#[derive(Clone, Copy)]
enum Order {
    Stop,
    Retry,
}

#[component]
pub fn AIGenerationProgress(
    job: RwSignal<Option<LiveJob>>,
    #[prop(into)] mine: Signal<bool>,
    /// The post in words, for the buttons' accessible names ("Ada's AI post “Tell me…”").
    about: String,
) -> impl IntoView {
    let store = expect_context::<WallStore>();
    let now = use_context::<ReadSignal<f64>>().unwrap_or_else(|| signal(0.0).0);
    let status = move || job.with(|j| j.as_ref().map_or(JobStatus::Queued, |j| j.view.status));
    let running = move || matches!(status(), JobStatus::Loading | JobStatus::Generating);
    let ended = move || matches!(status(), JobStatus::Failed | JobStatus::Cancelled);
    let with_job = move |f: fn(&LiveJob) -> String| {
        move || job.with(|j| j.as_ref().map(f).unwrap_or_default())
    };
    let stalled = move || {
        let t = now.get();
        job.with(|j| j.as_ref().is_some_and(|j| j.stalled_for(t).is_some()))
    };
    let offline = move || running() && store.reconnecting.get();
    let control = request(|&(job_id, order): &(i64, Order)| async move {
        match order {
            Order::Stop => api::stop(job_id).await,
            Order::Retry => api::retry(job_id).await,
        }
    });
    let answered = control.value();
    let act = move |order: Order| {
        if let Some(job_id) = job.with_untracked(|j| j.as_ref().map(|j| j.view.id)) {
            control.dispatch((job_id, order));
        }
    };
    let card = NodeRef::<leptos::html::Div>::new();
    let held_focus = StoredValue::new(false);
    keep_focus(card, held_focus, status);
    let about = StoredValue::new(about);
    let label = move |verb: &str| about.with_value(|a| format!("{verb} {a}"));

    view! {
        <div
            class="ai-progress"
            node_ref=card
            tabindex="-1"
            class:queued=move || status() == JobStatus::Queued
            class:running=running
            class:completed=move || status() == JobStatus::Completed
            class:failed=move || status() == JobStatus::Failed
            class:stopped=move || status() == JobStatus::Cancelled
            class:stalled=stalled
            class:offline=offline
            data-job-id=move || job.with(|j| j.as_ref().map(|j| j.view.id).unwrap_or_default())
            data-status=move || status().as_str()
            on:focusin=move |_| held_focus.set_value(true)
            on:focusout=move |ev| {
                // Focus that leaves for another element lets go; focus lost because its
                // button disappeared (no related target) is brought back by `keep_focus`.
                if ev.related_target().is_some() && !within(card, ev.related_target()) {
                    held_focus.set_value(false);
                }
            }
        >
            <Show when=running>
                <div
                    class="bar"
                    class:indeterminate=move || !job.with(|j| j.as_ref().is_some_and(|j| determinate(&j.view)))
                    role="progressbar"
                    aria-label=move || label("Progress of")
                    aria-valuemin="0"
                    aria-valuemax="100"
                    aria-valuenow=move || job.with(|j| j.as_ref().filter(|j| determinate(&j.view)).map(|j| format!("{:.0}", j.view.progress.percent)))
                    aria-valuetext=move || job.with(|j| j.as_ref().map(|j| {
                        let count = format::tokens(j.view.progress.current_tokens);
                        if determinate(&j.view) {
                            format!("{:.0}%, {count}", j.view.progress.percent)
                        } else {
                            format!("Writing, {count}")
                        }
                    }).unwrap_or_default())
                >
                    <div
                        class="bar-fill"
                        style:width=move || job.with(|j| j.as_ref().filter(|j| determinate(&j.view)).map(|j| format!("{:.1}%", j.view.progress.percent)))
                    ></div>
                </div>
            </Show>
            <div class="ai-progress-head">
                <span class="ai-icon" aria-hidden="true">
                    {move || match status() {
                        JobStatus::Completed => EitherOf4::A(view! { <span class="check">"✓"</span> }),
                        JobStatus::Failed => EitherOf4::B(view! { <span class="warn">"!"</span> }),
                        JobStatus::Cancelled => EitherOf4::C(view! { <span class="halt">"■"</span> }),
                        _ => EitherOf4::D(view! { <span class="robot">"🤖"</span> }),
                    }}
                </span>
                <span class="phase" data-testid="phase">
                    {move || {
                        let t = now.get();
                        let reconnecting = store.reconnecting.get();
                        job.with(|j| j.as_ref().map(|j| phase(j, t, reconnecting)).unwrap_or_default())
                    }}
                </span>
                <Show when=move || running() && job.with(|j| j.as_ref().is_some_and(LiveJob::started_again))>
                    <span class="note" data-testid="started-again">"Started again"</span>
                </Show>
                <span class="model">{with_job(|j| j.view.model.clone())}</span>
                <Show when=move || mine.get()>
                    <span class="ai-actions">
                        <Show when=running>
                            <button type="button" data-action="stop" aria-label=move || label("Stop")
                                on:click=move |_| act(Order::Stop)>"Stop"</button>
                        </Show>
                        <Show when=move || status() == JobStatus::Queued>
                            <button type="button" data-action="stop" aria-label=move || label("Cancel")
                                on:click=move |_| act(Order::Stop)>"Cancel"</button>
                        </Show>
                        <Show when=ended>
                            <button type="button" data-action="retry" aria-label=move || label("Retry")
                                on:click=move |_| act(Order::Retry)>"Retry"</button>
                        </Show>
                    </span>
                </Show>
            </div>
            // The answer, in one place from the first token to Done.
            <Answer job />
            <Show when=running>
                <p class="ai-numbers" data-testid="numbers">
                    {move || {
                        let t = now.get();
                        job.with(|j| j.as_ref().map(|j| numbers(j, j.elapsed_at(t))).unwrap_or_default())
                            .into_iter()
                            .map(|(id, text)| view! { <span data-testid=id>{text}</span> })
                            .collect_view()
                    }}
                </p>
            </Show>
            <Show when=move || status() == JobStatus::Completed>
                <details class="ai-stats" data-testid="stats">
                    <summary data-testid="summary">{with_job(|j| summary(&j.view))}</summary>
                    <dl class="stats-row">
                        {move || job.with(|j| j.as_ref().map(|j| details(&j.view)).unwrap_or_default())
                            .into_iter()
                            .map(|(name, id, value)| view! { <div><dt>{name}</dt><dd data-stat=id>{value}</dd></div> })
                            .collect_view()}
                    </dl>
                </details>
            </Show>
            <Show when=ended>
                <div class="ai-error" data-testid="failure">
                    <p class="sentence">{move || job.with(|j| j.as_ref().map(|j| reason::sentence(j.view.status, j.view.failure)).unwrap_or_default())}</p>
                    {move || {
                        let hint = job.with(|j| j.as_ref().and_then(|j| reason::hint(j.view.failure, &j.view.model)));
                        match hint.filter(|_| mine.get()) {
                            Some(hint) => Either::Left(view! { <p class="hint" data-testid="hint">{hint}</p> }),
                            None => Either::Right(()),
                        }
                    }}
                    <Show when=move || status() == JobStatus::Failed && job.with(|j| j.as_ref().is_some_and(|j| j.view.error.is_some()))>
                        <details class="detail">
                            <summary>"Details"</summary>
                            <code data-testid="detail">{with_job(|j| j.view.error.clone().unwrap_or_default())}</code>
                        </details>
                    </Show>
                </div>
            </Show>
            {move || answered.with(failure).map(|m| view! { <p class="error" role="alert">{m}</p> })}
        </div>
    }
}

/// Whether `target` is inside the card.
fn within(card: NodeRef<leptos::html::Div>, target: Option<leptos::web_sys::EventTarget>) -> bool {
    use leptos::wasm_bindgen::JsCast;
    let node = target.and_then(|t| t.dyn_into::<leptos::web_sys::Node>().ok());
    card.get_untracked()
        .is_some_and(|card| node.is_some_and(|n| card.contains(Some(&n))))
}

/// Focus never falls to `<body>` when the card changes under it: when the focused button
/// (Stop, Cancel, Retry) disappears with a change of status, focus moves to the card's next
/// action (Retry after Stop) or else to the card itself.
fn keep_focus(
    card: NodeRef<leptos::html::Div>,
    held_focus: StoredValue<bool>,
    status: impl Fn() -> JobStatus + 'static,
) {
    Effect::new(move |before: Option<JobStatus>| {
        let now = status();
        if before.is_some_and(|b| b != now) && held_focus.get_value() {
            let lost = document()
                .active_element()
                .is_none_or(|e| e.tag_name().eq_ignore_ascii_case("body"));
            if let (true, Some(card)) = (lost, card.get_untracked()) {
                use leptos::wasm_bindgen::JsCast;
                let action = card
                    .query_selector(".ai-actions button")
                    .ok()
                    .flatten()
                    .and_then(|b| b.dyn_into::<leptos::web_sys::HtmlElement>().ok());
                let _ = match action {
                    Some(button) => button.focus(),
                    None => card.focus(),
                };
            }
        }
        now
    });
}
