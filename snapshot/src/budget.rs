//! Phase 1's CPU budget: the pre-dumps' CRIU runs in a cgroup of its own
//! (`relive-pre-dump`, beside system.slice), weighted so that when every
//! CPU is busy it gets `upgrade.pre_dump_cpu_share` percent of them: a
//! share it is sure of, where SCHED_IDLE alone starved it (an 18 MiB round
//! took 82 s beside two CPU-bound services and kept its unit frozen
//! 11.9 s), and no more than that taken from the services. A weight rather
//! than a cpu.max quota: on an idle machine CRIU still gets every idle CPU,
//! and phase 1 ends sooner.
//!
//! While CRIU holds a unit's tasks (it is their tracer: they are stopped,
//! or running its parasite), its weight is raised to the highest
//! ([`HeldWatch`]): the freeze is what the service feels, so CRIU must not
//! wait for a CPU then. Copying the memory afterwards, with the tasks
//! running again, goes at the budget's pace.
//!
//! [`Phase1Sample`] measures what phase 1 cost: CRIU's CPU time and the
//! time the services waited for a CPU (system.slice's cpu.pressure), for
//! the report.

use relive_api::report::Phase1Cpu;
use relive_sys::cgroup::CgroupFs;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The pre-dumps' cgroup, under the root.
pub const CGROUP: &str = "relive-pre-dump";
/// cgroup v2's highest cpu.weight: CRIU's while it holds the tasks.
const HELD_WEIGHT: u64 = 10_000;
/// How often [`HeldWatch`] looks whether CRIU holds the tasks: well
/// under the 50 ms a round may keep them frozen.
const WATCH_EVERY: Duration = Duration::from_millis(5);
/// Where the services run.
const SERVICES: &str = "system.slice";

/// The weight that gives a cgroup at most `share_percent` of the CPUs
/// beside siblings of `others` total weight, when all of them want every
/// CPU (rounded down, but never 0, which the kernel refuses).
pub fn weight_for(share_percent: u32, others: u64) -> u64 {
    if share_percent >= 100 {
        return HELD_WEIGHT;
    }
    let share = u64::from(share_percent);
    (share * others / (100 - share)).clamp(1, HELD_WEIGHT)
}

/// The pre-dumps' cgroup, set up with its weight.
#[derive(Debug, Clone)]
pub struct CpuBudget {
    fs: CgroupFs,
    weight: u64,
}

impl CpuBudget {
    /// Creates the cgroup (the cpu controller enabled at the root) with
    /// the weight for `share_percent` beside the root's other populated
    /// cgroups as they are now.
    pub fn set_up(share_percent: u32) -> io::Result<CpuBudget> {
        Self::set_up_in(CgroupFs::new(relive_sys::cgroup::ROOT), share_percent)
    }

    fn set_up_in(fs: CgroupFs, share_percent: u32) -> io::Result<CpuBudget> {
        fs.create(CGROUP)?;
        fs.enable_controllers(CGROUP, &["cpu"])?;
        let weight = weight_for(share_percent, others_weight(&fs));
        let budget = CpuBudget { fs, weight };
        budget.set_weight(weight)?;
        Ok(budget)
    }

    /// Moves `pid` (a CRIU about to run) into the cgroup, and into the
    /// idle I/O class. Failing either only costs the services: logged.
    pub fn take_in(&self, pid: i32) {
        if let Err(e) = self.fs.write(CGROUP, "cgroup.procs", &pid.to_string()) {
            tracing::warn!("criu swrk {pid}: cannot move it into {CGROUP}: {e}");
        }
        if let Err(e) = relive_sys::sched::make_io_idle(pid) {
            tracing::warn!("criu swrk {pid}: cannot lower its I/O priority: {e}");
        }
    }

    fn set_weight(&self, weight: u64) -> io::Result<()> {
        self.fs.write(CGROUP, "cpu.weight", &weight.to_string())
    }
}

