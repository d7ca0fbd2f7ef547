//! Phase 1 of an upgrade, before any stoppage: pre-dump the preserved
//! units in the background, round after round, until what each round
//! dirties has converged. The final dump (phase 2) then writes only the
//! pages changed since a unit's last pre-dump.
//!
//! Each round is one `criu pre-dump` with memory tracking (soft-dirty) and
//! the previous round as parent, by a CRIU at idle CPU and I/O priority,
//! into `images/UNIT/pre-N`. The tasks are frozen only while CRIU collects
//! their mappings; in the "read" mode it copies the memory while they run.
//! A unit stops when a round writes fewer pages than the threshold, when a
//! round writes more than the previous one by more than the growth limit
//! (it dirties faster than it can be copied), or at its round cap.
//! A failed pre-dump only costs the unit its pre-dumps: its chain is
//! dropped (the soft-dirty state may be half reset) and its final dump is
//! full.

use crate::dump::{DumpError, Dumper, PreDumpJob, PreDumpPriority};
use crate::{Seams, UpgradeError};
use relive_api::plan::{Plan, PlannedUnit};
use relive_api::progress::{Phase, Progress};
use relive_api::report::{Loss, PreDumpRound};
use relive_config::{PreDumpMode, UpgradeConfig};
use relive_criu::activity::{self, ActivitySample};
use relive_host::Job;
use relive_store::Store;
use relive_sys::wall_usec;
use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A page, for converting CRIU's page counts.
const PAGE: u64 = 4096;
/// After a pre-dump the tasks finish the system call CRIU interrupted;
/// the activity baseline is taken once that is done.
const SETTLE: Duration = Duration::from_millis(100);
/// Whether a unit's tasks ran between two rounds is judged over at least
/// this long: a service that writes in bursts (relive-busy sleeps between
/// them) may not be on a CPU in the instant between one round's baseline
/// and the next round, when it is the only unit left to pre-dump.
const ACTIVITY_WINDOW: Duration = Duration::from_millis(250);

/// When the rounds stop.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub max_rounds: u32,
    pub min_dirty_pages: u64,
    pub max_growth: f64,
    pub mode: PreDumpMode,
    pub priority: PreDumpPriority,
    /// Phase 1 ends at this age, whatever is left; None: no deadline.
    pub deadline: Option<Duration>,
}

/// Why phase 1 ended before every unit's rounds had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// `relivectl live-upgrade --cancel`.
    Cancelled,
    /// `upgrade.pre_dump_deadline_sec` passed.
    Deadline(Duration),
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cut::Cancelled => f.write_str("phase 1 cancelled"),
            Cut::Deadline(after) => write!(
                f,
                "phase 1 reached its deadline ({} s): the final dump copies what changed since the last round",
                after.as_secs()
            ),
        }
    }
}

impl Policy {
    pub fn from_config(config: &UpgradeConfig) -> Policy {
        Policy {
            max_rounds: config.pre_dump_max_rounds,
            min_dirty_pages: config.pre_dump_min_dirty_pages,
            max_growth: config.pre_dump_max_growth,
            mode: config.pre_dump_mode,
            priority: match (config.pre_dump_idle_priority, config.pre_dump_cpu_share) {
                (false, _) => PreDumpPriority::Normal,
                (true, 0) => PreDumpPriority::Idle,
                (true, share) => PreDumpPriority::Share(share),
            },
            deadline: (config.pre_dump_deadline_sec > 0)
                .then(|| Duration::from_secs(config.pre_dump_deadline_sec)),
        }
    }

