//! Live progress arithmetic for one running job: tokens per second over a sliding window,
//! and an honest percent and time remaining, with a range. Pure: every method takes the time
//! as an argument.
//!
//! The model. Nothing in a stream tells how long it will be; the model's recent answers
//! ([`Lengths`]: the lengths of its last completed jobs, each cut at this post's max length,
//! which bounds the answer) are the evidence. Given `n` tokens written:
//! * the remaining length is drawn from the past lengths greater than `n`, less `n`: its median
//!   is the point estimate and its 10th to 90th percentiles the range (an 80 % range). A long
//!   answer so far is evidence of a long answer, which the mean of all lengths ignores;
//! * `remaining = length / rate`, where `rate` is the tokens per second measured over the last
//!   [`RATE_WINDOW`]; nothing before two tokens, before [`MIN_HISTORY`] past answers, nor once fewer
//!   than [`MIN_TAIL`] of them were longer than `n` (the answer is longer than the model's
//!   usual and nobody knows how much: the card says "estimating…");
//! * `percent = 99 * n / (n + median remaining)`; past the history it creeps from where it was
//!   towards 99, by the share of the answer written since, so it never stalls. Without history:
//!   `95 * n / max` with a max length, else `99 * n / (n + 200)`. It never goes backwards
//!   within one attempt, and only completion sets 100. A retry starts the text over, and the
//!   bar with it (the card says "Started again").
//! * The card draws a determinate bar only when there is an honest basis for it (a max length,
//!   or a time remaining); otherwise an indeterminate bar and the count.
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// How far back the tokens-per-second measurement looks.
pub const RATE_WINDOW: Duration = Duration::from_secs(3);
/// Past answers needed before the estimate says anything.
pub const MIN_HISTORY: usize = 10;
/// Past answers longer than the one being written needed for its remaining length.
pub const MIN_TAIL: usize = 5;

/// A model's recent answer lengths (reasoning included), sorted, each cut at the post's max
/// length: the distribution an answer's length is drawn from.
#[derive(Clone, Debug, Default)]
pub struct Lengths {
    sorted: Vec<u32>,
    max_tokens: Option<u32>,
}

/// The tokens still to come, given those written: median and 80 % range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Remaining {
    pub low: f64,
    pub median: f64,
    pub high: f64,
}

impl Lengths {
    pub fn new(recent: &[u32], max_tokens: Option<u32>) -> Self {
        let mut sorted: Vec<u32> = recent
            .iter()
            .map(|&n| max_tokens.map_or(n, |max| n.min(max)))
            .filter(|&n| n > 0)
            .collect();
        sorted.sort_unstable();
        Self { sorted, max_tokens }
    }

    /// How many past answers there are.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The mean length, once there is history enough.
    pub fn mean(&self) -> Option<f64> {
        (self.sorted.len() >= MIN_HISTORY).then(|| {
            self.sorted.iter().map(|&n| f64::from(n)).sum::<f64>() / count(self.sorted.len())
        })
    }

    /// The tokens still to come after `written`, from the past answers longer than that;
    /// `None` without enough of them.
    pub fn remaining(&self, written: u32) -> Option<Remaining> {
        if self.sorted.len() < MIN_HISTORY {
            return None;
        }
        let longer = &self.sorted[self.sorted.partition_point(|&n| n <= written)..];
        if longer.len() < MIN_TAIL {
            return None;
        }
        let left = |q: f64| quantile(longer, q) - f64::from(written);
        Some(Remaining {
            low: left(0.1),
            median: left(0.5),
            high: left(0.9),
        })
    }
}

/// The `q` quantile of `sorted` (not empty), interpolated between neighbours.
fn quantile(sorted: &[u32], q: f64) -> f64 {
    let at = q * (count(sorted.len()) - 1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    // Within 0..len by construction.
    let below = at.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let share = at - at.floor();
    f64::from(sorted[below]) * (1.0 - share) + f64::from(sorted[above]) * share
}

/// The time still expected, with its 80 % range, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eta {
    pub low_ms: u64,
    pub ms: u64,
    pub high_ms: u64,
}

