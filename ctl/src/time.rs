//! Timestamps as `status` shows them: `Tue 2024-01-02 10:00:00 CET; 2h 3min ago`.
//!
//! No date crate: local time comes from libc's `localtime_r`, and the rest is
//! arithmetic that the tests pin down.

use std::ffi::CStr;
use std::time::{SystemTime, UNIX_EPOCH};

const USEC_PER_MSEC: u64 = 1_000;
const USEC_PER_SEC: u64 = 1_000_000;
const USEC_PER_MINUTE: u64 = 60 * USEC_PER_SEC;
const USEC_PER_HOUR: u64 = 60 * USEC_PER_MINUTE;
const USEC_PER_DAY: u64 = 24 * USEC_PER_HOUR;
const USEC_PER_WEEK: u64 = 7 * USEC_PER_DAY;
/// systemd's average month and year (30.44 and 365.25 days), so that the
/// relative times read the same as systemctl's.
const USEC_PER_MONTH: u64 = 2_629_800 * USEC_PER_SEC;
const USEC_PER_YEAR: u64 = 31_557_600 * USEC_PER_SEC;

/// Wall-clock time now, µs since the epoch (what the server reports).
pub fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// "2h 3min ago", "5s left", or "now", with systemd's choice of units.
pub fn format_relative(now_usec: u64, then_usec: u64) -> String {
    let (d, tail) = if now_usec >= then_usec {
        (now_usec - then_usec, "ago")
    } else {
        (then_usec - now_usec, "left")
    };
    let span = format_span(d);
    if span.is_empty() {
        "now".to_owned()
    } else {
        format!("{span} {tail}")
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The two most significant units of a duration, coarser as it grows.
fn format_span(d: u64) -> String {
    if d >= USEC_PER_YEAR {
        let (y, m) = (d / USEC_PER_YEAR, d % USEC_PER_YEAR / USEC_PER_MONTH);
        format!(
            "{} {}",
            plural(y, "year", "years"),
            plural(m, "month", "months")
        )
    } else if d >= USEC_PER_MONTH {
        let (m, days) = (d / USEC_PER_MONTH, d % USEC_PER_MONTH / USEC_PER_DAY);
        format!(
            "{} {}",
            plural(m, "month", "months"),
            plural(days, "day", "days")
        )
    } else if d >= USEC_PER_WEEK {
        let (w, days) = (d / USEC_PER_WEEK, d % USEC_PER_WEEK / USEC_PER_DAY);
        format!(
            "{} {}",
            plural(w, "week", "weeks"),
            plural(days, "day", "days")
        )
    } else if d >= 2 * USEC_PER_DAY {
        format!("{} days", d / USEC_PER_DAY)
    } else if d >= 25 * USEC_PER_HOUR {
        format!("1 day {}h", (d - USEC_PER_DAY) / USEC_PER_HOUR)
    } else if d >= 6 * USEC_PER_HOUR {
        format!("{}h", d / USEC_PER_HOUR)
    } else if d >= USEC_PER_HOUR {
        format!(
            "{}h {}min",
            d / USEC_PER_HOUR,
            d % USEC_PER_HOUR / USEC_PER_MINUTE
        )
    } else if d >= 5 * USEC_PER_MINUTE {
        format!("{}min", d / USEC_PER_MINUTE)
    } else if d >= USEC_PER_MINUTE {
        format!(
            "{}min {}s",
            d / USEC_PER_MINUTE,
            d % USEC_PER_MINUTE / USEC_PER_SEC
        )
    } else if d >= USEC_PER_SEC {
        format!("{}s", d / USEC_PER_SEC)
    } else if d >= USEC_PER_MSEC {
        format!("{}ms", d / USEC_PER_MSEC)
    } else if d > 0 {
        format!("{d}us")
    } else {
        String::new()
    }
}

/// A broken-down time, as `localtime_r` gives it but with plain fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday
    pub weekday: u32,
    /// Zone abbreviation, e.g. CET or UTC.
    pub zone: String,
}

/// `Tue 2024-01-02 10:00:00 CET`, systemd's default timestamp style.
pub fn format_civil(c: &Civil) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let day = DAYS.get(c.weekday as usize).copied().unwrap_or("???");
    let mut s = format!(
        "{day} {:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    if !c.zone.is_empty() {
        s.push(' ');
        s.push_str(&c.zone);
    }
    s
}

/// A timestamp in µs since the epoch, in local time (UTC if the local zone
/// cannot be had).
pub fn format_timestamp(usec: u64) -> String {
    let secs = i64::try_from(usec / USEC_PER_SEC).unwrap_or(i64::MAX);
    format_civil(&local_civil(secs).unwrap_or_else(|| utc_civil(secs)))
}

