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

/// "Nov 26, 14:05 UTC": the same text on the server and in the browser (no time zone guess).
pub fn timestamp(unix_ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = unix_ms.div_euclid(1000);
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let month = usize::try_from(month - 1)
        .ok()
        .and_then(|m| MONTHS.get(m))
        .copied()
        .unwrap_or("");
    format!(
        "{} {}, {:02}:{:02} UTC",
        month,
        day,
        day_secs / 3600,
        day_secs % 3600 / 60
    )
}

#[cfg(test)]
mod timestamp_tests {
    #[test]
    fn formats_a_known_instant() {
        // 2026-11-26T14:05:09Z
        assert_eq!(super::timestamp(1_795_701_909_000), "Nov 26, 14:05 UTC");
        assert_eq!(super::timestamp(0), "Jan 1, 00:00 UTC");
    }
}
