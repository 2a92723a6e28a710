//! The refreshes public requests ask for (`/readyz`, the model list), shared: one at a time,
//! its result reused for [`REUSED_FOR`] after it ends, and run in a task of its own, so that a
//! caller who leaves early cancels nothing and a flood of calls is not passed on to the model
//! servers.
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::time::Instant;

use super::{watch, Member};

/// How long a refresh's result serves the calls after it.
const REUSED_FOR: Duration = Duration::from_secs(1);

/// Each server's error, `None` for one that answered.
pub type Errors = Vec<Option<String>>;

#[derive(Default)]
pub struct Refreshes {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// When the last refresh ended, and its result.
    last: Option<(Instant, Errors)>,
    /// The refresh under way.
    running: Option<Shared<BoxFuture<'static, Errors>>>,
}

impl Refreshes {
    /// Lists the models of every one of `members` now, all at once, or shares a refresh that
    /// is under way or just ended.
    pub async fn refresh(&self, members: &[Arc<Member>]) -> Errors {
        let running = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((ended, errors)) = &state.last {
                if ended.elapsed() < REUSED_FOR {
                    return errors.clone();
                }
            }
            state
                .running
                .get_or_insert_with(|| self.start(members.to_vec()))
                .clone()
        };
        running.await
    }

    /// Starts a refresh in a task of its own, which stores its result when it ends.
    fn start(&self, members: Vec<Arc<Member>>) -> Shared<BoxFuture<'static, Errors>> {
        let servers = members.len();
        let state = Arc::clone(&self.state);
        let task = tokio::spawn(async move {
            let errors = futures::future::join_all(members.iter().map(|m| watch::refresh(m))).await;
            state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .end(&errors);
            errors
        });
        let state = Arc::clone(&self.state);
        async move {
            task.await.unwrap_or_else(|error| {
                tracing::error!(%error, "the refresh of the model servers failed");
                let errors = vec![Some("the refresh failed".to_string()); servers];
                state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .end(&errors);
                errors
            })
        }
        .boxed()
        .shared()
    }
}

impl State {
    fn end(&mut self, errors: &Errors) {
        self.last = Some((Instant::now(), errors.clone()));
        self.running = None;
    }
}
