//! The wall page: the composer, the posts newest first, "load more", and the live stream.
use leptos::{either::Either, prelude::*};

use crate::{
    components::{
        composer::{Composer, Models},
        failure,
        post_card::PostCard,
        request,
        toast::{Deletions, UndoToast},
    },
    focus,
    live::{self, WallStore},
    types::{ApiError, ErrorCode, WallSnapshot},
    when,
};

#[component]
pub fn WallPage() -> impl IntoView {
    // The server renders from the snapshot its handler put in context; SharedValue carries
    // that value into the page, so hydration starts from exactly what was rendered. It is
    // there synchronously: no Suspense, and so no second (asynchronous) way of hydrating the
    // whole wall in the bundle. The browser reads it with its own JSON.parse (`new_serde_wb`):
    // no JSON parser in the bundle.
    let snapshot = SharedValue::new_serde_wb(|| {
        use_context::<WallSnapshot>()
            .ok_or_else(|| ApiError::new(ErrorCode::Reload, "Reload the page to see the wall."))
    })
    .into_inner();
    // The installed models, asked once the page runs in the browser (never on the server).
    let models = LocalResource::new(crate::api::models);
    view! {
        <header class="site-header">
            <h1><span class="logo" aria-hidden="true">"🤖"</span>" AI Wall"</h1>
            <p class="tagline">"Write a post, or ask the AI and watch it write."</p>
        </header>
        <main class="wall">
            {match snapshot {
                // `Either`, not `into_any()`: type erasure would carry a second, asynchronous
                // hydration of the whole wall in the bundle.
                Ok(snapshot) => Either::Left(view! { <Wall snapshot models /> }),
                Err(e) => Either::Right(view! { <p class="error" role="alert">{e.message}</p> }),
            }}
        </main>
    }
}

#[component]
fn Wall(snapshot: WallSnapshot, models: Models) -> impl IntoView {
    let store = WallStore::new(&snapshot);
    provide_context(store);
    let now = live::clock::ticking(100);
    provide_context(now);
    // Handed to the cards as props, not contexts: less code in the bundle.
    let times = when::PageTime::new(now, snapshot.rendered_at);
    let deletions = Deletions::new(store);
    live::stream::connect(store);

    let load_more = request(move |(): &()| {
        let before = store.next_before.get_untracked();
        async move {
            if let Some(before) = before {
                let page = crate::api::posts_before(before).await?;
                let shown: Vec<i64> = store
                    .entries
                    .with_untracked(|es| es.iter().map(|e| e.post.id).collect());
                // The focus goes to the first post loaded (the button may be gone), or, when
                // they were all on the page already, to the last post.
                let first_new = page
                    .posts
                    .iter()
                    .map(|p| p.id)
                    .find(|id| !shown.contains(id));
                store.append_older(page.posts, page.next_before);
                let target = first_new.or_else(|| {
                    store
                        .entries
                        .with_untracked(|es| es.last().map(|e| e.post.id))
                });
                focus::soon(target.map(focus::post).into_iter().collect());
            }
            Ok::<(), ApiError>(())
        }
    });
    let loading_more = load_more.pending();
    let loaded_more = load_more.value();

    // A post being deleted is not shown (Undo shows it again, in its place).
    let shown = move || {
        let hidden = deletions.hidden();
        let mut entries = store.entries.get();
        entries.retain(|e| !hidden.contains(&e.post.id));
        entries
    };

    view! {
        <p class="live-status" class:live=move || store.connected.get()>
            {move || if store.connected.get() { "● Live" } else { "○ Connecting…" }}
        </p>
        <Composer limits=snapshot.limits default_model=snapshot.default_model.clone() models />
        <p class="sr-only" aria-live="polite" role="status">{move || store.announcement.get()}</p>
        <section class="posts" aria-label="Posts">
            <Show when=move || store.entries.with(Vec::is_empty)>
                <p class="empty">"Nothing here yet. Be the first to post!"</p>
            </Show>
            <For each=shown key=|entry| entry.post.id let:entry>
                <PostCard entry times deletions />
            </For>
        </section>
        <Show when=move || store.next_before.get().is_some()>
            <button class="load-more" data-testid="load-more" disabled=loading_more
                on:click=move |_| { load_more.dispatch(()); }>
                {move || if loading_more.get() { "Loading…" } else { "Load older posts" }}
            </button>
        </Show>
        {move || loaded_more.with(failure).map(|m| view! { <p class="error" role="alert">{m}</p> })}
        <UndoToast deletions />
    }
}
