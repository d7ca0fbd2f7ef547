//! OnRestoreFailure=rollback: in the new kernel, the units that asked for
//! it are restored before any other. Each one, once restored, is frozen
//! at once and its network lock put back, so that it neither runs nor
//! answers its peers. If one of them cannot be restored, those already
//! restored are put down, and relive kexecs back into the previous kernel
//! (its path, initrd and command line travel in the handover), which
//! restores every unit from the same images. At most one rollback per
//! upgrade: the handover says it happened, and the previous kernel's
//! relive treats a failure there as OnRestoreFailure=restart.

use super::park::CGROUP_ROOT;
use super::record::{KexecHandover, UnitRecord};
use super::store::Store;
use super::{helper, memstore, on_loop, revive};
use crate::event_loop::CommandSender;
use crate::manager::clock::wall_usec;
use crate::sys::kexec;
use relive_snapshot::freezer;
use std::path::Path;
use std::time::Duration;

const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

/// Restores the rollback units (most critical first). Ok: all restored,
/// running, supervised again. Err: one failed; the machine is on its way
/// back to the previous kernel, or (the kexec failed) the reason is
/// returned and the units restored so far are running again.
pub fn restore_first(
    commands: &CommandSender,
    store: &Store,
    handover: &KexecHandover,
    records: &mut [UnitRecord],
    criu: &Path,
) -> Result<(), String> {
    let fault_file = store.root.join("fault-inject");
    let mut held: Vec<usize> = Vec::new();
    let order: Vec<usize> = (0..records.len())
        .rev()
        .filter(|&i| records[i].rollback)
        .collect();
    for i in order {
        let record = &mut records[i];
        let name = record.name.clone();
        if let Err(e) = on_loop(commands, move |m| m.prepare_restore(&name)).and_then(|r| r) {
            tracing::warn!("{}: {e}", record.name);
        }
        let restored = if super::fault::injected_in(&fault_file, "restore-fail-new", &record.name) {
            Err("injected fault (restore-fail-new)".to_owned())
        } else {
            revive::restore(store, record, criu, Path::new(CGROUP_ROOT))
        };
        match restored {
            Ok(revived) => {
                hold(commands, store, record);
                record.restore_ms = Some(revived.elapsed_ms);
                record.verify_ms = Some(revived.verify_ms);
                record.outcome = "restored".into();
                let name = record.name.clone();
                let _ = on_loop(commands, move |m| {
                    m.unpark(&name, revived.pid, revived.outputs)
                });
                held.push(i);
            }
            Err(e) => {
                let reason = format!("{} could not be restored: {e}", record.name);
                tracing::error!("{reason} (OnRestoreFailure=rollback)");
                for &h in &held {
                    put_down(commands, &records[h]);
                }
                let error = go_back(store, handover, records, &reason);
                tracing::error!("rollback impossible: {error}; going on in this kernel");
                // Still here: the units put down are parked again, and the
                // caller restores them (and tries the failed one) as usual.
                for &h in &held {
                    records[h].outcome.clear();
                    records[h].restore_ms = None;
                }
                return Err(format!("{reason}; rollback impossible: {error}"));
            }
        }
    }
    for &i in &held {
        let record = &mut records[i];
        release(commands, record);
        record.running_usec = Some(wall_usec());
    }
    Ok(())
}

/// Freezes a just-restored unit and puts its network lock back.
fn hold(commands: &CommandSender, store: &Store, record: &UnitRecord) {
    let cgroup = Path::new(CGROUP_ROOT).join(record.cgroup.trim_start_matches('/'));
    if let Err(e) = freezer::freeze(&cgroup, FREEZE_TIMEOUT) {
        tracing::warn!("{}: cannot hold it frozen: {e}", record.name);
    }
    if record.lock_saved {
        let file = store.lock_file(&record.name).display().to_string();
        if let Err(e) = helper::run_ok(commands, &["/usr/sbin/nft", "-f", &file]) {
            tracing::warn!("{}: cannot lock its connections again: {e}", record.name);
        }
    }
}

/// Lets a held unit run: lock table gone, cgroup thawed.
fn release(commands: &CommandSender, record: &UnitRecord) {
    if record.lock_saved {
        let table = format!("CRIU-{}", record.main_pid);
        let _ = helper::run_ok(
            commands,
            &["/usr/sbin/nft", "delete", "table", "inet", &table],
        );
    }
    let cgroup = Path::new(CGROUP_ROOT).join(record.cgroup.trim_start_matches('/'));
    if let Err(e) = freezer::thaw(&cgroup, FREEZE_TIMEOUT) {
        tracing::error!("{}: cannot thaw: {e}", record.name);
    }
}

/// Ends a held unit's processes: the previous kernel restores it from the
/// same images. It never ran here.
fn put_down(commands: &CommandSender, record: &UnitRecord) {
    let name = record.name.clone();
    let _ = on_loop(commands, move |m| m.park(&name).map(drop));
    let cgroup = Path::new(CGROUP_ROOT).join(record.cgroup.trim_start_matches('/'));
    if let Err(e) = std::fs::write(cgroup.join("cgroup.kill"), "1") {
        tracing::error!("{}: cannot end it: {e}", record.name);
    }
    let _ = freezer::thaw(&cgroup, FREEZE_TIMEOUT);
}

/// Kexecs into the previous kernel with the same store and a handover that
/// says why. Returns only if that failed, with the reason.
fn go_back(
    store: &Store,
    handover: &KexecHandover,
    records: &[UnitRecord],
    reason: &str,
) -> String {
    let Some(previous) = &handover.previous else {
        return "the previous kernel's image was not found when the upgrade began".into();
    };
    let mut back = handover.clone();
    back.rolled_back = Some(format!(
        "rolled back from {} to {}: {reason}",
        super::record::kernel_release(),
        previous.release
    ));
    back.units = records
        .iter()
        .map(|r| UnitRecord {
            outcome: String::new(),
            restore_ms: None,
            running_usec: None,
            ..r.clone()
        })
        .collect();
    let cmdline_now = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mut marker = format!("relive.handover={}", store.root.display());
    if let Some(device) = memstore::device_of(&cmdline_now) {
        marker.push_str(&format!(" {}{}", memstore::DEVICE_WORD, device.display()));
    }
    let cmdline = kexec::next_cmdline(&previous.cmdline, true, "", &marker);
    tracing::error!("rolling back to {}: {reason}", previous.release);
    if let Err(e) = kexec::load(&previous.kernel, previous.initrd.as_deref(), &cmdline) {
        return format!("loading {}: {e}", previous.kernel.display());
    }
    let payload = match serde_json::to_vec(&back) {
        Ok(p) => p,
        Err(e) => return e.to_string(),
    };
    if let Err(e) = store.write_state(&payload) {
        let _ = kexec::unload();
        return e.to_string();
    }
    let device =
        memstore::device_of(&cmdline_now).filter(|_| store.root.starts_with(memstore::MOUNT_POINT));
    let error = super::park::boot_loaded_kernel(device.as_deref());
    let _ = kexec::unload();
    error
}
