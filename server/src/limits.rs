//! Limits against abuse that need state: AI and text posts per author and per address per
//! minute (keyed GCRA rate limiters from `governor`), AI posts waiting per author, per address
//! and in all, and open live streams per client address. Each refusal ([`Refusal`]) says what
//! the limit is and when to come back.
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
    #[error("Your address already has {waiting} AI posts waiting or being written (the limit is {limit} per address, whoever writes them). Wait for one to finish.")]
    AddressQueueFull { waiting: u32, limit: u32 },
    #[error("You can create {per_minute} AI posts per minute. Try again in {} s.", whole_seconds(*.retry_after))]
    TooFast {
        per_minute: u32,
        retry_after: Duration,
    },
    #[error("Your address can create {per_minute} AI posts per minute, whoever writes them. Try again in {} s.", whole_seconds(*.retry_after))]
    AddressTooFast {
        per_minute: u32,
        retry_after: Duration,
    },
    #[error("You can write {per_minute} posts per minute. Try again in {} s.", whole_seconds(*.retry_after))]
    TextTooFast {
        per_minute: u32,
        retry_after: Duration,
    },
    #[error("Your address can send {per_minute} posts per minute, whoever writes them. Try again in {} s.", whole_seconds(*.retry_after))]
    AddressTextTooFast {
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
            Refusal::AuthorQueueFull { .. } | Refusal::AddressQueueFull { .. } => {
                AUTHOR_QUEUE_FULL_RETRY
            }
            Refusal::TooFast { retry_after, .. }
            | Refusal::AddressTooFast { retry_after, .. }
            | Refusal::TextTooFast { retry_after, .. }
            | Refusal::AddressTextTooFast { retry_after, .. } => *retry_after,
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
/// own queue (or their address's) sooner; a tab closes at once; a restart takes a few seconds.
const QUEUE_FULL_RETRY: Duration = Duration::from_secs(30);
const AUTHOR_QUEUE_FULL_RETRY: Duration = Duration::from_secs(15);
const STREAMS_RETRY: Duration = Duration::from_secs(5);
const RESTART_RETRY: Duration = Duration::from_secs(5);

pub struct Limits {
    config: LimitsConfig,
    ai_posts: Rate,
    text_posts: Rate,
    streams: Arc<Mutex<HashMap<ClientKey, u32>>>,
    /// Held from counting an author's waiting posts to queueing the new one, so that parallel
    /// requests cannot all pass the same count.
    admission: tokio::sync::Mutex<()>,
}

/// Per-address rates compared with the per-author ones.
const ADDRESS_FACTOR: u32 = 3;
/// Forget rate-limiter keys not seen for a while once there are this many.
const MAX_KEYS: usize = 10_000;

impl Limits {
    pub fn new(config: LimitsConfig) -> Self {
        Self {
            ai_posts: Rate::new(config.ai_posts_per_minute),
            text_posts: Rate::new(config.text_posts_per_minute),
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
    /// the author's and of the address's are queued or running, `backlog` how many are in all.
    pub fn admit_ai_post(
        &self,
        author_id: &str,
        address: ClientKey,
        waiting: Waiting,
        backlog: usize,
    ) -> Result<(), Refusal> {
        let c = &self.config;
        if backlog >= usize::try_from(c.queue_max).unwrap_or(usize::MAX) {
            return Err(Refusal::QueueFull { backlog });
        }
        if waiting.author >= c.queued_per_author {
            return Err(Refusal::AuthorQueueFull {
                waiting: waiting.author,
                limit: c.queued_per_author,
            });
        }
        if waiting.address >= c.queued_per_address {
            return Err(Refusal::AddressQueueFull {
                waiting: waiting.address,
                limit: c.queued_per_address,
            });
        }
        self.ai_posts.check(
            author_id,
            address,
            |per_minute, retry_after| Refusal::TooFast {
                per_minute,
                retry_after,
            },
            |per_minute, retry_after| Refusal::AddressTooFast {
                per_minute,
                retry_after,
            },
        )
    }

    /// May this author, from this address, make another AI post, given those made in the
    /// last minute on every instance? Until the first of them is a minute old, if not.
    pub fn admit_recent(&self, recent: &Recent) -> Result<(), Refusal> {
        let per_minute = self.config.ai_posts_per_minute.max(1);
        let wait = |first: Option<i64>| {
            let ms = first.map_or(0, |t| t + RATE_WINDOW_MS - recent.now).max(1);
            Duration::from_millis(u64::try_from(ms).unwrap_or(1))
        };
        if recent.author >= per_minute {
            return Err(Refusal::TooFast {
                per_minute,
                retry_after: wait(recent.author_first),
            });
        }
        let per_address = per_address(per_minute);
        if recent.address >= per_address {
            return Err(Refusal::AddressTooFast {
                per_minute: per_address,
                retry_after: wait(recent.address_first),
            });
        }
        Ok(())
    }

    /// May this author, from this address, write another text post now?
    pub fn admit_text_post(&self, author_id: &str, address: ClientKey) -> Result<(), Refusal> {
        self.text_posts.check(
            author_id,
            address,
            |per_minute, retry_after| Refusal::TextTooFast {
                per_minute,
                retry_after,
            },
            |per_minute, retry_after| Refusal::AddressTextTooFast {
                per_minute,
                retry_after,
            },
        )
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

/// How many AI posts are queued or running: the author's, and their address's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Waiting {
    pub author: u32,
    pub address: u32,
}

/// The window the AI posts per minute are counted in across instances (on PostgreSQL).
pub const RATE_WINDOW_MS: i64 = 60_000;

/// The AI posts made in the last [`RATE_WINDOW_MS`] by the author and from their address,
/// counted in the database over every instance, with when the first of each was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recent {
    pub author: u32,
    pub address: u32,
    pub author_first: Option<i64>,
    pub address_first: Option<i64>,
    /// When they were counted (Unix ms).
    pub now: i64,
}

/// A rate per author, and three times it per address (several people may share one), so that
/// a client that drops its cookie to become a new author each time is still bounded.
struct Rate {
    per_minute: u32,
    per_author: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<ClientKey>,
}

impl Rate {
    fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            per_author: RateLimiter::keyed(quota(per_minute)),
            per_address: RateLimiter::keyed(quota(per_address(per_minute))),
        }
    }

    /// One more from this author at this address, or the refusal of the rate it is past, made
    /// by `author_refusal` or `address_refusal` from that rate and when to come back. The
    /// author's rate is checked first, so that the refusal names their own limit when both are
    /// reached.
    fn check(
        &self,
        author_id: &str,
        address: ClientKey,
        author_refusal: fn(u32, Duration) -> Refusal,
        address_refusal: fn(u32, Duration) -> Refusal,
    ) -> Result<(), Refusal> {
        if self.per_author.len() > MAX_KEYS || self.per_address.len() > MAX_KEYS {
            self.per_author.retain_recent();
            self.per_address.retain_recent();
        }
        let now = DefaultClock::default().now();
        self.per_author
            .check_key(&author_id.to_owned())
            .map_err(|not_until| author_refusal(self.per_minute, not_until.wait_time_from(now)))?;
        self.per_address.check_key(&address).map_err(|not_until| {
            address_refusal(per_address(self.per_minute), not_until.wait_time_from(now))
        })
    }
}

/// A quota of `n` per minute (at least 1): a burst of `n`, then one every 60/`n` s.
fn quota(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

/// The per-address count that goes with a per-author one.
fn per_address(per_author: u32) -> u32 {
    per_author.max(1).saturating_mul(ADDRESS_FACTOR)
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
            assert!(l
                .admit_ai_post(&format!("author {i}"), ip(7), Waiting::default(), 0)
                .is_ok());
        }
        let refused = l
            .admit_ai_post("author 99", ip(7), Waiting::default(), 0)
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("Your address can create 6 AI posts per minute, whoever writes them."),
            "the limit actually hit: {refused}"
        );
        assert!(matches!(
            refused,
            Refusal::AddressTooFast { per_minute: 6, .. }
        ));
        assert!(l
            .admit_ai_post("author 99", ip(8), Waiting::default(), 0)
            .is_ok());
    }

    /// `n` of the author's own waiting, and so of their address's.
    fn mine(n: u32) -> Waiting {
        Waiting {
            author: n,
            address: n,
        }
    }

    fn limits() -> Limits {
        Limits::new(LimitsConfig {
            ai_posts_per_minute: 2,
            text_posts_per_minute: 4,
            queued_per_author: 3,
            queued_per_address: 5,
            queue_max: 10,
            sse_per_client: 2,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn a_burst_of_ai_posts_then_429_with_retry_after() {
        let l = limits();
        assert!(l.admit_ai_post("a", ip(1), Waiting::default(), 0).is_ok());
        assert!(l.admit_ai_post("a", ip(1), Waiting::default(), 0).is_ok());
        let e = l
            .admit_ai_post("a", ip(1), Waiting::default(), 0)
            .unwrap_err();
        assert!(
            (1..=30).contains(&whole_seconds(e.retry_after())),
            "{:?}",
            e.retry_after()
        );
        assert!(e.to_string().contains("2 AI posts per minute"), "{e}");
        assert!(
            l.admit_ai_post("b", ip(1), Waiting::default(), 0).is_ok(),
            "another author is not affected"
        );
    }

    #[test]
    fn queue_limits_per_author_and_in_all() {
        let l = limits();
        assert_eq!(
            l.admit_ai_post("a", ip(1), mine(3), 0).unwrap_err(),
            Refusal::AuthorQueueFull {
                waiting: 3,
                limit: 3
            }
        );
        assert!(l
            .admit_ai_post("a", ip(1), mine(3), 0)
            .unwrap_err()
            .to_string()
            .contains("limit is 3"));
        assert_eq!(
            l.admit_ai_post("a", ip(1), Waiting::default(), 10)
                .unwrap_err(),
            Refusal::QueueFull { backlog: 10 }
        );
    }

    #[test]
    fn ai_posts_counted_over_every_instance_refuse_until_the_first_is_a_minute_old() {
        let l = limits();
        let recent = |author, address| Recent {
            author,
            address,
            author_first: Some(10_000),
            address_first: Some(5_000),
            now: 40_000,
        };
        assert!(l.admit_recent(&recent(1, 1)).is_ok());
        assert_eq!(
            l.admit_recent(&recent(2, 2)),
            Err(Refusal::TooFast {
                per_minute: 2,
                retry_after: Duration::from_secs(30)
            })
        );
        assert_eq!(
            l.admit_recent(&recent(0, 6)),
            Err(Refusal::AddressTooFast {
                per_minute: 6,
                retry_after: Duration::from_secs(25)
            })
        );
    }

    #[test]
    fn new_authors_from_one_address_fill_only_the_address_queue() {
        let l = limits();
        let cookieless = Waiting {
            author: 0,
            address: 5,
        };
        let refusal = l.admit_ai_post("fresh", ip(1), cookieless, 0).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::AddressQueueFull {
                waiting: 5,
                limit: 5
            }
        );
        assert!(
            refusal
                .to_string()
                .starts_with("Your address already has 5"),
            "{refusal}"
        );
        assert!(l
            .admit_ai_post("fresh", ip(2), Waiting::default(), 0)
            .is_ok());
    }

    #[test]
    fn text_posts_are_limited_per_author_then_per_address() {
        let l = limits(); // 4 per minute per author, so 12 per address
        for _ in 0..4 {
            assert!(l.admit_text_post("a", ip(1)).is_ok());
        }
        let refusal = l.admit_text_post("a", ip(1)).unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::TextTooFast { per_minute: 4, .. }
        ));
        assert!(
            refusal.to_string().contains("4 posts per minute"),
            "{refusal}"
        );
        assert!((1..=15).contains(&whole_seconds(refusal.retry_after())));
        // A new author on every request (no cookie) meets the address's limit.
        for i in 0..8 {
            assert!(l.admit_text_post(&format!("new {i}"), ip(1)).is_ok(), "{i}");
        }
        let refusal = l.admit_text_post("new 99", ip(1)).unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::AddressTextTooFast { per_minute: 12, .. }
        ));
        assert!(
            refusal.to_string().contains("Your address can send 12"),
            "{refusal}"
        );
        assert!(l.admit_text_post("b", ip(2)).is_ok(), "another address");
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
