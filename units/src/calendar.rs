//! systemd's calendar events (systemd.time(7), "CALENDAR EVENTS"), as
//! OnCalendar= takes them: `Mon..Fri *-*-* 09:00`, `daily`, `*:0/15`,
//! `*-02~1 12:00 UTC`, `@1700000000`.
//!
//! No crate parses this syntax (crates.io has cron parsers only), so it is
//! written here; dates, weekdays and time zones are jiff's. The next
//! elapse is found by walking days forward from the base and, on a day
//! that matches, trying its times in order: plain to read, and fast
//! enough (a few thousand days at most between two elapses).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One element of a comma list: a value, a range `a..b`, a repetition
/// `a/r` or `a..b/r`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Chunk {
    start: u32,
    stop: Option<u32>,
    repeat: u32,
}

impl Chunk {
    fn matches(self, v: u32) -> bool {
        if v < self.start || self.stop.is_some_and(|s| v > s) {
            return false;
        }
        match self.repeat {
            0 => self.stop.is_some() || v == self.start,
            r => (v - self.start).is_multiple_of(r),
        }
    }
}

/// A field: None is `*`.
type Field = Option<Vec<Chunk>>;

fn field_matches(field: &Field, v: u32) -> bool {
    field
        .as_ref()
        .is_none_or(|chunks| chunks.iter().any(|c| c.matches(v)))
}

/// A parsed OnCalendar= value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarSpec {
    /// Bit 0 Monday .. bit 6 Sunday; None: any day.
    weekdays: Option<u8>,
    year: Field,
    month: Field,
    day: Field,
    /// `~`: days count back from the month's end (`~1` is the last).
    end_of_month: bool,
    hour: Field,
    minute: Field,
    /// Microseconds within the minute.
    second: Field,
    /// An IANA name or UTC; None: the system's zone.
    zone: Option<String>,
    /// `@EPOCH`: one moment only.
    epoch: Option<i64>,
}

/// Why an OnCalendar= value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("'{0}' is not a weekday, a date or a time")]
    Unrecognized(String),
    #[error("{0} out of range")]
    Range(&'static str),
    #[error("unknown time zone '{0}'")]
    Zone(String),
    #[error("an empty calendar event")]
    Empty,
}

