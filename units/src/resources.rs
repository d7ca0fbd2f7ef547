//! Resource control (systemd.resource-control(5)): memory, CPU, I/O and
//! task limits, written to the unit's cgroup before its processes start.

use serde::{Deserialize, Serialize};

/// A limit as the unit writes it: bytes (or tasks), a share of the
/// machine's total, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Limit {
    Absolute(u64),
    /// Per ten thousand of the machine's total (`12.5%` is 1250).
    Permyriad(u32),
    Infinity,
}

impl Limit {
    /// The cgroup file's text, with `total` the machine's amount.
    pub fn cgroup_value(self, total: u64) -> String {
        match self {
            Limit::Absolute(n) => n.to_string(),
            Limit::Permyriad(p) => (total as u128 * p as u128 / 10_000).to_string(),
            Limit::Infinity => "max".to_string(),
        }
    }
}

/// The settings a unit's cgroup gets; None leaves the kernel's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub memory_min: Option<Limit>,
    pub memory_low: Option<Limit>,
    pub memory_high: Option<Limit>,
    pub memory_max: Option<Limit>,
    pub memory_swap_max: Option<Limit>,
    /// CPUWeight=: 1..10000 (`idle` is 0: cpu.idle).
    pub cpu_weight: Option<u64>,
    /// CPUQuota=: per ten thousand of one CPU (`150%` is 15000).
    pub cpu_quota: Option<u64>,
    pub io_weight: Option<u64>,
    pub tasks_max: Option<Limit>,
}

/// One file to write in the unit's cgroup, and the controller it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupSetting {
    /// The directive, for errors (`MemoryMax`).
    pub directive: &'static str,
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
}

/// The period CPUQuota= is measured over, systemd's default (100 ms).
const CPU_PERIOD_USEC: u64 = 100_000;

impl Resources {
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }

    /// The cgroup files to write; `memory` is the machine's RAM in bytes,
    /// `tasks` its task limit (what a percentage is of).
    pub fn cgroup_settings(&self, memory: u64, tasks: u64) -> Vec<CgroupSetting> {
        let mut out = Vec::new();
        let mut put = |directive, controller, file, value: String| {
            out.push(CgroupSetting {
                directive,
                controller,
                file,
                value,
            })
        };
        let memory_files = [
            ("MemoryMin", "memory.min", self.memory_min),
            ("MemoryLow", "memory.low", self.memory_low),
            ("MemoryHigh", "memory.high", self.memory_high),
            ("MemoryMax", "memory.max", self.memory_max),
            ("MemorySwapMax", "memory.swap.max", self.memory_swap_max),
        ];
        for (directive, file, limit) in memory_files {
            if let Some(l) = limit {
                put(directive, "memory", file, l.cgroup_value(memory));
            }
        }
        match self.cpu_weight {
            Some(0) => put("CPUWeight", "cpu", "cpu.idle", "1".into()),
            Some(w) => put("CPUWeight", "cpu", "cpu.weight", w.to_string()),
            None => {}
        }
        if let Some(q) = self.cpu_quota {
            let quota = (q * CPU_PERIOD_USEC / 10_000).max(1000);
            put(
                "CPUQuota",
                "cpu",
                "cpu.max",
                format!("{quota} {CPU_PERIOD_USEC}"),
            );
        }
        if let Some(w) = self.io_weight {
            put("IOWeight", "io", "io.weight", format!("default {w}"));
        }
        if let Some(l) = self.tasks_max {
            put("TasksMax", "pids", "pids.max", l.cgroup_value(tasks));
        }
        out
    }
}