#[derive(Debug)]
pub struct Estimator {
    started: Instant,
    lengths: Lengths,
    tokens: u32,
    recent: VecDeque<Instant>,
    first_token: Option<Instant>,
    percent: f64,
    /// Where the history ran out: the tokens and the percent then.
    beyond: Option<(u32, f64)>,
    /// Before the answer's speed can be measured: when the request left, the milliseconds to
    /// the first token and the tokens per second the model's history expects.
    setup: Option<(Instant, f64, f64)>,
}

impl Estimator {
    pub fn new(started: Instant, lengths: Lengths) -> Self {
        Self {
            started,
            lengths,
            tokens: 0,
            recent: VecDeque::new(),
            first_token: None,
            percent: 0.0,
            beyond: None,
            setup: None,
        }
    }

    /// A request left at `requested`: until the answer's own speed can be measured, the time
    /// left is the history's time to the first token and its writing speed (both needed).
    pub fn expect_first_token(
        &mut self,
        requested: Instant,
        first_token_ms: Option<f64>,
        rate: Option<f64>,
    ) {
        self.setup = first_token_ms
            .zip(rate.filter(|r| *r > 0.0))
            .map(|(first, rate)| (requested, first, rate));
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
            .is_some_and(|t| now.duration_since(*t) > RATE_WINDOW)
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
        self.beyond = None;
        self.setup = None;
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

    /// Tokens per second over the last [`RATE_WINDOW`] (or since the first token, if sooner), so a
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
        if since_first < RATE_WINDOW {
            // n tokens since the first one span n - 1 intervals.
            (count(self.recent.len()) - 1.0) / since_first.as_secs_f64()
        } else {
            count(self.recent.len()) / RATE_WINDOW.as_secs_f64()
        }
    }

    /// Percent done, 0 to 99 while running; never lower than last time.
    pub fn percent(&mut self) -> f64 {
        let n = f64::from(self.tokens);
        let raw = if self.lengths.len() < MIN_HISTORY {
            match self.lengths.max_tokens {
                Some(max) => 95.0 * n / f64::from(max.max(1)),
                None => 99.0 * n / (n + 200.0),
            }
        } else if let Some(left) = self.lengths.remaining(self.tokens) {
            99.0 * n / (n + left.median.max(0.0))
        } else {
            // Longer than the history knows: creep from where it was towards 99, by the
            // share of the answer written since.
            let (from_tokens, from) = *self.beyond.get_or_insert((self.tokens, self.percent));
            from + (99.0 - from) * (1.0 - f64::from(from_tokens.max(1)) / n.max(1.0))
        };
        self.percent = self.percent.max(raw.min(99.0));
        self.percent
    }

