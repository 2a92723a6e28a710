//! The page's one connection to `/api/v2/wall/events` (browser only): every event goes into
//! the [`WallStore`]. EventSource reconnects by itself after a drop; when the browser gives up
//! (the server was down), we open a new one after a pause. Every (re)connection starts with a
//! snapshot, so nothing is lost and, thanks to offsets and sequence numbers, nothing doubled.
use super::WallStore;

pub const PATH: &str = "/api/v2/wall/events";

/// Follows the stream for as long as the calling component lives.
pub fn connect(store: WallStore) {
    // Cancelled on cleanup, which drops (and so closes) the EventSource.
    #[cfg(feature = "hydrate")]
    leptos::task::spawn_local_scoped_with_cancellation(browser::follow(store));
    #[cfg(not(feature = "hydrate"))]
    let _ = store;
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::time::Duration;

    use futures::{stream, StreamExt};
    use gloo_net::eventsource::{futures::EventSource, State};
    use leptos::{prelude::*, task::spawn_local};

    use super::{WallStore, PATH};
    use crate::types::{ErrorCode, EventName, WallEvent, CONNECTION_TROUBLE as TROUBLE};

    /// Reads one EventSource after another until the task is cancelled.
    pub async fn follow(store: WallStore) {
        loop {
            if let Err(e) = listen(store).await {
                leptos::logging::warn!("the wall's stream cannot be opened: {e}");
            }
            lost(store);
            gloo_timers::future::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Reads one EventSource until the browser gives up on it (it reconnects by itself until
    /// then, e.g. while the server is down, but not when the server answers with an error).
    async fn listen(store: WallStore) -> Result<(), gloo_net::Error> {
        let mut source = EventSource::new(PATH).map_err(gloo_net::Error::JsError)?;
        // gloo-net reports the browser's trouble event only when it gives up; listening to it by
        // name shows "Connecting…" at every drop. Its payload is a plain `Event`, never read.
        let mut names = EventName::WALL_V2.map(EventName::as_str).to_vec();
        names.push(TROUBLE);
        let subscriptions = names
            .into_iter()
            .map(|name| source.subscribe(name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(gloo_net::Error::JsError)?;
        // The browser dispatches one event at a time and this task runs (in a microtask) after
        // each, so the merged stream keeps the server's order.
        let mut events = stream::select_all(subscriptions);
        while let Some(event) = events.next().await {
            match event {
                Ok((name, _)) if name == TROUBLE => lost(store),
                Ok((name, message)) => {
                    // A connection's first event is its snapshot: we are live again.
                    if !store.connected.get_untracked() {
                        store.connected.set(true);
                        store.reconnecting.set(false);
                    }
                    let data = message.data().as_string().unwrap_or_default();
                    match WallEvent::decode(&name, &data) {
                        Ok(event) => store
                            .receive(event)
                            .into_iter()
                            .for_each(|id| refetch(store, id)),
                        Err(e) => leptos::logging::warn!("unreadable wall event: {e}"),
                    }
                }
                Err(_) if source.state() == State::Closed => return Ok(()),
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// The stream dropped: the page shows "Connecting…", and running cards "Reconnecting…"
    /// (their numbers would otherwise look alive while nothing can arrive).
    fn lost(store: WallStore) {
        // Only a page that was live can lose its stream.
        if store.connected.get_untracked() {
            store.connected.set(false);
            store.reconnecting.set(true);
        }
    }

    /// Takes a post's state from the API when the stream cannot bring it up to date.
    fn refetch(store: WallStore, post_id: i64) {
        spawn_local(async move {
            match crate::api::post(post_id).await {
                Ok(post) => store.upsert(post),
                // Deleted while we were away.
                Err(e) if e.code == ErrorCode::NotFound => store.remove(post_id),
                Err(_) => {}
            }
        });
    }
}
