//! Value syntaxes shared by many directives, as systemd parses them:
//! booleans, time spans, signals, exit statuses, file modes, rlimits.

use std::time::Duration;

/// systemd's `parse_boolean()` (case-insensitive).
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeSpan {
    Infinity,
    Finite(Duration),
}

impl TimeSpan {
    /// `infinity` as `Duration::MAX`, for fields that have no other way to say it.
    pub(crate) fn saturating(self) -> Duration {
        match self {
            TimeSpan::Infinity => Duration::MAX,
            TimeSpan::Finite(d) => d,
        }
    }
}

const USEC_PER_SEC: u64 = 1_000_000;
const USEC_PER_MINUTE: u64 = 60 * USEC_PER_SEC;
const USEC_PER_HOUR: u64 = 60 * USEC_PER_MINUTE;
const USEC_PER_DAY: u64 = 24 * USEC_PER_HOUR;

/// systemd's unit suffixes in its own lookup order: the first suffix the
/// text starts with wins (so `ms` is milliseconds but `m` minutes).
const TIME_UNITS: &[(&str, u64)] = &[
    ("seconds", USEC_PER_SEC),
    ("second", USEC_PER_SEC),
    ("sec", USEC_PER_SEC),
    ("s", USEC_PER_SEC),
    ("minutes", USEC_PER_MINUTE),
    ("minute", USEC_PER_MINUTE),
    ("min", USEC_PER_MINUTE),
    ("months", 2_629_800 * USEC_PER_SEC),
    ("month", 2_629_800 * USEC_PER_SEC),
    ("M", 2_629_800 * USEC_PER_SEC),
    ("msec", 1000),
    ("ms", 1000),
    ("m", USEC_PER_MINUTE),
    ("hours", USEC_PER_HOUR),
    ("hour", USEC_PER_HOUR),
    ("hr", USEC_PER_HOUR),
    ("h", USEC_PER_HOUR),
    ("days", USEC_PER_DAY),
    ("day", USEC_PER_DAY),
    ("d", USEC_PER_DAY),
    ("weeks", 7 * USEC_PER_DAY),
    ("week", 7 * USEC_PER_DAY),
    ("w", 7 * USEC_PER_DAY),
    ("years", 31_557_600 * USEC_PER_SEC),
    ("year", 31_557_600 * USEC_PER_SEC),
    ("y", 31_557_600 * USEC_PER_SEC),
    ("usec", 1),
    ("us", 1),
    ("μs", 1),
    ("µs", 1),
];

fn skip_blanks(s: &str) -> &str {
    s.trim_start_matches([' ', '\t', '\n', '\r'])
}

/// systemd's `parse_sec()`: `90` (seconds), `5s`, `1min 30s`, `1.5h`,
/// `500ms`, `infinity`. Components add up; no sign; microsecond precision.
pub(crate) fn parse_timespan(v: &str) -> Option<TimeSpan> {
    let mut p = skip_blanks(v);
    if let Some(rest) = p.strip_prefix("infinity") {
        return skip_blanks(rest).is_empty().then_some(TimeSpan::Infinity);
    }
    let mut total: u64 = 0;
    let mut something = false;
    loop {
        p = skip_blanks(p);
        if p.is_empty() {
            return something.then_some(TimeSpan::Finite(Duration::from_micros(total)));
        }
        // strtoll() accepts a '+'; a '-' is refused by systemd.
        let digits_from = usize::from(p.starts_with('+'));
        let int_len = p[digits_from..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let int_str = &p[digits_from..digits_from + int_len];
        let after_int = &p[digits_from + int_len..];
        let (frac, after_num) = match after_int.strip_prefix('.') {
            Some(rest) => {
                let n = rest.bytes().take_while(u8::is_ascii_digit).count();
                (Some(&rest[..n]), &rest[n..])
            }
            None if int_len == 0 => return None,
            None => (None, after_int),
        };
        let whole: u64 = if int_str.is_empty() {
            0
        } else {
            int_str.parse().ok()?
        };
        let unit_text = skip_blanks(after_num);
        let (multiplier, rest) = TIME_UNITS
            .iter()
            .find_map(|(suffix, mult)| unit_text.strip_prefix(suffix).map(|r| (*mult, r)))
            .unwrap_or((USEC_PER_SEC, unit_text));
        // "12.34.56" is refused, "12.34 .56" and "12.34s.56" are not.
        if rest.len() == after_num.len() && !rest.is_empty() {
            return None;
        }
        total = total.checked_add(whole.checked_mul(multiplier)?)?;
        if let Some(frac) = frac {
            if frac.is_empty() {
                return None;
            }
            let mut m = multiplier / 10;
            for d in frac.bytes() {
                total = total.checked_add(u64::from(d - b'0') * m)?;
                m /= 10;
            }
        }
        if total == u64::MAX {
            return None;
        }
        something = true;
        p = rest;
    }
}

/// Linux signal names (generic numbering: x86, arm, riscv, ...).
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];
const SIGRTMIN: i32 = 34;
const SIGRTMAX: i32 = 64;