    /// Why a unit's rounds stop after `rounds` (this run's), or None to go on.
    pub fn stop_reason(&self, rounds: &[PreDumpRound], cap: u32) -> Option<String> {
        let last = rounds.last()?;
        if last.pages_written < self.min_dirty_pages {
            return Some(format!(
                "converged: round {} wrote {} pages (< {})",
                last.round, last.pages_written, self.min_dirty_pages
            ));
        }
        let previous = match rounds {
            [.., previous, _] => previous,
            _ => return (rounds.len() as u32 >= cap).then(|| format!("round cap ({cap}) reached")),
        };
        // CRIU's own code writes to every thread's stack in each round: a
        // transparent huge page there comes back dirty whole (512 pages)
        // although the service did nothing.
        if !last.ran {
            return Some(format!(
                "converged: no task ran since round {} (round {} wrote {} pages: CRIU's own writes)",
                previous.round, last.round, last.pages_written
            ));
        }
        // A run's first round catches up (everything, or all since a warm
        // snapshot): the dirty set is judged from the run's third round on.
        let judged = rounds.len() >= 3;
        let (now, before) = (last.pages_written as f64, previous.pages_written as f64);
        if judged && now > before * (1.0 + self.max_growth) {
            return Some(format!(
                "diverging: round {} wrote {} pages, more than {:.0} % above round {} ({})",
                last.round,
                last.pages_written,
                self.max_growth * 100.0,
                previous.round,
                previous.pages_written
            ));
        }
        if rounds.len() as u32 >= cap {
            return Some(format!("round cap ({cap}) reached"));
        }
        (judged && now >= before * (1.0 - self.max_growth)).then(|| {
            format!(
                "steady: round {} wrote {} pages, within {:.0} % of round {} ({}): more rounds would not shrink the final dump",
                last.round,
                last.pages_written,
                self.max_growth * 100.0,
                previous.round,
                previous.pages_written
            )
        })
    }
}

/// One unit's pre-dumps so far.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Chain {
    pub rounds: Vec<PreDumpRound>,
    /// Why the rounds stopped.
    pub convergence: String,
    /// Its tasks' CPU time after the last pre-dump: the final dump
    /// compares against it.
    pub baseline: Option<ActivitySample>,
    /// The last good round's directory name (`pre-N`), parent of the final
    /// dump. None: no usable chain, the final dump is full.
    pub parent: Option<String>,
    /// Set when the unit's main process died with a failed pre-dump (a
    /// CRIU killed with its parasite inside): why. The unit is started
    /// afresh and the loss reported.
    #[serde(default)]
    pub lost: Option<String>,
}

struct Unit<'a> {
    planned: &'a PlannedUnit,
    cap: u32,
    chain: Chain,
    /// Rounds before this index come from a warm snapshot: the policy
    /// judges only this run's rounds.
    first_new: usize,
    done: bool,
    /// When `chain.baseline` was sampled in this run.
    baseline_at: Option<std::time::Instant>,
}

/// Phase 1 for the plan's preserved units that allow pre-dumps: the
/// rounds, then each chain checksummed into the manifest (so the stoppage
/// hashes only the final dumps). Between two rounds it stops once
/// `cancelled` says so or its deadline has passed, and says which.
pub fn phase1(
    dumper: &dyn Dumper,
    store: &Store,
    plan: &Plan,
    config: &UpgradeConfig,
    progress: &dyn Fn(Progress),
    warm: BTreeMap<String, Chain>,
    cancelled: &dyn Fn() -> bool,
) -> Result<(BTreeMap<String, Chain>, Option<Cut>), UpgradeError> {
    let units: Vec<PlannedUnit> = plan
        .preserved
        .iter()
        .filter(|u| u.pre_dump)
        .cloned()
        .collect();
    let (chains, cut) = run(
        dumper,
        store,
        &units,
        &Policy::from_config(config),
        progress,
        warm,
        cancelled,
    );
    for (name, _) in chains.iter().filter(|(_, c)| c.parent.is_some()) {
        store.seal_unit(name)?;
    }
    Ok((chains, cut))
}

