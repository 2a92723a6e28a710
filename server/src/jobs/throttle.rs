//! A throttle that sends at most once per interval and delays nothing longer than it must.
//!
//! A change goes out at once when the interval has passed since the last send. Otherwise it is
//! held, and goes out the moment the interval since the last send has passed
//! ([`Throttle::due_at`]), or with a change arriving then. Sending on an arrival rather than on a
//! fixed clock tick keeps a token's wait below the interval, and usually far below it (a token
//! arriving 15 ms after a send, with 16 ms, waits 1 ms), while sends stay at least an interval
//! apart.
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    /// A change is waiting for the interval to pass.
    held: bool,
}

impl Throttle {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            held: false,
        }
    }

    /// Something changed at `now`: true if it may go out now, false if it is held back.
    pub fn offer(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_none_or(|last| now.duration_since(last) >= self.interval)
        {
            self.mark_sent(now);
            true
        } else {
            self.held = true;
            false
        }
    }

    /// When held-back changes must go out even if nothing else arrives, if any are held: one
    /// interval after the last send.
    pub fn due_at(&self) -> Option<Instant> {
        // Only a change within an interval of a send is held: there is a last send.
        self.last
            .filter(|_| self.held)
            .map(|last| last + self.interval)
    }

    /// Records a send that happened anyway (a flush, or a status change that always goes out).
    pub fn mark_sent(&mut self, now: Instant) {
        self.last = Some(now);
        self.held = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn passes_the_first_and_holds_the_rest_for_at_most_an_interval() {
        let t0 = Instant::now();
        let mut t = Throttle::new(MS(500));
        assert!(t.offer(t0));
        assert!(t.due_at().is_none());
        assert!(!t.offer(t0 + MS(100)));
        assert!(!t.offer(t0 + MS(400)));
        assert_eq!(
            t.due_at(),
            Some(t0 + MS(500)),
            "one interval after the last send"
        );
        assert!(
            t.offer(t0 + MS(520)),
            "a change after the interval goes out, with what was held"
        );
        assert!(t.due_at().is_none());
    }

    #[test]
    fn at_most_one_send_per_interval_whatever_the_rate() {
        let t0 = Instant::now();
        let mut t = Throttle::new(MS(500));
        let mut sends = Vec::new();
        for i in 0..1000u64 {
            let now = t0 + MS(i * 2); // 500 changes per second for 2 s
            if t.due_at().is_some_and(|due| now >= due) {
                t.mark_sent(now);
                sends.push(now);
            }
            if t.offer(now) {
                sends.push(now);
            }
        }
        assert!((4..=5).contains(&sends.len()), "{}", sends.len());
        assert!(sends.windows(2).all(|w| w[1] - w[0] >= MS(500)));
    }

    #[test]
    fn no_token_waits_longer_than_an_interval_whatever_the_rate() {
        for every in [7, 20, 33] {
            let t0 = Instant::now();
            let mut t = Throttle::new(MS(50));
            let mut held: Vec<Instant> = Vec::new();
            let mut worst = Duration::ZERO;
            for i in 0..500u64 {
                let now = t0 + MS(i * every);
                if let Some(due) = t.due_at().filter(|due| *due <= now) {
                    t.mark_sent(due);
                    worst = worst.max(held.drain(..).map(|h| due - h).max().unwrap_or_default());
                }
                held.push(now);
                if t.offer(now) {
                    worst = worst.max(held.drain(..).map(|h| now - h).max().unwrap_or_default());
                }
            }
            assert!(worst <= MS(50), "a token every {every} ms: {worst:?}");
        }
    }
}
