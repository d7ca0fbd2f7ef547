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
    /// Delegate=: None when off; else the cgroup v2 controllers made
    /// available to the unit's processes, which may manage the subtree
    /// below its cgroup (empty: delegation without controllers).
    pub delegate: Option<Vec<String>>,
    /// DelegateSubgroup=: with Delegate=, the cgroup below the unit's its
    /// processes start in (user@.service's init.scope), so that the
    /// unit's own cgroup holds no process and its controllers can be
    /// delegated (cgroup v2's no-internal-process rule).
    #[serde(default)]
    pub delegate_subgroup: Option<String>,
    /// DeviceAllow= and DevicePolicy=.
    #[serde(default)]
    pub devices: crate::devices::Devices,
}

/// The cgroup v2 controllers `Delegate=yes` enables (those the machine
/// offers of them).
pub const DELEGATE_ALL: &[&str] = &["cpu", "cpuset", "io", "memory", "pids"];

/// A Delegate= controller name as systemd accepts it, and the cgroup v2
/// controller it enables: None for those that are BPF programs on v2
/// (devices, bpf-*: nothing to enable) or have no v2 controller of their
/// own (cpuacct and blkio are cpu's and io's).
fn delegate_controller(name: &str) -> Option<Option<&'static str>> {
    Some(match name {
        "cpu" | "cpuacct" => Some("cpu"),
        "cpuset" => Some("cpuset"),
        "io" | "blkio" => Some("io"),
        "memory" => Some("memory"),
        "pids" => Some("pids"),
        "devices"
        | "bpf-firewall"
        | "bpf-devices"
        | "bpf-foreign"
        | "bpf-socket-bind"
        | "bpf-restrict-network-interfaces" => None,
        _ => return None,
    })
}

/// Delegate='s value onto `current`: a boolean, or controller names
/// (ORed with earlier ones); empty turns delegation on with no
/// controllers, as in systemd. None for a name systemd does not know.
pub fn parse_delegate(current: Option<&[String]>, value: &str) -> Option<Option<Vec<String>>> {
    if value.is_empty() {
        return Some(Some(Vec::new()));
    }
    if let Some(on) = crate::load::values::parse_bool(value) {
        return Some(on.then(|| DELEGATE_ALL.iter().map(|c| c.to_string()).collect()));
    }
    let mut controllers: Vec<String> = current.unwrap_or_default().to_vec();
    for word in value.split_whitespace() {
        if let Some(v2) = delegate_controller(word)? {
            controllers.push(v2.to_owned());
        }
    }
    controllers.sort();
    controllers.dedup();
    Some(Some(controllers))
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

#[cfg(test)]
mod delegate_tests {
    use super::*;

    #[test]
    fn delegate_takes_booleans_names_and_empty_as_systemd_does() {
        let all: Vec<String> = DELEGATE_ALL.iter().map(|c| c.to_string()).collect();
        assert_eq!(parse_delegate(None, "yes"), Some(Some(all)));
        assert_eq!(parse_delegate(None, "no"), Some(None));
        assert_eq!(parse_delegate(None, ""), Some(Some(vec![])));
        // Names are ORed; v1 names map to v2's, BPF ones enable nothing.
        let first = parse_delegate(None, "pids blkio bpf-firewall").unwrap();
        assert_eq!(first, Some(vec!["io".to_string(), "pids".to_string()]));
        assert_eq!(
            parse_delegate(first.as_deref(), "memory"),
            Some(Some(vec!["io".into(), "memory".into(), "pids".into()]))
        );
        assert_eq!(parse_delegate(None, "pids hugepages"), None);
    }
}