/// systemd's `signal_from_string()`: `SIGTERM`, `TERM`, `15`,
/// `SIGRTMIN+3`, `RTMAX-1`.
pub(crate) fn parse_signal(v: &str) -> Option<i32> {
    let name = v.strip_prefix("SIG").unwrap_or(v);
    if let Some((_, n)) = SIGNALS.iter().find(|(s, _)| *s == name) {
        return Some(*n);
    }
    let offset = |s: &str| -> Option<i32> { s.parse::<i32>().ok().filter(|n| *n >= 0) };
    let rt = if let Some(rest) = name.strip_prefix("RTMIN") {
        match rest.strip_prefix('+') {
            Some(n) => SIGRTMIN.checked_add(offset(n)?),
            None if rest.is_empty() => Some(SIGRTMIN),
            None => None,
        }
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        match rest.strip_prefix('-') {
            Some(n) => SIGRTMAX.checked_sub(offset(n)?),
            None if rest.is_empty() => Some(SIGRTMAX),
            None => None,
        }
    } else if name.len() == v.len() && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse().ok()
    } else {
        None
    };
    rt.filter(|n| (1..=SIGRTMAX).contains(n))
}

/// Exit status names systemd accepts in SuccessExitStatus= and
/// RestartPreventExitStatus= (LSB, BSD sysexits and systemd's own).
const EXIT_STATUSES: &[(&str, i32)] = &[
    ("SUCCESS", 0),
    ("FAILURE", 1),
    ("INVALIDARGUMENT", 2),
    ("NOTIMPLEMENTED", 3),
    ("NOPERMISSION", 4),
    ("NOTINSTALLED", 5),
    ("NOTCONFIGURED", 6),
    ("NOTRUNNING", 7),
    ("USAGE", 64),
    ("DATAERR", 65),
    ("NOINPUT", 66),
    ("NOUSER", 67),
    ("NOHOST", 68),
    ("UNAVAILABLE", 69),
    ("SOFTWARE", 70),
    ("OSERR", 71),
    ("OSFILE", 72),
    ("CANTCREAT", 73),
    ("IOERR", 74),
    ("TEMPFAIL", 75),
    ("PROTOCOL", 76),
    ("NOPERM", 77),
    ("CONFIG", 78),
    ("CHDIR", 200),
    ("NICE", 201),
    ("FDS", 202),
    ("EXEC", 203),
    ("MEMORY", 204),
    ("LIMITS", 205),
    ("OOM_ADJUST", 206),
    ("SIGNAL_MASK", 207),
    ("STDIN", 208),
    ("STDOUT", 209),
    ("CHROOT", 210),
    ("IOPRIO", 211),
    ("TIMERSLACK", 212),
    ("SECUREBITS", 213),
    ("SETSCHEDULER", 214),
    ("CPUAFFINITY", 215),
    ("GROUP", 216),
    ("USER", 217),
    ("CAPABILITIES", 218),
    ("CGROUP", 219),
    ("SETSID", 220),
    ("CONFIRM", 221),
    ("STDERR", 222),
    ("PAM", 224),
    ("NETWORK", 225),
    ("NAMESPACE", 226),
    ("NO_NEW_PRIVILEGES", 227),
    ("SECCOMP", 228),
    ("SELINUX_CONTEXT", 229),
    ("PERSONALITY", 230),
    ("APPARMOR_PROFILE", 231),
    ("ADDRESS_FAMILIES", 232),
    ("RUNTIME_DIRECTORY", 233),
    ("CHOWN", 235),
    ("SMACK_PROCESS_LABEL", 236),
    ("KEYRING", 237),
    ("STATE_DIRECTORY", 238),
    ("CACHE_DIRECTORY", 239),
    ("LOGS_DIRECTORY", 240),
    ("CONFIGURATION_DIRECTORY", 241),
    ("NUMA_POLICY", 242),
    ("CREDENTIALS", 243),
    ("BPF", 245),
];

/// An exit status 0..=255, by number or name.
pub(crate) fn parse_exit_status(v: &str) -> Option<i32> {
    if let Some((_, n)) = EXIT_STATUSES.iter().find(|(s, _)| *s == v) {
        return Some(*n);
    }
    v.parse::<u8>().ok().map(i32::from)
}

/// A list with systemd's leading `~` ("all but these", or "deny these"):
/// (whether it had one, the rest).
pub(crate) fn inverted(value: &str) -> (bool, &str) {
    match value.strip_prefix('~') {
        Some(rest) => (true, rest),
        None => (false, value),
    }
}

/// systemd's `parse_mode()`: octal, at most 07777.
pub(crate) fn parse_mode(v: &str) -> Option<u32> {
    if v.is_empty() || !v.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(v, 8).ok().filter(|m| *m <= 0o7777)
}

/// systemd's `parse_size()` with base 1024: `8M`, `128K`, `1G`, bytes.
pub(crate) fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (digits, factor) = match v.char_indices().last()? {
        (i, 'K') => (&v[..i], 1u64 << 10),
        (i, 'M') => (&v[..i], 1 << 20),
        (i, 'G') => (&v[..i], 1 << 30),
        (i, 'T') => (&v[..i], 1 << 40),
        (i, 'B') => (&v[..i], 1),
        _ => (v, 1),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(factor)
}

