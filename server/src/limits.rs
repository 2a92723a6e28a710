//! Limits against abuse that need state: AI posts per author per minute (a keyed GCRA rate
//! limiter from `governor`), AI posts waiting per author and in all, and open live streams
//! per client address. Each refusal ([`Refusal`]) says what the limit is and when to come back.
use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{
    clock::{Clock, DefaultClock},
    DefaultKeyedRateLimiter, Quota, RateLimiter,
};

use crate::{client_addr::ClientKey, config::LimitsConfig};

/// Why a request was refused, in words that say the limit and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("The AI is busy: {backlog} posts are waiting or being written, the most we take. Try again in a minute.")]
    QueueFull { backlog: usize },
    #[error("You already have {waiting} AI posts waiting or being written (the limit is {limit}). Wait for one to finish.")]
    AuthorQueueFull { waiting: u32, limit: u32 },
    #[error("You can create {per_minute} AI posts per minute. Try again in {} s.", whole_seconds(*.retry_after))]
    TooFast {
        per_minute: u32,
        retry_after: Duration,
    },
    #[error("Too many live connections from your address ({open} open, the limit is {limit}). Close some tabs.")]
    TooManyStreams { open: u32, limit: u32 },
    #[error(
        "The server is restarting and takes no new AI posts right now. Try again in a few seconds."
    )]
    ShuttingDown,
}

impl Refusal {
    /// When trying again can succeed.
    pub fn retry_after(&self) -> Duration {
        match self {
            Refusal::QueueFull { .. } => QUEUE_FULL_RETRY,
            Refusal::AuthorQueueFull { .. } => AUTHOR_QUEUE_FULL_RETRY,
            Refusal::TooFast { retry_after, .. } => *retry_after,
            Refusal::TooManyStreams { .. } => STREAMS_RETRY,
            Refusal::ShuttingDown => RESTART_RETRY,
        }
    }
}

/// A duration in whole seconds, rounded up, at least 1: what `Retry-After` and people read.
pub fn whole_seconds(duration: Duration) -> u64 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.max(1)
}

/// Come back after: a full queue frees a place within about a generation's time; an author's
/// own queue sooner; a tab closes at once; a restart takes a few seconds.
const QUEUE_FULL_RETRY: Duration = Duration::from_secs(30);
const AUTHOR_QUEUE_FULL_RETRY: Duration = Duration::from_secs(15);
const STREAMS_RETRY: Duration = Duration::from_secs(5);
const RESTART_RETRY: Duration = Duration::from_secs(5);

pub struct Limits {
    config: LimitsConfig,
    ai_posts: DefaultKeyedRateLimiter<String>,
    /// The same per address, three times as generous (several people may share one), so that
    /// a client that drops its cookie to become a new author each time is still bounded.
    ai_posts_per_address: DefaultKeyedRateLimiter<ClientKey>,
    streams: Arc<Mutex<HashMap<ClientKey, u32>>>,
    /// Held from counting an author's waiting posts to queueing the new one, so that parallel
    /// requests cannot all pass the same count.
    admission: tokio::sync::Mutex<()>,
}

/// Per-address rate compared with the per-author one.
const ADDRESS_FACTOR: u32 = 3;
/// Forget rate-limiter keys not seen for a while once there are this many.
const MAX_KEYS: usize = 10_000;