/// Starts afresh the units whose main process died with a failed pre-dump
/// (their Restart= may have done it already) and returns the losses, for
/// the report. A service that ended on its own meanwhile (a daemon that
/// exits when idle, whose process was gone when CRIU came) lost nothing.
pub fn start_lost(
    seams: &Seams,
    chains: &BTreeMap<String, Chain>,
    progress: &dyn Fn(Progress),
) -> Result<Vec<Loss>, UpgradeError> {
    let mut losses = Vec::new();
    for (name, chain) in chains {
        let Some(why) = &chain.lost else {
            continue;
        };
        if seams.host.ended_on_its_own(name) {
            tracing::info!("{name}: ended on its own during phase 1: nothing to carry");
            continue;
        }
        let loss = Loss {
            unit: name.clone(),
            reason: why.clone(),
        };
        tracing::warn!("{loss}");
        progress(Progress::new(Phase::PreDump, name, 0, &loss.to_string()));
        seams
            .host
            .run_job(name, Job::Start)
            .map_err(|source| UpgradeError::StartAfresh {
                unit: name.clone(),
                source,
            })?;
        losses.push(loss);
    }
    Ok(losses)
}

/// Runs phase 1 over `units` (the plan's preserved units with pre-dumps
/// on) and returns each one's chain, by unit name. A unit with a chain in
/// `warm` continues it.
fn run(
    dumper: &dyn Dumper,
    store: &Store,
    units: &[PlannedUnit],
    policy: &Policy,
    progress: &dyn Fn(Progress),
    mut warm: BTreeMap<String, Chain>,
    cancelled: &dyn Fn() -> bool,
) -> (BTreeMap<String, Chain>, Option<Cut>) {
    let started = std::time::Instant::now();
    let cut_now = || {
        if cancelled() {
            return Some(Cut::Cancelled);
        }
        policy
            .deadline
            .filter(|deadline| started.elapsed() >= *deadline)
            .map(Cut::Deadline)
    };
    let mut cut = None;
    let mut units: Vec<Unit> = units
        .iter()
        .map(|planned| {
            let chain = warm.remove(&planned.name).unwrap_or_default();
            Unit {
                planned,
                cap: planned
                    .pre_dump_max_rounds
                    .map_or(policy.max_rounds, |c| c.min(policy.max_rounds)),
                first_new: chain.rounds.len(),
                chain,
                done: false,
                baseline_at: None,
            }
        })
        .collect();
    for _ in 1..=policy.max_rounds {
        let mut pending: Vec<&mut Unit> = units.iter_mut().filter(|u| !u.done).collect();
        if pending.is_empty() {
            break;
        }
        // Sleeping units first: freezing them costs them nothing. Then
        // the least critical first, so the critical ones' last pre-dump is
        // the freshest when the stoppage begins.
        // Cached: the key reads /proc, once per unit.
        pending.sort_by_cached_key(|u| {
            let pids = cgroup_pids(&u.planned.name);
            (
                !activity::all_asleep(Path::new("/proc"), &pids),
                u.planned.priority,
            )
        });
        for unit in pending {
            cut = cut.or_else(cut_now);
            if let Some(why) = cut {
                progress(Progress::new(
                    Phase::PreDump,
                    &unit.planned.name,
                    0,
                    &why.to_string(),
                ));
                unit.chain.convergence = why.to_string();
                unit.done = true;
                continue;
            }
            let round = unit.chain.rounds.last().map_or(1, |r| r.round + 1);
            pre_dump_round(dumper, store, unit, round, policy, progress);
        }
        if cut.is_some() {
            break;
        }
    }
    let chains = units
        .into_iter()
        .map(|u| (u.planned.name.clone(), u.chain))
        .collect();
    (chains, cut)
}

