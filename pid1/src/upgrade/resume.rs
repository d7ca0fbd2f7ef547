//! After the kexec: relive finds the handover, reruns the rerun units,
//! restores the preserved ones (most critical first), starts the rest and
//! writes the report.

use super::park::CGROUP_ROOT;
use super::record::{kernel_release, KexecHandover, UpgradeReport, CLOCK_NOTE};
use super::store::Store;
use super::{helper, on_loop, revive, run_job};
use crate::event_loop::CommandSender;
use crate::manager::clock::wall_usec;
use crate::manager::state::{ActiveState, JobKind, ManagerState, SubState};
use relive_config::Config;
use std::path::{Path, PathBuf};

/// Where CRIU's logs of the last upgrade are kept.
pub const CRIU_LOGS: &str = "/var/log/relive/upgrade";

/// Where the last upgrade's report is kept.
pub const REPORT_PATH: &str = "/var/lib/relive/last-upgrade.json";

/// `relive.handover=PATH` on the kernel command line.
pub fn marker(cmdline: &str) -> Option<PathBuf> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("relive.handover="))
        .map(PathBuf::from)
}

/// Reads and checks the handover the previous kernel left.
pub fn read(store: &Store) -> Result<KexecHandover, String> {
    let payload = store.read_state().map_err(|e| e.to_string())?;
    serde_json::from_slice(&payload).map_err(|e| format!("cannot decode the handover: {e}"))
}

/// The manager's state to start from: the old one, with everything that
/// belonged to the old kernel (PIDs, deadlines, jobs) cleared; preserved
/// units parked until their restore.
pub fn state_for_new_kernel(handover: &KexecHandover) -> ManagerState {
    let mut state = handover.state.clone();
    state.upgrading = true;
    state.shutdown = None;
    for u in state.units.values_mut() {
        u.main_pid = None;
        u.control_pid = None;
        u.control = None;
        u.job = None;
        u.deadline = None;
        u.start_times.clear();
        u.parked = handover.units.iter().any(|r| r.name == u.name);
        if !u.parked {
            u.active = ActiveState::Inactive;
            u.sub = SubState::Dead;
        }
    }
    state
}

/// Runs the resume on the upgrade worker thread, with the loop running.
/// A panic in it is survived: what was restored runs on, every other unit
/// is started afresh, and the report says so.
pub fn resume(
    commands: &CommandSender,
    store: Store,
    mut handover: KexecHandover,
    config: &Config,
    resumed_usec: u64,
) {
    let mut records = std::mem::take(&mut handover.units);
    let mut restores_started_usec = 0;
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        resume_units(
            commands,
            &store,
            &handover,
            &mut records,
            config,
            &mut restores_started_usec,
        )
    }));
    if let Err(panic) = run {
        let reason = format!(
            "relive's resume code panicked: {}",
            super::park::panic_message(&panic)
        );
        tracing::error!("{reason}; starting every unit not running yet");
        for record in records.iter_mut().filter(|r| r.outcome.is_empty()) {
            record.outcome = format!("state lost: {reason}; started afresh");
        }
        let mut names: Vec<String> = records.iter().map(|r| r.name.clone()).collect();
        names.extend(handover.plan.restarted.iter().cloned());
        let _ = on_loop(commands, move |m| {
            for name in &names {
                if m.state.units.get(name).is_some_and(|u| u.parked) {
                    m.forget_parked(name, &reason);
                }
            }
            m.end_upgrade();
            let target = m.boot_target();
            for name in names.iter().chain(std::iter::once(&target)) {
                let _ = m.request(name, JobKind::Start);
            }
        });
    }
    drop_stale_locks(commands, &records);
    finish(
        &store,
        &handover,
        records,
        resumed_usec,
        restores_started_usec,
    );
}

/// The network lock of a unit that was not restored holds connections
/// that are gone: its table goes (CRIU removes it after a restore).
fn drop_stale_locks(commands: &CommandSender, records: &[super::record::UnitRecord]) {
    for record in records
        .iter()
        .filter(|r| r.lock_saved && r.outcome != "restored")
    {
        let table = format!("CRIU-{}", record.main_pid);
        if let Err(e) = helper::run_ok(
            commands,
            &["/usr/sbin/nft", "delete", "table", "inet", &table],
        ) {
            tracing::warn!("{}: {e}", record.name);
        }
    }
}

