//! Live progress arithmetic for one running job: tokens per second over a sliding window,
//! and an honest percent and time remaining. Pure: every method takes the time as an argument.
//!
//! The formula. Let `n` be the tokens so far and `E` the expected final length:
//! * `E` is the post's max length when it has one (Ollama stops there at the latest);
//!   otherwise the mean output length of the model's recent completed jobs; otherwise unknown.
//! * While `n < E`: `percent = 95 * n / E`. Past `E` the model is writing more than usual and
//!   we do not know how much more: `percent = 95 + 4 * (1 - E / n)`, creeping towards 99
//!   without ever claiming to be nearly done. With `E` unknown: `99 * n / (n + 200)`.
//! * The percent never goes backwards within one attempt, and only completion sets 100. A retry
//!   starts the text over, and the bar with it (the card says "Started again").
//! * The card draws a determinate bar only when there is an honest basis for it (a max length,
//!   or a time remaining from history); otherwise it shows an indeterminate bar and the count.
//!   The percent is still computed, for the API.
//! * `remaining = (E - n) / rate` while `n < E`, where `rate` is the tokens per second
//!   measured over the last [`WINDOW`]; no estimate before two tokens, nor past `E`.
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// How far back the tokens-per-second measurement looks.
pub const WINDOW: Duration = Duration::from_secs(3);

/// Mean of the recent output lengths; `None` without history.
pub fn expected_length(max_tokens: Option<u32>, recent: &[u32]) -> Option<f64> {
    if let Some(max) = max_tokens {
        return Some(f64::from(max));
    }
    (!recent.is_empty())
        .then(|| recent.iter().map(|&n| f64::from(n)).sum::<f64>() / count(recent.len()))
}

#[derive(Debug)]
pub struct Estimator {
    started: Instant,
    expected: Option<f64>,
    tokens: u32,
    recent: VecDeque<Instant>,
    first_token: Option<Instant>,
    percent: f64,
}

impl Estimator {
    pub fn new(started: Instant, expected: Option<f64>) -> Self {
        Self {
            started,
            expected: expected.filter(|e| *e > 0.0),
            tokens: 0,
            recent: VecDeque::new(),
            first_token: None,
            percent: 0.0,
        }
    }