fn pre_dump_round(
    dumper: &dyn Dumper,
    store: &Store,
    unit: &mut Unit,
    round: u32,
    policy: &Policy,
    progress: &dyn Fn(Progress),
) {
    let name = &unit.planned.name;
    if let Some(remaining) = unit
        .baseline_at
        .and_then(|at| ACTIVITY_WINDOW.checked_sub(at.elapsed()))
    {
        std::thread::sleep(remaining);
    }
    let started_usec = wall_usec();
    let before = ActivitySample::take(Path::new("/proc"), &cgroup_pids(name)).ok();
    let ran = match (&unit.chain.baseline, &before) {
        (Some(baseline), Some(now)) => !now.ran_since(baseline).is_empty(),
        _ => true,
    };
    progress(Progress::new(
        Phase::PreDump,
        name,
        0,
        &format!("round {round}: copying memory in the background"),
    ));
    let dir_name = format!("pre-{round}");
    let result = pre_dump(dumper, store, unit, &dir_name, policy);
    let dir = match result {
        Ok(dir) => dir,
        Err(e) => {
            tracing::warn!("{name}: pre-dump round {round} failed: {e}");
            drop_chain(store, name);
            // A process CRIU's parasite was in when CRIU died ends as soon
            // as it runs again.
            std::thread::sleep(Duration::from_millis(200));
            let main_pid = unit.planned.main_pid;
            let lost = (!activity::alive(Path::new("/proc"), main_pid)).then(|| {
                format!("its main process {main_pid} died when pre-dump round {round} failed ({e})")
            });
            unit.chain = Chain {
                rounds: std::mem::take(&mut unit.chain.rounds),
                convergence: format!("pre-dump round {round} failed: {e}; the final dump is full"),
                baseline: None,
                parent: None,
                lost,
            };
            unit.done = true;
            progress(Progress::new(
                Phase::PreDump,
                name,
                0,
                &unit.chain.convergence,
            ));
            return;
        }
    };
    let duration_ms = (wall_usec().saturating_sub(started_usec)) as f64 / 1000.0;
    let stats = relive_criu::read_dump_stats(&dir);
    let bytes = relive_criu::images_size(&dir).unwrap_or(0);
    let pages_written = match &stats {
        Ok(s) => s.pages_written,
        Err(_) => bytes / PAGE,
    };
    let record = PreDumpRound {
        round,
        started_usec,
        duration_ms,
        frozen_ms: stats
            .as_ref()
            .ok()
            .map(|s| s.frozen_time_us as f64 / 1000.0),
        pages_written,
        bytes,
        ran,
    };
    progress(Progress::new(
        Phase::PreDump,
        name,
        bytes,
        &format!(
            "round {round}: {pages_written} pages written, frozen {}, {duration_ms:.0} ms",
            record
                .frozen_ms
                .map_or("?".to_owned(), |ms| format!("{ms:.1} ms"))
        ),
    ));
    unit.chain.rounds.push(record);
    unit.chain.parent = Some(dir_name);
    std::thread::sleep(SETTLE);
    unit.chain.baseline = ActivitySample::take(Path::new("/proc"), &cgroup_pids(name)).ok();
    unit.baseline_at = Some(std::time::Instant::now());
    if let Some(reason) = policy.stop_reason(&unit.chain.rounds[unit.first_new..], unit.cap) {
        progress(Progress::new(Phase::PreDump, name, 0, &reason));
        unit.chain.convergence = reason;
        unit.done = true;
    }
}

/// One pre-dump into `images/UNIT/DIR_NAME`; returns that directory.
fn pre_dump(
    dumper: &dyn Dumper,
    store: &Store,
    unit: &Unit,
    dir_name: &str,
    policy: &Policy,
) -> Result<PathBuf, DumpError> {
    let name = &unit.planned.name;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DumpError::Io { path, source }
    };
    let dir_path = store.unit_dir(name)?.join(dir_name);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir_path)
        .map_err(io(&dir_path))?;
    let (root, shell_job) = crate::tree::dump_root(unit.planned.main_pid, &unit.planned.pids);
    dumper.pre_dump(&PreDumpJob {
        unit: name,
        root_pid: root as i32,
        shell_job,
        dir: &dir_path,
        parent: unit
            .chain
            .parent
            .as_ref()
            .map(|p| PathBuf::from("..").join(p)),
        mode: policy.mode,
        priority: policy.priority,
        estimated_bytes: unit.planned.estimated_bytes,
    })?;
    Ok(dir_path)
}

