//! How a post's time reads: "just now", "2 min", "3 h", "Yesterday 17:51", "Nov 26", in the
//! reader's time zone, with the full date and time for the tooltip.
//!
//! The server renders first and knows neither the reader's clock nor their zone, so a page is
//! first read as of the moment it was rendered, in UTC ([`Reader::Server`]); the hydrated page
//! renders exactly that text once, then switches to the browser's clock and zone
//! ([`Reader::Browser`]) and stays current from there.
use leptos::prelude::*;

/// How often the relative times are read again from the page's ticking clock.
pub const REFRESH_MS: i64 = 20_000;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY_SECS: i64 = 86_400;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Whose clock and zone the times on the page are read with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// As of the moment the server rendered the page (Unix ms), in UTC.
    Server { at: i64 },
    /// As of this browser's clock (Unix ms), in its zone.
    Browser { at: i64 },
}

impl Reader {
    /// "3 h": the short text for a post created at `created` (Unix ms).
    pub fn relative(self, created: i64) -> String {
        match self {
            Self::Server { at } => relative(created, at, |_| 0),
            Self::Browser { at } => relative(created, at, browser::offset_minutes),
        }
    }

    /// The full date and time, for the tooltip.
    pub fn full(self, created: i64) -> String {
        match self {
            Self::Server { .. } => full_utc(created),
            Self::Browser { .. } => browser::full(created).unwrap_or_else(|| full_utc(created)),
        }
    }
}

/// The page's times: when the server rendered it, and the browser's clock as last read.
#[derive(Clone, Copy)]
pub struct PageTime {
    rendered_at: i64,
    /// The page's ticking clock (0 until hydrated), read again only every [`REFRESH_MS`], so
    /// that the times re-render a few times a minute, not at every tick.
    read_at: ReadSignal<f64>,
}

impl PageTime {
    pub fn new(clock: ReadSignal<f64>, rendered_at: i64) -> Self {
        // A signal of the clock's own type (not a memo of a new one): less code in the bundle.
        let (read_at, set_read_at) = signal(0.0);
        Effect::new(move |_| {
            let previous = read_at.get_untracked();
            let next = next_read(previous, clock.get());
            if next.to_bits() != previous.to_bits() {
                set_read_at.set(next);
            }
        });
        Self {
            rendered_at,
            read_at,
        }
    }

    /// Who reads the page's times now (tracked: changes every [`REFRESH_MS`]).
    pub fn reader(self) -> Reader {
        reader_at(self.read_at.get(), self.rendered_at)
    }
}

/// The clock reading to show the times at: the previous one until [`REFRESH_MS`] have passed
/// (or the clock went back).
fn next_read(previous: f64, now: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let refresh = REFRESH_MS as f64;
    if previous <= 0.0 || now < previous || now - previous >= refresh {
        now
    } else {
        previous
    }
}

/// The server's reader until the browser's clock has been read.
fn reader_at(read_at: f64, rendered_at: i64) -> Reader {
    if read_at <= 0.0 {
        return Reader::Server { at: rendered_at };
    }
    // Whole milliseconds of the browser's clock: truncation is the intent.
    #[allow(clippy::cast_possible_truncation)]
    let at = read_at as i64;
    Reader::Browser { at }
}

/// A calendar date and time of day.
#[derive(Debug, PartialEq, Eq)]
struct Civil {
    /// Days since 1970-01-01.
    days: i64,
    year: i64,
    /// 1 to 12.
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
}

impl Civil {
    fn month_name(&self) -> &'static str {
        usize::try_from(self.month - 1)
            .ok()
            .and_then(|m| MONTHS.get(m))
            .copied()
            .unwrap_or("")
    }
}

/// The calendar at `ms` (Unix ms, already shifted to the zone wanted).
fn civil(ms: i64) -> Civil {
    let secs = ms.div_euclid(1000);
    let (days, day_secs) = (secs.div_euclid(DAY_SECS), secs.rem_euclid(DAY_SECS));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        days,
        year,
        month,
        day,
        hour: day_secs / 3600,
        minute: day_secs % 3600 / 60,
        second: day_secs % 60,
    }
}

