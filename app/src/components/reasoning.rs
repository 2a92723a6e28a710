//! `Reasoning`: a thinking model's reasoning on its card, folded above the answer: "Thinking ·
//! 8 s · 120 tokens" while it thinks (the seconds tick on the page's clock), "Thought for 12 s ·
//! 340 tokens" once the answer has begun; opened, the reasoning itself, live while it streams.
//!
//! The reasoning is shown as plain text (text nodes, never HTML), in a box of bounded height
//! that follows its newest line unless the reader has scrolled up. The section is drawn once
//! and only its words change, so it stays open or closed as the reader left it. A finished
//! job's reasoning that the page was not given (a wall may leave it out) is loaded from the
//! post's own address when the section is opened.
use leptos::{
    html::{Details, Div},
    prelude::*,
};

use crate::{api, format, live::LiveJob, types::ApiError};

/// The folded section's one line, at `now` (0 on the server, where no clock runs).
pub fn summary(job: &LiveJob, now: f64) -> Option<String> {
    let reasoning = job.view.reasoning.as_ref()?;
    let ms = job.thought_for(now)?;
    let tokens = format::tokens(reasoning.tokens);
    Some(if job.thinking() {
        // Whole seconds while it ticks, so that the line never changes its format.
        format!("Thinking · {} · {tokens}", format::clock(ms))
    } else {
        format!("Thought for {} · {tokens}", format::seconds(ms))
    })
}

