//! After the kexec: the network locks, the rerun units, the restores
//! (rollback units first, then the most critical first), the units whose
//! state was lost and the restart units started, and the report.

use crate::verifier::Verifier;
use crate::{netlock, revive, rollback, Seams};
use relive_api::report::{
    EarlyStep, EarlyWork, Outcome, UnitMode, UnitRecord, UpgradeReport, CLOCK_NOTE,
};
use relive_host::{panic_message, Job};
use relive_store::handover::{kernel_release, KexecHandover};
use relive_store::{memory, Store};
use relive_sys::wall_usec;
use std::path::Path;

/// Where CRIU's logs of the last upgrade are kept.
pub const CRIU_LOGS: &str = "/var/log/relive/upgrade";

/// Where the last upgrade's report is kept.
pub const REPORT_PATH: &str = "/var/lib/relive/last-upgrade.json";

/// Runs the resume on the upgrade worker thread, with PID 1's loop
/// running; returns the report. A panic in it is survived: what was
/// restored runs on, every other unit is started afresh, and the report
/// says so.
pub fn resume(
    seams: Seams,
    store: &Store,
    mut handover: KexecHandover,
    resumed_usec: u64,
) -> UpgradeReport {
    let mut records = std::mem::take(&mut handover.units);
    let mut early = Early {
        resumed_usec,
        steps: Vec::new(),
        restores_started_usec: 0,
    };
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        resume_units(seams, store, &handover, &mut records, &mut early)
    }));
    if let Err(panic) = run {
        let reason = format!("relive's resume code panicked: {}", panic_message(&panic));
        tracing::error!("{reason}; starting every unit not running yet");
        for record in records.iter_mut().filter(|r| r.outcome.is_none()) {
            record.outcome = Some(Outcome::Lost {
                reason: reason.clone(),
            });
        }
        let names: Vec<String> = records
            .iter()
            .map(|r| r.name.clone())
            .chain(handover.plan.restarted.iter().cloned())
            .collect();
        for name in &names {
            if seams.host.is_parked(name) {
                seams.host.forget_parked(name, &reason);
            }
        }
        seams.host.end_upgrade();
        let target = seams.host.boot_target();
        for name in names.iter().chain(std::iter::once(&target)) {
            seams.host.queue_start(name);
        }
    }
    drop_stale_locks(seams, &records);
    report(&handover, records, early)
}

/// What the resume did before its first restore, and when.
struct Early {
    resumed_usec: u64,
    steps: Vec<EarlyStep>,
    restores_started_usec: u64,
}

impl Early {
    /// `work` done now.
    fn done(&mut self, work: EarlyWork, ok: bool) {
        let done_ms = wall_usec().saturating_sub(self.resumed_usec) as f64 / 1000.0;
        self.steps.push(EarlyStep { work, done_ms, ok });
    }
}

/// The network lock of a unit that was not restored holds connections
/// that are gone: its table goes (CRIU removes it after a restore).
fn drop_stale_locks(seams: Seams, records: &[UnitRecord]) {
    let stale = records
        .iter()
        .filter(|r| r.lock_saved && r.outcome != Some(Outcome::Restored));
    for record in stale {
        if let Err(e) = netlock::remove(seams.host, record) {
            tracing::warn!("{}: {e}", record.name);
        }
    }
}

