//! `AIGenerationProgress`: the live card of an AI post. A bar that never goes back, counters
//! (tokens, speed, elapsed ticking on the client, time remaining), the phase in words, the
//! answer as it is written, Stop and Retry for the author, and the statistics once done.
use leptos::{either::EitherOf3, prelude::*};

use super::{failure, request};
use crate::{
    api, format,
    live::LiveJob,
    types::{JobStatus, JobView},
};

/// The phase in words.
fn phase(view: &JobView, now_ms: f64) -> String {
    match view.status {
        JobStatus::Queued => match view.queue_position {
            Some(1) => "Waiting in queue: next up".into(),
            Some(n) => format!("Waiting in queue: position {n}"),
            None => "Waiting in queue".into(),
        },
        JobStatus::Loading => match view.retry_at {
            Some(at) => {
                let why = view.error.clone().unwrap_or_default();
                // The server renders before any clock runs: no countdown there.
                if now_ms <= 0.0 {
                    return format!("{why} Retrying soon");
                }
                // Unix milliseconds stay below 2^53: exact in an f64.
                #[allow(clippy::cast_precision_loss)]
                let at = at as f64;
                let secs = ((at - now_ms) / 1000.0).ceil().max(0.0);
                format!("{why} Retrying in {secs} s")
            }
            // Nothing arrives before the first token: a cold model load, or a long prompt.
            None if view.model_loaded == Some(true) => "Reading the prompt…".into(),
            None => "Loading the model…".into(),
        },
        // A thinking model streams its reasoning (not shown) before the answer.
        JobStatus::Generating if view.text.is_empty() => "Thinking…".into(),
        JobStatus::Generating => "Writing…".into(),
        JobStatus::Completed => "Done".into(),
        JobStatus::Failed => "Failed".into(),
        JobStatus::Cancelled => "Stopped".into(),
    }
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
) -> impl IntoView {
    let now = use_context::<ReadSignal<f64>>().unwrap_or_else(|| signal(0.0).0);
    let view_of = move || job.with(|j| j.as_ref().map(|j| j.view.clone()));
    let status = move || job.with(|j| j.as_ref().map_or(JobStatus::Queued, |j| j.view.status));
    let running = move || matches!(status(), JobStatus::Loading | JobStatus::Generating);
    let field = move |f: fn(&JobView) -> String| {
        move || job.with(|j| j.as_ref().map(|j| f(&j.view)).unwrap_or_default())
    };
    let percent = move || job.with(|j| j.as_ref().map_or(0.0, |j| j.view.progress.percent));
    let elapsed = move || {
        let t = now.get();
        job.with(|j| {
            j.as_ref()
                .map(|j| format::elapsed(j.elapsed_at(t)))
                .unwrap_or_default()
        })
    };
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

    view! {
        <div
            class="ai-progress"
            class:running=running
            class:completed=move || status() == JobStatus::Completed
            class:failed=move || matches!(status(), JobStatus::Failed | JobStatus::Cancelled)
            data-job-id=move || job.with(|j| j.as_ref().map(|j| j.view.id).unwrap_or_default())
            data-status=move || status().as_str()
        >
            <div class="ai-progress-head">
                <span class="ai-icon" aria-hidden="true">
                    {move || match status() {
                        JobStatus::Completed => EitherOf3::A(view! { <span class="check">"✓"</span> }),
                        JobStatus::Failed | JobStatus::Cancelled => EitherOf3::B(view! { <span class="warn">"!"</span> }),
                        _ => EitherOf3::C(view! { <span class="robot">"🤖"</span> }),
                    }}
                </span>
                <span class="phase" data-testid="phase">{move || { let t = now.get(); view_of().map(|v| phase(&v, t)).unwrap_or_default() }}</span>
                <span class="model">{field(|v| v.model.clone())}</span>
            </div>
            <Show when=move || !status().is_terminal()>
                <div
                    class="bar"
                    role="progressbar"
                    aria-label="Generation progress"
                    aria-valuemin="0"
                    aria-valuemax="100"
                    aria-valuenow=move || format!("{:.0}", percent())
                    aria-valuetext=move || job.with(|j| j.as_ref().map(|j| format!(
                        "{:.0}%, {}, {}",
                        j.view.progress.percent,
                        format::tokens(j.view.progress.current_tokens),
                        format::remaining(j.view.progress.estimated_time_remaining),
                    )).unwrap_or_default())
                >
                    <div class="bar-fill" style:width=move || format!("{:.1}%", percent())></div>
                </div>
                <dl class="counters">
                    <div><dt>"Tokens"</dt><dd data-testid="tokens">{field(|v| format::tokens(v.progress.current_tokens))}</dd></div>
                    <div><dt>"Speed"</dt><dd data-testid="speed">{field(|v| format::speed(v.progress.tokens_per_second))}</dd></div>
                    <div><dt>"Elapsed"</dt><dd data-testid="elapsed">{elapsed}</dd></div>
                    <div><dt>"Remaining"</dt><dd data-testid="eta">{field(|v| if v.status == JobStatus::Generating { format::remaining(v.progress.estimated_time_remaining) } else { "—".into() })}</dd></div>
                </dl>
            </Show>
            <Show when=move || matches!(status(), JobStatus::Failed | JobStatus::Cancelled)>
                <p class="ai-error" role="alert">{field(|v| v.error.clone().unwrap_or_default())}</p>
            </Show>
            <Show when=move || status() == JobStatus::Completed>
                <details class="ai-stats" data-testid="stats" open>
                    <summary>{field(|v| format!("{} tokens in {}", v.stats.as_ref().map_or(0, |s| s.total_tokens), format::duration(v.progress.elapsed_time)))}</summary>
                    <dl class="stats-row">
                        <div><dt>"Input"</dt><dd data-stat="input">{field(|v| v.stats.as_ref().map_or(0, |s| s.input_tokens).to_string())}</dd></div>
                        <div><dt>"Output"</dt><dd data-stat="output">{field(|v| v.stats.as_ref().map_or(0, |s| s.output_tokens).to_string())}</dd></div>
                        <div><dt>"Total"</dt><dd data-stat="total">{field(|v| v.stats.as_ref().map_or(0, |s| s.total_tokens).to_string())}</dd></div>
                        <div><dt>"Speed"</dt><dd data-stat="speed">{field(|v| format::speed(v.stats.as_ref().map_or(0.0, |s| s.tokens_per_second())))}</dd></div>
                        <div><dt>"First token"</dt><dd data-stat="ttft">{field(|v| format::nanos(v.stats.as_ref().map_or(0, |s| s.time_to_first_token_ms * 1_000_000)))}</dd></div>
                        <div><dt>"Total time"</dt><dd data-stat="time">{field(|v| format::duration(v.progress.elapsed_time))}</dd></div>
                    </dl>
                </details>
            </Show>
            <Show when=move || mine.get()>
                <div class="ai-actions">
                    <Show when=running>
                        <button data-action="stop" on:click=move |_| act(Order::Stop)>"Stop"</button>
                    </Show>
                    <Show when=move || status() == JobStatus::Queued>
                        <button data-action="stop" on:click=move |_| act(Order::Stop)>"Cancel"</button>
                    </Show>
                    <Show when=move || matches!(status(), JobStatus::Failed | JobStatus::Cancelled)>
                        <button data-action="retry" on:click=move |_| act(Order::Retry)>"Retry"</button>
                    </Show>
                </div>
            </Show>
            {move || answered.with(failure).map(|m| view! { <p class="error" role="alert">{m}</p> })}
        </div>
    }
}