/// Removes a unit's pre-dump directories.
fn drop_chain(store: &Store, name: &str) {
    let Ok(dir) = store.unit_dir(name) else {
        return;
    };
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with("pre-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The unit's processes now (they may have forked since the plan), in
/// its cgroup and those below it (where an ssh login's processes wait
/// out the checkpoint).
pub fn cgroup_pids(unit: &str) -> Vec<u32> {
    let fs = relive_sys::cgroup::CgroupFs::new(relive_sys::cgroup::ROOT);
    let mut pids = Vec::new();
    let mut cgroups = vec![relive_sys::cgroup::unit_cgroup(unit)];
    while let Some(cgroup) = cgroups.pop() {
        pids.extend(
            fs.pids(&cgroup)
                .unwrap_or_default()
                .into_iter()
                .map(|p| p as u32),
        );
        let children = fs.children(&cgroup).unwrap_or_default();
        cgroups.extend(children.into_iter().map(|c| format!("{cgroup}/{c}")));
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_rounds: 8,
            min_dirty_pages: 64,
            max_growth: 0.10,
            mode: PreDumpMode::Read,
            priority: PreDumpPriority::Share(3),
            deadline: None,
        }
    }

    fn rounds(pages: &[u64]) -> Vec<PreDumpRound> {
        pages
            .iter()
            .enumerate()
            .map(|(i, p)| PreDumpRound {
                round: i as u32 + 1,
                pages_written: *p,
                ran: true,
                ..PreDumpRound::default()
            })
            .collect()
    }

    #[test]
    fn stops_when_a_round_writes_few_pages() {
        let reason = policy().stop_reason(&rounds(&[8192, 300, 12]), 8).unwrap();
        assert!(
            reason.starts_with("converged: round 3 wrote 12 pages"),
            "{reason}"
        );
        assert_eq!(policy().stop_reason(&rounds(&[8192, 300]), 8), None);
    }

    #[test]
    fn stops_when_the_dirty_set_grows() {
        // Round 2 is always smaller than the full first round; growth is
        // judged from round 2 on.
        let reason = policy()
            .stop_reason(&rounds(&[8192, 1000, 1200]), 8)
            .unwrap();
        assert!(reason.starts_with("diverging: round 3"), "{reason}");
        assert_eq!(policy().stop_reason(&rounds(&[8192, 1000, 500]), 8), None);
    }

    #[test]
    fn stops_when_the_dirty_set_no_longer_shrinks() {
        let reason = policy()
            .stop_reason(&rounds(&[8192, 1000, 950]), 8)
            .unwrap();
        assert!(reason.starts_with("steady: round 3 wrote 950"), "{reason}");
        // Round 2 against the full round 1 is not judged.
        assert_eq!(policy().stop_reason(&rounds(&[1000, 990]), 8), None);
    }

    #[test]
    fn stops_when_no_task_ran_since_the_last_round() {
        let mut r = rounds(&[8192, 514]);
        r[1].ran = false;
        let reason = policy().stop_reason(&r, 8).unwrap();
        assert!(
            reason.starts_with("converged: no task ran since round 1"),
            "{reason}"
        );
    }

    #[test]
    fn stops_at_the_cap_when_the_dirty_set_stays_large() {
        let r = rounds(&[4096, 4096, 4096]);
        assert_eq!(policy().stop_reason(&r[..2], 3), None);
        assert_eq!(
            policy().stop_reason(&r, 3).unwrap(),
            "round cap (3) reached"
        );
    }

    #[test]
    fn a_tiny_unit_converges_in_one_round() {
        let reason = policy().stop_reason(&rounds(&[40]), 8).unwrap();
        assert!(reason.starts_with("converged: round 1"), "{reason}");
    }
}