/// The sum of cpu.weight over the root's populated cgroups other than
/// the pre-dumps': what CRIU competes with when every CPU is busy.
fn others_weight(fs: &CgroupFs) -> u64 {
    let children = fs.children("").unwrap_or_default();
    let weights: u64 = children
        .iter()
        .filter(|child| child.trim_matches('/') != CGROUP)
        .filter(|child| fs.populated(child).unwrap_or(false))
        .filter_map(|child| {
            std::fs::read_to_string(fs.dir(child).join("cpu.weight"))
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum();
    // No sibling says: as beside system.slice alone, at the default.
    if weights == 0 {
        100
    } else {
        weights
    }
}

/// While it lives, CRIU's cgroup takes the highest weight whenever CRIU
/// is the tracer of `pid` (the dumped tree's root), and the budget's
/// otherwise; dropped, the budget's weight is back.
#[derive(Debug)]
pub struct HeldWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeldWatch {
    pub fn start(budget: &CpuBudget, pid: i32) -> HeldWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let budget = budget.clone();
        let thread = std::thread::Builder::new()
            .name("relive-held-watch".into())
            .spawn(move || watch(&budget, pid, &thread_stop))
            .inspect_err(|e| {
                tracing::warn!("cannot watch CRIU's hold of PID {pid} ({e}): its freeze waits for the CPU budget");
            })
            .ok();
        HeldWatch { stop, thread }
    }
}

impl Drop for HeldWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch(budget: &CpuBudget, pid: i32, stop: &AtomicBool) {
    let mut held = false;
    while !stop.load(Ordering::SeqCst) {
        let now = traced(pid);
        if now != held {
            held = now;
            let weight = if held { HELD_WEIGHT } else { budget.weight };
            if let Err(e) = budget.set_weight(weight) {
                tracing::warn!("{CGROUP}: cannot set cpu.weight {weight}: {e}");
            }
        }
        std::thread::sleep(WATCH_EVERY);
    }
    if held {
        let _ = budget.set_weight(budget.weight);
    }
}

/// Whether a tracer (CRIU, once it has seized the tree) holds `pid`.
fn traced(pid: i32) -> bool {
    procfs::process::Process::new(pid)
        .and_then(|p| p.status())
        .is_ok_and(|status| status.tracerpid != 0)
}

/// What phase 1 cost, measured from its start.
#[derive(Debug)]
pub struct Phase1Sample {
    started: Instant,
    criu_usec: Option<u64>,
    services_wait_usec: Option<u64>,
    services_wait_before: Option<f64>,
}

impl Phase1Sample {
    pub fn take() -> Phase1Sample {
        Self::take_in(&CgroupFs::new(relive_sys::cgroup::ROOT))
    }

    fn take_in(fs: &CgroupFs) -> Phase1Sample {
        let pressure = cpu_pressure(fs, SERVICES);
        Phase1Sample {
            started: Instant::now(),
            criu_usec: criu_usage_usec(fs),
            services_wait_usec: pressure.map(|(_, total)| total),
            services_wait_before: pressure.map(|(avg10, _)| avg10),
        }
    }

    /// The cost since [`Phase1Sample::take`].
    pub fn cost(&self) -> Phase1Cpu {
        self.cost_in(&CgroupFs::new(relive_sys::cgroup::ROOT))
    }

    fn cost_in(&self, fs: &CgroupFs) -> Phase1Cpu {
        let wall_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let since = |before: Option<u64>, now: Option<u64>| {
            Some(now?.saturating_sub(before.unwrap_or(0)) as f64 / 1000.0)
        };
        Phase1Cpu {
            wall_ms,
            criu_cpu_ms: since(self.criu_usec, criu_usage_usec(fs)),
            services_cpu_wait_ms: since(
                self.services_wait_usec,
                cpu_pressure(fs, SERVICES).map(|(_, total)| total),
            ),
            services_cpu_wait_before_percent: self.services_wait_before,
        }
    }
}

/// CPU time used in the pre-dumps' cgroup so far (cpu.stat).
fn criu_usage_usec(fs: &CgroupFs) -> Option<u64> {
    let text = std::fs::read_to_string(fs.dir(CGROUP).join("cpu.stat")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("usage_usec "))
        .and_then(|n| n.trim().parse().ok())
}

/// `cgroup`'s cpu.pressure "some" line: avg10 (percent of the last 10 s
/// in which a task of it waited for a CPU) and total (µs so far). None
/// without PSI (psi=0).
fn cpu_pressure(fs: &CgroupFs, cgroup: &str) -> Option<(f64, u64)> {
    let text = std::fs::read_to_string(fs.dir(cgroup).join("cpu.pressure")).ok()?;
    parse_pressure(&text)
}

fn parse_pressure(text: &str) -> Option<(f64, u64)> {
    let some = text.lines().find(|l| l.starts_with("some "))?;
    let field = |key: &str| {
        some.split_whitespace()
            .find_map(|f| f.strip_prefix(key))
            .map(str::to_owned)
    };
    Some((
        field("avg10=")?.parse().ok()?,
        field("total=")?.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_gives_the_share_beside_the_others() {
        // 3 % beside system.slice alone: 3 / (3 + 100) is just under 3 %.
        assert_eq!(weight_for(3, 100), 3);
        assert_eq!(weight_for(3, 300), 9);
        assert_eq!(weight_for(50, 100), 100);
        assert_eq!(weight_for(100, 100), HELD_WEIGHT);
        // Never 0, which the kernel refuses.
        assert_eq!(weight_for(1, 10), 1);
        for (share, others) in [(3, 100), (10, 200), (25, 100)] {
            let w = weight_for(share, others) as f64;
            let got = w / (w + others as f64) * 100.0;
            assert!(got <= share as f64, "{share} % of {others}: {got}");
            assert!(got > share as f64 - 1.0, "{share} % of {others}: {got}");
        }
    }

    #[test]
    fn cpu_pressure_reads_the_some_line() {
        let text = "some avg10=12.50 avg60=3.00 avg300=0.50 total=4242\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=17\n";
        assert_eq!(parse_pressure(text), Some((12.5, 4242)));
        assert_eq!(parse_pressure("full avg10=1.00 total=3\n"), None);
        assert_eq!(parse_pressure(""), None);
    }

    #[test]
    fn the_budget_sets_its_weight_beside_populated_siblings_only() {
        let root = std::env::temp_dir().join(format!("relive-budget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let sibling = |name: &str, weight: u64, populated: bool| {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cpu.weight"), format!("{weight}\n")).unwrap();
            let events = format!("populated {}\nfrozen 0\n", u8::from(populated));
            std::fs::write(dir.join("cgroup.events"), events).unwrap();
        };
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        std::fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        sibling("system.slice", 100, true);
        sibling("user.slice", 100, true);
        sibling("machine.slice", 900, false);
        let budget = CpuBudget::set_up_in(CgroupFs::new(&root), 3).unwrap();
        // 3 % beside 200: 6.2 -> 6.
        assert_eq!(budget.weight, 6);
        let weight = std::fs::read_to_string(root.join(CGROUP).join("cpu.weight")).unwrap();
        assert_eq!(weight, "6");
        let control = std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap();
        assert_eq!(control, "+cpu");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
