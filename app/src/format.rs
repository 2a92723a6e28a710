//! How numbers read on the card: "230 tokens", "14.2 tok/s", "15s", "~20s".

pub fn tokens(n: u32) -> String {
    if n == 1 {
        "1 token".into()
    } else {
        format!("{n} tokens")
    }
}

pub fn speed(tokens_per_second: f64) -> String {
    format!("{tokens_per_second:.1} tok/s")
}

/// Elapsed time: "0.4s" under ten seconds (so it visibly ticks), then "15s", then "2m 05s".
pub fn elapsed(ms: u64) -> String {
    match u32::try_from(ms) {
        Ok(short) if short < 10_000 => format!("{:.1}s", f64::from(short) / 1000.0),
        _ => duration(ms),
    }
}

pub fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m {:02}s", secs / 60, secs % 60)
    }
}

pub fn remaining(ms: Option<u64>) -> String {
    match ms {
        Some(ms) if ms < 1000 => "<1s".into(),
        Some(ms) => format!("~{}", duration(ms)),
        None => "estimating…".into(),
    }
}

pub fn nanos(ns: u64) -> String {
    // Shown to a tenth at most: an f64's 53 bits are plenty.
    #[allow(clippy::cast_precision_loss)]
    let ms = ns as f64 / 1e6;
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_the_design() {
        assert_eq!(tokens(230), "230 tokens");
        assert_eq!(speed(14.24), "14.2 tok/s");
        assert_eq!(elapsed(15_400), "15s");
        assert_eq!(elapsed(2_450), "2.5s");
        assert_eq!(remaining(Some(20_000)), "~20s");
        assert_eq!(duration(125_000), "2m 05s");
        assert_eq!(nanos(1_500_000_000), "1.5 s");
    }
}