#[component]
pub fn Reasoning(job: RwSignal<Option<LiveJob>>) -> impl IntoView {
    let now = use_context::<ReadSignal<f64>>().unwrap_or_else(|| signal(0.0).0);
    let shown = move || job.with(|j| j.as_ref().is_some_and(|j| j.view.reasoning.is_some()));
    let line = move || {
        let t = now.get();
        job.with(|j| j.as_ref().and_then(|j| summary(j, t)))
            .unwrap_or_default()
    };
    let thinking = move || job.with(|j| j.as_ref().is_some_and(LiveJob::thinking));
    // Only a change of the reasoning itself touches its text node (not every tick or token
    // count).
    let text = Memo::new(move |_| {
        job.with(|j| {
            j.as_ref()
                .map(|j| j.view.thinking.clone())
                .unwrap_or_default()
        })
    });
    let post_id = job.with_untracked(|j| j.as_ref().map_or(0, |j| j.view.post_id));
    let load = Action::new_local(move |_: &()| async move {
        let whole = api::post(post_id).await?;
        if let Some(view) = whole.job {
            job.update(|j| {
                if let Some(j) = j
                    .as_mut()
                    .filter(|j| j.view.id == view.id && j.view.thinking.is_empty())
                {
                    j.view.thinking = view.thinking;
                }
            });
        }
        Ok::<(), ApiError>(())
    });
    let section = NodeRef::<Details>::new();
    let toggled = move |_| {
        let opened = section.get_untracked().is_some_and(|d| d.open());
        let missing = job.with_untracked(|j| {
            j.as_ref()
                .is_some_and(|j| j.view.status.is_terminal() && j.view.thinking.is_empty())
        });
        if opened && missing && !load.pending().get_untracked() {
            load.dispatch(());
        }
    };
    let body = NodeRef::<Div>::new();
    // Whether the box is scrolled to its end: then it follows the newest line.
    let at_end = StoredValue::new(true);
    Effect::new(move |_| {
        text.track();
        if let Some(el) = body.get_untracked() {
            if at_end.get_value() {
                el.set_scroll_top(el.scroll_height());
            }
        }
    });
    let scrolled = move |_| {
        if let Some(el) = body.get_untracked() {
            at_end.set_value(el.scroll_top() + el.client_height() + 8 >= el.scroll_height());
        }
    };

    view! {
        <Show when=shown>
            <details class="ai-reasoning" class:thinking=thinking data-testid="reasoning"
                node_ref=section on:toggle=toggled>
                <summary data-testid="reasoning-summary">{line}</summary>
                <div class="reasoning-text" data-testid="reasoning-text" tabindex="0"
                    node_ref=body on:scroll=scrolled>{move || text.get()}</div>
                {move || load.value().with(|r| r.as_ref().and_then(|r| r.as_ref().err()).map(|e| view! {
                    <p class="error" role="alert">{e.message.clone()}</p>
                }))}
            </details>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::summary;
    use crate::{
        live::LiveJob,
        types::{JobStatus, JobView, Reasoning},
    };

    fn job(status: JobStatus, reasoning: Option<Reasoning>) -> LiveJob {
        let view = JobView {
            status,
            reasoning,
            ..JobView::fresh(1, 1, "qwen3:4b")
        };
        LiveJob {
            elapsed_base: 0,
            based_at: 1_000.0,
            tokens_at: 1_000.0,
            speed: 0.0,
            thought_clock: view.reasoning.as_ref().map(|r| (r.duration_ms, 1_000.0)),
            pushed_back: false,
            view,
        }
    }

    #[test]
    fn the_line_ticks_while_it_thinks_and_says_how_long_it_thought_after() {
        let thinking = Reasoning {
            tokens: 120,
            duration_ms: 7_600,
            finished: false,
        };
        let j = job(JobStatus::Generating, Some(thinking.clone()));
        assert_eq!(
            summary(&j, 1_000.0).as_deref(),
            Some("Thinking · 8 s · 120 tokens")
        );
        assert_eq!(
            summary(&j, 3_000.0).as_deref(),
            Some("Thinking · 10 s · 120 tokens")
        );
        let done = Reasoning {
            tokens: 340,
            duration_ms: 12_300,
            finished: true,
        };
        assert_eq!(
            summary(&job(JobStatus::Generating, Some(done.clone())), 9e9).as_deref(),
            Some("Thought for 12 s · 340 tokens")
        );
        assert_eq!(
            summary(&job(JobStatus::Completed, Some(done)), 9e9).as_deref(),
            Some("Thought for 12 s · 340 tokens")
        );
        let short = Reasoning {
            tokens: 1,
            duration_ms: 400,
            finished: true,
        };
        assert_eq!(
            summary(&job(JobStatus::Completed, Some(short)), 0.0).as_deref(),
            Some("Thought for 0.4 s · 1 token")
        );
        // Stopped while it thought: the count stands still.
        assert_eq!(
            summary(&job(JobStatus::Cancelled, Some(thinking)), 9e9).as_deref(),
            Some("Thought for 7.6 s · 120 tokens")
        );
        assert_eq!(summary(&job(JobStatus::Completed, None), 0.0), None);
    }
}

/// The section as the server draws it (the browser hydrates the same).
#[cfg(all(test, feature = "ssr"))]
mod drawn {
    use leptos::prelude::*;

    use super::Reasoning;
    use crate::{
        live::LiveJob,
        types::{JobStatus, JobView, Reasoning as Thought},
    };

    fn drawn(view: JobView) -> String {
        let owner = Owner::new();
        owner.set();
        let job = RwSignal::new(Some(LiveJob::new(view)));
        view! { <Reasoning job /> }.to_html()
    }

    #[test]
    fn the_reasoning_is_folded_and_its_text_is_escaped() {
        let html = drawn(JobView {
            status: JobStatus::Completed,
            thinking: "Is 1 < 2? <script>alert(1)</script>".into(),
            reasoning: Some(Thought {
                tokens: 340,
                duration_ms: 12_300,
                finished: true,
            }),
            ..JobView::fresh(1, 1, "qwen3:4b")
        });
        assert!(html.starts_with("<details "), "{html}");
        assert!(html.contains("class=\"ai-reasoning\""), "{html}");
        assert!(!html.contains(" open"), "closed: {html}");
        assert!(html.contains("Thought for 12 s · 340 tokens"), "{html}");
        assert!(
            html.contains("Is 1 &lt; 2? &lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
    }

    #[test]
    fn a_model_that_does_not_think_has_no_section() {
        let html = drawn(JobView {
            status: JobStatus::Completed,
            ..JobView::fresh(1, 1, "llama3.2:1b")
        });
        assert!(!html.contains("ai-reasoning"), "{html}");
    }
}
