//! OnRestoreFailure=rollback: units restored first, each held frozen with
//! its connections locked until all of them are back; if one cannot be
//! restored, the held ones are ended and the machine kexecs back into the
//! previous kernel with the same store, which restores everything from the
//! same images (once: a handover that already rolled back is resumed like
//! any other, its failures handled as OnRestoreFailure=restart).

use crate::{cgroup_dir, netlock, revive, RestoreError, Seams};
use relive_api::report::{Outcome, UnitRecord};
use relive_store::handover::{kernel_release, KexecHandover};
use relive_store::kexec::BootError;
use relive_store::{memory, Store, StoreError};
use relive_sys::kexec::KexecError;
use std::path::PathBuf;

/// A rollback unit failed and the machine could not go back.
#[derive(Debug, thiserror::Error)]
#[error("{unit} could not be restored: {cause}; rollback impossible: {why_not}")]
pub struct RollbackError {
    pub unit: String,
    pub cause: RestoreError,
    pub why_not: GoBackError,
}

/// Why the machine did not go back to its previous kernel.
#[derive(Debug, thiserror::Error)]
pub enum GoBackError {
    #[error("the previous kernel's image was not found when the upgrade began")]
    NoPreviousKernel,
    #[error("loading {kernel}: {source}")]
    Load { kernel: PathBuf, source: KexecError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Boot(#[from] BootError),
}

/// Restores the rollback units (most critical first). Ok: all restored,
/// running, supervised again. Err: one failed and the kexec back failed
/// too (had it not, this would not return); the units restored so far are
/// parked again, for the caller to restore as usual.
pub fn restore_first(
    seams: Seams,
    store: &Store,
    handover: &KexecHandover,
    records: &mut [UnitRecord],
) -> Result<(), Box<RollbackError>> {
    let mut held: Vec<usize> = Vec::new();
    let order: Vec<usize> = (0..records.len())
        .rev()
        .filter(|&i| records[i].rollback)
        .collect();
    for i in order {
        let record = &mut records[i];
        if let Err(e) = seams.host.prepare_restore(&record.name) {
            tracing::warn!("{}: {e}", record.name);
        }
        match restore_in_new_kernel(seams, store, record) {
            Ok(revived) => {
                hold(seams, store, record);
                record.restore_ms = Some(revived.elapsed_ms);
                record.verify_ms = Some(revived.verify_ms);
                record.outcome = Some(Outcome::Restored);
                crate::mount_flags::set_again(seams.host, record, revived.pid);
                seams
                    .host
                    .unpark(&record.name, revived.pid, revived.outputs);
                held.push(i);
            }
            Err(cause) => {
                let unit = record.name.clone();
                let reason = format!("{unit} could not be restored: {cause}");
                tracing::error!("{reason} (OnRestoreFailure=rollback)");
                for &h in &held {
                    put_down(seams, &records[h]);
                }
                let why_not = go_back(seams, store, handover, records, &reason);
                tracing::error!("rollback impossible: {why_not}; going on in this kernel");
                // Still here: the units put down are parked again, and the
                // caller restores them (and tries the failed one) as usual.
                for &h in &held {
                    records[h].outcome = None;
                    records[h].restore_ms = None;
                }
                return Err(Box::new(RollbackError {
                    unit,
                    cause,
                    why_not,
                }));
            }
        }
    }
    for &i in &held {
        let record = &mut records[i];
        release(seams, store, record);
        record.running_usec = Some(relive_sys::wall_usec());
    }
    Ok(())
}

fn restore_in_new_kernel(
    seams: Seams,
    store: &Store,
    record: &UnitRecord,
) -> Result<revive::Revived, RestoreError> {
    #[cfg(feature = "fault-injection")]
    {
        use relive_host::fault::{self, Fault};
        if fault::injected_in_store(&store.root, Fault::RestoreFailNew, &record.name) {
            return Err(RestoreError::Injected(Fault::RestoreFailNew.name()));
        }
    }
    revive::restore(seams.restorer, store, record)
}

/// Freezes a just-restored unit and puts its network lock back.
fn hold(seams: Seams, store: &Store, record: &UnitRecord) {
    if let Err(e) = seams.freezer.freeze(&cgroup_dir(&record.cgroup)) {
        tracing::warn!("{}: cannot hold it frozen: {e}", record.name);
    }
    if record.lock_saved {
        if let Err(e) = netlock::load(seams.host, store, &record.name) {
            tracing::warn!("{}: cannot lock its connections again: {e}", record.name);
        }
    }
}

/// Lets a held unit run: lock table gone, cgroup thawed, its socket
/// units' sockets taken back and new connections let in.
fn release(seams: Seams, store: &Store, record: &UnitRecord) {
    if record.lock_saved {
        let _ = netlock::remove(seams.host, record);
    }
    crate::lock_merge::release_on_resume(seams.host, store, &record.name);
    if let Err(e) = seams.freezer.thaw(&cgroup_dir(&record.cgroup)) {
        tracing::error!("{}: cannot thaw: {e}", record.name);
    }
    // CRIU gives a restored tree its old PIDs.
    crate::syn_hold::restored(seams.host, record, record.main_pid);
}

/// Ends a held unit's processes: the previous kernel restores it from the
/// same images. It never ran here.
fn put_down(seams: Seams, record: &UnitRecord) {
    let _ = seams.host.park(&record.name);
    let cgroup = cgroup_dir(&record.cgroup);
    if let Err(e) = seams.freezer.kill(&cgroup) {
        tracing::error!("{}: cannot end it: {e}", record.name);
    }
    let _ = seams.freezer.thaw(&cgroup);
}

/// Kexecs into the previous kernel with the same store and a handover that
/// says why. Returns only if that failed, with the reason.
fn go_back(
    seams: Seams,
    store: &Store,
    handover: &KexecHandover,
    records: &[UnitRecord],
    reason: &str,
) -> GoBackError {
    let Some(previous) = &handover.previous else {
        return GoBackError::NoPreviousKernel;
    };
    let mut back = handover.clone();
    back.rolled_back = Some(format!(
        "rolled back from {} to {}: {reason}",
        kernel_release(),
        previous.release
    ));
    back.units = records
        .iter()
        .map(|r| UnitRecord {
            outcome: None,
            restore_ms: None,
            running_usec: None,
            ..r.clone()
        })
        .collect();
    let cmdline_now = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let in_memory = store.root.starts_with(memory::MOUNT_POINT);
    let device = memory::device_of(&cmdline_now).filter(|_| in_memory);
    let mut marker = format!("{}{}", relive_api::plan::STORE_WORD, store.root.display());
    if let Some(device) = memory::device_of(&cmdline_now) {
        marker.push_str(&format!(
            " {}{}",
            relive_api::plan::DEVICE_WORD,
            device.display()
        ));
    }
    let cmdline = relive_sys::kexec::next_cmdline(&previous.cmdline, true, "", &marker);
    tracing::error!("rolling back to {}: {reason}", previous.release);
    if let Err(source) = seams
        .kexec
        .load(&previous.kernel, previous.initrd.as_deref(), &cmdline)
    {
        return GoBackError::Load {
            kernel: previous.kernel.clone(),
            source,
        };
    }
    if let Err(e) = store.write_handover(&back) {
        let _ = seams.kexec.unload();
        return e.into();
    }
    let error = seams
        .kexec
        .boot(&*relive_store::carrier::for_device(device.as_deref()));
    let _ = seams.kexec.unload();
    error.into()
}