/// Reruns, restores (filling `records` in as it goes), starts the rest.
fn resume_units(
    seams: Seams,
    store: &Store,
    handover: &KexecHandover,
    records: &mut [UnitRecord],
    early_steps: &mut Early,
) {
    let host = seams.host;
    // Rollback units are restored first, each checked on the spot; the
    // others are checked ahead, most critical first. With rollback units,
    // only once they are back: a rollback unmounts the memory store, which
    // the checks would keep busy.
    let rollback_first = handover.rolled_back.is_none() && records.iter().any(|r| r.rollback);
    let ahead: Vec<String> = records
        .iter()
        .rev()
        .filter(|r| !r.rollback || !rollback_first)
        .map(|r| r.name.clone())
        .collect();
    let early = (!rollback_first).then(|| Verifier::start(store, ahead.clone()));
    prepare_new_kernel(seams, store, handover, records, early_steps);
    // OnRestoreFailure=rollback units first: their failure sends the
    // machine back to the previous kernel (once).
    if rollback_first {
        if let Err(e) = rollback::restore_first(seams, store, handover, records) {
            tracing::error!("{e}");
        }
    }
    // The services' layer of the reruns goes on beside the restores.
    let lost = std::thread::scope(|scope| {
        let beside = scope.spawn(|| match &handover.plan.rerun_beside_restores[..] {
            [] => Vec::new(),
            units => host.start_together(units),
        });
        let verifier = early.unwrap_or_else(|| Verifier::start(store, ahead));
        let mut lost: Vec<String> = Vec::new();
        // Most critical first: one priority after another, the units of
        // one priority in parallel.
        let mut pending: Vec<&mut UnitRecord> = records
            .iter_mut()
            .rev()
            .filter(|r| r.outcome != Some(Outcome::Restored))
            .collect();
        for tier in pending.chunk_by_mut(|a, b| a.priority == b.priority) {
            lost.extend(restore_tier(seams, store, &verifier, tier));
        }
        drop(verifier);
        match beside.join() {
            Ok(done) => {
                for (name, e) in done.into_iter().filter_map(|(n, d)| Some((n, d.err()?))) {
                    tracing::error!("{name}: rerun failed: {e}");
                }
            }
            Err(_) => tracing::error!("the reruns beside the restores panicked"),
        }
        lost
    });
    host.pids_above_floor();
    for name in &lost {
        if let Err(e) = host.run_job(name, Job::Start) {
            tracing::error!("{name}: cannot start afresh either: {e}");
        }
        if let Some(record) = records.iter_mut().find(|r| &r.name == name) {
            record.new_main_pid = host.main_pid(name);
        }
    }
    host.end_upgrade();
    let target = host.boot_target();
    // What restarted units read back when they start (logind's sessions,
    // whose processes crossed with their services above).
    for (name, _) in &handover.plan.carried_on_restart {
        if let Err(e) = relive_store::rundir::restore(&store.run_dir(name), Path::new("/run")) {
            tracing::error!("{name}: its state in /run did not come back: {e}");
        }
    }
    for name in &handover.plan.restarted {
        if let Err(e) = host.run_job(name, Job::Start) {
            tracing::error!("{name}: {e}");
        }
    }
    if let Err(e) = host.run_job(&target, Job::Start) {
        tracing::error!("{target}: {e}");
    }
}

/// How many units of one priority are restored at once: CRIU's restore
/// is mostly one busy process, so one per CPU, and no more than four
/// (each also holds its images' pages in the page cache).
fn restore_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Restores the units of one priority, several at once; returns those
/// that could not be restored.
fn restore_tier(
    seams: Seams,
    store: &Store,
    verifier: &Verifier,
    tier: &mut [&mut UnitRecord],
) -> Vec<String> {
    let workers = restore_workers().min(tier.len());
    if workers <= 1 {
        return tier
            .iter_mut()
            .filter_map(|record| restore_one(seams, store, verifier, record))
            .collect();
    }
    let queue = std::sync::Mutex::new(tier.iter_mut());
    let lost = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some(record) = next else { break };
                if let Some(name) = restore_one(seams, store, verifier, record) {
                    lost.lock().unwrap_or_else(|e| e.into_inner()).push(name);
                }
            });
        }
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
    if let Err(e) = host.prepare_restore(&record.name) {
        tracing::warn!("{}: {e}", record.name);
    }
    let restored = verifier
        .wait(&record.name)
        .and_then(|verify_ms| revive::restore_verified(seams.restorer, store, record, verify_ms));
    match restored {
        Ok(revived) => {
            record.restore_ms = Some(revived.elapsed_ms);
            record.verify_ms = Some(revived.verify_ms);
            record.running_usec = Some(wall_usec());
            record.outcome = Some(Outcome::Restored);
            tracing::info!(
                "{}: restored as PID {} in {:.0} ms",
                record.name,
                revived.pid,
                revived.elapsed_ms
            );
            crate::mount_flags::set_again(host, record, revived.pid);
            host.unpark(&record.name, revived.pid, revived.outputs);
            None
        }
        Err(e) => {
            let reason = e.to_string();
            host.forget_parked(&record.name, &reason);
            record.outcome = Some(Outcome::Lost { reason });
            Some(record.name.clone())
        }
    }
}

