//! The handover format is a compatibility promise: what relive 0.1 wrote
//! (tests/fixtures, written by the code before the workspace split) must
//! still decode, with every field where it was.

use relive_api::report::{FinalDump, Outcome, UnitMode, UpgradeMode, UpgradeReport};
use relive_store::envelope::{self, HandoverKind};
use relive_store::KexecHandover;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_kexec_handover_written_by_relive_0_1_decodes() {
    let bytes = fixture("kexec-handover.bin");
    let (kind, payload) = envelope::decode(&bytes).expect("envelope");
    assert_eq!(kind, HandoverKind::Kexec);
    let handover: KexecHandover = serde_json::from_slice(payload).expect("handover");
    assert_eq!(handover.kernel_from, "6.1.0-47-amd64");
    assert_eq!(handover.mode, UpgradeMode::TwoPhase);
    assert_eq!(handover.plan.preserved[0].name, "counter.service");
    assert_eq!(handover.plan.rerun, ["net.service"]);
    assert_eq!(handover.plan.restarted, ["cron.service"]);
    let store = handover.plan.store.as_ref().expect("store choice");
    assert_eq!(store.kind, relive_api::plan::StoreKind::Disk);
    let unit = &handover.units[0];
    assert_eq!(unit.mode, UnitMode::Preserve);
    assert_eq!(unit.final_dump, Some(FinalDump::Incremental));
    assert_eq!(unit.outcome, None, "not dealt with yet in the new kernel");
    assert_eq!(unit.pre_dumps.len(), 3);
    assert!(unit.rollback && unit.lock_saved);
    let previous = handover.previous.as_ref().expect("previous kernel");
    assert_eq!(previous.release, "6.1.0-47-amd64");
    // PID 1's state is carried untouched for PID 1 to read.
    let state: serde_json::Value = serde_json::from_str(handover.state.get()).unwrap();
    assert!(state["units"]["counter.service"]["config"].is_object());
    assert_eq!(state["default_target"], "multi-user.target");
}

#[test]
fn a_handover_reencoded_by_this_relive_keeps_the_old_wording() {
    let bytes = fixture("kexec-handover.bin");
    let (_, payload) = envelope::decode(&bytes).unwrap();
    let handover: KexecHandover = serde_json::from_slice(payload).unwrap();
    let again: serde_json::Value = serde_json::to_value(&handover).unwrap();
    let old: serde_json::Value = serde_json::from_slice(payload).unwrap();
    // Every field relive 0.1 wrote is written again, with the same value,
    // at every depth (new fields may be added beside them): an older
    // relive (after a rollback to an older root) reads it.
    assert_keeps(&old, &again, "handover");
}

/// Whether `new` holds everything `old` does, with the same values.
fn assert_keeps(old: &serde_json::Value, new: &serde_json::Value, at: &str) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            for (key, value) in old {
                let found = new.get(key).unwrap_or_else(|| panic!("{at}.{key} is gone"));
                assert_keeps(value, found, &format!("{at}.{key}"));
            }
        }
        (Value::Array(old), Value::Array(new)) => {
            assert_eq!(old.len(), new.len(), "{at}: length");
            for (i, (o, n)) in old.iter().zip(new).enumerate() {
                assert_keeps(o, n, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(old, new, "{at}"),
    }
}

#[test]
fn a_report_written_by_relive_0_1_decodes() {
    let report: UpgradeReport = serde_json::from_slice(&fixture("last-upgrade.json")).unwrap();
    assert_eq!(report.mode, Some(UpgradeMode::TwoPhase));
    let outcomes: Vec<_> = report.units.iter().map(|u| u.outcome.clone()).collect();
    assert_eq!(outcomes[0], Some(Outcome::Restored));
    assert!(
        matches!(&outcomes[1], Some(Outcome::Lost { reason }) if reason.contains("does not match"))
    );
    assert_eq!(outcomes[2], Some(Outcome::Restarted));
    assert_eq!(outcomes[3], Some(Outcome::Rerun));
    assert_eq!(report.units[2].mode, UnitMode::Restart);
    assert_eq!(report.units[2].final_dump, None);
    assert_eq!(report.lost().count(), 1);
}

#[test]
fn a_re_exec_envelope_written_by_relive_0_1_is_a_re_exec() {
    let bytes = fixture("reexec-handover.bin");
    let (kind, payload) = envelope::decode(&bytes).expect("envelope");
    assert_eq!(kind, HandoverKind::Reexec);
    let value: serde_json::Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(value["next_job_id"], 17);
}
