//! A realistic mix of answer lengths: log-normal (most answers short, a few long), drawn from a
//! seeded generator so that a run can be replayed exactly. `--length-mix MEDIAN:SIGMA:SEED`.
use std::{fmt, str::FromStr};

use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde::{Deserialize, Serialize};

/// Log-normal answer lengths: `ln(length)` is normal with mean `ln(median)` and deviation
/// `sigma`; each drawn length is rounded, and at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LengthMix {
    pub median: f64,
    pub sigma: f64,
    pub seed: u64,
}

impl LengthMix {
    /// The lengths, in the order the fake's requests get them.
    pub fn lengths(self) -> Lengths {
        Lengths {
            rng: StdRng::seed_from_u64(self.seed),
            // Valid by construction: `FromStr` and callers give a positive median and sigma.
            dist: LogNormal::new(self.median.ln(), self.sigma)
                .unwrap_or_else(|_| LogNormal::new(0.0, 1.0).expect("a valid log-normal")),
        }
    }
}

/// The endless, seeded sequence of a [`LengthMix`]'s lengths.
#[derive(Debug)]
pub struct Lengths {
    rng: StdRng,
    dist: LogNormal<f64>,
}

impl Iterator for Lengths {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let drawn = self.dist.sample(&mut self.rng).round();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        // Clamped into u32's range first.
        Some(drawn.clamp(1.0, f64::from(u32::MAX)) as u32)
    }
}

impl fmt::Display for LengthMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.median, self.sigma, self.seed)
    }
}

impl FromStr for LengthMix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || format!("{s:?}: expected MEDIAN:SIGMA:SEED, e.g. 150:0.8:7");
        let mut parts = s.split(':');
        let (Some(median), Some(sigma), Some(seed), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(usage());
        };
        let median: f64 = median.parse().map_err(|_| usage())?;
        let sigma: f64 = sigma.parse().map_err(|_| usage())?;
        let seed: u64 = seed.parse().map_err(|_| usage())?;
        if !(median >= 1.0 && median.is_finite() && sigma > 0.0 && sigma.is_finite()) {
            return Err(format!(
                "{s:?}: the median must be at least 1 and sigma positive"
            ));
        }
        Ok(Self {
            median,
            sigma,
            seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_its_lengths_and_their_median_is_the_median() {
        let mix: LengthMix = "150:0.8:7".parse().unwrap();
        let first: Vec<u32> = mix.lengths().take(2001).collect();
        assert_eq!(first, mix.lengths().take(2001).collect::<Vec<_>>());
        let mut sorted = first.clone();
        sorted.sort_unstable();
        let median = f64::from(sorted[1000]);
        assert!((135.0..165.0).contains(&median), "{median}");
        assert!(sorted[0] >= 1);
        assert!("150:0:7".parse::<LengthMix>().is_err());
        assert!("150:0.8".parse::<LengthMix>().is_err());
    }
}
