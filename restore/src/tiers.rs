//! The restores of one priority, several at once: CRIU's restore is
//! mostly one busy process and the trees of different units share
//! nothing it touches.

use crate::hold_lifter::HoldLifter;
use crate::verifier::Verifier;
use crate::{revive, Seams};
use relive_api::report::{Outcome, UnitRecord};
use relive_store::Store;
use relive_sys::wall_usec;

/// How many units of one priority are restored at once: CRIU's restore
/// is mostly one busy process, so one per CPU, and no more than four
/// (each also holds its images' pages in the page cache).
fn restore_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Restores the units of one priority, several at once; returns those
/// that could not be restored.
pub(crate) fn restore_tier(
    seams: Seams,
    store: &Store,
    verifier: &Verifier,
    lifter: &HoldLifter,
    tails: &LazyTails,
    tier: &mut [&mut UnitRecord],
) -> Vec<String> {
    let workers = restore_workers().min(tier.len());
    if workers <= 1 {
        return tier
            .iter_mut()
            .filter_map(|record| restore_one(seams, store, verifier, lifter, tails, record))
            .collect();
    }
    let queue = std::sync::Mutex::new(tier.iter_mut());
    let lost = std::sync::Mutex::new(Vec::new());
    let work = || loop {
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
        let Some(record) = next else { break };
        if let Some(name) = restore_one(seams, store, verifier, lifter, tails, record) {
            lost.lock().unwrap_or_else(|e| e.into_inner()).push(name);
        }
    };
    std::thread::scope(|scope| {
        // This thread is a worker too: if no helper thread can be made
        // (a task limit), the tier is restored here, one unit at a time.
        for _ in 1..workers {
            if let Err(e) = std::thread::Builder::new()
                .name("relive-restore".into())
                .spawn_scoped(scope, work)
            {
                tracing::warn!("cannot start a restore thread ({e}): fewer at once");
            }
        }
        work();
    });
    lost.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Restores one unit from its checked images and hands it back to PID
/// 1; returns its name if it could not be restored (it is then started
/// afresh, once new processes take PIDs above the floor again).
fn restore_one(
    seams: Seams,
    store: &Store,
    verifier: &Verifier,
    lifter: &HoldLifter,
    tails: &LazyTails,
    record: &mut UnitRecord,
) -> Option<String> {
    let host = seams.host;
    #[cfg(feature = "fault-injection")]
    {
        use relive_host::fault::{self, Fault};
        if fault::injected_in_store(&store.root, Fault::PanicResume, &record.name) {
            panic!("injected fault (panic-resume {})", record.name);
        }
    }
    let mut laps = relive_sys::laps::Laps::start();
    if let Err(e) = host.prepare_restore(&record.name) {
        tracing::warn!("{}: {e}", record.name);
    }
    laps.lap("prepare");
    let lazy = record
        .lazy_restore
        .then(|| seams.restorer.start_lazy(host, store, record))
        .flatten()
        .and_then(|started| {
            started
                .inspect_err(|e| tracing::warn!("{}: restored whole, not lazily: {e}", record.name))
                .ok()
        });
    // Its page images left to the page server's checks, which did not
    // start after all: checked here, whole.
    let whole_after_all = record.lazy_restore && lazy.is_none();
    laps.lap("lazy");
    // The checker thread went through the images ahead; the processes
    // CRIU rebuilds wait for its verdict on this unit before they run.
    // Passed, the unit's connections are let through, where CRIU would
    // unlock them itself (lock_merge).
    let name = record.name.clone();
    let check = || {
        let mut checked = verifier.wait(&name);
        if whole_after_all {
            checked = checked.and_then(|ms| Ok(ms + revive::verify(store, &name)?));
        }
        if checked.is_ok() {
            crate::lock_merge::release_on_resume(host, store, &name);
        }
        checked
    };
    let view = lazy.as_ref().map(|l| l.view_dir.clone());
    let restored = revive::restore_checked(seams.restorer, store, record, &check, view.as_deref());
    laps.lap("restore");
    match restored {
        Ok(revived) => {
            if let Some(lazy) = lazy {
                tails.add(&record.name, lazy);
            }
            record.restore_ms = Some(revived.elapsed_ms);
            record.verify_ms = Some(revived.verify_ms);
            record.running_usec = Some(wall_usec());
            record.outcome = Some(Outcome::Restored);
            let (pid, steps) = (revived.pid, revived.steps);
            crate::mount_flags::set_again(host, record, revived.pid);
            laps.lap("mount flags");
            host.unpark(&record.name, revived.pid, revived.outputs);
            laps.lap("hand back");
            lifter.restored(record, revived.pid);
            laps.lap("hold");
            tracing::info!(
                "{}: restored as PID {pid} in {laps} (the restore's {steps})",
                record.name
            );
            None
        }
        Err(e) => {
            if let Some(lazy) = lazy {
                lazy.abandon();
            }
            let reason = e.to_string();
            lifter.ended(record);
            host.forget_parked(&record.name, &reason);
            record.outcome = Some(Outcome::Lost { reason });
            Some(record.name.clone())
        }
    }
}

/// The lazy restores whose pages are still being served, to wait for
/// before the report.
#[derive(Debug, Default)]
pub(crate) struct LazyTails(std::sync::Mutex<Vec<(String, crate::lazy::Lazy, std::time::Instant)>>);

impl LazyTails {
    fn add(&self, unit: &str, lazy: crate::lazy::Lazy) {
        let running = (unit.to_owned(), lazy, std::time::Instant::now());
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(running);
    }

    /// Waits for every tail: each unit's figures go into its record; a
    /// unit whose page source failed (its processes were killed) is
    /// started afresh, its state reported lost.
    pub(crate) fn finish(self, seams: Seams, records: &mut [UnitRecord]) {
        let tails = self.0.into_inner().unwrap_or_else(|e| e.into_inner());
        for (unit, lazy, running_since) in tails {
            let figures = lazy.finish(running_since);
            let Some(record) = records.iter_mut().find(|r| r.name == unit) else {
                continue;
            };
            if let Some(why) = &figures.failure {
                record.outcome = Some(Outcome::Lost {
                    reason: format!("restored lazily, {why}"),
                });
                if let Err(e) = seams.host.run_job(&unit, relive_host::Job::Start) {
                    tracing::error!("{unit}: cannot start afresh either: {e}");
                }
                record.new_main_pid = seams.host.main_pid(&unit);
            } else {
                tracing::info!(
                    "{unit}: its lazy pages all served: {} MiB in {} requests, the last {:.0} ms after it ran again",
                    figures.served_bytes >> 20,
                    figures.requests,
                    figures.tail_ms.unwrap_or(0.0)
                );
            }
            record.lazy = Some(figures);
        }
    }
}
