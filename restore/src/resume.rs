//! After the kexec: the network locks, the rerun units, the restores
//! (rollback units first, then the most critical first), the units whose
//! state was lost and the restart units started, and the report.

use crate::early::{prepare_new_kernel, Ahead, Early};
use crate::tiers::{restore_tier, LazyTails};
use crate::verifier::Verifier;
use crate::{netlock, rollback, Seams};
use relive_api::report::{EarlyStep, Outcome, UnitMode, UnitRecord, UpgradeReport, CLOCK_NOTE};
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
    ahead: Ahead,
) -> UpgradeReport {
    let mut records = std::mem::take(&mut handover.units);
    // Before anything is restored or started: they all read this clock.
    let clock_offsets = seams.restorer.one_clock(Some(&handover.clock));
    let mut early = Early {
        resumed_usec,
        steps: ahead
            .steps
            .into_iter()
            .map(|(work, done_usec)| EarlyStep {
                work,
                done_ms: done_usec.saturating_sub(resumed_usec) as f64 / 1000.0,
                ok: true,
            })
            .collect(),
        restores_started_usec: 0,
        clock_offsets,
        network_units_beside: Vec::new(),
        probe_ahead: ahead.probe,
        checks_ahead: ahead.checks,
        load_at_start: ahead.load_at_start,
        exits: ahead.exits,
        kernel_boot: ahead.kernel_boot,
    };
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        resume_units(seams, store, &handover, &mut records, &mut early)
    }));
    if let Err(panic) = run {
        let reason = format!("relive's resume code panicked: {}", panic_message(&panic));
        tracing::error!("{reason}; starting every unit not running yet");
        for record in records.iter_mut().filter(|r| r.outcome.is_none()) {
            crate::syn_hold::ended(seams.host, record);
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
    // others are checked ahead, most critical first (from the handover's
    // reading, as a rule: relive's main started it).
    let rollback_first = crate::verifier::rollback_first(handover, records);
    let ahead = crate::verifier::check_order(handover, records);
    let checking_ahead = early_steps.checks_ahead.take().or_else(|| {
        (!rollback_first).then(|| Verifier::by_priority(store, records, ahead.clone()))
    });
    // What restarted units read back when they start (logind's sessions,
    // whose processes cross with their services): back from the start,
    // since a D-Bus activation may start logind before the resume does
    // (PID 1 holds such a start until no unit is parked).
    for (name, _) in &handover.plan.carried_on_restart {
        if let Err(e) = relive_store::rundir::restore(&store.run_dir(name), Path::new("/run")) {
            tracing::error!("{name}: its state in /run did not come back: {e}");
        }
    }
    prepare_new_kernel(seams, store, handover, records, early_steps);
    // Socket ends that no restore takes are closed once all are done.
    let hang_up = crate::switchboard::HangUpAfter;
    // OnRestoreFailure=rollback units first: their failure sends the
    // machine back to the previous kernel (once).
    if rollback_first {
        if let Err(e) = rollback::restore_first(seams, store, handover, records) {
            tracing::error!("{e}");
        }
    }
    // The services' layer of the reruns goes on beside the restores, once
    // the most critical units are back: nothing restored waits for it,
    // and under emulation it took the CPUs from the first restores.
    let beside: Vec<String> = early_steps
        .network_units_beside
        .iter()
        .chain(&handover.plan.rerun_beside_restores)
        .cloned()
        .collect();
    let tails = LazyTails::default();
    let lost = std::thread::scope(|scope| {
        let rerun_beside = || match &beside[..] {
            [] => Vec::new(),
            units => host.start_together(units),
        };
        let verifier =
            checking_ahead.unwrap_or_else(|| Verifier::by_priority(store, records, ahead));
        let lifter = crate::hold_lifter::HoldLifter::start(scope, host);
        let mut lost: Vec<String> = Vec::new();
        // Most critical first: one priority after another, the units of
        // one priority in parallel.
        let mut pending: Vec<&mut UnitRecord> = records
            .iter_mut()
            .rev()
            .filter(|r| r.outcome != Some(Outcome::Restored))
            .collect();
        let mut tiers = pending.chunk_by_mut(|a, b| a.priority == b.priority);
        if let Some(most_critical) = tiers.next() {
            let (started, load) = (wall_usec(), relive_sys::load::LoadSample::now());
            crate::early::urgent(crate::early::URGENT_NICE);
            lost.extend(restore_tier(
                seams,
                store,
                &verifier,
                &lifter,
                &tails,
                most_critical,
            ));
            crate::early::urgent(0);
            if let (Some(load), Some(now)) = (load, relive_sys::load::LoadSample::now()) {
                let secs = wall_usec().saturating_sub(started) as f64 / 1e6;
                tracing::info!(
                    "the {secs:.1} s of the most critical units' restores: {}",
                    load.until(&now)
                );
                tracing::info!(
                    "the CPU time of the most critical units' restores: {}",
                    load.cpu_until(&now)
                );
            }
        }
        verifier.open_rest();
        host.most_critical_restored();
        // Without a thread for them (a task limit), they run after the
        // restores instead.
        let beside = std::thread::Builder::new()
            .name("relive-reruns".into())
            .spawn_scoped(scope, rerun_beside)
            .inspect_err(|e| tracing::warn!("cannot start the reruns' thread ({e})"));
        for tier in tiers {
            lost.extend(restore_tier(seams, store, &verifier, &lifter, &tails, tier));
        }
        drop(verifier);
        lifter.finish();
        let done = match beside {
            Ok(thread) => thread.join().unwrap_or_else(|_| {
                tracing::error!("the reruns beside the restores panicked");
                Vec::new()
            }),
            Err(_) => rerun_beside(),
        };
        for (name, e) in done.into_iter().filter_map(|(n, d)| Some((n, d.err()?))) {
            tracing::error!("{name}: rerun failed: {e}");
        }
        lost
    });
    drop(hang_up);
    crate::lock_merge::end_on_resume(host, store);
    if records.iter().any(|r| !r.hold_ports.is_empty()) {
        crate::syn_hold::drop_table(host);
    }
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
    for name in &handover.plan.restarted {
        if let Err(e) = host.run_job(name, Job::Start) {
            tracing::error!("{name}: {e}");
        }
    }
    if let Err(e) = host.run_job(&target, Job::Start) {
        tracing::error!("{target}: {e}");
    }
    // The report waits for the lazy restores' last pages (the units run
    // meanwhile), and the store, which serves them, stays until then.
    tails.finish(seams, records);
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
        unit.runtime_dirs = handover.plan.carried_on_restart_of(&unit.name).to_vec();
        if let Some(why) = handover.plan.why_of(&unit.name) {
            unit.why = why.to_owned();
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
        new_kernel_boot: early.kernel_boot,
        finished_usec: wall_usec(),
        mode: Some(handover.mode),
        phase1_started_usec: handover.phase1_started_usec,
        phase1_ended_usec: handover.phase1_ended_usec,
        phase1_cpu: handover.phase1_cpu.clone(),
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
        clock_offsets: early.clock_offsets,
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