const SHORTHANDS: &[(&str, &str)] = &[
    ("minutely", "*-*-* *:*:00"),
    ("hourly", "*-*-* *:00:00"),
    ("daily", "*-*-* 00:00:00"),
    ("monthly", "*-*-01 00:00:00"),
    ("weekly", "Mon *-*-* 00:00:00"),
    ("yearly", "*-01-01 00:00:00"),
    ("annually", "*-01-01 00:00:00"),
    ("quarterly", "*-01,04,07,10-01 00:00:00"),
    ("semiannually", "*-01,07-01 00:00:00"),
];

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl CalendarSpec {
    pub fn parse(text: &str) -> Result<CalendarSpec, CalendarError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(CalendarError::Empty);
        }
        if let Some(seconds) = text.strip_prefix('@') {
            let epoch = seconds
                .parse()
                .map_err(|_| CalendarError::Unrecognized(text.into()))?;
            return Ok(CalendarSpec {
                epoch: Some(epoch),
                ..CalendarSpec::any()
            });
        }
        let mut words: Vec<&str> = text.split_ascii_whitespace().collect();
        let mut spec = CalendarSpec::any();
        // A trailing time zone: UTC or an IANA name.
        if words.len() > 1 {
            let last = words[words.len() - 1];
            if last == "UTC" || last.contains('/') || TimeZone::get(last).is_ok() {
                TimeZone::get(last).map_err(|_| CalendarError::Zone(last.into()))?;
                spec.zone = Some(last.to_owned());
                words.pop();
            }
        }
        if let [one] = words.as_slice() {
            if let Some((_, expanded)) = SHORTHANDS.iter().find(|(s, _)| s == one) {
                let zone = spec.zone.take();
                let mut spec = CalendarSpec::parse(expanded)?;
                spec.zone = zone;
                return Ok(spec);
            }
        }
        let mut rest = words.as_slice();
        if let Some(first) = rest.first() {
            if first
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
            {
                spec.weekdays = Some(parse_weekdays(first)?);
                rest = &rest[1..];
            }
        }
        let mut date_seen = false;
        let mut time_seen = false;
        for word in rest {
            if word.contains(':') && !time_seen {
                spec.parse_time(word)?;
                time_seen = true;
            } else if !date_seen && !time_seen {
                spec.parse_date(word)?;
                date_seen = true;
            } else {
                return Err(CalendarError::Unrecognized((*word).into()));
            }
        }
        if !time_seen {
            // A date (or weekday) alone means its midnight.
            spec.hour = Some(vec![exact(0)]);
            spec.minute = Some(vec![exact(0)]);
            spec.second = Some(vec![exact(0)]);
        }
        if !date_seen && !time_seen && spec.weekdays.is_none() {
            return Err(CalendarError::Empty);
        }
        Ok(spec)
    }

    fn any() -> CalendarSpec {
        CalendarSpec {
            weekdays: None,
            year: None,
            month: None,
            day: None,
            end_of_month: false,
            hour: None,
            minute: None,
            second: None,
            zone: None,
            epoch: None,
        }
    }

    /// `[YEAR-]MONTH-DAY` or `...~DAY`.
    fn parse_date(&mut self, word: &str) -> Result<(), CalendarError> {
        let bad = || CalendarError::Unrecognized(word.into());
        let (head, day, end_of_month) = match word.rsplit_once('~') {
            Some((head, day)) => (head, day, true),
            None => {
                let (head, day) = word.rsplit_once('-').ok_or_else(bad)?;
                (head, day, false)
            }
        };
        let (year, month) = match head.split_once('-') {
            Some((y, m)) => (Some(y), m),
            None => (None, head),
        };
        if let Some(y) = year {
            self.year = parse_field(y, 0, 9999, 1)?;
            if let Some(chunks) = &mut self.year {
                for c in chunks {
                    c.start = widen_year(c.start);
                    c.stop = c.stop.map(widen_year);
                }
            }
        }
        self.month = parse_field(month, 1, 12, 1)?;
        self.day = parse_field(day, 1, 31, 1)?;
        self.end_of_month = end_of_month;
        Ok(())
    }

    /// `HOUR:MINUTE[:SECOND]`, seconds possibly with a fraction.
    fn parse_time(&mut self, word: &str) -> Result<(), CalendarError> {
        let parts: Vec<&str> = word.split(':').collect();
        let (h, m, s) = match parts.as_slice() {
            [h, m] => (*h, *m, "00"),
            [h, m, s] => (*h, *m, *s),
            _ => return Err(CalendarError::Unrecognized(word.into())),
        };
        self.hour = parse_field(h, 0, 23, 1)?;
        self.minute = parse_field(m, 0, 59, 1)?;
        self.second = parse_field(s, 0, 59_999_999, 1_000_000)?;
        Ok(())
    }

    /// The first moment strictly after `after` that matches, if any (up
    /// to the year 2200).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        if let Some(epoch) = self.epoch {
            let at = Timestamp::from_second(epoch).ok()?;
            return (at > after).then_some(at);
        }
        let tz = match &self.zone {
            Some(name) => TimeZone::get(name).ok()?,
            None => TimeZone::system(),
        };
        let base = after.to_zoned(tz.clone()).datetime();
        let hours = candidates(&self.hour, 0, 23, 1);
        let minutes = candidates(&self.minute, 0, 59, 1);
        let seconds = candidates(&self.second, 0, 59_999_999, 1_000_000);
        // A DST change moves local time by at most a few hours: start a
        // day early so that no matching moment is skipped.
        let mut day = base.date().yesterday().ok()?;
        while day.year() < 2200 {
            if self.day_matches(day) {
                for &h in &hours {
                    for &m in &minutes {
                        for &s in &seconds {
                            let Some(dt) = civil(day, h, m, s) else {
                                continue;
                            };
                            if dt <= base.saturating_sub(jiff::Span::new().hours(4)) {
                                continue;
                            }
                            let Ok(zoned) = dt.to_zoned(tz.clone()) else {
                                continue;
                            };
                            if zoned.timestamp() > after {
                                return Some(zoned.timestamp());
                            }
                        }
                    }
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// [`CalendarSpec::next_after`] on µs since the epoch.
    pub fn next_after_micros(&self, after: i64) -> Option<i64> {
        let after = Timestamp::from_microsecond(after).ok()?;
        self.next_after(after).map(|t| t.as_microsecond())
    }

    fn day_matches(&self, day: Date) -> bool {
        let dom = day.day() as u32;
        let dom = if self.end_of_month {
            day.days_in_month() as u32 - dom + 1
        } else {
            dom
        };
        let weekday = day.weekday().to_monday_zero_offset() as u32;
        field_matches(&self.year, day.year() as u32)
            && field_matches(&self.month, day.month() as u32)
            && field_matches(&self.day, dom)
            && self.weekdays.is_none_or(|w| w & (1 << weekday) != 0)
    }
}

/// Two-digit years, as systemd reads them: 00-69 are 2000-2069, 70-99
/// are 1970-1999.
fn widen_year(v: u32) -> u32 {
    match v {
        0..=69 => v + 2000,
        70..=99 => v + 1900,
        v => v,
    }
}

fn civil(day: Date, hour: u32, minute: u32, micros: u32) -> Option<DateTime> {
    DateTime::new(
        day.year(),
        day.month(),
        day.day(),
        hour as i8,
        minute as i8,
        (micros / 1_000_000) as i8,
        ((micros % 1_000_000) * 1000) as i32,
    )
    .ok()
}

fn exact(v: u32) -> Chunk {
    Chunk {
        start: v,
        stop: None,
        repeat: 0,
    }
}

/// The values of a field in ascending order.
fn candidates(field: &Field, min: u32, max: u32, unit: u32) -> Vec<u32> {
    let Some(chunks) = field else {
        return (min..=max).step_by(unit as usize).collect();
    };
    let mut values: Vec<u32> = Vec::new();
    for c in chunks {
        let stop = c
            .stop
            .unwrap_or(if c.repeat > 0 { max } else { c.start })
            .min(max);
        let step = if c.repeat > 0 {
            c.repeat
        } else if c.stop.is_some() {
            unit
        } else {
            u32::MAX
        };
        let mut v = c.start;
        while v <= stop {
            values.push(v);
            match v.checked_add(step) {
                Some(next) => v = next,
                None => break,
            }
        }
    }
    values.sort_unstable();
    values.dedup();
    values
}

/// A comma list of values, ranges (`a..b`) and repetitions (`a/r`),
/// or `*`. `unit` scales the numbers (1,000,000 for seconds in µs).
fn parse_field(text: &str, min: u32, max: u32, unit: u32) -> Result<Field, CalendarError> {
    let bad = || CalendarError::Unrecognized(text.into());
    if text == "*" {
        return Ok(None);
    }
    let mut chunks = Vec::new();
    for part in text.split(',') {
        let (range, repeat) = match part.split_once('/') {
            Some((r, rep)) => (r, Some(rep)),
            None => (part, None),
        };
        let (start, stop) = match range.split_once("..") {
            Some((a, b)) => (
                number(a, unit).ok_or_else(bad)?,
                Some(number(b, unit).ok_or_else(bad)?),
            ),
            None if range == "*" => (min, None),
            None => (number(range, unit).ok_or_else(bad)?, None),
        };
        let repeat = match repeat {
            Some(r) => number(r, unit).filter(|r| *r > 0).ok_or_else(bad)?,
            None => 0,
        };
        // `*/r` means every r from the minimum.
        let stop = if range == "*" && repeat > 0 {
            Some(max)
        } else {
            stop
        };
        if start < min || start > max || stop.is_some_and(|s| s < start || s > max) {
            return Err(CalendarError::Range(field_name(max)));
        }
        chunks.push(Chunk {
            start,
            stop,
            repeat,
        });
    }
    Ok(Some(chunks))
}

fn field_name(max: u32) -> &'static str {
    match max {
        9999 => "year",
        12 => "month",
        31 => "day",
        23 => "hour",
        59 => "minute",
        _ => "second",
    }
}

/// A decimal number, scaled by `unit` (fractions allowed when unit > 1).
fn number(text: &str, unit: u32) -> Option<u32> {
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) if unit > 1 => (w, f),
        Some(_) => return None,
        None => (text, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value = whole.parse::<u32>().ok()?.checked_mul(unit)?;
    let mut scale = unit / 10;
    for b in fraction.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        value += (b - b'0') as u32 * scale;
        scale /= 10;
    }
    Some(value)
}

