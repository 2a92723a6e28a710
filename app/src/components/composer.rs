//! The composer: write a text post, or a prompt for an AI post (model, optional max length).
//! The author's name, the kind of post and the model are remembered by the browser.
use leptos::{
    ev::{KeyboardEvent, SubmitEvent},
    html,
    prelude::*,
};

use super::{failure, request};
use crate::{
    api,
    live::WallStore,
    types::{ApiError, InputLimits, ModelList, NewAiPost, NewPost},
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Ai,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Ai => "ai",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Text, Self::Ai].into_iter().find(|k| k.as_str() == s)
    }
}

/// The installed models, once the browser has asked for them.
pub type Models = LocalResource<Result<ModelList, ApiError>>;

/// What the composer sends.
enum Draft {
    Text(NewPost),
    Ai(NewAiPost),
}

#[component]
pub fn Composer(limits: InputLimits, default_model: String, models: Models) -> impl IntoView {
    let store = expect_context::<WallStore>();
    let name = RwSignal::new(String::new());
    let text = RwSignal::new(String::new());
    let kind = RwSignal::new(Kind::Text);
    let model = RwSignal::new(default_model.clone());
    let max_tokens = RwSignal::new(String::new());
    let textarea = NodeRef::<html::Textarea>::new();

    // The server rendered the defaults, and so did the hydrating page: what this browser
    // remembers is applied afterwards (an effect runs once the page is hydrated). The model
    // is taken once the installed ones are known, and only while it is among them.
    Effect::new(move |first: Option<()>| {
        if first.is_none() {
            if let Some(stored) = remembered::load(remembered::NAME) {
                name.set(stored);
            }
            if let Some(stored) = remembered::load(remembered::KIND)
                .as_deref()
                .and_then(Kind::parse)
            {
                kind.set(stored);
            }
        }
        let installed = models.get().and_then(Result::ok);
        if let (Some(installed), Some(stored)) = (installed, remembered::load(remembered::MODEL)) {
            if installed.models.contains(&stored) {
                model.set(stored);
            }
        }
    });

    // The draft as the API takes it, or why the browser refuses it before sending anything.
    let draft = move || -> Result<Draft, ApiError> {
        let kind = kind.get_untracked();
        let body = text.get_untracked();
        match kind {
            Kind::Text => limits.post_text(&body)?,
            Kind::Ai => limits.prompt(&body)?,
        };
        let author_name = name.get_untracked();
        limits.author_name(&author_name)?;
        let max_tokens = match max_tokens.get_untracked().trim() {
            "" => None,
            n => Some(n.parse::<u32>().map_err(|_| {
                ApiError::validation("The max length must be a whole number of tokens.")
            })?),
        };
        Ok(match kind {
            Kind::Text => Draft::Text(NewPost {
                author_name,
                text: body,
            }),
            Kind::Ai => Draft::Ai(NewAiPost {
                author_name,
                prompt: body,
                model: Some(model.get_untracked()),
                max_tokens,
            }),
        })
    };
    let send = request(move |(): &()| {
        let draft = draft();
        async move {
            let sent = match draft {
                Ok(Draft::Text(new)) => api::create_post(&new).await,
                Ok(Draft::Ai(new)) => api::create_ai_post(&new).await,
                Err(e) => Err(e),
            };
            let outcome = sent.map(|post| {
                store.add_mine(post);
                text.set(String::new());
            });
            // Back to writing, whether it went or not (the button held the focus, and a
            // disabled button loses it).
            if let Some(el) = textarea.get_untracked() {
                let _ = el.focus();
            }
            outcome
        }
    });
    let sending = send.pending();
    let sent = send.value();
    // The last error is shown until the next post is under way.
    let error = move || sent.with(failure).filter(|_| !sending.get());

    // The model choices: the ones the server offers, and the default one even when it is not (yet)
    // listed, with the chosen one selected.
    let default_model = StoredValue::new(default_model);
    let options = move |mut names: Vec<String>| {
        default_model.with_value(|default| {
            if !names.contains(default) {
                names.insert(0, default.clone());
            }
        });
        names
            .into_iter()
            .map(|n| {
                let (label, chosen) = (n.clone(), n.clone());
                view! { <option value=n prop:selected=move || model.get() == chosen>{label}</option> }
            })
            .collect_view()
    };

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

    let post = move || {
        if !sending.get_untracked() {
            send.dispatch(());
        }
    };
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        post();
    };
    // Ctrl+Enter (Cmd+Enter on a Mac) sends from the text area.
    let shortcut = move |ev: KeyboardEvent| {
        if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
            ev.prevent_default();
            post();
        }
    };
    let choose = move |k: Kind| {
        kind.set(k);
        remembered::save(remembered::KIND, k.as_str());
    };

    view! {
        <form class="composer" data-testid="composer" on:submit=submit>
            <div class="composer-row">
                <label class="field">
                    <span>"Your name"</span>
                    <input id="composer-name" type="text" placeholder="Anonymous" autocomplete="nickname"
                        prop:value=move || name.get()
                        on:input=move |ev| {
                            let value = event_target_value(&ev);
                            remembered::save(remembered::NAME, &value);
                            name.set(value);
                        } />
                </label>
                <fieldset class="kind">
                    <legend class="sr-only">"Kind of post"</legend>
                    <label><input type="radio" name="kind" value="text" prop:checked=move || kind.get() == Kind::Text
                        on:change=move |_| choose(Kind::Text) /><span>"Post"</span></label>
                    <label><input type="radio" name="kind" value="ai" prop:checked=move || kind.get() == Kind::Ai
                        on:change=move |_| choose(Kind::Ai) /><span>"🤖 Ask the AI"</span></label>
                </fieldset>
            </div>
            <label class="field">
                <span class="sr-only">{move || if kind.get() == Kind::Ai { "Prompt" } else { "Post" }}</span>
                <textarea id="composer-text" rows="3" node_ref=textarea on:keydown=shortcut
                    aria-keyshortcuts="Control+Enter Meta+Enter"
                    placeholder=move || if kind.get() == Kind::Ai { "Ask the AI something…" } else { "What's on your mind?" }
                    prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))></textarea>
            </label>
            <Show when=move || kind.get() == Kind::Ai>
                <div class="composer-row ai-options">
                    <label class="field">
                        <span>"Model"</span>
                        <select id="composer-model" on:change=move |ev| {
                            let value = event_target_value(&ev);
                            remembered::save(remembered::MODEL, &value);
                            model.set(value);
                        }>
                            {move || options(models.get().and_then(Result::ok).map(|list| list.models).unwrap_or_default())}
                        </select>
                    </label>
                    <label class="field">
                        <span>"Max length (tokens)"</span>
                        <input id="composer-max-tokens" type="number" min="1" max=limits.max_tokens_limit placeholder="no limit"
                            prop:value=move || max_tokens.get() on:input=move |ev| max_tokens.set(event_target_value(&ev)) />
                    </label>
                    {move || models.get().and_then(Result::err).map(|e| view! { <p class="notice" data-testid="models-error">{e.message}</p> })}
                </div>
            </Show>
            <div class="composer-row composer-footer">
                <span class=counter_class>{move || format!("{}/{}", count(), limit())}</span>
                <button type="submit" data-testid="composer-submit" disabled=sending>
                    {move || match (sending.get(), kind.get()) {
                        (true, _) => "Posting…",
                        (false, Kind::Ai) => "Ask the AI",
                        (false, Kind::Text) => "Post",
                    }}
                </button>
            </div>
            {move || error().map(|m| view! { <p class="error" role="alert" data-testid="composer-error">{m}</p> })}
        </form>
    }
}

/// What the composer remembers in this browser's `localStorage` (nothing on the server).
mod remembered {
    pub const NAME: &str = "aiwall.author_name";
    pub const KIND: &str = "aiwall.kind";
    pub const MODEL: &str = "aiwall.model";

    #[cfg(feature = "hydrate")]
    fn storage() -> Option<web_sys::Storage> {
        web_sys::window()?.local_storage().ok().flatten()
    }

    pub fn load(key: &str) -> Option<String> {
        #[cfg(feature = "hydrate")]
        {
            storage()?.get_item(key).ok().flatten()
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = key;
            None
        }
    }

    /// Best effort: a browser that refuses storage (private mode, full) just forgets.
    pub fn save(key: &str, value: &str) {
        #[cfg(feature = "hydrate")]
        if let Some(storage) = storage() {
            let _ = storage.set_item(key, value);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (key, value);
    }
}
