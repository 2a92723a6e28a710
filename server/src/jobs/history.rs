//! What a model has done lately, and what it predicts of the next job: its answer lengths, its
//! writing speed per model server, and the time to its first token, split into loading the
//! model (cold: it was not in memory; warm: it was) and reading the prompt. Learned from the
//! model's last [`HISTORY_RUNS`] completed jobs in the database: a bounded window that forgets old
//! behaviour, survives restarts and is the same on every instance.
use crate::db::PastRun;

use super::estimate::Lengths;

/// The completed jobs of a model the history looks back on.
pub const HISTORY_RUNS: u32 = 200;
/// Runs needed before a median says anything.
const MIN_RUNS: usize = 3;
/// A load longer than this was a cold one: the model had to be read into memory.
const COLD_LOAD_NS: u64 = 1_000_000_000;
/// What a token of prompt is, in characters, before the model server has counted them.
const CHARS_PER_TOKEN: f64 = 4.0;

/// A model's recent completed jobs, newest first.
#[derive(Clone, Debug, Default)]
pub struct ModelHistory {
    runs: Vec<PastRun>,
}

impl ModelHistory {
    pub fn new(runs: Vec<PastRun>) -> Self {
        Self { runs }
    }

    /// The lengths written (reasoning and answer), newest first.
    pub fn lengths(&self) -> Vec<u32> {
        self.runs.iter().map(|r| r.written).collect()
    }

    /// Tokens written per second, on `backend` when it has runs enough of its own (servers
    /// differ), else on any.
    pub fn decode_rate(&self, backend: Option<&str>) -> Option<f64> {
        let rate = |r: &PastRun| {
            let ns = r.eval_ns.filter(|&ns| ns > 0)?;
            Some(f64::from(r.written) / seconds(ns)).filter(|r| *r > 0.0)
        };
        let own: Vec<f64> = self
            .runs
            .iter()
            .filter(|r| backend.is_some() && r.backend.as_deref() == backend)
            .filter_map(rate)
            .collect();
        if own.len() >= MIN_RUNS {
            return median(own);
        }
        median(self.runs.iter().filter_map(rate).collect())
    }

    /// Milliseconds to load the model: when it was in memory (`cold` false) or not.
    pub fn load_ms(&self, cold: bool) -> Option<f64> {
        median(
            self.runs
                .iter()
                .filter_map(|r| r.load_ns)
                .filter(|&ns| (ns > COLD_LOAD_NS) == cold)
                .map(|ns| seconds(ns) * 1000.0)
                .collect(),
        )
    }

    /// Prompt tokens read per second.
    pub fn prompt_rate(&self) -> Option<f64> {
        median(
            self.runs
                .iter()
                .filter_map(|r| {
                    let ns = r.prompt_ns.filter(|&ns| ns > 0)?;
                    Some(f64::from(r.input_tokens?) / seconds(ns)).filter(|r| *r > 0.0)
                })
                .collect(),
        )
    }

    /// Milliseconds from the request to the first token of a job with a prompt of
    /// `prompt_chars` characters: loading the model (warm, or cold when it is known not to be
    /// in memory; the usual mix when nobody knows), then reading the prompt. From the measured
    /// time to first token when the model server reports neither.
    pub fn first_token_ms(&self, prompt_chars: usize, loaded: Option<bool>) -> Option<f64> {
        let load = match loaded {
            Some(loaded) => self.load_ms(!loaded).or_else(|| self.load_ms(loaded)),
            None => median(
                self.runs
                    .iter()
                    .filter_map(|r| r.load_ns)
                    .map(|ns| seconds(ns) * 1000.0)
                    .collect(),
            ),
        };
        let prompt_tokens =
            f64::from(u32::try_from(prompt_chars).unwrap_or(u32::MAX)) / CHARS_PER_TOKEN;
        match (load, self.prompt_rate()) {
            (Some(load), Some(rate)) => Some(load + prompt_tokens / rate * 1000.0),
            _ => median(
                self.runs
                    .iter()
                    .filter_map(|r| r.first_token_ms)
                    .map(|ms| seconds(ms.saturating_mul(1_000_000)) * 1000.0)
                    .collect(),
            ),
        }
    }

    /// Milliseconds a job not yet started is expected to take, start to end: its first token,
    /// then the model's mean length (cut at `max_tokens`: a queue's wait is a sum, and the mean
    /// is what sums add up to) at its writing speed. `None` before enough history.
    pub fn expected_ms(&self, max_tokens: Option<u32>, prompt_chars: usize) -> Option<f64> {
        let lengths = Lengths::new(&self.lengths(), max_tokens);
        let mean = lengths.mean()?;
        let rate = self.decode_rate(None).filter(|r| *r > 0.0)?;
        let first = self.first_token_ms(prompt_chars, None).unwrap_or(0.0);
        Some(first + mean / rate * 1000.0)
    }
}

fn seconds(ns: u64) -> f64 {
    // Durations far below 2^53 ns (104 days): exact enough.
    #[allow(clippy::cast_precision_loss)]
    let ns = ns as f64;
    ns / 1e9
}

/// The median of `values`, with [`MIN_RUNS`] of them at least.
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.len() < MIN_RUNS {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(backend: &str, written: u32, eval_s: u64, load_ms: u64) -> PastRun {
        PastRun {
            backend: Some(backend.into()),
            written,
            eval_ns: Some(eval_s * 1_000_000_000),
            load_ns: Some(load_ms * 1_000_000),
            input_tokens: Some(100),
            prompt_ns: Some(500_000_000),
            first_token_ms: Some(700),
        }
    }

    #[test]
    fn speeds_are_per_server_when_it_has_runs_enough_and_loads_split_cold_from_warm() {
        let history = ModelHistory::new(vec![
            run("fast", 100, 1, 5),
            run("fast", 200, 2, 6),
            run("fast", 300, 3, 4_000),
            run("slow", 100, 10, 5),
            run("slow", 100, 10, 3_000),
        ]);
        assert_eq!(history.decode_rate(Some("fast")), Some(100.0));
        assert_eq!(
            history.decode_rate(Some("slow")),
            Some(100.0),
            "two runs are not enough: all five"
        );
        assert_eq!(history.load_ms(false), Some(5.0));
        assert_eq!(history.load_ms(true), None, "two cold loads only");
        assert_eq!(history.prompt_rate(), Some(200.0));
        // A 400-character prompt is about 100 tokens: half a second after a warm load.
        let first = history.first_token_ms(400, Some(true)).unwrap();
        assert!((first - 505.0).abs() < 1e-9, "{first}");
    }

    #[test]
    fn a_job_not_started_takes_its_first_token_and_the_mean_length_at_the_speed() {
        let history = ModelHistory::new((1..=10).map(|i| run("a", i * 20, 1, 10)).collect());
        // Mean 110 tokens (cut at 100: 82) at the median 120 tok/s.
        let whole = history.expected_ms(None, 0).unwrap();
        let capped = history.expected_ms(Some(100), 0).unwrap();
        assert!(capped < whole, "{capped} < {whole}");
        assert_eq!(ModelHistory::default().expected_ms(None, 0), None);
    }
}
