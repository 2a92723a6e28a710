//! Publishes a running job's progress, throttled twice: to its watchers (through the hub) at
//! most every `progress.push_interval_ms`, to the database at most every
//! `progress.db_write_interval_ms`, and to both at once when its phase changes.
use std::time::{Duration, Instant};

use app::types::{Progress, Reasoning};

use super::{live::Live, throttle::Throttle};
use crate::{
    db::{Db, ProgressWrite},
    hub::Hub,
    markdown,
};

/// Where one publication goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Targets {
    watchers: bool,
    database: bool,
}

pub struct Publisher {
    hub: Hub,
    db: Db,
    watchers: Throttle,
    database: Throttle,
    /// How much of the text watchers have; `None` after a restart, when theirs must be
    /// cleared before the new text.
    sent_len: Option<usize>,
    /// How much of the reasoning watchers have (cleared with the text).
    sent_thinking: usize,
}

impl Publisher {
    pub fn new(hub: Hub, db: Db, push_interval: Duration, write_interval: Duration) -> Self {
        Self {
            hub,
            db,
            watchers: Throttle::new(push_interval),
            database: Throttle::new(write_interval),
            sent_len: Some(0),
            sent_thinking: 0,
        }
    }

    /// When held-back changes must go out if nothing else happens first.
    pub fn next_due(&self) -> Option<Instant> {
        [self.watchers.due_at(), self.database.due_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// A token arrived: each target gets it now, or holds it until its interval has passed.
    pub async fn token(&mut self, live: &mut Live) {
        let now = Instant::now();
        let targets = Targets {
            watchers: self.watchers.offer(now),
            database: self.database.offer(now),
        };
        self.send(live, targets).await;
    }

    /// The time of [`Publisher::next_due`] came: sends what is due.
    pub async fn due(&mut self, live: &mut Live) {
        let now = Instant::now();
        let is_due = |t: &Throttle| t.due_at().is_some_and(|due| now >= due);
        let targets = Targets {
            watchers: is_due(&self.watchers),
            database: is_due(&self.database),
        };
        self.mark_sent(targets, now);
        self.send(live, targets).await;
    }

    /// The job's phase changed: everyone learns it at once.
    pub async fn phase_changed(&mut self, live: &mut Live) {
        let targets = Targets {
            watchers: true,
            database: true,
        };
        self.mark_sent(targets, Instant::now());
        self.send(live, targets).await;
    }

    /// Before the job's end: watchers get the last words as progress too.
    pub async fn flush_to_watchers(&mut self, live: &mut Live) {
        if self.watchers.due_at().is_some() {
            self.send_to_watchers_now(live).await;
        }
    }

    /// A detail of the phase that must show at once (whether the model is loaded), outside
    /// the throttles: it does not delay the next token.
    pub async fn send_to_watchers_now(&mut self, live: &mut Live) {
        let targets = Targets {
            watchers: true,
            database: false,
        };
        self.send(live, targets).await;
    }

    /// The text started over (another attempt): watchers drop what they have with the next
    /// publication.
    pub fn text_restarted(&mut self) {
        self.sent_len = None;
    }

    fn mark_sent(&mut self, targets: Targets, now: Instant) {
        if targets.watchers {
            self.watchers.mark_sent(now);
        }
        if targets.database {
            self.database.mark_sent(now);
        }
    }

    async fn send(&mut self, live: &mut Live, mut targets: Targets) {
        if targets == Targets::default() {
            return;
        }
        let now = Instant::now();
        let progress = live.progress(now);
        let reasoning = live.reasoning(now);
        // Too much new text for one bus note: the other instances are told to read the row,
        // so the row gets it first.
        let database_first = targets.watchers && self.too_large_for_a_note(live);
        if database_first {
            self.write(live, &progress, reasoning.as_ref()).await;
            targets.database = false;
        }
        if targets.watchers {
            let restart = self.sent_len.is_none();
            if restart {
                self.sent_thinking = 0;
            }
            let delta = &live.text[self.sent_len.unwrap_or(0).min(live.text.len())..];
            let thinking_delta = &live.thinking[self.sent_thinking.min(live.thinking.len())..];
            // Rendered only when the text changed; the hub sends the blocks that differ.
            let blocks = (restart || !delta.is_empty()).then(|| markdown::blocks(&live.text));
            self.hub.publish(live.id, blocks, |v| {
                if restart {
                    v.text.clear();
                    v.thinking.clear();
                }
                v.text.push_str(delta);
                v.thinking.push_str(thinking_delta);
                v.reasoning = reasoning.clone();
                v.prompt_progress = live.prompt_progress;
                v.backend = live.backend.clone();
                v.waiting_for = None;
                v.unreachable_since = None;
                v.status = live.status;
                v.progress = progress.clone();
                v.retry_at = live.retry_at;
                v.error = live.error.as_ref().map(|(detail, _)| detail.clone());
                v.failure = live.error.as_ref().map(|(_, class)| *class);
                v.attempt = live.attempt;
                v.model_loaded = live.model_loaded;
                v.queue_position = None;
            });
            self.sent_len = Some(live.text.len());
            self.sent_thinking = live.thinking.len();
        }
        if targets.database {
            self.write(live, &progress, reasoning.as_ref()).await;
        }
    }

    /// Whether what watchers have not had yet is more than a bus note carries (only where
    /// there are other instances to tell).
    fn too_large_for_a_note(&self, live: &Live) -> bool {
        if self.hub.outbox().is_none() {
            return false;
        }
        let text = match self.sent_len {
            Some(sent) => live.text.get(sent..).unwrap_or_default(),
            None => &live.text,
        };
        let thinking = live.thinking.get(self.sent_thinking..).unwrap_or_default();
        crate::bus::inline_len(text) + crate::bus::inline_len(thinking)
            > crate::bus::MAX_INLINE_DELTA
    }

    async fn write(&self, live: &Live, progress: &Progress, reasoning: Option<&Reasoning>) {
        let write = ProgressWrite {
            run: live.run,
            status: live.status,
            progress,
            text: &live.text,
            retry_at: live.retry_at,
            error: live.error.as_ref().map(|(detail, _)| detail.as_str()),
            failure: live.error.as_ref().map(|(_, class)| *class),
            attempt: live.attempt,
            thinking: &live.thinking,
            reasoning,
        };
        if let Err(e) = self.db.write_progress(live.id, write).await {
            tracing::warn!(error = %e, "cannot write progress; the next write will carry it");
        }
    }
}
