//! Delete with undo: a deleted post hides at once and a toast offers to undo it for a few
//! seconds; the DELETE request goes only when the toast expires, or when the page is left.
use std::time::Duration;

use leptos::{prelude::*, task::spawn_local};

use crate::{
    api, focus,
    live::WallStore,
    types::{ErrorCode, Post, PostKind},
};

/// How long Undo is offered.
const UNDO_FOR: Duration = Duration::from_secs(5);
const TOAST: &str = ".toast-region";
const UNDO: &str = ".toast-region button[data-action=\"undo\"]";
const COMPOSER: &str = "#composer-text";

/// The page's deletions, in one signal (each signal type costs the bundle its own code).
#[derive(Clone, Debug, Default, PartialEq)]
struct State {
    /// The deletion the toast offers to undo, and its timer.
    pending: Option<(i64, Option<TimeoutHandle>)>,
    /// Posts not shown: the pending one, and those whose DELETE has not been answered yet.
    hidden: Vec<i64>,
    /// The last deletion the server refused: the post is back, with the reason.
    failed: Option<(i64, String)>,
}

/// The page's deletions: the one waiting for its toast to expire and those on their way.
#[derive(Clone, Copy)]
pub struct Deletions {
    store: WallStore,
    state: RwSignal<State>,
}

impl Deletions {
    pub fn new(store: WallStore) -> Self {
        let deletions = Self {
            store,
            state: RwSignal::new(State::default()),
        };
        // A deletion still undoable when the reader leaves goes at once: nothing on the next
        // page would send it.
        let leaving = window_event_listener_untyped("pagehide", move |_| deletions.leave());
        on_cleanup(move || leaving.remove());
        deletions
    }

    // The state is read and written whole (cloned: a few ids), not through closures: each
    // closure given to `with`/`update` is compiled into the bundle on its own.

    /// The posts not to show (tracked).
    pub fn hidden(self) -> Vec<i64> {
        self.state.get().hidden
    }

    fn is_pending(self) -> bool {
        self.state.get().pending.is_some()
    }

    /// Why the server refused to delete the post, if it did last time (tracked).
    pub fn failure(self, post_id: i64) -> Option<String> {
        match self.state.get().failed {
            Some((id, message)) if id == post_id => Some(message),
            _ => None,
        }
    }

    /// Takes the pending deletion and stops its timer.
    fn take_pending(self) -> Option<i64> {
        let mut state = self.state.get_untracked();
        let (post_id, timer) = state.pending.take()?;
        self.state.set(state);
        if let Some(timer) = timer {
            timer.clear();
        }
        Some(post_id)
    }

    /// Hides the post, offers Undo (which takes the focus) and deletes it when that expires.
    pub fn delete(self, post_id: i64) {
        // One toast at a time: the deletion it offered goes now.
        if let Some(previous) = self.take_pending() {
            self.commit(previous);
        }
        let timer = set_timeout_with_handle(move || self.expire(post_id), UNDO_FOR).ok();
        let mut state = self.state.get_untracked();
        state.pending = Some((post_id, timer));
        state.hidden.push(post_id);
        if state.failed.as_ref().is_some_and(|(id, _)| *id == post_id) {
            state.failed = None;
        }
        self.state.set(state);
        focus::soon(vec![UNDO.into()]);
    }

    /// Puts the post back where it was, with the focus on its Delete button (unless it was
    /// deleted elsewhere meanwhile: it stays gone).
    pub fn undo(self) {
        if let Some(post_id) = self.take_pending() {
            self.show(post_id);
            focus::soon(vec![focus::delete_button(post_id), COMPOSER.into()]);
        }
    }

    fn expire(self, post_id: i64) {
        let pending = self.state.get_untracked().pending;
        if pending.is_some_and(|(id, _)| id == post_id) {
            self.take_pending();
            self.commit(post_id);
        }
    }

    /// Sends the DELETE; the post comes back, with the reason, if the server refuses.
    fn commit(self, post_id: i64) {
        // The toast goes away: the focus it held moves to the next post.
        if focus::is_within(TOAST) {
            focus::soon(self.neighbours(post_id));
        }
        spawn_local(async move {
            let refused = match api::delete_post(post_id).await {
                // Not found: deleted elsewhere meanwhile, which is what was wanted.
                Err(e) if e.code != ErrorCode::NotFound => Some(e.message),
                _ => None,
            };
            match refused {
                None => self.store.remove(post_id),
                Some(_) if !focus::is_within("main") => {
                    focus::soon(vec![focus::delete_button(post_id)]);
                }
                Some(_) => {}
            }
            let mut state = self.state.get_untracked();
            state.hidden.retain(|id| *id != post_id);
            state.failed = refused.map(|message| (post_id, message));
            self.state.set(state);
        });
    }