/// An rlimit value: `N`, `infinity`, or `soft:hard`; one value sets both.
pub(crate) fn parse_rlimit(v: &str) -> Option<(u64, u64)> {
    parse_rlimit_with(v, |n| n.parse().ok())
}

/// `parse_rlimit` with `value` reading each side but `infinity` (sizes,
/// time spans, nice levels: Limit*= each write theirs).
pub(crate) fn parse_rlimit_with(
    v: &str,
    value: impl Fn(&str) -> Option<u64>,
) -> Option<(u64, u64)> {
    let one = |s: &str| -> Option<u64> {
        match s.trim() {
            "infinity" => Some(u64::MAX),
            n => value(n),
        }
    };
    match v.split_once(':') {
        Some((soft, hard)) => {
            let (soft, hard) = (one(soft)?, one(hard)?);
            (soft <= hard).then_some((soft, hard))
        }
        None => one(v).map(|n| (n, n)),
    }
}

/// KillMode=; empty is the default, control-group.
pub(crate) fn parse_kill_mode(v: &str) -> Option<crate::model::KillMode> {
    use crate::model::KillMode;
    Some(match v {
        "" | "control-group" => KillMode::ControlGroup,
        "process" => KillMode::Process,
        "mixed" => KillMode::Mixed,
        "none" => KillMode::None,
        _ => return None,
    })
}

/// An empty value means the default; otherwise parse it.
pub(crate) fn empty_or<T>(value: &str, default: T, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    if value.is_empty() {
        Some(default)
    } else {
        parse(value)
    }
}

/// TimeoutStartSec= and friends: `0` and `infinity` both disable it.
pub(crate) fn timeout(value: &str) -> Option<crate::model::Timeout> {
    use crate::model::Timeout;
    Some(match parse_timespan(value)? {
        TimeSpan::Infinity => Timeout::Infinity,
        TimeSpan::Finite(d) if d.is_zero() => Timeout::Infinity,
        TimeSpan::Finite(d) => Timeout::After(d),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_powers_of_1024() {
        assert_eq!(parse_size("8M"), Some(8 << 20));
        assert_eq!(parse_size("128K"), Some(128 << 10));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
    }

    fn secs(v: &str) -> Option<Duration> {
        match parse_timespan(v)? {
            TimeSpan::Finite(d) => Some(d),
            TimeSpan::Infinity => None,
        }
    }

    #[test]
    fn timespans() {
        assert_eq!(secs("90"), Some(Duration::from_secs(90)));
        assert_eq!(secs("5s"), Some(Duration::from_secs(5)));
        assert_eq!(secs("1min 30s"), Some(Duration::from_secs(90)));
        assert_eq!(secs("1min30s"), Some(Duration::from_secs(90)));
        assert_eq!(secs("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(secs("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(secs("1.5m"), Some(Duration::from_secs(90)));
        assert_eq!(secs(".5"), Some(Duration::from_millis(500)));
        assert_eq!(secs("5 10"), Some(Duration::from_secs(15)));
        assert_eq!(secs("1d 2w"), Some(Duration::from_secs(15 * 86400)));
        assert_eq!(secs("0"), Some(Duration::ZERO));
        assert_eq!(secs("100 us"), Some(Duration::from_micros(100)));
        assert_eq!(parse_timespan(" infinity "), Some(TimeSpan::Infinity));
        for bad in [
            "",
            "abc",
            "-1",
            "5x",
            "1.2.3",
            "3.",
            "3.s",
            "infinity 5",
            "99999999999999999999",
        ] {
            assert_eq!(parse_timespan(bad), None, "{bad}");
        }
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("TERM"), Some(15));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGRTMIN+2"), Some(36));
        assert_eq!(parse_signal("RTMAX-1"), Some(63));
        for bad in ["", "SIG", "SIGFOO", "0", "65", "SIG15", "term", "RTMIN+40"] {
            assert_eq!(parse_signal(bad), None, "{bad}");
        }
    }

    #[test]
    fn bools_modes_limits_statuses() {
        assert_eq!(parse_bool("YES"), Some(true));
        assert_eq!(parse_bool("off"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(parse_mode("0022"), Some(0o22));
        assert_eq!(parse_mode("2755"), Some(0o2755));
        assert_eq!(parse_mode("999"), None);
        assert_eq!(parse_mode("17777"), None);
        assert_eq!(parse_rlimit("65535"), Some((65535, 65535)));
        assert_eq!(parse_rlimit("1024:4096"), Some((1024, 4096)));
        assert_eq!(parse_rlimit("infinity"), Some((u64::MAX, u64::MAX)));
        assert_eq!(parse_rlimit("4096:1024"), None);
        assert_eq!(parse_exit_status("DATAERR"), Some(65));
        assert_eq!(parse_exit_status("255"), Some(255));
        assert_eq!(parse_exit_status("256"), None);
    }
}
