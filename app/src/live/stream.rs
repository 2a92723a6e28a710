//! The page's one connection to `/api/v1/wall/events` (browser only): every event goes into
//! the [`WallStore`]. EventSource reconnects by itself after a drop; when the browser gives up
//! (the server was down), we open a new one after a pause. Every (re)connection starts with a
//! snapshot, so nothing is lost and, thanks to offsets and sequence numbers, nothing doubled.
use super::WallStore;

pub const PATH: &str = "/api/v1/wall/events";

/// Opens the stream for as long as the calling component lives.
pub fn connect(store: WallStore) {
    #[cfg(feature = "hydrate")]
    browser::connect(store);
    #[cfg(not(feature = "hydrate"))]
    let _ = store;
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::{cell::RefCell, rc::Rc};

    use leptos::{prelude::*, task::spawn_local};
    use serde::{de::DeserializeOwned, Deserialize};
    use wasm_bindgen::{closure::Closure, JsCast};
    use web_sys::{Event, EventSource, MessageEvent};

    use super::{WallStore, PATH};
    use crate::types::{DoneEvent, ErrorEvent, JobView, Post, ProgressEvent};

    /// The open EventSource and the callbacks it holds (dropped, they would be freed).
    struct Connection {
        source: EventSource,
        _callbacks: Vec<Closure<dyn FnMut(MessageEvent)>>,
        _on_state: Vec<Closure<dyn FnMut(Event)>>,
    }

    type Slot = Rc<RefCell<Option<Connection>>>;

    pub fn connect(store: WallStore) {
        let slot: Slot = Rc::new(RefCell::new(None));
        let alive = Rc::new(std::cell::Cell::new(true));
        open(store, slot.clone(), alive.clone());
        let cleanup = send_wrapper::SendWrapper::new((slot, alive));
        on_cleanup(move || {
            let (slot, alive) = cleanup.take();
            alive.set(false);
            let open = slot.borrow_mut().take();
            if let Some(conn) = open {
                conn.source.close();
            }
        });
    }

    fn open(store: WallStore, slot: Slot, alive: Rc<std::cell::Cell<bool>>) {
        let Ok(source) = EventSource::new(PATH) else {
            return;
        };
        let mut callbacks = Vec::new();
        let mut listen = |name: &str, handle: Box<dyn Fn(&str)>| {
            let cb = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
                if let Some(data) = e.data().as_string() {
                    handle(&data);
                }
            });
            let _ = source.add_event_listener_with_callback(name, cb.as_ref().unchecked_ref());
            callbacks.push(cb);
        };

        #[derive(Deserialize)]
        struct Snapshot {
            posts: Vec<Post>,
            jobs: Vec<JobView>,
        }
        #[derive(Deserialize)]
        struct Deleted {
            post_id: i64,
        }
        listen(
            "snapshot",
            on::<Snapshot>(move |s| {
                for post_id in store.snapshot(s.posts, s.jobs) {
                    refetch(store, post_id);
                }
            }),
        );
        listen("post", on::<Post>(move |p| store.upsert(p)));
        listen(
            "post_deleted",
            on::<Deleted>(move |d| store.remove(d.post_id)),
        );
        listen("job", on::<JobView>(move |v| store.replace_job(v)));
        listen(
            "progress",
            on::<ProgressEvent>(move |ev| {
                if let Some(post_id) = store.progress(&ev) {
                    refetch(store, post_id);
                }
            }),
        );
        listen("done", on::<DoneEvent>(move |ev| store.done(&ev)));
        listen("job_error", on::<ErrorEvent>(move |ev| store.error(&ev)));

        let on_open = Closure::<dyn FnMut(Event)>::new(move |_| store.connected.set(true));
        source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        let retry_slot = slot.clone();
        let retry_alive = alive.clone();
        let on_error = Closure::<dyn FnMut(Event)>::new(move |_| {
            store.connected.set(false);
            let closed = retry_slot
                .borrow()
                .as_ref()
                .is_some_and(|c| c.source.ready_state() == EventSource::CLOSED);
            if closed && retry_alive.get() {
                // The browser gave up (e.g. the server answered with an error while restarting):
                // open a fresh connection after a pause.
                let (slot, alive) = (retry_slot.clone(), retry_alive.clone());
                set_timeout(
                    move || {
                        if alive.get() {
                            open(store, slot, alive);
                        }
                    },
                    std::time::Duration::from_secs(2),
                );
            }
        });
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        *slot.borrow_mut() = Some(Connection {
            source,
            _callbacks: callbacks,
            _on_state: vec![on_open, on_error],
        });
    }

    fn on<T: DeserializeOwned>(apply: impl Fn(T) + 'static) -> Box<dyn Fn(&str)> {
        Box::new(move |data| match serde_json::from_str::<T>(data) {
            Ok(value) => apply(value),
            Err(e) => leptos::logging::warn!("unreadable wall event: {e}"),
        })
    }

    fn refetch(store: WallStore, post_id: i64) {
        spawn_local(async move {
            match crate::api::post(post_id).await {
                Ok(post) => store.upsert(post),
                // Deleted while we were away.
                Err(e) if e.code == crate::types::ErrorCode::NotFound => store.remove(post_id),
                Err(_) => {}
            }
        });
    }
}
