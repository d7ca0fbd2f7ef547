//! Where the CPU time of a stretch went: each cgroup's own share (its
//! cpu.stat less its children's), relive itself (PID 1, by thread), the
//! kernel's threads, interrupts, and the other processes of PID 1's
//! cgroup (CRIU's probe, nft, modprobe run there). The load figures say
//! the CPUs were busy; this says with what, so the work that delays a
//! restore can be named and cut.

use crate::cgroup;
use std::collections::BTreeMap;
use std::path::Path;

/// Entries under this are left out of the account's line.
const NEGLIGIBLE_USEC: u64 = 50_000;
/// Entries the account's line names at most.
const NAMED: usize = 8;
/// Threads named within an entry at most.
const THREADS_NAMED: usize = 3;

/// One sample of the CPU time used so far, by where it ran (µs).
#[derive(Debug, Clone, Default)]
pub struct CpuWhere {
    /// All CPUs' busy time, interrupts included.
    machine: u64,
    /// Hard and soft interrupts' time (no cgroup is charged for it).
    interrupts: u64,
    /// Each cgroup's whole usage (its subtree), by path below the root
    /// ("" is the root).
    cgroups: BTreeMap<String, u64>,
    /// PID 1's cgroup, as in `cgroups`.
    pid1_cgroup: String,
    /// PID 1's own time, its ended threads' included.
    pid1: u64,
    /// PID 1's threads' times, by thread ID, with their names.
    pid1_threads: BTreeMap<i32, (String, u64)>,
    /// Each kernel thread's time, by PID, with its name.
    kthreads: BTreeMap<i32, (String, u64)>,
}

impl CpuWhere {
    /// Now, with the machine's CPU times `cpu` (procfs' stat, all CPUs,
    /// read by the caller); what cannot be read is left out (no cgroup2
    /// mounted yet: no cgroups).
    pub fn now(cpu: &procfs::CpuTime) -> CpuWhere {
        let usec = |ticks: u64| ticks * 1_000_000 / procfs::ticks_per_second().max(1);
        let machine = usec(crate::load::busy_ticks(cpu));
        let interrupts = usec(cpu.irq.unwrap_or(0) + cpu.softirq.unwrap_or(0));
        let mut cgroups = BTreeMap::new();
        walk(Path::new(cgroup::ROOT), "", &mut cgroups);
        let pid1_cgroup = cgroup::cgroup_of(1)
            .map(|p| p.trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let times = |stat: procfs::process::Stat| (stat.comm, usec(stat.utime + stat.stime));
        let pid1 = procfs::process::Process::new(1)
            .and_then(|p| p.stat())
            .map_or(0, |stat| times(stat).1);
        let pid1_threads = procfs::process::Process::new(1)
            .and_then(|p| p.tasks())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|task| Some((task.tid, times(task.stat().ok()?))))
            .collect();
        let kthreads = procfs::process::all_processes()
            .into_iter()
            .flatten()
            .filter_map(|p| p.and_then(|p| p.stat()).ok())
            .filter(|stat| stat.pid == 2 || stat.ppid == 2)
            .map(|stat| (stat.pid, times(stat)))
            .collect();
        CpuWhere {
            machine,
            interrupts,
            cgroups,
            pid1_cgroup,
            pid1,
            pid1_threads,
            kthreads,
        }
    }

    /// The CPU time between `self` and `later`, by where it ran, most
    /// first: "9.54 CPU-seconds: relive (PID 1: relive 1.20 s, ...) 3.51
    /// s, /system.slice/x.service 0.36 s, ...".
    pub fn until(&self, later: &CpuWhere) -> String {
        let grown = |path: &str| {
            let before = self.cgroups.get(path).copied().unwrap_or(0);
            later
                .cgroups
                .get(path)
                .map_or(0, |now| now.saturating_sub(before))
        };
        let machine = later.machine.saturating_sub(self.machine);
        let interrupts = later.interrupts.saturating_sub(self.interrupts);
        let pid1 = later.pid1.saturating_sub(self.pid1);
        let (_, pid1_busiest) = threads_grown(&self.pid1_threads, &later.pid1_threads);
        let (kthreads, kthreads_busiest) = threads_grown(&self.kthreads, &later.kthreads);
        let mut entries: Vec<(String, u64)> = Vec::new();
        for path in later.cgroups.keys() {
            let children: u64 = children(&later.cgroups, path).map(grown).sum();
            // The root's own figure is the machine's less its children's.
            let whole = match path.is_empty() {
                true => machine,
                false => grown(path),
            };
            let mut own = whole.saturating_sub(children);
            if path.is_empty() {
                own = own.saturating_sub(kthreads + interrupts);
            }
            if *path == later.pid1_cgroup {
                own = own.saturating_sub(pid1);
                entries.push((format!("other processes in {}", shown(path)), own));
            } else {
                entries.push((shown(path).to_owned(), own));
            }
        }
        entries.push((named("relive (PID 1", &pid1_busiest), pid1));
        entries.push((named("kernel threads", &kthreads_busiest), kthreads));
        entries.push(("interrupts".into(), interrupts));
        entries.sort_by_key(|e| std::cmp::Reverse(e.1));
        let listed: Vec<String> = entries
            .iter()
            .filter(|(_, t)| *t >= NEGLIGIBLE_USEC)
            .take(NAMED)
            .map(|(name, t)| format!("{name} {}", seconds(*t)))
            .collect();
        format!(
            "{:.2} CPU-seconds: {}",
            machine as f64 / 1e6,
            listed.join(", ")
        )
    }
}