fn local_civil(secs: i64) -> Option<Civil> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: libc::tm is plain data (integers and one pointer), for which
    // all-zero bytes are a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call;
    // localtime_r (unlike localtime) writes only to `tm` and keeps neither.
    let ok = unsafe { libc::localtime_r(&t, &mut tm) };
    if ok.is_null() {
        return None;
    }
    let zone = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: glibc and musl point tm_zone at a NUL-terminated
        // abbreviation in the time zone data loaded by tzset, which stays in
        // place until tzset runs again; relivectl never calls it, and the
        // string is copied right here.
        unsafe { CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    Some(Civil {
        year: i64::from(tm.tm_year) + 1900,
        month: u32::try_from(tm.tm_mon + 1).ok()?,
        day: u32::try_from(tm.tm_mday).ok()?,
        hour: u32::try_from(tm.tm_hour).ok()?,
        minute: u32::try_from(tm.tm_min).ok()?,
        second: u32::try_from(tm.tm_sec).ok()?,
        weekday: u32::try_from(tm.tm_wday).ok()?,
        zone,
    })
}

/// UTC from seconds since the epoch (Howard Hinnant's civil_from_days).
pub fn utc_civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // The ranges above make every narrowing below lossless.
    Civil {
        year,
        month: month as u32,
        day: day as u32,
        hour: (rem / 3_600) as u32,
        minute: (rem % 3_600 / 60) as u32,
        second: (rem % 60) as u32,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as u32,
        zone: "UTC".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000 * USEC_PER_SEC;

    fn ago(d: u64) -> String {
        format_relative(T + d, T)
    }

    #[test]
    fn relative_times_read_like_systemctl() {
        assert_eq!(ago(0), "now");
        assert_eq!(ago(7), "7us ago");
        assert_eq!(ago(1_500), "1ms ago");
        assert_eq!(ago(42 * USEC_PER_SEC), "42s ago");
        assert_eq!(ago(USEC_PER_MINUTE + 5 * USEC_PER_SEC), "1min 5s ago");
        assert_eq!(ago(17 * USEC_PER_MINUTE + 59 * USEC_PER_SEC), "17min ago");
        assert_eq!(ago(2 * USEC_PER_HOUR + 3 * USEC_PER_MINUTE), "2h 3min ago");
        assert_eq!(ago(7 * USEC_PER_HOUR + 3 * USEC_PER_MINUTE), "7h ago");
        assert_eq!(ago(24 * USEC_PER_HOUR + 30 * USEC_PER_MINUTE), "24h ago");
        assert_eq!(ago(27 * USEC_PER_HOUR), "1 day 3h ago");
        assert_eq!(ago(3 * USEC_PER_DAY + USEC_PER_HOUR), "3 days ago");
        assert_eq!(ago(USEC_PER_WEEK + USEC_PER_DAY), "1 week 1 day ago");
        assert_eq!(ago(3 * USEC_PER_WEEK), "3 weeks 0 days ago");
        assert_eq!(ago(USEC_PER_MONTH + 2 * USEC_PER_DAY), "1 month 2 days ago");
        assert_eq!(
            ago(2 * USEC_PER_YEAR + USEC_PER_MONTH),
            "2 years 1 month ago"
        );
    }

    #[test]
    fn future_times_are_left() {
        assert_eq!(format_relative(T, T + 90 * USEC_PER_SEC), "1min 30s left");
    }

    #[test]
    fn utc_dates() {
        let c = utc_civil(0);
        assert_eq!(format_civil(&c), "Thu 1970-01-01 00:00:00 UTC");
        // 2024-02-29 12:34:56 UTC, a leap day and a Thursday.
        assert_eq!(
            format_civil(&utc_civil(1_709_210_096)),
            "Thu 2024-02-29 12:34:56 UTC"
        );
        assert_eq!(
            format_civil(&utc_civil(1_700_000_000)),
            "Tue 2023-11-14 22:13:20 UTC"
        );
        // 2000-03-01, after the 400-year leap day.
        assert_eq!(
            format_civil(&utc_civil(951_868_800)),
            "Wed 2000-03-01 00:00:00 UTC"
        );
        assert_eq!(format_civil(&utc_civil(-1)), "Wed 1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn local_time_matches_utc_when_the_zone_is_utc() {
        // Only checkable where the test runs in UTC; elsewhere, check that
        // local time is at least well-formed.
        let local = local_civil(1_700_000_000).expect("localtime_r");
        assert!((1..=12).contains(&local.month) && local.weekday < 7);
        if local.zone == "UTC" {
            assert_eq!(local, utc_civil(1_700_000_000));
        }
    }

    #[test]
    fn absurd_timestamps_do_not_panic() {
        let _ = format_timestamp(u64::MAX);
        let _ = format_relative(0, u64::MAX);
        let _ = format_relative(u64::MAX, 0);
    }
}