    /// The time still expected and its 80 % range, when there is an honest basis for it.
    pub fn eta(&mut self, now: Instant) -> Option<Eta> {
        let left = self.lengths.remaining(self.tokens)?;
        let measured = self.rate(now);
        // Before two tokens: the history's time to the first token and speed.
        let (first_left, rate) = if self.tokens >= 2 {
            (0.0, measured)
        } else {
            let (requested, first_ms, rate) = self.setup?;
            let waited = now.saturating_duration_since(requested).as_secs_f64() * 1000.0;
            let first_left = if self.first_token.is_some() {
                0.0
            } else {
                (first_ms - waited).max(0.0)
            };
            (first_left, rate)
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        // Positive and finite by the check; whole milliseconds are what the card shows.
        let ms = |tokens: f64| (first_left + tokens.max(0.0) / rate * 1000.0) as u64;
        (rate > 0.0).then(|| Eta {
            low_ms: ms(left.low),
            ms: ms(left.median),
            high_ms: ms(left.high),
        })
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

    /// 10, 20, ..., 200.
    fn twenty_answers() -> Vec<u32> {
        (1..=20).map(|i| i * 10).collect()
    }

    #[test]
    fn rate_is_measured_over_the_window_and_reacts_to_a_slowdown() {
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, Lengths::default());
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
    fn the_remaining_length_comes_from_the_answers_longer_than_what_is_written() {
        let lengths = Lengths::new(&twenty_answers(), None);
        let at_start = lengths.remaining(0).unwrap();
        assert!((at_start.median - 105.0).abs() < 1e-9, "{at_start:?}");
        // Past 100 only 110..=200 are left: a long answer so far is a long answer.
        let later = lengths.remaining(100).unwrap();
        assert!((later.median - 55.0).abs() < 1e-9, "{later:?}");
        assert!((later.low - 19.0).abs() < 1e-9 && (later.high - 91.0).abs() < 1e-9);
        assert_eq!(
            lengths.remaining(160),
            None,
            "only four answers were longer"
        );
        assert_eq!(
            Lengths::new(&[50; 9], None).remaining(0),
            None,
            "too little history"
        );
    }

    #[test]
    fn a_max_length_caps_the_history_and_is_not_taken_for_the_length() {
        let capped = Lengths::new(&twenty_answers(), Some(100));
        let left = capped.remaining(0).unwrap();
        assert!((left.median - 100.0).abs() < 1e-9, "{left:?}");
        assert!(
            (left.high - 100.0).abs() < 1e-9,
            "nothing runs past the max"
        );
        // No history: the max bounds the bar, but says nothing of the time.
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, Lengths::new(&[], Some(200)));
        let now = run(&mut est, t0, 50, 100);
        assert!((est.percent() - 23.75).abs() < 1e-9);
        assert_eq!(est.eta(now), None);
    }

    #[test]
    fn the_time_left_and_its_range_are_the_remaining_length_at_the_measured_rate() {
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, Lengths::new(&twenty_answers(), None));
        let now = run(&mut est, t0, 100, 100); // 10 tok/s
                                               // 55 (19 to 91) tokens at the 10.3 tok/s measured over the window.
        let eta = est.eta(now).unwrap();
        assert!((5_250..=5_400).contains(&eta.ms), "{eta:?}");
        assert!((1_800..=1_900).contains(&eta.low_ms), "{eta:?}");
        assert!((8_700..=8_900).contains(&eta.high_ms), "{eta:?}");
    }

    #[test]
    fn the_percent_never_goes_back_nor_reaches_100_nor_stalls_when_the_answer_runs_long() {
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, Lengths::new(&twenty_answers(), None));
        let mut last = 0.0;
        let mut now = t0;
        for n in 1..=1000 {
            now = run(&mut est, now, 1, 10);
            let p = est.percent();
            assert!(p >= last && p < 99.0, "{p} after {last} at {n}");
            if n > 160 {
                assert!(p > last, "still moving at {n} tokens: {p}");
                assert_eq!(est.eta(now), None, "longer than the history knows");
            }
            last = p;
        }
        assert!(last > 95.0, "{last}");
    }

    #[test]
    fn before_the_first_token_the_history_tells_the_whole_wait() {
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, Lengths::new(&twenty_answers(), None));
        assert_eq!(est.eta(t0), None, "nothing without the history's speed");
        // 1.5 s to the first token, then 105 tokens (the median) at 50 tok/s.
        est.expect_first_token(t0, Some(1_500.0), Some(50.0));
        let eta = est.eta(t0 + Duration::from_millis(500)).unwrap();
        assert_eq!(eta.ms, 1_000 + 2_100, "{eta:?}");
        assert!(eta.low_ms < eta.ms && eta.ms < eta.high_ms);
        let late = est.eta(t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(late.ms, 2_100, "a slow first token is not a negative wait");
        est.restart();
        assert_eq!(est.eta(t0), None, "a new attempt says again when it asks");
    }

    #[test]
    fn the_first_tokens_do_not_overstate_the_rate() {
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, Lengths::default());
        est.on_token(t0);
        est.on_token(t0 + Duration::from_millis(20));
        assert!((est.rate(t0 + Duration::from_millis(20)) - 50.0).abs() < 1e-6);
    }

    #[test]
    fn a_restart_starts_a_fresh_bar_that_again_never_goes_back() {
        let t0 = Instant::now();
        let mut est = Estimator::new(t0, Lengths::new(&[], Some(100)));
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
        let mut est = Estimator::new(t0, Lengths::default());
        let now = run(&mut est, t0, 200, 10);
        assert!((est.percent() - 49.5).abs() < 1e-9);
        assert_eq!(est.eta(now), None);
    }
}