/// Reruns, restores (filling `records` in as it goes), starts the rest.
fn resume_units(
    commands: &CommandSender,
    store: &Store,
    handover: &KexecHandover,
    records: &mut [super::record::UnitRecord],
    config: &Config,
    restores_started_usec: &mut u64,
) {
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
    let early = (!rollback_first).then(|| super::verifier::Verifier::start(store, ahead.clone()));
    // The network lock CRIU held on the old kernel, before any address is up.
    for record in records.iter().filter(|r| r.lock_saved) {
        let file = store.lock_file(&record.name);
        if let Err(e) = helper::run_ok(
            commands,
            &["/usr/sbin/nft", "-f", &file.display().to_string()],
        ) {
            tracing::error!("{}: cannot restore its network lock: {e}", record.name);
        }
    }
    // Together: one after another, they cost every preserved unit seconds
    // of stoppage.
    for (name, e) in super::start_together(commands, &handover.plan.rerun) {
        tracing::error!("{name}: rerun failed: {e}");
    }
    *restores_started_usec = wall_usec();
    let upgrade = &config.upgrade;
    let mut lost: Vec<String> = Vec::new();
    // OnRestoreFailure=rollback units first: their failure sends the
    // machine back to the previous kernel (once).
    if rollback_first {
        if let Err(e) =
            super::rollback::restore_first(commands, store, handover, records, &upgrade.criu)
        {
            tracing::error!("{e}");
        }
    }
    let verifier = early.unwrap_or_else(|| super::verifier::Verifier::start(store, ahead));
    // Most critical first.
    let fault_file = store.root.join("fault-inject");
    for record in records.iter_mut().rev() {
        if record.outcome == "restored" {
            continue;
        }
        if super::fault::injected_in(&fault_file, "panic-resume", &record.name) {
            panic!("injected fault (panic-resume {})", record.name);
        }
        let name = record.name.clone();
        if let Err(e) = on_loop(commands, move |m| m.prepare_restore(&name)).and_then(|r| r) {
            tracing::warn!("{}: {e}", record.name);
        }
        let restored = verifier.wait(&record.name).and_then(|verify_ms| {
            revive::restore_verified(
                store,
                record,
                &upgrade.criu,
                Path::new(CGROUP_ROOT),
                verify_ms,
            )
        });
        match restored {
            Ok(revived) => {
                record.restore_ms = Some(revived.elapsed_ms);
                record.verify_ms = Some(revived.verify_ms);
                record.running_usec = Some(wall_usec());
                record.outcome = "restored".into();
                tracing::info!(
                    "{}: restored as PID {} in {:.0} ms",
                    record.name,
                    revived.pid,
                    revived.elapsed_ms
                );
                let name = record.name.clone();
                let _ = async_io::block_on(
                    commands.call(move |m| m.unpark(&name, revived.pid, revived.outputs)),
                );
            }
            Err(e) => {
                record.outcome = format!("state lost: {e}; started afresh");
                let name = record.name.clone();
                let reason = e.clone();
                let _ = on_loop(commands, move |m| m.forget_parked(&name, &reason));
                // Started below, once new processes take PIDs above the floor again.
                lost.push(record.name.clone());
            }
        }
    }
    // Services started from now on take PIDs above the floor again.
    let sysctls = relive_restore::pid_space::PidSysctls::default();
    if let Err(e) = sysctls.prepare(0, config.pids.floor) {
        tracing::warn!("cannot move the PID counter: {e}");
    }
    for name in &lost {
        if let Err(e) = run_job(commands, name, JobKind::Start) {
            tracing::error!("{name}: cannot start afresh either: {e}");
        }
    }
    let _ = on_loop(commands, |m| m.end_upgrade());
    let target = on_loop(commands, |m| m.boot_target()).unwrap_or_default();
    for name in &handover.plan.restarted {
        let _ = run_job(commands, name, JobKind::Start).map_err(|e| tracing::error!("{name}: {e}"));
    }
    if let Err(e) = run_job(commands, &target, JobKind::Start) {
        tracing::error!("{target}: {e}");
    }
}

/// Writes the report, keeps CRIU's logs and wipes the store.
fn finish(
    store: &Store,
    handover: &KexecHandover,
    records: Vec<super::record::UnitRecord>,
    resumed_usec: u64,
    restores_started_usec: u64,
) {
    let mut units = records;
    units.extend(
        handover
            .plan
            .restarted
            .iter()
            .map(|n| super::record::UnitRecord {
                name: n.clone(),
                mode: "restart".into(),
                outcome: "restarted".into(),
                ..Default::default()
            }),
    );
    units.extend(
        handover
            .plan
            .rerun
            .iter()
            .map(|n| super::record::UnitRecord {
                name: n.clone(),
                mode: "rerun".into(),
                outcome: "rerun".into(),
                ..Default::default()
            }),
    );
    let report = UpgradeReport {
        kernel_from: handover.kernel_from.clone(),
        kernel_to: kernel_release(),
        started_usec: handover.started_usec,
        kexec_usec: handover.kexec_usec,
        resumed_usec,
        restores_started_usec,
        finished_usec: wall_usec(),
        mode: handover.mode.clone(),
        phase1_started_usec: handover.phase1_started_usec,
        phase1_ended_usec: handover.phase1_ended_usec,
        store: handover.store.clone(),
        notes: handover.notes.clone(),
        rolled_back: handover.rolled_back.clone(),
        total_image_bytes: units.iter().map(|u| u.image_bytes).sum(),
        longest_stoppage_ms: units
            .iter()
            .filter_map(|u| u.stoppage_ms())
            .fold(0.0, f64::max),
        units,
        clock: CLOCK_NOTE.into(),
    };
    match serde_json::to_vec_pretty(&report) {
        Ok(text) => {
            let _ = std::fs::create_dir_all(Path::new(REPORT_PATH).parent().expect("has a parent"));
            if let Err(e) = std::fs::write(REPORT_PATH, text) {
                tracing::error!("{REPORT_PATH}: {e}");
            }
        }
        Err(e) => tracing::error!("cannot encode the upgrade report: {e}"),
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
    // The images hold process memory: not kept a moment longer than needed.
    if let Err(e) = store.wipe() {
        tracing::error!("cannot wipe the upgrade store: {e}");
    }
    if store.root.starts_with(super::memstore::MOUNT_POINT) {
        super::memstore::unmount();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_found_on_the_command_line() {
        assert_eq!(
            marker("console=ttyS0 relive.handover=/var/lib/relive/upgrade quiet"),
            Some(PathBuf::from("/var/lib/relive/upgrade"))
        );
        assert_eq!(marker("console=ttyS0 quiet"), None);
    }
}
