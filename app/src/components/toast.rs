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

/// The deletion the toast offers to undo.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pending {
    post_id: i64,
    timer: Option<TimeoutHandle>,
}

/// The page's deletions: the one waiting for its toast to expire and those on their way.
#[derive(Clone, Copy)]
pub struct Deletions {
    store: WallStore,
    pending: RwSignal<Option<Pending>>,
    /// Posts not shown: the pending one, and those whose DELETE has not been answered yet.
    hidden: RwSignal<Vec<i64>>,
    /// The last deletion the server refused: the post is back, with the reason.
    failed: RwSignal<Option<(i64, String)>>,
}

impl Deletions {
    pub fn new(store: WallStore) -> Self {
        let deletions = Self {
            store,
            pending: RwSignal::new(None),
            hidden: RwSignal::new(Vec::new()),
            failed: RwSignal::new(None),
        };
        // A deletion still undoable when the reader leaves goes at once: nothing on the next
        // page would send it.
        let leaving = window_event_listener_untyped("pagehide", move |_| deletions.leave());
        on_cleanup(move || leaving.remove());
        deletions
    }

    pub fn is_hidden(self, post_id: i64) -> bool {
        self.hidden.with(|h| h.contains(&post_id))
    }

    /// Why the server refused to delete the post, if it did last time.
    pub fn failure(self, post_id: i64) -> Option<String> {
        self.failed.with(|f| {
            f.as_ref()
                .filter(|(id, _)| *id == post_id)
                .map(|(_, m)| m.clone())
        })
    }

    /// Hides the post, offers Undo (which takes the focus) and deletes it when that expires.
    pub fn delete(self, post_id: i64) {
        // One toast at a time: the deletion it offered goes now.
        if let Some(previous) = self.pending.get_untracked() {
            self.commit(previous);
        }
        if self.failure(post_id).is_some() {
            self.failed.set(None);
        }
        self.hidden.update(|h| h.push(post_id));
        let timer = set_timeout_with_handle(move || self.expire(post_id), UNDO_FOR).ok();
        self.pending.set(Some(Pending { post_id, timer }));
        focus::soon(vec![UNDO.into()]);
    }

    /// Puts the post back where it was, with the focus on its Delete button (unless it was
    /// deleted elsewhere meanwhile: it stays gone).
    pub fn undo(self) {
        let Some(pending) = self.pending.get_untracked() else {
            return;
        };
        self.pending.set(None);
        if let Some(timer) = pending.timer {
            timer.clear();
        }
        self.show(pending.post_id);
        focus::soon(vec![focus::delete_button(pending.post_id), COMPOSER.into()]);
    }

    fn expire(self, post_id: i64) {
        match self.pending.get_untracked() {
            Some(pending) if pending.post_id == post_id => self.commit(pending),
            _ => {}
        }
    }

    /// Sends the DELETE; the post comes back, with the reason, if the server refuses.
    fn commit(self, pending: Pending) {
        self.pending.set(None);
        if let Some(timer) = pending.timer {
            timer.clear();
        }
        let post_id = pending.post_id;
        // The toast goes away: the focus it held moves to the next post.
        if focus::is_within(TOAST) {
            focus::soon(self.neighbours(post_id));
        }
        spawn_local(async move {
            match api::delete_post(post_id).await {
                // Not found: deleted elsewhere meanwhile, which is what was wanted.
                Ok(()) => self.store.remove(post_id),
                Err(e) if e.code == ErrorCode::NotFound => self.store.remove(post_id),
                Err(e) => {
                    self.failed.set(Some((post_id, e.message)));
                    if focus::is_lost() {
                        focus::soon(vec![focus::delete_button(post_id)]);
                    }
                }
            }
            self.show(post_id);
        });
    }

    fn show(self, post_id: i64) {
        self.hidden.update(|h| h.retain(|id| *id != post_id));
    }

    /// The posts to give the focus to when `post_id` goes: the next one shown, else the one
    /// before it, else the composer.
    fn neighbours(self, post_id: i64) -> Vec<String> {
        let hidden = self.hidden.get_untracked();
        let shown: Vec<i64> = self.store.entries.with_untracked(|es| {
            es.iter()
                .map(|e| e.post.id)
                .filter(|id| *id == post_id || !hidden.contains(id))
                .collect()
        });
        let at = shown.iter().position(|id| *id == post_id);
        let next = at.and_then(|at| shown.get(at + 1));
        let previous = at
            .and_then(|at| at.checked_sub(1))
            .and_then(|at| shown.get(at));
        next.into_iter()
            .chain(previous)
            .map(|id| focus::post(*id))
            .chain([COMPOSER.to_string()])
            .collect()
    }

    /// The page is going away (`pagehide`): the undoable deletion is sent now.
    fn leave(self) {
        if let Some(pending) = self.pending.get_untracked() {
            self.pending.set(None);
            if let Some(timer) = pending.timer {
                timer.clear();
            }
            api::delete_post_on_leave(pending.post_id);
        }
    }
}

/// "Delete your post “Hello wor…”": the Delete button's accessible name, which says which post.
pub fn delete_label(post: &Post) -> String {
    const SHOWN: usize = 30;
    let words = match post.kind {
        PostKind::Text => post.text.as_str(),
        PostKind::Ai => post.prompt.as_deref().unwrap_or_default(),
    };
    let words = words.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut quoted: String = words.chars().take(SHOWN).collect();
    if words.chars().nth(SHOWN).is_some() {
        quoted = format!("{}…", quoted.trim_end());
    }
    format!("Delete your post “{quoted}”")
}

/// The toast: "Post deleted · Undo", announced politely; Undo takes the focus when it shows.
#[component]
pub fn UndoToast() -> impl IntoView {
    let deletions = expect_context::<Deletions>();
    view! {
        <div class="toast-region" role="status" aria-live="polite" data-testid="toast">
            <Show when=move || deletions.pending.with(Option::is_some)>
                <div class="toast">
                    <span>"Post deleted"</span>
                    <span class="toast-dot" aria-hidden="true">" · "</span>
                    <button type="button" data-action="undo" on:click=move |_| deletions.undo()>"Undo"</button>
                </div>
            </Show>
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
                "Hello   world,\nthis is a rather long first post",
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
