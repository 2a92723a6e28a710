//! `Answer`: an AI post's answer as safe Markdown, in one place for every status (written live,
//! finished, or the partial text of a stopped one). The server renders it into blocks (one per
//! paragraph, list, code block…); each block is one element, and only the blocks that changed
//! are rewritten, so the settled ones are never re-created as the answer grows, and nothing
//! moves when it is done. A long answer is clamped
//! (the newest line stays in view while it is written) with Show more / Show less, and code
//! blocks have a Copy button. A long finished answer comes folded (only its beginning, see
//! [`JobView::folded`](crate::types::JobView)): "Show all" loads the rest from the API.
use leptos::{html::Div, prelude::*};

use crate::{api, live::LiveJob, types::JobStatus};

#[component]
pub fn Answer(job: RwSignal<Option<LiveJob>>) -> impl IntoView {
    let post_id = job.with_untracked(|j| j.as_ref().map_or(0, |j| j.view.post_id));
    let body_id = format!("answer-{post_id}");
    let status = move || job.with(|j| j.as_ref().map_or(JobStatus::Queued, |j| j.view.status));
    let blocks = move || {
        job.with(|j| {
            j.as_ref()
                .map(|j| j.view.blocks.clone())
                .unwrap_or_default()
        })
    };
    // The blocks as the server draws them; in the browser an effect keeps them current.
    let first = job.with_untracked(|j| {
        j.as_ref()
            .map(|j| j.view.blocks.clone())
            .unwrap_or_default()
    });
    let drawn: String = first
        .iter()
        .map(|b| format!("<div class=\"md-block\">{b}</div>"))
        .collect();
    let empty = move || job.with(|j| j.as_ref().is_none_or(|j| j.view.blocks.is_empty()));
    let partial = move || status().ended_early();
    let folded = move || job.with(|j| j.as_ref().is_some_and(|j| j.view.folded));
    // The whole answer, from the post's own address; it replaces the folded one in place.
    let show_all = Action::new_local(move |_: &()| async move {
        let whole = api::post(post_id).await?;
        if let Some(view) = whole.job {
            job.update(|j| {
                if let Some(j) = j.as_mut().filter(|j| j.view.id == view.id) {
                    j.view.text = view.text;
                    j.view.blocks = view.blocks;
                    j.view.folded = view.folded;
                }
            });
        }
        Ok::<(), crate::types::ApiError>(())
    });
    let loading = show_all.pending();

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
    // Each change rewrites only the blocks from the first that differs, then measures at once
    // (the blocks are drawn by hand, so they are in the DOM already): the newest line is in
    // view in the same frame as it appears.
    Effect::new(move |shown: Option<Vec<String>>| {
        let running = !status().is_terminal();
        let now = blocks();
        let shown = shown.unwrap_or_else(|| first.clone());
        let Some(el) = body.get_untracked() else {
            return shown;
        };
        redraw(&el, &shown, &now);
        measure(running);
        now
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
            <div
                class="post-text markdown answer-body"
                id=body_id.clone()
                node_ref=body
                on:click=copy_code
                inner_html=drawn
            ></div>
            // Hidden rather than inside a <Show>: the same button, and less code in the bundle.
            <button
                type="button"
                class="show-more"
                hidden=move || !overflows.get() && !expanded.get()
                aria-expanded=move || expanded.get().to_string()
                aria-controls=body_id
                on:click=toggle
            >
                {move || if expanded.get() { "Show less" } else { "Show more" }}
            </button>
            <button
                type="button"
                class="show-all"
                data-testid="show-all"
                hidden=move || !folded()
                disabled=loading
                on:click=move |_| {
                    show_all.dispatch(());
                }
            >
                {move || if loading.get() { "Loading…" } else { "Show all" }}
            </button>
            {move || show_all.value().with(|r| r.as_ref().and_then(|r| r.as_ref().err()).map(|e| view! {
                <p class="error" role="alert">{e.message.clone()}</p>
            }))}
        </div>
    }
}

/// Makes the answer's block elements show `now` where they show `shown`: the blocks before the
/// first difference stay as they are (a settled block is never re-created), a changed one gets
/// its new HTML, and the rest are added or removed. (A keyed `<For>` does the same with a
/// general diff that costs the bundle far more.)
#[cfg(feature = "hydrate")]
fn redraw(el: &web_sys::Element, shown: &[String], now: &[String]) {
    let same = shown.iter().zip(now).take_while(|(a, b)| a == b).count();
    let Some(document) = el.owner_document() else {
        return;
    };
    let mut child = el.children().item(u32::try_from(same).unwrap_or(u32::MAX));
    for block in now.get(same..).unwrap_or_default() {
        match child {
            Some(existing) => {
                existing.set_inner_html(block);
                child = existing.next_element_sibling();
            }
            None => {
                if let Ok(added) = document.create_element("div") {
                    added.set_class_name("md-block");
                    added.set_inner_html(block);
                    let _ = el.append_child(&added);
                }
            }
        }
    }
    while let Some(extra) = child {
        child = extra.next_element_sibling();
        extra.remove();
    }
}

#[cfg(not(feature = "hydrate"))]
fn redraw<E>(_: &E, _: &[String], _: &[String]) {}

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