/// The new kernel made ready for the restores: CRIU's network locks
/// loaded again, CRIU's probe of the kernel run and the early rerun units
/// (and the mounts restored namespaces bind) started, each timed in
/// `early_steps`.
fn prepare_new_kernel(
    seams: Seams,
    store: &Store,
    handover: &KexecHandover,
    records: &[UnitRecord],
    early_steps: &mut Early,
) {
    let host = seams.host;
    std::thread::scope(|scope| {
        // CRIU's probe of the new kernel (seconds under emulation), from
        // the start and while the rerun units run, rather than in the
        // first restore, the most critical unit's. It needs only lo.
        let probe = scope.spawn(|| {
            let ok = seams.restorer.probe_kernel();
            (ok, wall_usec())
        });
        // The network lock CRIU held on the old kernel, before any
        // address is up.
        let locked: Vec<String> = records
            .iter()
            .filter(|r| r.lock_saved)
            .map(|r| r.name.clone())
            .collect();
        let failed = netlock::load_all(host, store, &locked);
        for (unit, e) in &failed {
            tracing::error!("{unit}: cannot restore its network lock: {e}");
        }
        early_steps.done(EarlyWork::NetworkLocks, failed.is_empty());
        let reruns_started_usec = wall_usec();
        // Together: one after another, they cost every preserved unit
        // seconds of stoppage. With them, the mounts the restored
        // namespaces bind from PID 1's (a separate /run/lock tmpfs on
        // Debian 13), whose devices the rerun udev trigger may bring.
        let mut first: Vec<String> = handover
            .plan
            .rerun
            .iter()
            .filter(|u| !handover.plan.rerun_beside_restores.contains(u))
            .cloned()
            .collect();
        for mount in mounts_needed(handover, records) {
            if !first.contains(&mount) {
                first.push(mount);
            }
        }
        let mut units = Vec::new();
        for (name, done) in host.start_together(&first) {
            if let Err(e) = &done {
                tracing::error!("{name}: rerun failed: {e}");
            }
            let done_usec = match &done {
                Ok(ms) => reruns_started_usec + (ms * 1000.0) as u64,
                Err(_) => wall_usec(),
            };
            units.push((EarlyWork::Unit(name), done_usec, done.is_ok()));
        }
        match probe.join() {
            Ok((ok, done_usec)) => units.push((EarlyWork::CriuProbe, done_usec, ok)),
            Err(_) => tracing::error!("CRIU's probe of the new kernel panicked"),
        }
        units.sort_by_key(|(_, done_usec, _)| *done_usec);
        for (work, done_usec, ok) in units {
            let done_ms = done_usec.saturating_sub(early_steps.resumed_usec) as f64 / 1000.0;
            early_steps.steps.push(EarlyStep { work, done_ms, ok });
        }
    });
    early_steps.restores_started_usec = wall_usec();
}

