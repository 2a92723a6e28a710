//! The composer: write a text post, or a prompt for an AI post (model, optional max length).
//! The author's name, the kind of post and the model are remembered by the browser. The model
//! picker says where each model is available ("qwen3:4b · gpu1, gpu2"); a model no server has
//! now stays selectable (its post waits in the queue), and the composer says so.
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

/// One model of the picker.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Choice {
    name: String,
    /// What the picker shows: the name, and where the model is available.
    label: String,
    /// Some model server can run it now.
    available: bool,
}

/// The picker's models: every allowed one with where it is available (`offered`), or, from a
/// server that does not say, the installed ones; the default model first when it is missing.
/// Where a model is available is named only when the wall has several model servers.
fn choices(list: Option<&ModelList>, default: &str) -> Vec<Choice> {
    let mut choices: Vec<Choice> = match list {
        Some(list) if !list.offered.is_empty() => {
            let mut servers: Vec<&String> = list.offered.iter().flat_map(|m| &m.backends).collect();
            servers.sort_unstable();
            servers.dedup();
            let several = servers.len() > 1;
            list.offered
                .iter()
                .map(|m| Choice {
                    name: m.name.clone(),
                    label: match m.backends.as_slice() {
                        [] => format!("{} · not available now", m.name),
                        on if several => format!("{} · {}", m.name, on.join(", ")),
                        _ => m.name.clone(),
                    },
                    available: !m.backends.is_empty(),
                })
                .collect()
        }
        Some(list) => list.models.iter().map(|n| available(n)).collect(),
        None => Vec::new(),
    };
    if !choices.iter().any(|c| c.name == default) {
        choices.insert(0, available(default));
    }
    choices
}

/// A model offered without more to say of it.
fn available(name: &str) -> Choice {
    Choice {
        name: name.to_owned(),
        label: name.to_owned(),
        available: true,
    }
}

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
            let offered = installed.offered.iter().map(|m| &m.name);
            if installed.models.iter().chain(offered).any(|m| *m == stored) {
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
    let listed = move || {
        let list = models.get().and_then(Result::ok);
        default_model.with_value(|default| choices(list.as_ref(), default))
    };
    let options = move || {
        listed()
            .into_iter()
            .map(|Choice { name, label, .. }| {
                let chosen = name.clone();
                view! { <option value=name prop:selected=move || model.get() == chosen>{label}</option> }
            })
            .collect_view()
    };
    // The chosen model, when no model server can run it now.
    let unavailable = move || {
        let chosen = model.get();
        listed()
            .into_iter()
            .any(|c| c.name == chosen && !c.available)
            .then_some(chosen)
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
                            {options}
                        </select>
                    </label>
                    {move || unavailable().map(|m| view! {
                        <p class="notice" data-testid="model-unavailable">
                            {format!("No model server has {m} right now: an AI post for it waits in the queue until one does.")}
                        </p>
                    })}
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

#[cfg(test)]
mod tests {
    use super::{choices, Choice};
    use crate::types::{ModelList, OfferedModel};

    fn offered(name: &str, backends: &[&str]) -> OfferedModel {
        OfferedModel {
            name: name.into(),
            backends: backends.iter().map(|b| (*b).to_owned()).collect(),
            loaded_on: Vec::new(),
        }
    }

    fn list(models: &[&str], offered: Vec<OfferedModel>) -> ModelList {
        ModelList {
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            default_model: "qwen3:4b".into(),
            offered,
        }
    }

    fn labels(choices: &[Choice]) -> Vec<&str> {
        choices.iter().map(|c| c.label.as_str()).collect()
    }

    #[test]
    fn the_picker_says_where_each_model_is_available_and_keeps_the_others_selectable() {
        let pool = list(
            &["qwen3:4b"],
            vec![
                offered("qwen3:4b", &["gpu1", "gpu2"]),
                offered("llama3:8b", &[]),
                offered("phi4", &["gpu2"]),
            ],
        );
        let picked = choices(Some(&pool), "qwen3:4b");
        assert_eq!(
            labels(&picked),
            [
                "qwen3:4b · gpu1, gpu2",
                "llama3:8b · not available now",
                "phi4 · gpu2"
            ]
        );
        assert_eq!(
            picked.iter().map(|c| c.available).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(picked[1].name, "llama3:8b", "the value is the name alone");
    }

    #[test]
    fn one_model_server_is_not_named_and_an_older_server_lists_its_models() {
        let single = list(
            &[],
            vec![offered("qwen3:4b", &["ollama"]), offered("x", &[])],
        );
        assert_eq!(
            labels(&choices(Some(&single), "qwen3:4b")),
            ["qwen3:4b", "x · not available now"]
        );
        let older = list(&["llama3.2:1b", "qwen2.5:0.5b"], Vec::new());
        assert_eq!(
            labels(&choices(Some(&older), "qwen3:4b")),
            ["qwen3:4b", "llama3.2:1b", "qwen2.5:0.5b"],
            "the default first when the server does not list it"
        );
        assert_eq!(labels(&choices(None, "qwen3:4b")), ["qwen3:4b"]);
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