/// "2026-11-26T14:05:09Z", for `<time datetime>`.
pub fn iso(ms: i64) -> String {
    let c = civil(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// The short text for a post created at `created`, read at `now` (both Unix ms) in a zone
/// `offset_at(instant)` minutes east of UTC.
pub fn relative(created: i64, now: i64, offset_at: impl Fn(i64) -> i32) -> String {
    let ago = now - created;
    // A post from a clock slightly ahead of ours is "just now" too.
    if ago < MINUTE {
        return "just now".into();
    }
    if ago < HOUR {
        return format!("{} min", ago / MINUTE);
    }
    let local = |ms: i64| civil(ms + i64::from(offset_at(ms)) * MINUTE);
    let (then, today) = (local(created), local(now));
    match today.days - then.days {
        0 => format!("{} h", ago / HOUR),
        1 => format!("Yesterday {:02}:{:02}", then.hour, then.minute),
        _ if then.year == today.year => format!("{} {}", then.month_name(), then.day),
        _ => format!("{} {}, {}", then.month_name(), then.day, then.year),
    }
}

/// "Nov 26, 2026, 14:05 UTC": the tooltip before the reader's zone is known.
pub fn full_utc(ms: i64) -> String {
    let c = civil(ms);
    format!(
        "{} {}, {}, {:02}:{:02} UTC",
        c.month_name(),
        c.day,
        c.year,
        c.hour,
        c.minute
    )
}

/// The reader's zone, from the browser's `Date`.
#[cfg(feature = "hydrate")]
mod browser {
    use wasm_bindgen::JsValue;

    fn date(ms: i64) -> js_sys::Date {
        // Unix ms fit an f64 exactly for the next 285,000 years.
        #[allow(clippy::cast_precision_loss)]
        js_sys::Date::new(&JsValue::from_f64(ms as f64))
    }

    /// Minutes east of UTC at `ms` (JavaScript counts them west).
    pub fn offset_minutes(ms: i64) -> i32 {
        let west = date(ms).get_timezone_offset();
        // Zone offsets are whole minutes within a day.
        #[allow(clippy::cast_possible_truncation)]
        let west = west as i32;
        -west
    }

    /// "Sunday, November 29, 2026 at 4:03:11 PM EST", in the reader's language.
    pub fn full(ms: i64) -> Option<String> {
        let options = js_sys::Object::new();
        for (key, value) in [("dateStyle", "full"), ("timeStyle", "long")] {
            js_sys::Reflect::set(&options, &key.into(), &value.into()).ok()?;
        }
        // "default" is a well-formed tag no browser knows: the reader's own locale is used.
        Some(date(ms).to_locale_string("default", &options).into())
    }
}

/// The server has no reader: UTC (never called with `Reader::Browser` there).
#[cfg(not(feature = "hydrate"))]
mod browser {
    pub fn offset_minutes(_ms: i64) -> i32 {
        0
    }

    pub fn full(_ms: i64) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-26T14:05:09Z.
    const T: i64 = 1_795_701_909_000;
    const UTC: fn(i64) -> i32 = |_| 0;

    #[test]
    fn calendar_and_iso() {
        assert_eq!(iso(T), "2026-11-26T14:05:09Z");
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso(-1000), "1969-12-31T23:59:59Z");
        assert_eq!(full_utc(T), "Nov 26, 2026, 14:05 UTC");
    }

    #[test]
    fn recent_posts_read_in_minutes_and_hours() {
        assert_eq!(relative(T, T, UTC), "just now");
        assert_eq!(relative(T, T + 59_999, UTC), "just now");
        assert_eq!(
            relative(T + 5_000, T, UTC),
            "just now",
            "a clock slightly ahead"
        );
        assert_eq!(relative(T, T + MINUTE, UTC), "1 min");
        assert_eq!(relative(T, T + 2 * MINUTE + 30_000, UTC), "2 min");
        assert_eq!(relative(T, T + 59 * MINUTE, UTC), "59 min");
        assert_eq!(relative(T, T + 3 * HOUR + 10 * MINUTE, UTC), "3 h");
    }

    #[test]
    fn older_posts_read_as_yesterday_or_a_date_in_the_readers_zone() {
        // 14:05 UTC yesterday, read at 09:00 UTC the day after.
        let next_morning = T + 18 * HOUR + 55 * MINUTE;
        assert_eq!(relative(T, next_morning, UTC), "Yesterday 14:05");
        // New York (UTC-5): the post was at 09:05 yesterday, read at 04:00.
        assert_eq!(relative(T, next_morning, |_| -5 * 60), "Yesterday 09:05");
        // Tokyo (UTC+9): read at 18:00, the post was at 23:05 the day before: same as UTC.
        assert_eq!(relative(T, next_morning, |_| 9 * 60), "Yesterday 23:05");
        // Nine hours later is the same day in UTC (23:05) but the next one in Tokyo (08:05).
        assert_eq!(relative(T, T + 9 * HOUR, UTC), "9 h");
        assert_eq!(relative(T, T + 9 * HOUR, |_| 9 * 60), "Yesterday 23:05");
        assert_eq!(relative(T, T + 3 * 24 * HOUR, UTC), "Nov 26");
        assert_eq!(relative(T, T + 60 * 24 * HOUR, UTC), "Nov 26, 2026");
    }

    #[test]
    fn each_instant_takes_its_own_offset() {
        // A zone that moved its clock an hour forward between the post and now.
        let dst = |ms: i64| if ms < T + HOUR { -5 * 60 } else { -4 * 60 };
        assert_eq!(relative(T, T + 20 * HOUR, dst), "Yesterday 09:05");
    }

    #[test]
    fn the_page_is_read_as_rendered_until_the_browser_clock_ticks() {
        assert_eq!(reader_at(0.0, T), Reader::Server { at: T });
        #[allow(clippy::cast_precision_loss)]
        let at = |ms: i64| ms as f64;
        assert_eq!(reader_at(at(T + 500), T), Reader::Browser { at: T + 500 });
        // The clock's first tick is taken at once, then one reading every REFRESH_MS.
        assert_eq!(next_read(0.0, at(T)), at(T));
        assert_eq!(
            next_read(at(T), at(T + REFRESH_MS - 1)),
            at(T),
            "unchanged between refreshes"
        );
        assert_eq!(next_read(at(T), at(T + REFRESH_MS)), at(T + REFRESH_MS));
        assert_eq!(
            next_read(at(T), at(T - 1)),
            at(T - 1),
            "a clock set back is followed"
        );
    }
}
