//! The attributes a service's processes start with (systemd.exec(5),
//! "Process Properties" and "Scheduling"): resource limits, nice level, OOM
//! score, I/O and CPU scheduling, no_new_privs. The child sets them between
//! fork and exec; one it cannot set fails the start, as in systemd.

use serde::{Deserialize, Serialize};

/// The resource limits systemd's Limit*= settings name (setrlimit(2)),
/// but RLIMIT_NOFILE, which has its own field (PID 1 checks it against
/// what it may grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rlimit {
    Cpu,
    Fsize,
    Data,
    Stack,
    Core,
    Rss,
    As,
    Nproc,
    Memlock,
    Locks,
    Sigpending,
    Msgqueue,
    Nice,
    Rtprio,
    Rttime,
}

/// How a Limit*= value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LimitUnit {
    /// A count.
    Number,
    /// Bytes, with K, M, G, ... (powers of 1024).
    Bytes,
    /// A time span, stored in seconds (LimitCPU=).
    Seconds,
    /// A time span, a bare number meaning microseconds (LimitRTTIME=).
    Micros,
    /// A nice level (`-20`..`19`, or `+N`) or the raw 0..40 (LimitNICE=).
    NiceLevel,
}

impl Rlimit {
    const ALL: [(Rlimit, &'static str, LimitUnit); 15] = [
        (Rlimit::Cpu, "LimitCPU", LimitUnit::Seconds),
        (Rlimit::Fsize, "LimitFSIZE", LimitUnit::Bytes),
        (Rlimit::Data, "LimitDATA", LimitUnit::Bytes),
        (Rlimit::Stack, "LimitSTACK", LimitUnit::Bytes),
        (Rlimit::Core, "LimitCORE", LimitUnit::Bytes),
        (Rlimit::Rss, "LimitRSS", LimitUnit::Bytes),
        (Rlimit::As, "LimitAS", LimitUnit::Bytes),
        (Rlimit::Nproc, "LimitNPROC", LimitUnit::Number),
        (Rlimit::Memlock, "LimitMEMLOCK", LimitUnit::Bytes),
        (Rlimit::Locks, "LimitLOCKS", LimitUnit::Number),
        (Rlimit::Sigpending, "LimitSIGPENDING", LimitUnit::Number),
        (Rlimit::Msgqueue, "LimitMSGQUEUE", LimitUnit::Bytes),
        (Rlimit::Nice, "LimitNICE", LimitUnit::NiceLevel),
        (Rlimit::Rtprio, "LimitRTPRIO", LimitUnit::Number),
        (Rlimit::Rttime, "LimitRTTIME", LimitUnit::Micros),
    ];

    /// The limit a directive (`LimitCORE`) sets.
    pub fn from_directive(key: &str) -> Option<Rlimit> {
        Self::ALL
            .iter()
            .find(|(_, k, _)| *k == key)
            .map(|(r, _, _)| *r)
    }

    fn unit(self) -> LimitUnit {
        Self::ALL
            .iter()
            .find(|(r, _, _)| *r == self)
            .map(|(_, _, u)| *u)
            .unwrap_or(LimitUnit::Number)
    }

    /// setrlimit(2)'s resource number.
    pub fn resource(self) -> u32 {
        match self {
            Rlimit::Cpu => libc::RLIMIT_CPU,
            Rlimit::Fsize => libc::RLIMIT_FSIZE,
            Rlimit::Data => libc::RLIMIT_DATA,
            Rlimit::Stack => libc::RLIMIT_STACK,
            Rlimit::Core => libc::RLIMIT_CORE,
            Rlimit::Rss => libc::RLIMIT_RSS,
            Rlimit::As => libc::RLIMIT_AS,
            Rlimit::Nproc => libc::RLIMIT_NPROC,
            Rlimit::Memlock => libc::RLIMIT_MEMLOCK,
            Rlimit::Locks => libc::RLIMIT_LOCKS,
            Rlimit::Sigpending => libc::RLIMIT_SIGPENDING,
            Rlimit::Msgqueue => libc::RLIMIT_MSGQUEUE,
            Rlimit::Nice => libc::RLIMIT_NICE,
            Rlimit::Rtprio => libc::RLIMIT_RTPRIO,
            Rlimit::Rttime => libc::RLIMIT_RTTIME,
        }
    }

    /// `SOFT:HARD` or one value for both; each `infinity` or as the limit
    /// is written. None if malformed or soft > hard.
    pub fn parse(self, value: &str) -> Option<(u64, u64)> {
        let unit = self.unit();
        let one = |s: &str| -> Option<u64> {
            match unit {
                LimitUnit::Number => s.parse().ok(),
                LimitUnit::Bytes => crate::load::values::parse_size(s),
                LimitUnit::Seconds => {
                    let span = crate::load::values::parse_timespan(s)?.saturating();
                    Some(span.as_secs() + u64::from(span.subsec_nanos() > 0))
                }
                LimitUnit::Micros if s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
                LimitUnit::Micros => {
                    let span = crate::load::values::parse_timespan(s)?.saturating();
                    u64::try_from(span.as_micros()).ok()
                }
                LimitUnit::NiceLevel => parse_nice_limit(s),
            }
        };
        crate::load::values::parse_rlimit_with(value, one)
    }
}

/// LimitNICE=: a signed nice level maps to RLIMIT_NICE's 20 - level
/// (so `-20` is 40); an unsigned number is the raw 0..40.
fn parse_nice_limit(s: &str) -> Option<u64> {
    if s.starts_with(['-', '+']) {
        let level: i64 = s.parse().ok()?;
        (-20..=19).contains(&level).then(|| (20 - level) as u64)
    } else {
        let raw: u64 = s.parse().ok()?;
        (raw <= 40).then_some(raw)
    }
}

/// IOSchedulingClass= (ioprio_set(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IoClass {
    Realtime,
    BestEffort,
    Idle,
}

