//! The new kernel made ready for the restores, and timed: CRIU's probe of
//! the kernel, the network locks, the early rerun units and the mounts
//! restored namespaces bind ([`prepare_new_kernel`]); what each took goes
//! into the report's `before_restores`.

use crate::{netlock, Seams};
use relive_api::report::{EarlyStep, EarlyWork, UnitRecord};
use relive_store::handover::KexecHandover;
use relive_store::Store;
use relive_sys::wall_usec;

/// What the resume did before its first restore, and when.
pub(crate) struct Early {
    pub(crate) resumed_usec: u64,
    pub(crate) steps: Vec<EarlyStep>,
    pub(crate) restores_started_usec: u64,
    /// The services' one clock in the new kernel, if it could be made.
    pub(crate) clock_offsets: Option<relive_api::report::ClockOffsets>,
}

impl Early {
    /// `work` done now.
    fn done(&mut self, work: EarlyWork, ok: bool) {
        let done_ms = wall_usec().saturating_sub(self.resumed_usec) as f64 / 1000.0;
        self.steps.push(EarlyStep { work, done_ms, ok });
    }
}

/// The new kernel made ready for the restores: CRIU's network locks
/// loaded again, CRIU's probe of the kernel run and the early rerun units
/// (and the mounts restored namespaces bind) started, each timed in
/// `early_steps`.
pub(crate) fn prepare_new_kernel(
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
        // Without a thread for it (a task limit), the first restore
        // probes for itself.
        let probe = std::thread::Builder::new()
            .name("relive-probe".into())
            .spawn_scoped(scope, || {
                let ok = seams.restorer.probe_kernel();
                (ok, wall_usec())
            })
            .inspect_err(|e| tracing::warn!("cannot start CRIU's probe ({e})"));
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
        match probe.map(|thread| thread.join()) {
            Ok(Ok((ok, done_usec))) => units.push((EarlyWork::CriuProbe, done_usec, ok)),
            Ok(Err(_)) => tracing::error!("CRIU's probe of the new kernel panicked"),
            Err(_) => {}
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
