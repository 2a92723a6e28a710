//! One post on the wall: who wrote it and when, its text (with its links), and for an AI post
//! the prompt, the live progress card and the answer as safe Markdown, live and finished alike.
use leptos::{either::Either, prelude::*};

use super::{
    progress_card::AIGenerationProgress,
    toast::{delete_label, first_words, Deletions},
};
use crate::{
    live::{Entry, WallStore},
    types::PostKind,
    when::{self, PageTime},
};

#[component]
pub fn PostCard(entry: Entry, times: PageTime, deletions: Deletions) -> impl IntoView {
    let store = expect_context::<WallStore>();
    let post = entry.post.clone();
    let post_id = post.id;
    let mine = {
        let post = post.clone();
        Signal::derive(move || {
            store
                .viewer_tag
                .with(|t| t.as_deref() == Some(post.author_tag.as_str()))
        })
    };
    let created_at = post.created_at;
    let delete_label = delete_label(&post);
    // Arena signals owned by this card, so the entry's counted ones are let go with it.
    let job = RwSignal::from(entry.job);
    let html = RwSignal::from(entry.html);

    // The post in words, for accessible names: "Ada's AI post “Tell me about…”".
    let about = format!(
        "{}'s AI post “{}”",
        post.author_name,
        first_words(post.prompt.as_deref().unwrap_or_default())
    );
    let body = match post.kind {
        // `Either` rather than `into_any()`, which would also carry an asynchronous hydration of
        // the card in the bundle.
        // The server's HTML: the text escaped, its web addresses as links.
        PostKind::Text => Either::Left(view! {
            <p class="post-text" inner_html=move || html.get()></p>
        }),
        PostKind::Ai => Either::Right(view! {
            <p class="post-prompt"><span class="label">"Prompt: "</span>{post.prompt.clone().unwrap_or_default()}</p>
            <Show when=move || job.with(Option::is_some)>
                <AIGenerationProgress job mine about=about.clone() />
            </Show>
        }),
    };

    view! {
        // Focusable (not in the tab order) so that the focus can be moved to a post.
        <article class="post" class:ai=post.kind == PostKind::Ai data-post-id=post_id tabindex="-1">
            <header class="post-header">
                <span class="post-author" title=post.author_name.clone()>{post.author_name.clone()}</span>
                // Anyone can take any display name: the tag, from the browser's own identity,
                // tells two "Ada"s apart.
                <span class="post-author-tag" title="The author's tag: the same on every post from one browser">
                    {shown_tag(&post.author_tag)}
                </span>
                {(post.kind == PostKind::Ai).then(|| view! { <span class="badge">"AI post"</span> })}
                <time class="post-time" datetime=when::iso(created_at) title=move || times.reader().full(created_at)>
                    {move || times.reader().relative(created_at)}
                </time>
                <Show when=move || mine.get()>
                    <button class="link-button delete" data-action="delete" aria-label=delete_label.clone()
                        on:click=move |_| deletions.delete(post_id)>"Delete"</button>
                </Show>
            </header>
            {body}
            {move || deletions.failure(post_id).map(|m| view! { <p class="error" role="alert">{m}</p> })}
        </article>
    }
}

/// The first six hex digits of an author's tag, as "#3f9a2c": enough to tell authors apart at
/// a glance, and too many for a new cookie to hit someone else's by chance.
fn shown_tag(tag: &str) -> String {
    format!("#{}", tag.get(..6).unwrap_or(tag))
}
