//! The unit files under examples/ load without a warning, as shipped.

use relive_units::*;
use std::path::PathBuf;

fn examples(dir: &str) -> Loader {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(dir);
    Loader::with_context([path], SpecifierContext::default())
}

#[test]
fn the_self_upgrading_fleet_unit_and_its_timer_load_cleanly() {
    let l = examples("fleet");
    let service = l.load("relive-auto-upgrade.service").unwrap();
    assert!(service.warnings.is_empty(), "{:?}", service.warnings);
    let exec = &service.service.as_ref().unwrap().exec_start[0];
    assert_eq!(exec.path, "/usr/bin/relivectl");
    assert!(exec.argv.iter().any(|a| a == "--fleet-lock"), "{exec:?}");
    // Preserved, so that relivectl follows the upgrade and gives the
    // slot back.
    assert_eq!(service.live_upgrade.mode, UpgradeMode::Preserve);
    let timer = l.load("relive-auto-upgrade.timer").unwrap();
    assert!(timer.warnings.is_empty(), "{:?}", timer.warnings);
    assert_eq!(timer.timer.as_ref().unwrap().calendar.len(), 1);
}
