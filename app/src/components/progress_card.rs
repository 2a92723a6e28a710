//! `AIGenerationProgress`: the live card of an AI post. A compact line while it waits (and
//! what for: its turn, a free slot on a model server, a server to come back); then a head
//! (phase, model and the model server running it, the author's Stop), a thinking model's
//! folded reasoning ([`Reasoning`]), the answer as it is written ([`Answer`]), and one line of
//! live numbers (tokens, speed, elapsed ticking on the client, time remaining); once done a
//! check mark and one muted line of statistics that opens the details; on a failure a plain
//! sentence with the technical detail behind a toggle.
//!
//! The bar is determinate only when a max length or the model's history gives an honest
//! basis; otherwise it is an indeterminate "writing" bar beside the live count. While a model
//! server reports how far it has read the prompt, the head says so with a small bar of its
//! own. The head keeps its height and the bar takes no room, so the answer never moves when
//! the job ends.
use leptos::{either::EitherOf4, prelude::*};

use super::{answer::Answer, failure, reason, reasoning::Reasoning, request};
use crate::{
    api, focus, format,
    live::{LiveJob, WallStore},
    types::{JobStatus, JobView, WaitingFor},
};

/// The phase in words, at `now` (0 on the server, where no clock runs).
fn phase(job: &LiveJob, now: f64, reconnecting: bool) -> String {
    let view = &job.view;
    let running = view.status.is_running();
    if running && reconnecting {
        return "Reconnecting…".into();
    }
    match view.status {
        JobStatus::Queued => match (&view.waiting_for, view.unreachable_since) {
            (Some(WaitingFor::Server { backends }), since) => {
                waiting_for_server(backends, since, now)
            }
            (_, Some(since)) => waiting_for_server(&[], Some(since), now),
            (Some(WaitingFor::Slot { backends }), None) => {
                starting(waiting_for_slot(backends), view, now)
            }
            (Some(WaitingFor::Turn) | None, None) => {
                let place = match view.queue_position {
                    Some(1) => "Queued · next".into(),
                    Some(n) if job.pushed_back => format!(
                        "Queued · {} · another writer's turn came first",
                        format::ordinal(n)
                    ),
                    Some(n) => format!("Queued · {}", format::ordinal(n)),
                    None => "Queued".into(),
                };
                starting(place, view, now)
            }
        },
        JobStatus::Loading => match view.retry_at {
            Some(at) => {
                let why = reason::sentence(view.status, view.failure);
                // The server renders before any clock runs: no countdown there.
                if now <= 0.0 {
                    return format!("{why} Trying again soon");
                }
                let secs = seconds_until(at, now);
                format!("{why} Trying again in {}", format::clock(secs * 1000))
            }
            None => match (view.prompt_progress, view.model_loaded) {
                // The model server says how far it has read (whole percents, rounded down:
                // 100 % only once it is all read).
                (Some(p), _) => format!("Reading the prompt: {:.0} %", p.percent().floor()),
                // Nothing arrives before the first token: a cold model load, or a long prompt.
                (None, Some(true)) => "Reading the prompt…".into(),
                (None, _) => "Loading the model…".into(),
            },
        },
        JobStatus::Generating => match job.stalled_for(now) {
            Some(ms) => {
                // Whole seconds: truncation is the intent.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let ms = ms as u64;
                format!("No new tokens for {}…", format::clock(ms))
            }
            // A thinking model streams its reasoning (folded above the answer) first.
            None if view.text.is_empty() => "Thinking…".into(),
            None => "Writing…".into(),
        },
        JobStatus::Completed => "Done".into(),
        JobStatus::Failed => "Couldn't finish".into(),
        JobStatus::Cancelled => "Stopped".into(),
    }
}

