//! The properties of units that own a cgroup: services, scopes and
//! slices (systemd's cgroup context), and a scope's own.

use super::properties::{s, timeout, Props, INFINITY};
use crate::manager::bus_view::UnitView;
use relive_units::resources::{Limit, Resources};
use relive_units::scope::ScopeSection;
use relive_units::KillMode;
use std::path::PathBuf;
use zbus::zvariant::Value;

/// org.freedesktop.systemd1.Scope: its own, then its cgroup's and its
/// kill settings, in the order of systemd's vtables.
pub fn scope_props(p: &mut Props, view: &UnitView, scope: &ScopeSection, result: &str) {
    p.insert("Controller", s(""));
    p.insert("TimeoutStopUSec", Value::from(timeout(&scope.timeout_stop)));
    p.insert("Result", s(result));
    p.insert("RuntimeMaxUSec", Value::from(INFINITY));
    p.insert("RuntimeRandomizedExtraUSec", Value::from(0u64));
    p.insert("OOMPolicy", s("stop"));
    let active = view.state.active != crate::manager::state::ActiveState::Inactive;
    cgroup_props(p, view, active, &scope.resources);
    p.insert("KillMode", s(kill_mode_name(scope.kill_mode)));
    p.insert("KillSignal", Value::from(scope.kill_signal));
    p.insert("SendSIGKILL", Value::from(scope.send_sigkill));
    p.insert("SendSIGHUP", Value::from(scope.send_sighup));
}

fn kill_mode_name(mode: KillMode) -> &'static str {
    match mode {
        KillMode::ControlGroup => "control-group",
        KillMode::Process => "process",
        KillMode::Mixed => "mixed",
        KillMode::None => "none",
    }
}

/// Slice, ControlGroup and the figures read from the cgroup while
/// `running`, then the limits asked for.
pub fn cgroup_props(p: &mut Props, view: &UnitView, running: bool, r: &Resources) {
    let cfg = view.state.config.as_ref();
    let cgroup = cfg.map(|c| c.cgroup()).unwrap_or_default();
    let dir = PathBuf::from(relive_sys::cgroup::ROOT).join(cgroup.trim_start_matches('/'));
    let read = |file: &str| -> u64 {
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse().ok())
            .unwrap_or(INFINITY)
    };
    let slice = cfg.and_then(|c| c.slice()).unwrap_or_default();
    p.insert("Slice", s(slice));
    p.insert(
        "ControlGroup",
        s(if running {
            cgroup.clone()
        } else {
            String::new()
        }),
    );
    let (memory, tasks) = if running {
        (read("memory.current"), read("pids.current"))
    } else {
        (INFINITY, INFINITY)
    };
    p.insert("MemoryCurrent", Value::from(memory));
    p.insert("TasksCurrent", Value::from(tasks));
    let cpu = if running {
        std::fs::read_to_string(dir.join("cpu.stat"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .map_or(INFINITY, |us| us.saturating_mul(1000))
    } else {
        INFINITY
    };
    p.insert("CPUUsageNSec", Value::from(cpu));
    // The same totals the limits were applied with.
    let memory = crate::manager::physical_memory().unwrap_or(0);
    let threads = crate::manager::task_limit();
    // "max" (infinity) does not parse: INFINITY, as systemd shows it.
    let value = |l: Option<Limit>, total: u64, unset: u64| -> u64 {
        l.map_or(unset, |l| l.cgroup_value(total).parse().unwrap_or(INFINITY))
    };
    for (name, limit, total, unset) in [
        ("MemoryMin", r.memory_min, memory, 0),
        ("MemoryLow", r.memory_low, memory, 0),
        ("MemoryHigh", r.memory_high, memory, INFINITY),
        ("MemoryMax", r.memory_max, memory, INFINITY),
        ("MemorySwapMax", r.memory_swap_max, memory, INFINITY),
        ("TasksMax", r.tasks_max, threads, INFINITY),
    ] {
        p.insert(name, Value::from(value(limit, total, unset)));
    }
}
