//! A leading-edge throttle: the first event passes at once, later ones at most once per
//! interval; the caller flushes what was held back when [`Throttle::due_at`] comes.
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    pending: bool,
}

impl Throttle {
    pub fn new(interval: Duration) -> Self {
        Self { interval, last: None, pending: false }
    }

    /// Something changed at `now`: true if it may go out now, false if it is held back.
    pub fn offer(&mut self, now: Instant) -> bool {
        if self.last.is_none_or(|last| now.duration_since(last) >= self.interval) {
            self.mark_sent(now);
            true
        } else {
            self.pending = true;
            false
        }
    }

    /// When held-back changes should be flushed, if any are.
    pub fn due_at(&self) -> Option<Instant> {
        match (self.pending, self.last) {
            (true, Some(last)) => Some(last + self.interval),
            _ => None,
        }
    }

    /// Records a send that happened anyway (a flush, or a status change that always goes out).
    pub fn mark_sent(&mut self, now: Instant) {
        self.last = Some(now);
        self.pending = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_first_and_holds_the_rest_until_the_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t = Throttle::new(ms(500));
        assert!(t.offer(t0));
        assert!(t.due_at().is_none());
        assert!(!t.offer(t0 + ms(100)));
        assert!(!t.offer(t0 + ms(400)));
        assert_eq!(t.due_at(), Some(t0 + ms(500)));
        t.mark_sent(t0 + ms(500));
        assert!(t.due_at().is_none());
        assert!(t.offer(t0 + ms(1000)));
    }

    #[test]
    fn at_most_one_send_per_interval_whatever_the_rate() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_millis(500));
        let mut sent = 0;
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(i * 2); // 500 events per second for 2 s
            if let Some(due) = t.due_at() {
                if now >= due {
                    t.mark_sent(now);
                    sent += 1;
                }
            }
            if t.offer(now) {
                sent += 1;
            }
        }
        assert!((4..=5).contains(&sent), "{sent}");
    }
}
