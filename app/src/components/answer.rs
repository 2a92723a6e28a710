//! `Answer`: an AI post's answer as safe Markdown, in one place for every status (written live,
//! finished, or the partial text of a stopped one). The server renders it into blocks (one per
//! paragraph, list, code block…); each block is one element, so the settled ones are never
//! re-created as the answer grows, and nothing moves when it is done. A long answer is clamped
//! (the newest line stays in view while it is written) with Show more / Show less, and code
//! blocks have a Copy button.
use leptos::{html::Div, prelude::*};

use crate::{live::LiveJob, types::JobStatus};

#[component]
pub fn Answer(job: RwSignal<Option<LiveJob>>) -> impl IntoView {
    let post_id = job.with_untracked(|j| j.as_ref().map_or(0, |j| j.view.post_id));
    let body_id = format!("answer-{post_id}");
    let status = move || job.with(|j| j.as_ref().map_or(JobStatus::Queued, |j| j.view.status));
    let blocks = move || {
        job.with(|j| {
            j.as_ref()
                .map(|j| {
                    j.view
                        .blocks
                        .iter()
                        .cloned()
                        .enumerate()
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    };
    let empty = move || job.with(|j| j.as_ref().is_none_or(|j| j.view.blocks.is_empty()));
    let partial = move || matches!(status(), JobStatus::Failed | JobStatus::Cancelled);

    let body = NodeRef::<Div>::new();
    let expanded = RwSignal::new(false);
    // Measured in the browser after each change: whether the text is taller than the clamp,
    // and whether some of it is hidden above or below.
    let overflows = RwSignal::new(false);
    let hidden_above = RwSignal::new(false);
    let hidden_below = RwSignal::new(false);
    let measure = move |follow: bool| {
        let Some(el) = body.get_untracked() else {
            return;
        };
        if expanded.get_untracked() {
            hidden_above.set(false);
            hidden_below.set(false);
            return;
        }
        let (height, shown) = (el.scroll_height(), el.client_height());
        if follow {
            // The newest line stays in view while the answer is written.
            el.set_scroll_top(height);
        }
        let top = el.scroll_top();
        overflows.set(height > shown + 1);
        hidden_above.set(top > 0);
        hidden_below.set(top + shown + 1 < height);
    };
    // After the change is drawn: the next frame sees the new blocks and classes.
    Effect::new(move |_| {
        let running = !status().is_terminal();
        job.track();
        request_animation_frame(move || measure(running));
    });
    #[cfg(feature = "hydrate")]
    {
        let resized = window_event_listener(leptos::ev::resize, move |_| measure(false));
        on_cleanup(move || resized.remove());
    }
    let toggle = move |_| {
        expanded.update(|e| *e = !*e);
        if !expanded.get_untracked() {
            if let Some(el) = body.get_untracked() {
                el.set_scroll_top(0);
            }
        }
        let running = !status().is_terminal();
        request_animation_frame(move || measure(running));
    };

    view! {
        <div
            class="answer"
            class:partial=partial
            class:expanded=expanded
            class:clamped=move || overflows.get() && !expanded.get()
            class:fade-top=hidden_above
            class:fade-bottom=hidden_below
            data-testid="answer"
            hidden=empty
        >
            <div class="post-text markdown answer-body" id=body_id.clone() node_ref=body on:click=copy_code>
                <For
                    each=blocks
                    key=|block| block.clone()
                    children=|(_, html)| view! { <div class="md-block" inner_html=html></div> }
                />
            </div>
            <Show when=move || overflows.get() || expanded.get()>
                <button
                    type="button"
                    class="link-button show-more"
                    aria-expanded=move || expanded.get().to_string()
                    aria-controls=body_id.clone()
                    on:click=toggle
                >
                    {move || if expanded.get() { "Show less" } else { "Show more" }}
                </button>
            </Show>
        </div>
    }
}

/// One handler for every Copy button in the answer (they arrive as server-rendered HTML):
/// copies its code block's text and says "Copied" for a moment.
#[cfg(feature = "hydrate")]
fn copy_code(ev: leptos::ev::MouseEvent) {
    use wasm_bindgen::JsCast;

    let Some(button) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .and_then(|t| t.closest("[data-copy]").ok().flatten())
    else {
        return;
    };
    let Some(code) = button
        .closest(".code-block")
        .ok()
        .flatten()
        .and_then(|block| block.query_selector("code").ok().flatten())
    else {
        return;
    };
    let text = code.text_content().unwrap_or_default();
    let Some(window) = web_sys::window() else {
        return;
    };
    let written = window.navigator().clipboard().write_text(&text);
    leptos::task::spawn_local(async move {
        let label = match wasm_bindgen_futures::JsFuture::from(written).await {
            Ok(_) => "Copied",
            Err(_) => "Copy failed",
        };
        button.set_text_content(Some(label));
        gloo_timers::future::TimeoutFuture::new(1_500).await;
        button.set_text_content(Some("Copy"));
    });
}

#[cfg(not(feature = "hydrate"))]
fn copy_code(_: leptos::ev::MouseEvent) {}