/// `Mon,Wed..Fri`: the bit set of weekdays.
fn parse_weekdays(text: &str) -> Result<u8, CalendarError> {
    let day = |name: &str| -> Result<u32, CalendarError> {
        let lower = name.to_ascii_lowercase();
        WEEKDAYS
            .iter()
            .position(|d| lower.len() >= 3 && full_name(d).starts_with(&lower))
            .map(|i| i as u32)
            .ok_or_else(|| CalendarError::Unrecognized(name.into()))
    };
    let mut bits = 0u8;
    for part in text.split(',') {
        // systemd accepts `-` as well as `..` between weekdays.
        let (a, b) = match part.split_once("..").or_else(|| part.split_once('-')) {
            Some((a, b)) => (day(a)?, day(b)?),
            None => (day(part)?, day(part)?),
        };
        let mut d = a;
        loop {
            bits |= 1 << d;
            if d == b {
                break;
            }
            d = (d + 1) % 7;
        }
    }
    Ok(bits)
}

fn full_name(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(spec: &str, after: &str) -> String {
        let after: Timestamp = after.parse().unwrap();
        CalendarSpec::parse(spec)
            .unwrap()
            .next_after(after)
            .map(|t| t.to_string())
            .unwrap_or_else(|| "never".into())
    }

    #[test]
    fn shorthands_as_systemd_expands_them() {
        assert_eq!(
            next("daily UTC", "2026-12-05T10:00:00Z"),
            "2026-12-06T00:00:00Z"
        );
        assert_eq!(
            next("hourly UTC", "2026-12-05T10:00:00Z"),
            "2026-12-05T11:00:00Z"
        );
        assert_eq!(
            next("weekly UTC", "2026-12-05T10:00:00Z"),
            "2026-12-07T00:00:00Z"
        );
        assert_eq!(
            next("monthly UTC", "2026-12-05T10:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            next("quarterly UTC", "2026-12-05T10:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            next("minutely UTC", "2026-12-05T10:00:30Z"),
            "2026-12-05T10:01:00Z"
        );
    }

    #[test]
    fn weekdays_lists_ranges_and_repetitions() {
        // 2026-12-05 is a Saturday.
        assert_eq!(
            next("Mon..Fri *-*-* 09:00 UTC", "2026-12-05T10:00:00Z"),
            "2026-12-07T09:00:00Z"
        );
        assert_eq!(
            next("Sat,Sun 12:30 UTC", "2026-12-05T10:00:00Z"),
            "2026-12-05T12:30:00Z"
        );
        assert_eq!(
            next("*:0/15 UTC", "2026-12-05T10:16:00Z"),
            "2026-12-05T10:30:00Z"
        );
        assert_eq!(
            next("*-*-1,15 08:00 UTC", "2026-12-05T10:00:00Z"),
            "2026-12-15T08:00:00Z"
        );
        assert_eq!(
            next("*:*:0/20 UTC", "2026-12-05T10:00:41Z"),
            "2026-12-05T10:01:00Z"
        );
        assert_eq!(
            next("*-*-* 10..12:00 UTC", "2026-12-05T10:00:00Z"),
            "2026-12-05T11:00:00Z"
        );
    }

    #[test]
    fn last_days_of_the_month_and_years() {
        assert_eq!(
            next("*-02~1 UTC", "2027-01-10T00:00:00Z"),
            "2027-02-28T00:00:00Z"
        );
        assert_eq!(
            next("*-02~1 UTC", "2028-01-10T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            next("2030-01-01 UTC", "2026-12-05T00:00:00Z"),
            "2030-01-01T00:00:00Z"
        );
        assert_eq!(
            next("26-12-24 18:00 UTC", "2026-12-05T00:00:00Z"),
            "2026-12-24T18:00:00Z"
        );
        assert_eq!(next("2020-01-01 UTC", "2026-12-05T00:00:00Z"), "never");
        assert_eq!(
            next("@1900000000", "2026-12-05T00:00:00Z"),
            "2030-03-17T17:46:40Z"
        );
    }

    #[test]
    fn fractions_of_a_second_and_zones() {
        assert_eq!(
            next("*:*:00.5 UTC", "2026-12-05T10:00:00Z"),
            "2026-12-05T10:00:00.5Z"
        );
        // Berlin is UTC+1 in December.
        assert_eq!(
            next("*-*-* 09:00 Europe/Berlin", "2026-12-05T07:00:00Z"),
            "2026-12-05T08:00:00Z"
        );
    }

    #[test]
    fn bad_values_say_what() {
        for bad in [
            "",
            "Funday",
            "*-13-01",
            "25:00",
            "*-*-* 1:2:3:4",
            "daily Mars/Base",
        ] {
            assert!(CalendarSpec::parse(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(
            CalendarSpec::parse("*-13-01"),
            Err(CalendarError::Range("month"))
        );
    }
}
