//! An upgrade that never finished: a power cut or a crash before the kexec,
//! a new kernel that did not boot (the machine came back on its default
//! kernel), or a handover the new kernel refused. Its store is wiped at the
//! next boot (its images fit no process any more); before that, what is
//! known of it becomes the last upgrade's report, so `relivectl
//! upgrade-report` says which units' states were lost, when and why,
//! instead of telling an older story.

use relive_api::report::{Loss, UpgradeReport, CLOCK_NOTE};
use relive_store::handover::kernel_release;
use relive_store::Store;

/// The report of the interrupted upgrade whose store is `store`, if it
/// holds one (a state file, or images); `why` says how it ended.
pub fn report(store: &Store, why: &str) -> Option<UpgradeReport> {
    let units_with_images: Vec<String> = std::fs::read_dir(store.root.join("images"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let handover = store.read_handover().ok();
    // A warm snapshot (snapshot/src/warm.rs keeps it as warm.json) is
    // images without a state file, and no upgrade.
    let warm_only = handover.is_none() && store.root.join("warm.json").exists();
    if warm_only || (handover.is_none() && units_with_images.is_empty()) {
        return None;
    }
    let reason = format!("the live upgrade was interrupted: {why}; started afresh at boot");
    let lost = |unit: &str| Loss {
        unit: unit.to_owned(),
        reason: reason.clone(),
    };
    let mut report = UpgradeReport {
        kernel_to: kernel_release(),
        finished_usec: relive_sys::wall_usec(),
        aborted: Some(format!("interrupted: {why}")),
        clock: CLOCK_NOTE.into(),
        ..UpgradeReport::default()
    };
    match handover {
        Some(h) => {
            report.kernel_from = h.kernel_from;
            report.started_usec = h.started_usec;
            report.kexec_usec = h.kexec_usec;
            report.mode = Some(h.mode);
            report.store = h.store;
            report.notes = h.notes;
            report.losses = h.units.iter().map(|u| lost(&u.name)).collect();
            report.units = h.units;
        }
        None => report.losses = units_with_images.iter().map(|u| lost(u)).collect(),
    }
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("relive-interrupted-{tag}-{}", std::process::id()))
    }

    #[test]
    fn a_store_left_behind_names_the_units_whose_state_was_lost() {
        let store = Store::create(temp("state")).unwrap();
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../store/tests/fixtures/kexec-handover.bin"
        );
        std::fs::copy(fixture, store.root.join("state.bin")).unwrap();
        let told = report(&store, "the new kernel did not resume it").unwrap();
        assert_eq!(told.kernel_from, "6.1.0-47-amd64");
        assert_eq!(
            told.aborted.as_deref(),
            Some("interrupted: the new kernel did not resume it")
        );
        let lost: Vec<&str> = told.lost().map(|(unit, _)| unit).collect();
        assert_eq!(lost, ["counter.service"]);
        store.wipe().unwrap();

        // Cut before the state was written: the images still say who.
        let store = Store::create(temp("images")).unwrap();
        store.unit_dir("redis-server.service").unwrap();
        let told = report(&store, "power cut").unwrap();
        assert_eq!(told.lost().count(), 1);
        store.wipe().unwrap();

        let empty = Store::create(temp("empty")).unwrap();
        assert!(report(&empty, "nothing").is_none());
        empty.wipe().unwrap();
    }
}