    /// Counts one streamed chunk (Ollama's live unit; the exact token count comes at the end).
    pub fn on_token(&mut self, now: Instant) {
        // Saturating: a runaway stream must not wrap the count (nor panic a debug build).
        self.tokens = self.tokens.saturating_add(1);
        self.first_token.get_or_insert(now);
        self.recent.push_back(now);
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            self.recent.pop_front();
        }
    }

    /// Starts counting again for a new request: the elapsed time keeps running, the bar
    /// starts over with the text.
    pub fn restart(&mut self) {
        self.tokens = 0;
        self.recent.clear();
        self.first_token = None;
        self.percent = 0.0;
    }

    pub fn tokens(&self) -> u32 {
        self.tokens
    }

    pub fn first_token_at(&self) -> Option<Instant> {
        self.first_token
    }

    pub fn elapsed_ms(&self, now: Instant) -> u64 {
        u64::try_from(now.duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    /// Tokens per second over the last [`WINDOW`] (or since the first token, if sooner), so a
    /// stall shows as a falling rate rather than a frozen one.
    pub fn rate(&mut self, now: Instant) -> f64 {
        self.trim(now);
        let Some(first) = self.first_token else {
            return 0.0;
        };
        let since_first = now.duration_since(first);
        if self.tokens < 2 || since_first.is_zero() {
            return 0.0;
        }
        if since_first < WINDOW {
            // n tokens since the first one span n - 1 intervals.
            (count(self.recent.len()) - 1.0) / since_first.as_secs_f64()
        } else {
            count(self.recent.len()) / WINDOW.as_secs_f64()
        }
    }

    /// Percent done, 0 to 99 while running; never lower than last time.
    pub fn percent(&mut self) -> f64 {
        let n = f64::from(self.tokens);
        let raw = match self.expected {
            Some(e) if n < e => 95.0 * n / e,
            Some(e) => 95.0 + 4.0 * (1.0 - e / n),
            None => 99.0 * n / (n + 200.0),
        };
        self.percent = self.percent.max(raw.min(99.0));
        self.percent
    }

    /// Milliseconds still expected, when there is an honest basis for it.
    pub fn remaining_ms(&mut self, now: Instant) -> Option<u64> {
        let left = self.expected? - f64::from(self.tokens);
        let rate = self.rate(now);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        // Positive and finite by the check; whole milliseconds are what the card shows.
        (rate > 0.0 && left > 0.0).then(|| (left / rate * 1000.0) as u64)
    }
}

/// A number of tokens as a float, exactly (counts stay far below 2^32).
fn count(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(est: &mut Estimator, start: Instant, tokens: u32, every_ms: u64) -> Instant {
        let mut now = start;
        for _ in 0..tokens {
            now += Duration::from_millis(every_ms);
            est.on_token(now);
        }
        now
    }

    #[test]
    fn rate_is_measured_over_the_window_and_reacts_to_a_slowdown() {
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, Some(1000.0));
        let now = run(&mut est, t0, 100, 20); // 50 tok/s
        assert!((est.rate(now) - 50.0).abs() < 2.0, "{}", est.rate(now));
        let now = run(&mut est, now, 10, 200); // 5 tok/s for 2 s
        assert!(est.rate(now) < 25.0, "{}", est.rate(now));
        assert!(
            est.rate(now + Duration::from_secs(5)) == 0.0,
            "a stall shows as zero"
        );
    }

    #[test]
    fn percent_and_remaining_follow_the_max_length() {
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, expected_length(Some(200), &[]));
        let now = run(&mut est, t0, 50, 100); // 10 tok/s
        assert!((est.percent() - 23.75).abs() < 1e-9);
        let remaining = est.remaining_ms(now).unwrap();
        assert!((14_000..=16_000).contains(&remaining), "{remaining}");
    }

    #[test]
    fn percent_never_reaches_100_nor_goes_back_when_the_guess_was_short() {
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, expected_length(None, &[10, 30]));
        let mut last = 0.0;
        let mut now = t0;
        for _ in 0..100 {
            now = run(&mut est, now, 1, 10);
            let p = est.percent();
            assert!(p >= last && p <= 99.0, "{p} after {last}");
            last = p;
        }
    }

    #[test]
    fn past_the_expected_length_the_bar_creeps_instead_of_sitting_at_99() {
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, Some(100.0));
        let now = run(&mut est, t0, 100, 10);
        assert!((est.percent() - 95.0).abs() < 1e-9);
        assert_eq!(
            est.remaining_ms(now),
            None,
            "no time remaining once past the guess"
        );
        run(&mut est, now, 100, 10);
        assert!((est.percent() - 97.0).abs() < 1e-9);
    }

    #[test]
    fn the_first_tokens_do_not_overstate_the_rate() {
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, None);
        est.on_token(t0);
        est.on_token(t0 + Duration::from_millis(20));
        assert!((est.rate(t0 + Duration::from_millis(20)) - 50.0).abs() < 1e-6);
    }

    #[test]
    fn a_restart_starts_a_fresh_bar_that_again_never_goes_back() {
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, Some(100.0));
        let now = run(&mut est, t0, 60, 10);
        assert!((est.percent() - 57.0).abs() < 1e-9);
        est.restart();
        assert_eq!(
            est.percent(),
            0.0,
            "the text starts over, and the bar with it"
        );
        run(&mut est, now, 25, 10);
        assert!((est.percent() - 23.75).abs() < 1e-9, "{}", est.percent());
    }

    #[test]
    fn without_history_there_is_a_curve_but_no_time_remaining() {
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, expected_length(None, &[]));
        let now = run(&mut est, t0, 200, 10);
        assert!((est.percent() - 49.5).abs() < 1e-9);
        assert_eq!(est.remaining_ms(now), None);
    }
}