impl IoClass {
    pub fn parse(v: &str) -> Option<IoClass> {
        Some(match v {
            "realtime" | "1" => IoClass::Realtime,
            "best-effort" | "2" => IoClass::BestEffort,
            "idle" | "3" => IoClass::Idle,
            _ => return None,
        })
    }

    /// The kernel's IOPRIO_CLASS_* number.
    pub fn number(self) -> i32 {
        match self {
            IoClass::Realtime => 1,
            IoClass::BestEffort => 2,
            IoClass::Idle => 3,
        }
    }
}

/// CPUSchedulingPolicy= (sched_setscheduler(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CpuPolicy {
    Other,
    Batch,
    Idle,
    Fifo,
    Rr,
}

impl CpuPolicy {
    pub fn parse(v: &str) -> Option<CpuPolicy> {
        Some(match v {
            "other" => CpuPolicy::Other,
            "batch" => CpuPolicy::Batch,
            "idle" => CpuPolicy::Idle,
            "fifo" => CpuPolicy::Fifo,
            "rr" => CpuPolicy::Rr,
            _ => return None,
        })
    }

    /// The kernel's SCHED_* number.
    pub fn number(self) -> i32 {
        match self {
            CpuPolicy::Other => libc::SCHED_OTHER,
            CpuPolicy::Batch => libc::SCHED_BATCH,
            CpuPolicy::Idle => libc::SCHED_IDLE,
            CpuPolicy::Fifo => libc::SCHED_FIFO,
            CpuPolicy::Rr => libc::SCHED_RR,
        }
    }

    /// Real-time policies take a priority of 1..99; the others only 0.
    pub fn is_realtime(self) -> bool {
        matches!(self, CpuPolicy::Fifo | CpuPolicy::Rr)
    }
}

/// Everything of this module a service asks for; the defaults change
/// nothing (the child keeps what PID 1 has).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessAttributes {
    /// Limit*= but LimitNOFILE=, in the order set (a later one wins).
    pub limits: Vec<(Rlimit, u64, u64)>,
    /// Nice=: -20..19.
    pub nice: Option<i32>,
    /// OOMScoreAdjust=: -1000..1000.
    pub oom_score_adjust: Option<i32>,
    /// IOSchedulingClass=; with only IOSchedulingPriority= set, best-effort.
    pub io_class: Option<IoClass>,
    /// IOSchedulingPriority=: 0 (highest) ..7; default 4.
    pub io_priority: Option<u8>,
    /// CPUSchedulingPolicy=.
    pub cpu_policy: Option<CpuPolicy>,
    /// CPUSchedulingPriority=: 1..99 for fifo and rr.
    pub cpu_priority: Option<i32>,
    /// CPUSchedulingResetOnFork=.
    pub cpu_reset_on_fork: bool,
    /// NoNewPrivileges=: set no_new_privs before the exec.
    pub no_new_privileges: bool,
    /// SecureBits=: the securebits flags (prctl(2) PR_SET_SECUREBITS), 0
    /// for none.
    pub secure_bits: u32,
}

/// SecureBits= words and their bits (linux/securebits.h).
const SECURE_BITS: &[(&str, u32)] = &[
    ("noroot", 1 << 0),
    ("noroot-locked", 1 << 1),
    ("no-setuid-fixup", 1 << 2),
    ("no-setuid-fixup-locked", 1 << 3),
    ("keep-caps", 1 << 4),
    ("keep-caps-locked", 1 << 5),
];