fn shown(path: &str) -> &str {
    match path.is_empty() {
        true => "the root cgroup",
        false => path,
    }
}

/// "kernel threads (kworker/0:1 0.80 s, ...)" or "relive (PID 1: relive
/// 0.80 s, ...)" from a prefix and the busiest threads.
fn named(prefix: &str, busiest: &[String]) -> String {
    let open = prefix.contains('(');
    match (busiest.is_empty(), open) {
        (true, true) => format!("{prefix})"),
        (true, false) => prefix.to_owned(),
        (false, true) => format!("{prefix}: {})", busiest.join(", ")),
        (false, false) => format!("{prefix} ({})", busiest.join(", ")),
    }
}

/// The threads' time between two samples, and the busiest few, named.
fn threads_grown(
    before: &BTreeMap<i32, (String, u64)>,
    after: &BTreeMap<i32, (String, u64)>,
) -> (u64, Vec<String>) {
    let mut grown: Vec<(&str, u64)> = after
        .iter()
        .map(|(id, (name, now))| {
            let then = before.get(id).map_or(0, |(_, t)| *t);
            (name.as_str(), now.saturating_sub(then))
        })
        .collect();
    grown.sort_by_key(|t| std::cmp::Reverse(t.1));
    let busiest = grown
        .iter()
        .take(THREADS_NAMED)
        .filter(|(_, t)| *t >= NEGLIGIBLE_USEC)
        .map(|(name, t)| format!("{name} {}", seconds(*t)))
        .collect();
    (grown.iter().map(|(_, t)| t).sum(), busiest)
}

fn seconds(usec: u64) -> String {
    format!("{:.2} s", usec as f64 / 1e6)
}

/// The cgroups right below `parent` in `cgroups`.
fn children<'a>(
    cgroups: &'a BTreeMap<String, u64>,
    parent: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    cgroups.keys().map(String::as_str).filter(move |path| {
        path.strip_prefix(parent)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    })
}

/// Every cgroup's usage_usec below `dir`, by path below the root.
fn walk(dir: &Path, path: &str, into: &mut BTreeMap<String, u64>) {
    if let Some(usage) = usage_usec(dir) {
        into.insert(path.to_owned(), usage);
    } else if path.is_empty() {
        // The root cgroup's own figure comes from the machine's.
        into.insert(String::new(), 0);
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            walk(&entry.path(), &format!("{path}/{name}"), into);
        }
    }
}

fn usage_usec(dir: &Path) -> Option<u64> {
    let stat = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threads(list: &[(i32, &str, u64)]) -> BTreeMap<i32, (String, u64)> {
        list.iter()
            .map(|(id, name, t)| (*id, (name.to_string(), *t)))
            .collect()
    }

    #[test]
    fn each_cgroup_is_charged_its_own_share_most_first() {
        let before = CpuWhere {
            machine: 1_000_000,
            cgroups: [("/system.slice".to_owned(), 100_000)].into(),
            kthreads: threads(&[(7, "kworker/0:1", 0)]),
            ..CpuWhere::default()
        };
        let after = CpuWhere {
            machine: 6_000_000,
            interrupts: 300_000,
            cgroups: [
                ("", 0),
                ("/system.slice", 2_100_000),
                ("/system.slice/udev.service", 1_500_000),
                ("/system.slice/tiny.service", 10_000),
                ("/init.scope", 1_000_000),
            ]
            .into_iter()
            .map(|(p, t)| (p.to_owned(), t))
            .collect(),
            pid1_cgroup: "/init.scope".into(),
            pid1: 700_000,
            pid1_threads: threads(&[(1, "relive", 500_000), (9, "relive-verify", 200_000)]),
            kthreads: threads(&[(7, "kworker/0:1", 800_000), (8, "ksoftirqd/0", 60_000)]),
        };
        assert_eq!(
            before.until(&after),
            "5.00 CPU-seconds: /system.slice/udev.service 1.50 s, \
             kernel threads (kworker/0:1 0.80 s, ksoftirqd/0 0.06 s) 0.86 s, \
             the root cgroup 0.84 s, \
             relive (PID 1: relive 0.50 s, relive-verify 0.20 s) 0.70 s, \
             /system.slice 0.49 s, other processes in /init.scope 0.30 s, \
             interrupts 0.30 s"
        );
    }

    #[test]
    fn this_machine_can_be_sampled() {
        use procfs::{CurrentSI, KernelStats};
        let cpu = || KernelStats::current().unwrap().total;
        let (a, b) = (CpuWhere::now(&cpu()), CpuWhere::now(&cpu()));
        assert!(a.until(&b).contains("CPU-seconds"));
        assert!(!a.pid1_threads.is_empty() || !Path::new("/proc/1/task").exists());
    }
}