/// The mount units that were active on the old kernel and whose mount
/// point a preserved unit's own mount namespace had: CRIU binds those
/// from PID 1's mounts when it rebuilds the namespace, and fails ("Can't
/// stat mountpoint") if nothing is mounted there yet.
fn mounts_needed(handover: &KexecHandover, records: &[UnitRecord]) -> Vec<String> {
    handover
        .plan
        .mounts
        .iter()
        .filter(|(_, path)| path != "/")
        .filter(|(_, path)| {
            records
                .iter()
                .any(|r| r.mount_flags.iter().any(|(point, _)| point == path))
        })
        .map(|(unit, _)| unit.clone())
        .collect()
}

/// The report of an upgrade whose units are in `records`.
fn report(handover: &KexecHandover, records: Vec<UnitRecord>, early: Early) -> UpgradeReport {
    let mut units = records;
    let not_dumped = |names: &[String], mode, outcome: Outcome| {
        names
            .iter()
            .map(|n| UnitRecord::not_dumped(n, mode, outcome.clone()))
            .collect::<Vec<_>>()
    };
    units.extend(not_dumped(
        &handover.plan.restarted,
        UnitMode::Restart,
        Outcome::Restarted,
    ));
    units.extend(not_dumped(
        &handover.plan.rerun,
        UnitMode::Rerun,
        Outcome::Rerun,
    ));
    for unit in units.iter_mut().filter(|u| u.mode != UnitMode::Preserve) {
        if let Some((_, paths)) = handover
            .plan
            .carried_on_restart
            .iter()
            .find(|(name, _)| *name == unit.name)
        {
            unit.runtime_dirs = paths.clone();
        }
        if let Some((_, why)) = handover
            .plan
            .why
            .iter()
            .find(|(name, _)| *name == unit.name)
        {
            unit.why = why.clone();
        }
    }
    UpgradeReport {
        kernel_from: handover.kernel_from.clone(),
        kernel_to: kernel_release(),
        started_usec: handover.started_usec,
        kexec_usec: handover.kexec_usec,
        resumed_usec: early.resumed_usec,
        restores_started_usec: early.restores_started_usec,
        before_restores: early.steps,
        finished_usec: wall_usec(),
        mode: Some(handover.mode),
        phase1_started_usec: handover.phase1_started_usec,
        phase1_ended_usec: handover.phase1_ended_usec,
        store: handover.store.clone(),
        notes: handover.notes.clone(),
        losses: handover.losses.clone(),
        rolled_back: handover.rolled_back.clone(),
        aborted: None,
        total_image_bytes: units.iter().map(|u| u.image_bytes).sum(),
        longest_stoppage_ms: units
            .iter()
            .filter_map(|u| u.stoppage_ms())
            .fold(0.0, f64::max),
        units,
        clock: CLOCK_NOTE.into(),
    }
}

/// Writes a report to `path` whole or not at all (a new file renamed over
/// the old one), root-only: it names the machine's services and kernels.
pub fn write_report(path: &Path, report: &UpgradeReport) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = serde_json::to_vec_pretty(report)
        .map_err(|e| format!("cannot encode the upgrade report: {e}"))?;
    let failed = |e: std::io::Error| format!("{}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let temporary = path.with_extension("json.new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(failed)?;
    file.write_all(&text).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

/// Writes the report where relivectl reads it, keeps CRIU's logs and
/// wipes the store (its images hold process memory: not kept a moment
/// longer than needed).
pub fn finish(store: &Store, report: &UpgradeReport) {
    if let Err(e) = write_report(Path::new(REPORT_PATH), report) {
        tracing::error!("{e}");
    }
    tracing::info!(
        "live upgrade {} -> {} complete; longest stoppage {:.0} ms",
        report.kernel_from,
        report.kernel_to,
        report.longest_stoppage_ms
    );
    if let Err(e) = store.keep_logs(Path::new(CRIU_LOGS)) {
        tracing::warn!("cannot keep CRIU's logs: {e}");
    }
    if let Err(e) = store.wipe() {
        tracing::error!("cannot wipe the upgrade store: {e}");
    }
    if store.root.starts_with(memory::MOUNT_POINT) {
        memory::unmount();
    }
}
