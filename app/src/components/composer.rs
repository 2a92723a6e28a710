//! The composer: write a text post, or a prompt for an AI post (model, optional max length).
use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};

use crate::{
    api,
    live::WallStore,
    types::{ApiError, InputLimits, NewAiPost, NewPost},
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Ai,
}

/// What the model list looks like to the composer.
#[derive(Clone, PartialEq)]
enum ModelList {
    Loading,
    Ready(Vec<String>),
    Unavailable(String),
}

#[component]
pub fn Composer(limits: InputLimits, default_model: String) -> impl IntoView {
    let store = expect_context::<WallStore>();
    let name = RwSignal::new(String::new());
    let text = RwSignal::new(String::new());
    let kind = RwSignal::new(Kind::Text);
    let model = RwSignal::new(default_model.clone());
    let max_tokens = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let sending = RwSignal::new(false);
    let models = RwSignal::new(ModelList::Loading);

    // The installed models, asked once the page runs in the browser.
    Effect::new(move |_| {
        spawn_local(async move {
            models.set(match api::models().await {
                Ok(list) => ModelList::Ready(list.models),
                Err(e) => ModelList::Unavailable(e.message),
            });
        });
    });

    let limit = move || {
        if kind.get() == Kind::Ai {
            limits.prompt_max_chars
        } else {
            limits.post_max_chars
        }
    };
    let count = move || text.with(|t| t.trim().chars().count());
    let counter_class = move || {
        if count() > limit() {
            "counter over"
        } else {
            "counter"
        }
    };

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if sending.get_untracked() {
            return;
        }
        let author_name = name.get_untracked();
        let body = text.get_untracked();
        let checked: Result<(), ApiError> = match kind.get_untracked() {
            Kind::Text => limits.post_text(&body).map(drop),
            Kind::Ai => limits.prompt(&body).map(drop),
        };
        if let Err(e) = checked.and_then(|_| limits.author_name(&author_name).map(drop)) {
            error.set(Some(e.message));
            return;
        }
        let max = match max_tokens.get_untracked().trim() {
            "" => None,
            n => match n.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    error.set(Some(
                        "The max length must be a whole number of tokens.".into(),
                    ));
                    return;
                }
            },
        };
        error.set(None);
        sending.set(true);
        let kind_now = kind.get_untracked();
        let model_now = model.get_untracked();
        spawn_local(async move {
            let created = match kind_now {
                Kind::Text => {
                    api::create_post(&NewPost {
                        author_name,
                        text: body,
                    })
                    .await
                }
                Kind::Ai => {
                    api::create_ai_post(&NewAiPost {
                        author_name,
                        prompt: body,
                        model: Some(model_now),
                        max_tokens: max,
                    })
                    .await
                }
            };
            match created {
                Ok(post) => {
                    store.add_mine(post);
                    text.set(String::new());
                }
                Err(e) => error.set(Some(e.message)),
            }
            sending.set(false);
        });
    };

    let default_for_options = default_model.clone();
    view! {
        <form class="composer" data-testid="composer" on:submit=submit>
            <div class="composer-row">
                <label class="field">
                    <span>"Your name"</span>
                    <input id="composer-name" type="text" placeholder="Anonymous" autocomplete="nickname"
                        prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                </label>
                <fieldset class="kind">
                    <legend class="sr-only">"Kind of post"</legend>
                    <label><input type="radio" name="kind" value="text" prop:checked=move || kind.get() == Kind::Text
                        on:change=move |_| kind.set(Kind::Text) />" Post"</label>
                    <label><input type="radio" name="kind" value="ai" prop:checked=move || kind.get() == Kind::Ai
                        on:change=move |_| kind.set(Kind::Ai) />" 🤖 Ask the AI"</label>
                </fieldset>
            </div>
            <label class="field">
                <span class="sr-only">{move || if kind.get() == Kind::Ai { "Prompt" } else { "Post" }}</span>
                <textarea id="composer-text" rows="3"
                    placeholder=move || if kind.get() == Kind::Ai { "Ask the AI something…" } else { "What's on your mind?" }
                    prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))></textarea>
            </label>
            <Show when=move || kind.get() == Kind::Ai>
                <div class="composer-row ai-options">
                    <label class="field">
                        <span>"Model"</span>
                        <select id="composer-model" on:change=move |ev| model.set(event_target_value(&ev))>
                            {
                                let default_model = default_for_options.clone();
                                move || {
                                    let mut names = match models.get() {
                                        ModelList::Ready(names) => names,
                                        _ => Vec::new(),
                                    };
                                    if !names.contains(&default_model) {
                                        names.insert(0, default_model.clone());
                                    }
                                    names.into_iter().map(|n| {
                                        let selected = n == model.get_untracked();
                                        view! { <option value=n.clone() selected=selected>{n.clone()}</option> }
                                    }).collect_view()
                                }
                            }
                        </select>
                    </label>
                    <label class="field">
                        <span>"Max length (tokens)"</span>
                        <input id="composer-max-tokens" type="number" min="1" max=limits.max_tokens_limit placeholder="no limit"
                            prop:value=move || max_tokens.get() on:input=move |ev| max_tokens.set(event_target_value(&ev)) />
                    </label>
                    {move || match models.get() {
                        ModelList::Unavailable(message) => Some(view! { <p class="notice" data-testid="models-error">{message}</p> }),
                        _ => None,
                    }}
                </div>
            </Show>
            <div class="composer-row composer-footer">
                <span class=counter_class>{move || format!("{}/{}", count(), limit())}</span>
                <button type="submit" data-testid="composer-submit" disabled=move || sending.get()>
                    {move || match (sending.get(), kind.get()) {
                        (true, _) => "Posting…",
                        (false, Kind::Ai) => "Ask the AI",
                        (false, Kind::Text) => "Post",
                    }}
                </button>
            </div>
            {move || error.get().map(|m| view! { <p class="error" role="alert" data-testid="composer-error">{m}</p> })}
        </form>
    }
}