impl Limits {
    pub fn new(config: LimitsConfig) -> Self {
        let per_minute =
            NonZeroU32::new(config.ai_posts_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let per_address =
            per_minute.saturating_mul(NonZeroU32::new(ADDRESS_FACTOR).unwrap_or(NonZeroU32::MIN));
        Self {
            ai_posts: RateLimiter::keyed(Quota::per_minute(per_minute)),
            ai_posts_per_address: RateLimiter::keyed(Quota::per_minute(per_address)),
            streams: Arc::default(),
            admission: tokio::sync::Mutex::new(()),
            config,
        }
    }

    /// Serialises AI post admissions: hold the guard until the new job is queued.
    pub async fn admission(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.admission.lock().await
    }

    /// May this author, from this address, queue another AI post now? `waiting` is how many of
    /// theirs are queued or running, `queued_total` how many are in all.
    pub fn admit_ai_post(
        &self,
        author_id: &str,
        address: ClientKey,
        waiting: u32,
        backlog: usize,
    ) -> Result<(), Refusal> {
        let c = &self.config;
        if backlog >= usize::try_from(c.queue_max).unwrap_or(usize::MAX) {
            return Err(Refusal::QueueFull { backlog });
        }
        if waiting >= c.queued_per_author {
            return Err(Refusal::AuthorQueueFull {
                waiting,
                limit: c.queued_per_author,
            });
        }
        if self.ai_posts.len() > MAX_KEYS {
            self.ai_posts.retain_recent();
            self.ai_posts_per_address.retain_recent();
        }
        let limited = self
            .ai_posts
            .check_key(&author_id.to_owned())
            .and_then(|()| self.ai_posts_per_address.check_key(&address));
        if let Err(not_until) = limited {
            return Err(Refusal::TooFast {
                per_minute: c.ai_posts_per_minute,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            });
        }
        Ok(())
    }

    /// A place for one more live stream from `ip`, held until the returned slot is dropped.
    pub fn open_stream(&self, ip: ClientKey) -> Result<StreamSlot, Refusal> {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let open = streams.entry(ip).or_default();
        if *open >= self.config.sse_per_client {
            return Err(Refusal::TooManyStreams {
                open: *open,
                limit: self.config.sse_per_client,
            });
        }
        *open += 1;
        Ok(StreamSlot {
            ip,
            streams: Arc::clone(&self.streams),
        })
    }
}

/// One open live stream; dropping it frees the place.
pub struct StreamSlot {
    ip: ClientKey,
    streams: Arc<Mutex<HashMap<ClientKey, u32>>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = streams.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                streams.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> ClientKey {
        ClientKey::of(std::net::IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn new_identities_from_one_address_are_still_limited() {
        let l = limits(); // 2 per minute per author, so 6 per address
        for i in 0..6 {
            assert!(l.admit_ai_post(&format!("author {i}"), ip(7), 0, 0).is_ok());
        }
        assert!(matches!(
            l.admit_ai_post("author 99", ip(7), 0, 0).unwrap_err(),
            Refusal::TooFast { per_minute: 2, .. }
        ));
        assert!(l.admit_ai_post("author 99", ip(8), 0, 0).is_ok());
    }

    fn limits() -> Limits {
        Limits::new(LimitsConfig {
            ai_posts_per_minute: 2,
            queued_per_author: 3,
            queue_max: 10,
            sse_per_client: 2,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn a_burst_of_ai_posts_then_429_with_retry_after() {
        let l = limits();
        assert!(l.admit_ai_post("a", ip(1), 0, 0).is_ok());
        assert!(l.admit_ai_post("a", ip(1), 0, 0).is_ok());
        let e = l.admit_ai_post("a", ip(1), 0, 0).unwrap_err();
        assert!(
            (1..=30).contains(&whole_seconds(e.retry_after())),
            "{:?}",
            e.retry_after()
        );
        assert!(e.to_string().contains("2 AI posts per minute"), "{e}");
        assert!(
            l.admit_ai_post("b", ip(1), 0, 0).is_ok(),
            "another author is not affected"
        );
    }

    #[test]
    fn queue_limits_per_author_and_in_all() {
        let l = limits();
        assert_eq!(
            l.admit_ai_post("a", ip(1), 3, 0).unwrap_err(),
            Refusal::AuthorQueueFull {
                waiting: 3,
                limit: 3
            }
        );
        assert!(l
            .admit_ai_post("a", ip(1), 3, 0)
            .unwrap_err()
            .to_string()
            .contains("limit is 3"));
        assert_eq!(
            l.admit_ai_post("a", ip(1), 0, 10).unwrap_err(),
            Refusal::QueueFull { backlog: 10 }
        );
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(2001)), 3);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn stream_slots_are_counted_per_address_and_freed_on_drop() {
        let l = limits();
        let a = l.open_stream(ip(1)).unwrap();
        let _b = l.open_stream(ip(1)).unwrap();
        assert!(l.open_stream(ip(1)).is_err());
        assert!(l.open_stream(ip(2)).is_ok());
        drop(a);
        assert!(l.open_stream(ip(1)).is_ok());
    }
}