/// A job waiting out an outage of the model servers that have its model, with the time since
/// it began counting on this browser's clock: "Waiting for the model server to come back ·
/// 40 s", or with several, "Waiting for the model servers gpu1 and gpu2 to come back · 40 s".
/// The server renders before any clock runs, so its page has the words alone.
fn waiting_for_server(backends: &[String], since: Option<i64>, now: f64) -> String {
    let words = if backends.len() > 1 {
        format!(
            "Waiting for the model servers {} to come back",
            listed(backends, "and")
        )
    } else {
        "Waiting for the model server to come back".to_string()
    };
    let Some(since) = since.filter(|_| now > 0.0) else {
        return words;
    };
    // Unix milliseconds stay below 2^53: exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    let since = since as f64;
    // Whole milliseconds, never negative: truncation is the intent.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = (now - since).max(0.0) as u64;
    // Whole seconds, rounded down, so the count never runs ahead of the outage.
    format!("{words} · {}", format::clock(ms / 1000 * 1000))
}

/// Whole seconds from `now` (this browser's clock) until `at` (Unix ms), rounded up, never
/// negative.
fn seconds_until(at: i64, now: f64) -> u64 {
    // Unix milliseconds stay below 2^53: exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    let at = at as f64;
    // Whole seconds, never negative: truncation is the intent.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let secs = ((at - now) / 1000.0).ceil().max(0.0) as u64;
    secs
}

/// A waiting job's words and, on this browser's clock, when it is expected to start and to be
/// done: "Queued · 2nd · starts in about 40 s, done in about 1 min 10 s". The server renders
/// before any clock runs: the words alone.
fn starting(words: String, view: &JobView, now: f64) -> String {
    let Some(start) = view.expected_start_at.filter(|_| now > 0.0) else {
        return words;
    };
    let start = seconds_until(start, now);
    let starts = match start {
        0 | 1 => format!("{words} · starting any moment"),
        secs => format!("{words} · starts in about {}", format::clock(secs * 1000)),
    };
    // A run shorter than the rounding says nothing more.
    match view.progress.ends_at().map(|end| seconds_until(end, now)) {
        Some(secs) if secs > start.max(1) => {
            format!("{starts}, done in about {}", format::clock(secs * 1000))
        }
        _ => starts,
    }
}

/// The next job, while every model server that has its model is busy: "Next · waiting for a
/// free slot on gpu1 or gpu2".
fn waiting_for_slot(backends: &[String]) -> String {
    match backends {
        [] => "Next · waiting for a free slot".into(),
        _ => format!(
            "Next · waiting for a free slot on {}",
            listed(backends, "or")
        ),
    }
}

/// "gpu1", "gpu1 or gpu2", "gpu1, gpu2 or gpu3".
fn listed(names: &[String], last: &str) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., end] => format!("{} {last} {end}", init.join(", ")),
    }
}

/// Whether the bar can honestly show a percent: while writing, with a max length or a time
/// remaining from the model's history.
fn determinate(view: &JobView) -> bool {
    view.status == JobStatus::Generating
        && (view.max_tokens.is_some() || view.progress.estimated_time_remaining.is_some())
}

/// The bar's fill: a determinate one is drawn by a class per whole percent (`p0` to `p100` in
/// style/main.css), because the Content-Security-Policy forbids inline styles. A percent the
/// stylesheet has no class for (`-0`, `NaN`) draws an empty bar.
fn fill_class(percent: Option<f64>) -> String {
    match percent {
        Some(p) => format!("bar-fill p{:.0}", p.clamp(0.0, 100.0)),
        None => "bar-fill".into(),
    }
}

/// The live numbers: "25 tokens · 10 tok/s · 3 s · about 7 s left (4–12 s)" (the elapsed time
/// alone while the model loads).
#[derive(Clone, Default, PartialEq)]
struct Numbers {
    tokens: Option<String>,
    speed: Option<String>,
    elapsed: String,
    eta: Option<String>,
}

