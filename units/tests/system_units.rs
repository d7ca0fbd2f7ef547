//! Loads every unit of this machine (Debian 12 in CI) from the system
//! search path. None may fail except masked units and alias symlinks whose
//! target is not installed. Warnings are allowed and counted.

use relive_units::{Graph, LoadError, Loader, UnitKind, SYSTEM_UNIT_PATH};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// An alias symlink whose target does not exist (Debian ships some for
/// optional packages, e.g. dbus-org.freedesktop.import1.service).
fn dangling_link(loader: &Loader, name: &str) -> bool {
    loader.search_dirs().iter().any(|d| {
        let p = d.join(name);
        p.symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
            && std::fs::metadata(&p).is_err()
    })
}

#[test]
fn every_unit_on_this_machine_loads() {
    assert!(
        Path::new("/lib/systemd/system").is_dir(),
        "/lib/systemd/system does not exist: this test needs a systemd-based system (Debian 12 in CI)"
    );
    let loader = Loader::new(SYSTEM_UNIT_PATH);
    let names = loader.unit_names();
    assert!(names.len() > 50, "only {} unit names found", names.len());

    let mut failures = Vec::new();
    let (mut loaded, mut masked, mut dangling, mut warnings) = (Vec::new(), 0, 0, 0);
    let mut by_message: BTreeMap<String, usize> = BTreeMap::new();
    for name in &names {
        match loader.load(name) {
            Ok(unit) => {
                warnings += unit.warnings.len();
                for w in &unit.warnings {
                    let key = w
                        .message
                        .split(" ignored")
                        .next()
                        .unwrap_or(&w.message)
                        .to_string();
                    *by_message.entry(key).or_default() += 1;
                }
                loaded.push(unit);
            }
            Err(LoadError::Masked { .. }) => masked += 1,
            Err(LoadError::NotFound { .. }) if dangling_link(&loader, name) => dangling += 1,
            Err(e) => failures.push(e.to_string()),
        }
    }
    let mut common: Vec<(usize, String)> = by_message.into_iter().map(|(m, n)| (n, m)).collect();
    common.sort_by(|a, b| b.cmp(a));
    println!(
        "{} unit names: {} loaded, {masked} masked, {dangling} dangling aliases, {warnings} warnings",
        names.len(),
        loaded.len()
    );
    for (n, m) in common.iter().take(15) {
        println!("{n:5}  {m}");
    }
    assert!(
        failures.is_empty(),
        "{} units failed to load:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The default target's transaction has no ordering cycle.
    let graph = Graph::new(&loaded);
    let default = loader.default_target();
    let closure = graph.start_closure([default.as_str()]);
    let runnable: BTreeSet<String> = closure
        .into_iter()
        .filter(|n| {
            loaded
                .iter()
                .any(|u| u.name == *n && u.kind != UnitKind::Unsupported)
        })
        .collect();
    let layers = graph
        .start_layers(&runnable)
        .unwrap_or_else(|e| panic!("{default}: {e}"));
    println!(
        "{default}: {} runnable units in {} start layers",
        runnable.len(),
        layers.len()
    );
}