/// A SecureBits= value's bits; None if a word is not one of systemd's.
pub fn parse_secure_bits(value: &str) -> Option<u32> {
    value.split_whitespace().try_fold(0, |bits, word| {
        let (_, bit) = SECURE_BITS.iter().find(|(name, _)| *name == word)?;
        Some(bits | bit)
    })
}

/// The words of `bits`, as SecureBits= spells them.
pub fn secure_bits_words(bits: u32) -> Vec<&'static str> {
    SECURE_BITS
        .iter()
        .filter(|(_, bit)| bits & bit != 0)
        .map(|(name, _)| *name)
        .collect()
}

impl ProcessAttributes {
    /// The value ioprio_set(2) takes, if the unit asks for I/O scheduling.
    pub fn ioprio(&self) -> Option<i32> {
        if self.io_class.is_none() && self.io_priority.is_none() {
            return None;
        }
        let class = self.io_class.unwrap_or(IoClass::BestEffort);
        // The idle class has no levels.
        let level = if class == IoClass::Idle {
            0
        } else {
            self.io_priority.unwrap_or(4)
        };
        Some((class.number() << 13) | i32::from(level))
    }

    /// (policy | SCHED_RESET_ON_FORK, priority) for sched_setscheduler(2),
    /// if the unit asks for CPU scheduling.
    pub fn scheduler(&self) -> Option<(i32, i32)> {
        if self.cpu_policy.is_none() && self.cpu_priority.is_none() && !self.cpu_reset_on_fork {
            return None;
        }
        let policy = self.cpu_policy.unwrap_or(CpuPolicy::Other);
        let priority = if policy.is_realtime() {
            self.cpu_priority.unwrap_or(1)
        } else {
            0
        };
        let reset = if self.cpu_reset_on_fork {
            libc::SCHED_RESET_ON_FORK
        } else {
            0
        };
        Some((policy.number() | reset, priority))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_their_own_units() {
        assert_eq!(Rlimit::Core.parse("infinity"), Some((u64::MAX, u64::MAX)));
        assert_eq!(Rlimit::Core.parse("0"), Some((0, 0)));
        assert_eq!(Rlimit::As.parse("1G:2G"), Some((1 << 30, 2 << 30)));
        assert_eq!(Rlimit::Nproc.parse("512:1024"), Some((512, 1024)));
        assert_eq!(Rlimit::Nproc.parse("1024:512"), None);
        assert_eq!(Rlimit::Cpu.parse("90"), Some((90, 90)));
        assert_eq!(Rlimit::Cpu.parse("1min 1ms"), Some((61, 61)));
        assert_eq!(Rlimit::Rttime.parse("500"), Some((500, 500)));
        assert_eq!(Rlimit::Rttime.parse("2s"), Some((2_000_000, 2_000_000)));
        assert_eq!(Rlimit::Nice.parse("-20"), Some((40, 40)));
        assert_eq!(Rlimit::Nice.parse("+19"), Some((1, 1)));
        assert_eq!(Rlimit::Nice.parse("30"), Some((30, 30)));
        assert_eq!(Rlimit::Nice.parse("41"), None);
        assert_eq!(Rlimit::Memlock.parse("lots"), None);
        assert_eq!(
            Rlimit::from_directive("LimitMEMLOCK"),
            Some(Rlimit::Memlock)
        );
        assert_eq!(Rlimit::from_directive("LimitNOFILE"), None);
    }

    #[test]
    fn io_and_cpu_scheduling_take_systemds_defaults() {
        let mut p = ProcessAttributes::default();
        assert_eq!(p.ioprio(), None);
        assert_eq!(p.scheduler(), None);
        p.io_priority = Some(7);
        assert_eq!(p.ioprio(), Some((2 << 13) | 7));
        p.io_class = Some(IoClass::Idle);
        assert_eq!(p.ioprio(), Some(3 << 13));
        p.cpu_policy = Some(CpuPolicy::Fifo);
        assert_eq!(p.scheduler(), Some((libc::SCHED_FIFO, 1)));
        p.cpu_policy = Some(CpuPolicy::Batch);
        p.cpu_priority = Some(50);
        p.cpu_reset_on_fork = true;
        assert_eq!(
            p.scheduler(),
            Some((libc::SCHED_BATCH | libc::SCHED_RESET_ON_FORK, 0))
        );
    }
}

#[cfg(test)]
mod secure_bits_tests {
    use super::*;

    #[test]
    fn secure_bits_words_and_bits_go_both_ways() {
        assert_eq!(parse_secure_bits("noroot keep-caps-locked"), Some(33));
        assert_eq!(parse_secure_bits(""), Some(0));
        assert_eq!(parse_secure_bits("noroot keep-all"), None);
        assert_eq!(secure_bits_words(33), ["noroot", "keep-caps-locked"]);
    }
}
