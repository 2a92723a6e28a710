//! How numbers read on the card, in one format everywhere: "80 tokens", "7.5 tok/s" and
//! "42 tok/s", "0.4 s", "11 s", "2 min 05 s", "about 7 s left", "3rd".

/// A statistic the model server may not have reported: "—" when it did not, never 0.
pub fn or_dash<T>(value: Option<T>, format: impl FnOnce(T) -> String) -> String {
    value.map_or_else(|| "—".to_string(), format)
}

/// "1 token", "80 tokens".
pub fn tokens(n: u32) -> String {
    if n == 1 {
        "1 token".into()
    } else {
        format!("{n} tokens")
    }
}

/// "7.5 tok/s" below ten, "42 tok/s" from ten on: a tenth of a token per second is noise there.
pub fn speed(tokens_per_second: f64) -> String {
    if tokens_per_second < 9.95 {
        format!("{tokens_per_second:.1} tok/s")
    } else {
        format!("{tokens_per_second:.0} tok/s")
    }
}

/// A measured duration: "0.4 s" and "9.5 s" below ten seconds, then "11 s", "2 min 05 s",
/// "1 h 02 min".
pub fn seconds(ms: u64) -> String {
    match u32::try_from(ms) {
        Ok(short) if short < 9_950 => format!("{:.1} s", f64::from(short) / 1000.0),
        _ => clock(ms),
    }
}

/// A running clock, in whole seconds so that it never changes format while it ticks: "0 s",
/// "11 s", "2 min 05 s", "1 h 02 min".
pub fn clock(ms: u64) -> String {
    let secs = (ms + 500) / 1000;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, secs % 3600 / 60),
    }
}

/// The time still expected: "about 7 s left", "almost done".
pub fn remaining(ms: u64) -> String {
    if ms < 1000 {
        "almost done".into()
    } else {
        format!("about {} left", clock(ms))
    }
}

/// The time still expected and, when it says more than the point does, the range it falls in
/// 8 times out of 10: "about 12 s left (8–20 s)", "about 2 min 05 s left (1 min 10 s – 3 min
/// 20 s)".
pub fn remaining_in(ms: u64, low: Option<u64>, high: Option<u64>) -> String {
    let point = remaining(ms);
    let (Some(low), Some(high)) = (low, high) else {
        return point;
    };
    let (low, high) = (low.min(ms), high.max(ms));
    let whole = |ms: u64| (ms + 500) / 1000;
    if ms < 1000 || whole(low) == whole(high) {
        point
    } else if whole(high) < 60 {
        format!("{point} ({}–{} s)", whole(low), whole(high))
    } else {
        format!("{point} ({} – {})", clock(low), clock(high))
    }
}

/// A size in whole kilobytes of 1024 bytes, rounded down: "64 KB" (below one, "0.5 KB").
pub fn kilobytes(bytes: u32) -> String {
    if bytes < 1024 {
        format!("{:.1} KB", f64::from(bytes) / 1024.0)
    } else {
        format!("{} KB", bytes / 1024)
    }
}

/// "1st", "2nd", "3rd", "4th", "11th", "22nd".
pub fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_same_everywhere() {
        assert_eq!(
            remaining_in(12_000, Some(8_000), Some(20_400)),
            "about 12 s left (8–20 s)"
        );
        assert_eq!(
            remaining_in(125_000, Some(70_000), Some(200_000)),
            "about 2 min 05 s left (1 min 10 s – 3 min 20 s)"
        );
        assert_eq!(remaining_in(12_000, None, None), "about 12 s left");
        assert_eq!(
            remaining_in(12_000, Some(11_800), Some(12_200)),
            "about 12 s left"
        );
        assert_eq!(remaining_in(600, Some(100), Some(5_000)), "almost done");
        assert_eq!(kilobytes(65_536), "64 KB");
        assert_eq!(kilobytes(1_500), "1 KB");
        assert_eq!(kilobytes(512), "0.5 KB");
        assert_eq!(tokens(1), "1 token");
        assert_eq!(tokens(80), "80 tokens");
        assert_eq!(speed(7.46), "7.5 tok/s");
        assert_eq!(speed(10.3), "10 tok/s");
        assert_eq!(speed(9.97), "10 tok/s");
        assert_eq!(seconds(400), "0.4 s");
        assert_eq!(seconds(9_940), "9.9 s");
        assert_eq!(seconds(9_960), "10 s");
        assert_eq!(seconds(11_200), "11 s");
        assert_eq!(seconds(125_000), "2 min 05 s");
        assert_eq!(clock(2_450), "2 s");
        assert_eq!(clock(2_600), "3 s");
        assert_eq!(clock(3_725_000), "1 h 02 min");
        assert_eq!(remaining(20_000), "about 20 s left");
        assert_eq!(remaining(400), "almost done");
        let places: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111]
            .map(ordinal)
            .into();
        assert_eq!(
            places,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st",
                "111th"
            ]
        );
    }
}
