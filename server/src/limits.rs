//! Limits against abuse that need state: AI posts per author per minute (a keyed GCRA rate
//! limiter from `governor`), AI posts waiting per author and in all, and open live streams
//! per client address. Each refusal says what the limit is and when to come back.
use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
};

use governor::{
    clock::{Clock, DefaultClock},
    DefaultKeyedRateLimiter, Quota, RateLimiter,
};

use crate::{config::LimitsConfig, error::HttpError};

pub struct Limits {
    config: LimitsConfig,
    ai_posts: DefaultKeyedRateLimiter<String>,
    streams: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Self {
        let per_minute =
            NonZeroU32::new(config.ai_posts_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            ai_posts: RateLimiter::keyed(Quota::per_minute(per_minute)),
            streams: Arc::default(),
            config,
        }
    }

    /// May this author create another AI post now? `waiting` is how many of theirs are queued
    /// or running, `queued_total` how many are in all.
    pub fn admit_ai_post(
        &self,
        author_id: &str,
        waiting: u32,
        queued_total: usize,
    ) -> Result<(), HttpError> {
        let c = &self.config;
        if queued_total >= c.queue_max as usize {
            return Err(HttpError::rate_limited(
                30,
                format!("The AI is busy: {queued_total} posts are waiting or being written, the most we take. Try again in a minute."),
            ));
        }
        if waiting >= c.queued_per_author {
            return Err(HttpError::rate_limited(
                15,
                format!("You already have {waiting} AI posts waiting or being written (the limit is {}). Wait for one to finish.", c.queued_per_author),
            ));
        }
        if let Err(not_until) = self.ai_posts.check_key(&author_id.to_owned()) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(HttpError::rate_limited(
                wait.as_secs_f64().ceil() as u64,
                format!(
                    "You can create {} AI posts per minute. Try again in {} s.",
                    c.ai_posts_per_minute,
                    wait.as_secs_f64().ceil().max(1.0)
                ),
            ));
        }
        Ok(())
    }

    /// A place for one more live stream from `ip`, held until the returned slot is dropped.
    pub fn open_stream(&self, ip: IpAddr) -> Result<StreamSlot, HttpError> {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let open = streams.entry(ip).or_default();
        if *open >= self.config.sse_per_client {
            return Err(HttpError::rate_limited(
                5,
                format!("Too many live connections from your address ({} open, the limit is {}). Close some tabs.", open, self.config.sse_per_client),
            ));
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
    ip: IpAddr,
    streams: Arc<Mutex<HashMap<IpAddr, u32>>>,
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
        assert!(l.admit_ai_post("a", 0, 0).is_ok());
        assert!(l.admit_ai_post("a", 0, 0).is_ok());
        let e = l.admit_ai_post("a", 0, 0).unwrap_err();
        assert_eq!(e.status, 429);
        assert!(
            (1..=30).contains(&e.retry_after.unwrap()),
            "{:?}",
            e.retry_after
        );
        assert!(e.error.message.contains("2 AI posts per minute"));
        assert!(
            l.admit_ai_post("b", 0, 0).is_ok(),
            "another author is not affected"
        );
    }

    #[test]
    fn queue_limits_per_author_and_in_all() {
        let l = limits();
        assert!(l
            .admit_ai_post("a", 3, 0)
            .unwrap_err()
            .error
            .message
            .contains("limit is 3"));
        assert!(l
            .admit_ai_post("a", 0, 10)
            .unwrap_err()
            .error
            .message
            .contains("busy"));
    }

    #[test]
    fn stream_slots_are_counted_per_address_and_freed_on_drop() {
        let l = limits();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = l.open_stream(ip).unwrap();
        let _b = l.open_stream(ip).unwrap();
        assert!(l.open_stream(ip).is_err());
        assert!(l.open_stream("10.0.0.2".parse().unwrap()).is_ok());
        drop(a);
        assert!(l.open_stream(ip).is_ok());
    }
}
