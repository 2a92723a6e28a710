//! One post on the wall: who wrote it and when, its text (with its links), and for an AI post
//! the prompt, the live progress card and the answer as safe Markdown, live and finished alike.
use leptos::{either::Either, prelude::*};

use super::{failure, progress_card::AIGenerationProgress, request};
use crate::{
    api, format,
    live::{Entry, WallStore},
    types::{ApiError, PostKind},
};

#[component]
pub fn PostCard(entry: Entry) -> impl IntoView {
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
    let delete = request(move |(): &()| async move {
        api::delete_post(post_id).await?;
        store.remove(post_id);
        Ok::<(), ApiError>(())
    });
    let deleted = delete.value();
    let job = entry.job;
    let html = entry.html;

    // The post in words, for accessible names: "Ada's AI post “Tell me about…”".
    let about = format!(
        "{}'s AI post “{}”",
        post.author_name,
        short(post.prompt.as_deref().unwrap_or_default())
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
        <article class="post" class:ai=post.kind == PostKind::Ai data-post-id=post_id>
            <header class="post-header">
                <span class="post-author">{post.author_name.clone()}</span>
                {(post.kind == PostKind::Ai).then(|| view! { <span class="badge">"AI post"</span> })}
                <time class="post-time" datetime=post.created_at.to_string()>{format::timestamp(post.created_at)}</time>
                <Show when=move || mine.get()>
                    <button class="link-button" data-action="delete" on:click=move |_| { delete.dispatch(()); } aria-label="Delete this post">"Delete"</button>
                </Show>
            </header>
            {body}
            {move || deleted.with(failure).map(|m| view! { <p class="error" role="alert">{m}</p> })}
        </article>
    }
}

/// The first words of a text, for a label: at most 30 characters, cut at a word.
fn short(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= 30 {
        return text;
    }
    let cut: String = text.chars().take(30).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{cut}…")
}