fn numbers(job: &LiveJob, elapsed: u64, stalled: bool) -> Numbers {
    let view = &job.view;
    // The answer's numbers, once it is written (the reasoning has its own line).
    let writing = view.status == JobStatus::Generating && !job.thinking();
    Numbers {
        tokens: writing.then(|| format::tokens(view.progress.current_tokens)),
        speed: writing.then(|| format::speed(job.speed)),
        elapsed: format::clock(elapsed),
        // A time remaining computed before a stall would be a promise nobody keeps. While the
        // model loads or reads the prompt, the model's history tells the whole wait.
        eta: view
            .progress
            .estimated_time_remaining
            .filter(|_| (writing || view.status == JobStatus::Loading) && !stalled)
            .map(|ms| {
                let p = &view.progress;
                format::remaining_in(
                    ms,
                    p.estimated_time_remaining_low,
                    p.estimated_time_remaining_high,
                )
            }),
    }
}

/// The finished job in one line: "80 tokens · 10 tok/s · 11 s · first token 0.4 s". What the
/// model server did not report is left out of the line (the details show it as "—").
fn summary(view: &JobView) -> String {
    let time = format::seconds(view.progress.elapsed_time);
    let Some(stats) = &view.stats else {
        return time;
    };
    let thought = reasoning_tokens(view);
    [
        stats.output_tokens.map(format::tokens),
        stats.tokens_per_second(thought).map(format::speed),
        Some(time),
        stats
            .time_to_first_token_ms
            .map(|ms| format!("first token {}", format::seconds(ms))),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ")
}

/// The reasoning tokens a thinking model wrote before its answer (0 for others).
fn reasoning_tokens(view: &JobView) -> u32 {
    view.reasoning.as_ref().map_or(0, |r| r.tokens)
}

/// The details behind the summary.
#[derive(Clone, Default, PartialEq)]
struct Details {
    output: String,
    input: String,
    speed: String,
    ttft: String,
    load: String,
    prompt_eval: String,
    eval: String,
    time: String,
    /// Why it ended, when it was not the model's own choice ("at the max length").
    ended: Option<String>,
    /// Shown on the card itself: the answer was cut at the most bytes a post keeps.
    cut: Option<String>,
    /// A thinking model's reasoning tokens.
    reasoning: Option<String>,
    /// The model server that ran it, by its configured name.
    backend: Option<String>,
}

fn details(view: &JobView) -> Details {
    let Some(s) = &view.stats else {
        return Details::default();
    };
    let ns = |n: Option<u64>| format::or_dash(n, |n| format::seconds(n / 1_000_000));
    Details {
        output: format::or_dash(s.output_tokens, format::tokens),
        input: format::or_dash(s.input_tokens, format::tokens),
        speed: format::or_dash(s.tokens_per_second(reasoning_tokens(view)), format::speed),
        ttft: format::or_dash(s.time_to_first_token_ms, format::seconds),
        load: ns(s.load_duration_ns),
        prompt_eval: ns(s.prompt_eval_duration_ns),
        eval: ns(s.eval_duration_ns),
        time: format::seconds(view.progress.elapsed_time),
        ended: match s.cut_at_bytes {
            Some(cap) => Some(format!(
                "at {}, the most a post keeps",
                format::kilobytes(cap)
            )),
            None => (s.done_reason == "length").then(|| "at the max length".into()),
        },
        cut: s
            .cut_at_bytes
            .map(|cap| format!("Cut at {}, the most a post keeps.", format::kilobytes(cap))),
        reasoning: view.reasoning.as_ref().map(|r| format::tokens(r.tokens)),
        backend: view.backend.clone(),
    }
}

/// One line of the details: every line has this same view type, so the bundle carries its
/// code once.
fn row(name: &'static str, id: &'static str, value: String) -> impl IntoView {
    view! { <div><dt>{name}</dt><dd data-stat=id>{value}</dd></div> }
}

/// What the author asks of a job.
#[derive(Clone, Copy, PartialEq)]
enum Order {
    Stop,
    Retry,
}

/// Everything the card shows at one moment, worked out from the job, the page's clock and its
/// connection. Each region of the card reads it once and draws plain values: one reactive
/// binding per region rather than one per attribute keeps the browser bundle small.
#[derive(Clone, Default, PartialEq)]
struct Look {
    classes: String,
    /// The bar while running: its class, percent (when honest) and words.
    bar: Option<(&'static str, Option<f64>, String)>,
    /// The prompt read so far, in percent, while the model server says.
    prompt: Option<f64>,
    /// The model server running it, shown beside the model.
    backend: Option<String>,
    /// The icon's class and glyph.
    icon: (&'static str, &'static str),
    phase: String,
    started_again: bool,
    /// The author's button, if any: what it does, its `data-action`, its words.
    action: Option<(Order, &'static str, &'static str)>,
    foot: Foot,
}

/// What follows the answer.
#[derive(Clone, Default, PartialEq)]
enum Foot {
    #[default]
    Nothing,
    /// The live numbers: tokens and speed (once writing), elapsed, time remaining.
    Numbers(Numbers),
    /// The finished job's one line, and the details it opens.
    Stats(String, Box<Details>),
    /// Why it ended: the sentence, the author's hint, the technical detail.
    Ended(&'static str, Option<String>, Option<String>),
}

impl Look {
    fn of(job: &LiveJob, now: f64, reconnecting: bool, mine: bool) -> Self {
        let view = &job.view;
        let status = view.status;
        let running = status.is_running();
        let stalled = job.stalled_for(now).is_some();
        let offline = running && reconnecting;
        let mut classes = String::from("ai-progress");
        for (on, class) in [
            (status == JobStatus::Queued, " queued"),
            (running, " running"),
            (status == JobStatus::Completed, " completed"),
            (status == JobStatus::Failed, " failed"),
            (status == JobStatus::Cancelled, " stopped"),
            (stalled, " stalled"),
            (offline, " offline"),
        ] {
            if on {
                classes.push_str(class);
            }
        }
        let prompt = view
            .prompt_progress
            .filter(|_| status == JobStatus::Loading && view.retry_at.is_none())
            .map(|p| p.percent().floor());
        // While the prompt has a bar of its own, the card's bar waits for the first token.
        let bar = (running && prompt.is_none()).then(|| {
            let count = format::tokens(view.progress.current_tokens);
            if job.thinking() {
                let thought = format::tokens(reasoning_tokens(view));
                ("bar indeterminate", None, format!("Thinking, {thought}"))
            } else if determinate(view) {
                let p = view.progress.percent;
                ("bar", Some(p), format!("{p:.0}%, {count}"))
            } else {
                ("bar indeterminate", None, format!("Writing, {count}"))
            }
        });
        let icon = match status {
            JobStatus::Completed => ("check", "✓"),
            JobStatus::Failed => ("warn", "!"),
            JobStatus::Cancelled => ("halt", "■"),
            _ => ("robot", "🤖"),
        };
        let ended = status.ended_early();
        let action = if !mine {
            None
        } else if running {
            Some((Order::Stop, "stop", "Stop"))
        } else if status == JobStatus::Queued {
            Some((Order::Stop, "stop", "Cancel"))
        } else if ended {
            Some((Order::Retry, "retry", "Retry"))
        } else {
            None
        };
        let foot = if running {
            Foot::Numbers(numbers(job, job.elapsed_at(now), stalled))
        } else if status == JobStatus::Completed {
            Foot::Stats(summary(view), Box::new(details(view)))
        } else if ended {
            Foot::Ended(
                reason::sentence(status, view.failure),
                reason::hint(view.failure, &view.model).filter(|_| mine),
                view.error.clone().filter(|_| status == JobStatus::Failed),
            )
        } else {
            Foot::Nothing
        };
        Self {
            classes,
            bar,
            prompt,
            // While it runs (a finished card names it in its details: a wall of finished
            // posts need not repeat it on each).
            backend: view.backend.clone().filter(|_| running),
            icon,
            phase: phase(job, now, reconnecting),
            started_again: running && job.started_again(),
            action,
            foot,
        }
    }
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
    let look = move || {
        let (t, reconnecting, mine) = (now.get(), store.reconnecting.get(), mine.get());
        job.with(|j| {
            j.as_ref()
                .map(|j| Look::of(j, t, reconnecting, mine))
                .unwrap_or_default()
        })
    };
    let status = move || job.with(|j| j.as_ref().map_or(JobStatus::Queued, |j| j.view.status));
    let (job_id, post_id, model) = job.with_untracked(|j| {
        j.as_ref()
            .map(|j| (j.view.id, j.view.post_id, j.view.model.clone()))
            .unwrap_or_default()
    });
    let control = request(move |order: &Order| {
        let order = *order;
        async move {
            match order {
                Order::Stop => api::stop(job_id).await,
                Order::Retry => api::retry(job_id).await,
            }
        }
    });
    let answered = control.value();
    let card = NodeRef::<leptos::html::Div>::new();
    let held_focus = StoredValue::new(false);
    keep_focus(post_id, held_focus, status);
    let about = StoredValue::new(about);

    view! {
        <div
            class=move || look().classes
            node_ref=card
            tabindex="-1"
            data-job-id=job_id
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
            {move || look().bar.map(|(class, percent, text)| view! {
                <div class=class role="progressbar" aria-label=about.with_value(|a| format!("Progress of {a}"))
                    aria-valuemin="0" aria-valuemax="100"
                    aria-valuenow=percent.map(|p| format!("{p:.0}")) aria-valuetext=text>
                    <div class=fill_class(percent)></div>
                </div>
            })}
            {move || {
                let Look { icon: (icon, glyph), phase, prompt, backend, started_again, action, .. } = look();
                view! {
                    <div class="ai-progress-head">
                        <span class="ai-icon" aria-hidden="true"><span class=icon>{glyph}</span></span>
                        <span class="phase" data-testid="phase">{phase}</span>
                        {prompt.map(|p| view! {
                            <span class="prompt-bar" role="progressbar" data-testid="prompt-bar"
                                aria-label=about.with_value(|a| format!("Reading the prompt of {a}"))
                                aria-valuemin="0" aria-valuemax="100" aria-valuenow=format!("{p:.0}")
                                aria-valuetext=format!("{p:.0} % of the prompt read")>
                                <span class=fill_class(Some(p))></span>
                            </span>
                        })}
                        {started_again.then(|| view! { <span class="note" data-testid="started-again">"Started again"</span> })}
                        <span class="model">{model.clone()}{backend.map(|b| view! {
                            <span class="backend" data-testid="backend" title="Model server">" · "{b}</span>
                        })}</span>
                        <span class="ai-actions">
                            {action.map(|(order, action, text)| view! {
                                <button type="button" data-action=action
                                    aria-label=about.with_value(|a| format!("{text} {a}"))
                                    on:click=move |_| { control.dispatch(order); }>{text}</button>
                            })}
                        </span>
                    </div>
                }
            }}
            // A thinking model's reasoning, folded; then the answer, in one place from the
            // first token to Done.
            <Reasoning job />
            <Answer job />
            {move || match look().foot {
                Foot::Numbers(Numbers { tokens, speed, elapsed, eta }) => EitherOf4::A(view! {
                    <p class="ai-numbers" data-testid="numbers">
                        {tokens.map(|t| view! { <span data-testid="tokens">{t}</span> })}
                        {speed.map(|t| view! { <span data-testid="speed">{t}</span> })}
                        <span data-testid="elapsed">{elapsed}</span>
                        {eta.map(|t| view! { <span data-testid="eta">{t}</span> })}
                    </p>
                }),
                Foot::Stats(line, d) => EitherOf4::B({ let d = *d; view! {
                    {d.cut.map(|cut| view! { <p class="ai-cut" data-testid="cut">{cut}</p> })}
                    <details class="ai-stats" data-testid="stats">
                        <summary data-testid="summary">{line}</summary>
                        <dl class="stats-row">
                            {row("Answer", "output", d.output)}
                            {row("Prompt", "input", d.input)}
                            {row("Speed", "speed", d.speed)}
                            {row("First token", "ttft", d.ttft)}
                            {row("Loading the model", "load", d.load)}
                            {row("Reading the prompt", "prompt-eval", d.prompt_eval)}
                            {row("Writing", "eval", d.eval)}
                            {row("Total time", "time", d.time)}
                            {d.reasoning.map(|r| row("Reasoning", "reasoning", r))}
                            {d.backend.map(|b| row("Model server", "backend", b))}
                            {d.ended.map(|e| row("Ended", "done-reason", e))}
                        </dl>
                    </details>
                }}),
                Foot::Ended(sentence, hint, detail) => EitherOf4::C(view! {
                    <div class="ai-error" data-testid="failure">
                        <p class="sentence">{sentence}</p>
                        {hint.map(|hint| view! { <p class="hint" data-testid="hint">{hint}</p> })}
                        {detail.map(|detail| view! {
                            <details class="detail">
                                <summary>"Details"</summary>
                                <code data-testid="detail">{detail}</code>
                            </details>
                        })}
                    </div>
                }),
                Foot::Nothing => EitherOf4::D(()),
            }}
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
    post_id: i64,
    held_focus: StoredValue<bool>,
    status: impl Fn() -> JobStatus + 'static,
) {
    Effect::new(move |before: Option<JobStatus>| {
        let now = status();
        if before.is_some_and(|b| b != now) && held_focus.get_value() {
            let card = format!("{} .ai-progress", focus::post(post_id));
            focus::rescue(vec![format!("{card} .ai-actions button"), card]);
        }
        now
    });
}

#[cfg(test)]
mod tests {
    use super::{details, fill_class, phase, summary, waiting_for_server, Look};
    use crate::{
        live::LiveJob,
        types::{FinalStats, JobStatus, JobView, PromptProgress, Reasoning, WaitingFor},
    };

    fn live(view: JobView) -> LiveJob {
        LiveJob {
            elapsed_base: view.progress.elapsed_time,
            based_at: 1_000.0,
            tokens_at: 1_000.0,
            speed: 0.0,
            thought_clock: None,
            pushed_back: false,
            view,
        }
    }

    fn queued(waiting_for: Option<WaitingFor>, position: u32) -> LiveJob {
        live(JobView {
            queue_position: Some(position),
            expected_start_at: None,
            waiting_for,
            ..JobView::fresh(1, 1, "qwen3:4b")
        })
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_job_waiting_for_the_model_server_counts_the_outage_on_the_client() {
        let since = 1_764_000_000_000;
        #[allow(clippy::cast_precision_loss)]
        let at = |ms: i64| (since + ms) as f64;
        let one = |now| waiting_for_server(&names(&["gpu1"]), Some(since), now);
        assert_eq!(
            one(at(40_400)),
            "Waiting for the model server to come back · 40 s"
        );
        assert_eq!(
            one(at(95_000)),
            "Waiting for the model server to come back · 1 min 35 s"
        );
        assert_eq!(
            one(at(-3_000)),
            "Waiting for the model server to come back · 0 s",
            "a browser clock behind the server's shows no negative time"
        );
        assert_eq!(
            one(0.0),
            "Waiting for the model server to come back",
            "no count where no clock runs"
        );
        assert_eq!(
            waiting_for_server(&names(&["gpu1", "gpu2"]), Some(since), at(40_000)),
            "Waiting for the model servers gpu1 and gpu2 to come back · 40 s"
        );
        assert_eq!(
            waiting_for_server(&names(&["a", "b", "c"]), None, at(40_000)),
            "Waiting for the model servers a, b and c to come back"
        );
    }

    #[test]
    fn a_queued_job_says_what_it_waits_for() {
        let at = |j: &LiveJob| phase(j, 5_000.0, false);
        assert_eq!(
            at(&queued(None, 3)),
            "Queued · 3rd",
            "an older server says nothing more"
        );
        assert_eq!(at(&queued(Some(WaitingFor::Turn), 1)), "Queued · next");
        assert_eq!(at(&queued(Some(WaitingFor::Turn), 2)), "Queued · 2nd");
        let mut later = queued(Some(WaitingFor::Turn), 4);
        later.view.expected_start_at = Some(45_000);
        assert_eq!(at(&later), "Queued · 4th · starts in about 40 s");
        later.view.progress.last_update_at = 4_000;
        later.view.progress.estimated_time_remaining = Some(71_000);
        assert_eq!(
            at(&later),
            "Queued · 4th · starts in about 40 s, done in about 1 min 10 s"
        );
        later.view.progress.estimated_time_remaining = None;
        later.pushed_back = true;
        assert_eq!(
            at(&later),
            "Queued · 4th · another writer's turn came first · starts in about 40 s"
        );
        later.view.expected_start_at = Some(5_500);
        later.pushed_back = false;
        assert_eq!(at(&later), "Queued · 4th · starting any moment");
        assert_eq!(
            phase(&later, 0.0, false),
            "Queued · 4th",
            "no clock on the server"
        );
        let slot = |backends: &[&str]| WaitingFor::Slot {
            backends: names(backends),
        };
        assert_eq!(
            at(&queued(Some(slot(&["gpu1", "gpu2"])), 1)),
            "Next · waiting for a free slot on gpu1 or gpu2"
        );
        assert_eq!(
            at(&queued(Some(slot(&["gpu1"])), 1)),
            "Next · waiting for a free slot on gpu1"
        );
        let mut down = queued(
            Some(WaitingFor::Server {
                backends: names(&["gpu1", "gpu2"]),
            }),
            1,
        );
        down.view.unreachable_since = Some(1_000);
        assert_eq!(
            at(&down),
            "Waiting for the model servers gpu1 and gpu2 to come back · 4 s"
        );
        // An older server: the outage alone, as before.
        let mut old = queued(None, 1);
        old.view.unreachable_since = Some(1_000);
        assert_eq!(at(&old), "Waiting for the model server to come back · 4 s");
    }

    fn loading(prompt_progress: Option<PromptProgress>) -> LiveJob {
        live(JobView {
            status: JobStatus::Loading,
            prompt_progress,
            model_loaded: Some(true),
            backend: Some("llama".into()),
            ..JobView::fresh(1, 1, "qwen3:4b")
        })
    }

    #[test]
    fn reading_the_prompt_shows_how_far_with_a_bar_of_its_own() {
        let reading = loading(Some(PromptProgress {
            processed: 31,
            total: 50,
        }));
        assert_eq!(phase(&reading, 5_000.0, false), "Reading the prompt: 62 %");
        let look = Look::of(&reading, 5_000.0, false, true);
        assert_eq!(look.prompt, Some(62.0));
        assert!(look.bar.is_none(), "one bar at a time");
        assert_eq!(look.backend.as_deref(), Some("llama"));
        // Never 100 % before it is all read.
        let almost = loading(Some(PromptProgress {
            processed: 999,
            total: 1000,
        }));
        assert_eq!(phase(&almost, 5_000.0, false), "Reading the prompt: 99 %");
        // A server that does not say: as before.
        let silent = loading(None);
        assert_eq!(phase(&silent, 5_000.0, false), "Reading the prompt…");
        let look = Look::of(&silent, 5_000.0, false, true);
        assert_eq!((look.prompt, look.bar.is_some()), (None, true));
    }

    #[test]
    fn while_it_thinks_the_answers_numbers_wait_and_the_bar_says_thinking() {
        let mut j = live(JobView {
            status: JobStatus::Generating,
            reasoning: Some(Reasoning {
                tokens: 120,
                duration_ms: 8_000,
                finished: false,
            }),
            ..JobView::fresh(1, 1, "qwen3:4b")
        });
        let look = Look::of(&j, 5_000.0, false, true);
        assert_eq!(
            look.bar.map(|b| b.2).as_deref(),
            Some("Thinking, 120 tokens")
        );
        let super::Foot::Numbers(numbers) = look.foot else {
            panic!("running: the live numbers");
        };
        assert_eq!((numbers.tokens, numbers.speed), (None, None));
        j.view.reasoning = Some(Reasoning {
            finished: true,
            ..Reasoning::default()
        });
        j.view.text = "Yes".into();
        let super::Foot::Numbers(numbers) = Look::of(&j, 5_000.0, false, true).foot else {
            panic!("running: the live numbers");
        };
        assert_eq!(numbers.tokens.as_deref(), Some("0 tokens"));
    }

    #[test]
    fn missing_statistics_are_left_out_of_the_line_and_shown_as_dashes_in_the_details() {
        // An OpenAI-compatible server that reports only its usage.
        let view = JobView {
            status: JobStatus::Completed,
            stats: Some(FinalStats {
                input_tokens: Some(12),
                output_tokens: Some(80),
                total_tokens: Some(92),
                time_to_first_token_ms: Some(400),
                done_reason: "stop".into(),
                ..FinalStats::default()
            }),
            backend: Some("llama".into()),
            ..JobView::fresh(1, 1, "qwen3:4b")
        };
        let mut view = view;
        view.progress.elapsed_time = 11_000;
        assert_eq!(summary(&view), "80 tokens · 11 s · first token 0.4 s");
        let d = details(&view);
        assert_eq!(
            [d.output.as_str(), d.input.as_str(), d.speed.as_str()],
            ["80 tokens", "12 tokens", "—"]
        );
        assert_eq!([d.load, d.prompt_eval, d.eval], ["—", "—", "—"]);
        assert_eq!(d.backend.as_deref(), Some("llama"));
        // Nothing reported at all: the time alone.
        view.stats = Some(FinalStats::default());
        assert_eq!(summary(&view), "11 s");
        assert_eq!(details(&view).output, "—");
    }

    #[test]
    fn the_fill_class_is_the_whole_percent_within_the_bar() {
        assert_eq!(fill_class(Some(42.46)), "bar-fill p42");
        assert_eq!(fill_class(Some(99.6)), "bar-fill p100");
        assert_eq!(fill_class(Some(130.0)), "bar-fill p100");
        assert_eq!(fill_class(Some(-3.0)), "bar-fill p0");
        assert_eq!(fill_class(None), "bar-fill");
    }
}

/// The card as the server draws it (the browser hydrates the same).
#[cfg(all(test, feature = "ssr"))]
mod drawn {
    use leptos::prelude::*;

    use super::AIGenerationProgress;
    use crate::{
        live::{LiveJob, WallStore},
        types::{JobStatus, JobView, PromptProgress},
    };

    fn drawn(view: JobView) -> String {
        let owner = Owner::new();
        owner.set();
        provide_context(WallStore {
            entries: RwSignal::new(Vec::new()),
            next_before: RwSignal::new(None),
            viewer_tag: RwSignal::new(None),
            connected: RwSignal::new(true),
            reconnecting: RwSignal::new(false),
            announcement: RwSignal::new(String::new()),
            keep: RwSignal::new(100),
        });
        let job = RwSignal::new(Some(LiveJob::new(view)));
        view! { <AIGenerationProgress job mine=true about="Ada's AI post".to_string() /> }.to_html()
    }

    #[test]
    fn reading_the_prompt_has_its_own_named_progressbar_and_the_server_is_named() {
        let html = drawn(JobView {
            status: JobStatus::Loading,
            prompt_progress: Some(PromptProgress {
                processed: 31,
                total: 50,
            }),
            backend: Some("gpu<1>".into()),
            ..JobView::fresh(1, 1, "qwen3:4b")
        });
        assert!(html.contains("Reading the prompt: 62 %"), "{html}");
        let bar = html
            .split("<span ")
            .find(|tag| tag.contains("data-testid=\"prompt-bar\""))
            .unwrap_or_else(|| panic!("a prompt bar: {html}"));
        for attribute in [
            "role=\"progressbar\"",
            "aria-valuenow=\"62\"",
            "aria-label=\"Reading the prompt of Ada&#x27;s AI post\"",
        ] {
            assert!(
                bar.contains(attribute) || bar.contains(&attribute.replace("&#x27;", "'")),
                "{attribute} in {bar}"
            );
        }
        assert!(html.contains("bar-fill p62"), "{html}");
        assert_eq!(
            html.matches("role=\"progressbar\"").count(),
            1,
            "one bar at a time: {html}"
        );
        assert!(
            html.contains("gpu&lt;1&gt;</span>"),
            "the server's name, as text: {html}"
        );
    }
}
