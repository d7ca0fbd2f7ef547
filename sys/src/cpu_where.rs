//! Where the CPU time of a stretch went: each cgroup's own share (its
//! cpu.stat less its children's), relive itself (PID 1) and the kernel's
//! threads. The load figures say the CPUs were busy; this says with what,
//! so the work that delays a restore can be named and cut.

use std::collections::BTreeMap;
use std::path::Path;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Entries under this are left out of the account's line.
const NEGLIGIBLE_USEC: u64 = 50_000;
/// Entries the account's line names at most.
const NAMED: usize = 8;

/// One sample of the CPU time used so far, by where it ran (µs).
#[derive(Debug, Clone, Default)]
pub struct CpuWhere {
    /// Each cgroup's whole usage (its subtree), by path below the root
    /// ("" is the root, whose figure is the whole machine's).
    cgroups: BTreeMap<String, u64>,
    /// PID 1's own time, without its reaped children.
    pid1: u64,
    /// Each kernel thread's time, by PID, with its name.
    kthreads: BTreeMap<i32, (String, u64)>,
}

impl CpuWhere {
    /// Now; what cannot be read is left out (no cgroup2 mounted yet: no
    /// cgroups).
    pub fn now() -> CpuWhere {
        let mut cgroups = BTreeMap::new();
        walk(Path::new(CGROUP_ROOT), "", &mut cgroups);
        let usec = |ticks: u64| ticks * 1_000_000 / procfs::ticks_per_second().max(1);
        let mut pid1 = 0;
        let mut kthreads = BTreeMap::new();
        for process in procfs::process::all_processes().into_iter().flatten() {
            let Ok(stat) = process.and_then(|p| p.stat()) else {
                continue;
            };
            let time = usec(stat.utime + stat.stime);
            if stat.pid == 1 {
                pid1 = time;
            } else if stat.pid == 2 || stat.ppid == 2 {
                kthreads.insert(stat.pid, (stat.comm, time));
            }
        }
        CpuWhere {
            cgroups,
            pid1,
            kthreads,
        }
    }

    /// The CPU time between `self` and `later`, by where it ran, most
    /// first: each cgroup's own share, relive (PID 1), the kernel's
    /// threads with the three busiest. `machine_usec` is the whole
    /// machine's busy time in the stretch (the root cgroup's own share
    /// is what the cgroups below it do not account for).
    pub fn until(&self, later: &CpuWhere, machine_usec: u64) -> String {
        let grown = |path: &str| {
            let before = self.cgroups.get(path).copied().unwrap_or(0);
            later
                .cgroups
                .get(path)
                .map_or(0, |now| now.saturating_sub(before))
        };
        let mut entries: Vec<(String, u64)> = Vec::new();
        for path in later.cgroups.keys() {
            if path.is_empty() {
                continue;
            }
            let children: u64 = children(&later.cgroups, path).map(&grown).sum();
            entries.push((path.clone(), grown(path).saturating_sub(children)));
        }
        let top: u64 = children(&later.cgroups, "").map(&grown).sum();
        entries.push(("/ (root cgroup)".into(), machine_usec.saturating_sub(top)));
        entries.push((
            "relive (PID 1)".into(),
            later.pid1.saturating_sub(self.pid1),
        ));
        let mut threads: Vec<(String, u64)> = later
            .kthreads
            .iter()
            .map(|(pid, (name, now))| {
                let before = self.kthreads.get(pid).map_or(0, |(_, t)| *t);
                (name.clone(), now.saturating_sub(before))
            })
            .collect();
        threads.sort_by_key(|t| std::cmp::Reverse(t.1));
        let busiest: Vec<String> = threads
            .iter()
            .take(3)
            .filter(|(_, t)| *t >= NEGLIGIBLE_USEC)
            .map(|(name, t)| format!("{name} {}", seconds(*t)))
            .collect();
        let all_threads: u64 = threads.iter().map(|(_, t)| t).sum();
        let threads_name = match busiest.is_empty() {
            true => "kernel threads".to_owned(),
            false => format!("kernel threads ({})", busiest.join(", ")),
        };
        entries.push((threads_name, all_threads));
        entries.sort_by_key(|e| std::cmp::Reverse(e.1));
        let named: Vec<String> = entries
            .iter()
            .filter(|(_, t)| *t >= NEGLIGIBLE_USEC)
            .take(NAMED)
            .map(|(name, t)| format!("{name} {}", seconds(*t)))
            .collect();
        format!(
            "{} CPU-seconds: {}",
            seconds(machine_usec).trim_end_matches(" s"),
            named.join(", ")
        )
    }
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

    fn sample(cgroups: &[(&str, u64)], pid1: u64, kthreads: &[(i32, &str, u64)]) -> CpuWhere {
        CpuWhere {
            cgroups: cgroups.iter().map(|(p, t)| (p.to_string(), *t)).collect(),
            pid1,
            kthreads: kthreads
                .iter()
                .map(|(pid, name, t)| (*pid, (name.to_string(), *t)))
                .collect(),
        }
    }

    #[test]
    fn each_cgroup_is_charged_its_own_share_most_first() {
        let before = sample(&[("/system.slice", 100_000)], 0, &[(7, "kworker/0:1", 0)]);
        let after = sample(
            &[
                ("", 9_000_000),
                ("/system.slice", 2_100_000),
                ("/system.slice/udev.service", 1_500_000),
                ("/system.slice/tiny.service", 10_000),
                ("/relive.scope", 1_000_000),
            ],
            700_000,
            &[(7, "kworker/0:1", 800_000), (9, "ksoftirqd/0", 60_000)],
        );
        assert_eq!(
            before.until(&after, 4_000_000),
            "4.00 CPU-seconds: /system.slice/udev.service 1.50 s, \
             /relive.scope 1.00 s, / (root cgroup) 1.00 s, \
             kernel threads (kworker/0:1 0.80 s, ksoftirqd/0 0.06 s) 0.86 s, \
             relive (PID 1) 0.70 s, /system.slice 0.49 s"
        );
    }

    #[test]
    fn this_machine_can_be_sampled() {
        let (a, b) = (CpuWhere::now(), CpuWhere::now());
        assert!(a.until(&b, 1_000_000).starts_with("1.00 CPU-seconds"));
    }
}
