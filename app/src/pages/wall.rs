//! The wall page: the composer, the posts newest first, "load more", and the live stream.
use leptos::{prelude::*, task::spawn_local};

use crate::{
    components::{composer::Composer, post_card::PostCard},
    live::{self, WallStore},
    types::{ApiError, ErrorCode, WallSnapshot},
};

#[component]
pub fn WallPage() -> impl IntoView {
    // On the server the handler puts the data in context; the resource carries it into the
    // page so hydration starts from exactly what was rendered.
    let initial = use_context::<WallSnapshot>();
    let snapshot = Resource::new(
        || (),
        move |_| {
            let initial = initial.clone();
            async move {
                initial.ok_or_else(|| {
                    ApiError::new(ErrorCode::Reload, "Reload the page to see the wall.")
                })
            }
        },
    );
    view! {
        <header class="site-header">
            <h1><span class="logo" aria-hidden="true">"🤖"</span>" AI Wall"</h1>
            <p class="tagline">"Write a post, or ask the AI and watch it write."</p>
        </header>
        <main class="wall">
            <Suspense fallback=|| view! { <p class="loading">"Loading the wall…"</p> }>
                {move || snapshot.get().map(|result| match result {
                    Ok(snapshot) => view! { <Wall snapshot /> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e.message}</p> }.into_any(),
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn Wall(snapshot: WallSnapshot) -> impl IntoView {
    let store = WallStore::new(&snapshot);
    provide_context(store);
    let now = live::clock::ticking(100);
    provide_context(now);
    live::stream::connect(store);

    let loading_more = RwSignal::new(false);
    let more_error = RwSignal::new(None::<String>);
    let load_more = move |_| {
        let Some(before) = store.next_before.get_untracked() else {
            return;
        };
        loading_more.set(true);
        spawn_local(async move {
            match crate::api::posts_before(before).await {
                Ok(page) => {
                    more_error.set(None);
                    store.append_older(page.posts, page.next_before);
                }
                Err(e) => more_error.set(Some(e.message)),
            }
            loading_more.set(false);
        });
    };

    view! {
        <p class="live-status" class:live=move || store.connected.get()>
            {move || if store.connected.get() { "● Live" } else { "○ Connecting…" }}
        </p>
        <Composer limits=snapshot.limits default_model=snapshot.default_model.clone() />
        <p class="sr-only" aria-live="polite" role="status">{move || store.announcement.get()}</p>
        <section class="posts" aria-label="Posts">
            <Show when=move || store.entries.with(Vec::is_empty)>
                <p class="empty">"Nothing here yet. Be the first to post!"</p>
            </Show>
            <For each=move || store.entries.get() key=|entry| entry.post.id let:entry>
                <PostCard entry />
            </For>
        </section>
        <Show when=move || store.next_before.get().is_some()>
            <button class="load-more" data-testid="load-more" on:click=load_more disabled=move || loading_more.get()>
                {move || if loading_more.get() { "Loading…" } else { "Load older posts" }}
            </button>
        </Show>
        {move || more_error.get().map(|m| view! { <p class="error" role="alert">{m}</p> })}
    }
}