    fn show(self, post_id: i64) {
        let mut state = self.state.get_untracked();
        state.hidden.retain(|id| *id != post_id);
        self.state.set(state);
    }

    /// The posts to give the focus to when `post_id` goes: the next one shown, else the one
    /// before it, else the composer.
    fn neighbours(self, post_id: i64) -> Vec<String> {
        let hidden = self.state.get_untracked().hidden;
        let ids: Vec<i64> = self.store.entries.with_untracked(|es| {
            es.iter()
                .map(|e| e.post.id)
                .filter(|id| *id == post_id || !hidden.contains(id))
                .collect()
        });
        let mut targets = Vec::new();
        if let Some(at) = ids.iter().position(|id| *id == post_id) {
            let next = ids.get(at + 1);
            let previous = at.checked_sub(1).and_then(|at| ids.get(at));
            targets.extend(next.into_iter().chain(previous).map(|id| focus::post(*id)));
        }
        targets.push(COMPOSER.into());
        targets
    }

    /// The page is going away (`pagehide`): the undoable deletion is sent now.
    fn leave(self) {
        if let Some(post_id) = self.take_pending() {
            api::delete_post_on_leave(post_id);
        }
    }
}

/// "Delete your post “Hello wor…”": the Delete button's accessible name, which says which post.
pub fn delete_label(post: &Post) -> String {
    let words = match post.kind {
        PostKind::Text => post.text.as_str(),
        PostKind::Ai => post.prompt.as_deref().unwrap_or_default(),
    };
    format!("Delete your post “{}”", first_words(words))
}

/// The first 30 characters of a text on one line, with "…" when there is more: enough to tell
/// one post from another in a button's accessible name.
pub fn first_words(text: &str) -> String {
    const SHOWN: usize = 30;
    let mut chars = text
        .trim()
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c });
    let mut quoted: String = chars.by_ref().take(SHOWN).collect();
    if chars.next().is_some() {
        quoted.truncate(quoted.trim_end().len());
        quoted.push('…');
    }
    quoted
}

/// The toast: "Post deleted · Undo", announced politely when it shows; Undo takes the focus.
#[component]
pub fn UndoToast(deletions: Deletions) -> impl IntoView {
    view! {
        // role=status is a polite live region by itself (the page's other polite region is
        // the only one that says aria-live).
        <div class="toast-region" role="status" data-testid="toast">
            // Hidden rather than left out: no second view to mount and hydrate in the bundle.
            <div class="toast" hidden=move || !deletions.is_pending()>
                <span>"Post deleted"</span>
                <span class="toast-dot" aria-hidden="true">" · "</span>
                <button type="button" data-action="undo" on:click=move |_| deletions.undo()>"Undo"</button>
            </div>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::delete_label;
    use crate::types::{Post, PostKind};

    fn post(kind: PostKind, text: &str, prompt: Option<&str>) -> Post {
        Post {
            id: 1,
            author_name: "Ada".into(),
            kind,
            text: text.into(),
            html: None,
            prompt: prompt.map(Into::into),
            created_at: 0,
            job: None,
            author_tag: "tag".into(),
        }
    }

    #[test]
    fn the_delete_button_names_the_post() {
        assert_eq!(
            delete_label(&post(PostKind::Text, "Hello world", None)),
            "Delete your post “Hello world”"
        );
        assert_eq!(
            delete_label(&post(
                PostKind::Text,
                "Hello world,\nthis is a rather long first post",
                None
            )),
            "Delete your post “Hello world, this is a rather…”"
        );
        assert_eq!(
            delete_label(&post(
                PostKind::Ai,
                "The answer",
                Some("Why is the sky blue?")
            )),
            "Delete your post “Why is the sky blue?”"
        );
        assert_eq!(
            delete_label(&post(PostKind::Text, &"é".repeat(40), None)),
            format!("Delete your post “{}…”", "é".repeat(30))
        );
    }
}
