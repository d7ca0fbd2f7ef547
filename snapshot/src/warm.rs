//! A warm snapshot: phase 1 run ahead of the upgrade (`relivectl
//! live-upgrade --prepare`, or every `upgrade.warm_snapshot_interval_sec`)
//! and kept in the store, so that the upgrade's own phase 1 only tops it
//! up with the pages dirtied since.
//!
//! The store then holds process memory until the upgrade: it stays
//! root-only, `--discard` wipes it, and relive wipes it on a boot that is
//! not a live upgrade's.

use crate::predump::{self, Chain};
use crate::{Seams, UpgradeError};
use relive_api::plan::{Plan, StoreChoice};
use relive_api::progress::Progress;
use relive_config::UpgradeConfig;
use relive_host::UnitHost;
use relive_store::{memory, Store, StoreError};
use relive_sys::wall_usec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

const WARM_FILE: &str = "warm.json";
/// A warm chain this long is started again from a full pre-dump when it is
/// refreshed: every restore walks the whole chain.
const MAX_CHAIN: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Warm {
    /// When it was last refreshed (wall clock, µs).
    pub taken_usec: u64,
    pub units: BTreeMap<String, WarmUnit>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WarmUnit {
    /// The tree's root when it was pre-dumped: a chain only fits the same
    /// process tree.
    pub main_pid: u32,
    pub chain: Chain,
}

/// Takes or refreshes the warm snapshot. Refused while an upgrade runs.
pub fn prepare(
    seams: &Seams,
    config: &UpgradeConfig,
    progress: &dyn Fn(Progress),
) -> Result<Warm, UpgradeError> {
    seams.host.begin_upgrade().map_err(UpgradeError::Refused)?;
    // The next kernel's command line is not known yet: the running one's
    // stands in (an upgrade with --reuse-cmdline keeps the reservation).
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let result = memory::choose(
        config.store,
        &config.store_dir,
        &config.memory_device,
        &cmdline,
        &cmdline,
    )
    .map_err(UpgradeError::from)
    .and_then(|choice| {
        wipe_other(&choice, config);
        open_store(seams.host, &choice)?;
        take(seams, &choice.dir, config, progress).inspect_err(|_| {
            let _ = Store::at(&choice.dir).wipe();
        })
    });
    seams.host.end_upgrade();
    result
}

/// Makes the chosen store's file system ready: for the memory store, a
/// fresh ext4 mounted at the mount point, unless it is mounted already
/// (a warm snapshot lives on it). The disk store needs nothing.
pub fn open_store(host: &dyn UnitHost, choice: &StoreChoice) -> Result<(), UpgradeError> {
    let run = |argv: &[&str]| {
        relive_host::run_ok(host, argv)
            .map(drop)
            .map_err(|e| e.to_string())
    };
    Ok(relive_store::carrier::for_choice(choice).open(&run)?)
}

fn take(
    seams: &Seams,
    dir: &Path,
    config: &UpgradeConfig,
    progress: &dyn Fn(Progress),
) -> Result<Warm, UpgradeError> {
    if !config.pre_dump {
        return Err(UpgradeError::PreDumpsOff);
    }
    let plan = seams.host.plan().map_err(UpgradeError::Refused)?;
    let (store, chains) = open(dir, &plan, true)?;
    let never = || false;
    let (chains, _) = predump::phase1(
        seams.dumper,
        &store,
        &plan,
        config,
        progress,
        chains,
        &never,
    )?;
    predump::start_lost(seams, &chains, progress)?;
    let mut warm = Warm {
        taken_usec: wall_usec(),
        units: BTreeMap::new(),
    };
    for unit in &plan.preserved {
        let Some(chain) = chains.get(&unit.name).filter(|c| c.parent.is_some()) else {
            continue;
        };
        warm.units.insert(
            unit.name.clone(),
            WarmUnit {
                main_pid: unit.main_pid,
                chain: chain.clone(),
            },
        );
    }
    let text = serde_json::to_vec(&warm).expect("a warm snapshot encodes");
    store.write_file(WARM_FILE, &text)?;
    Ok(warm)
}

/// The store for phase 1. With a warm snapshot in it: that store, and the
/// chains of the units whose process tree is still the one pre-dumped
/// (the others' images are removed). Without: a new, empty store.
/// `refresh`: a chain grown past `MAX_CHAIN` is started again.
pub fn open(
    dir: &Path,
    plan: &Plan,
    refresh: bool,
) -> Result<(Store, BTreeMap<String, Chain>), StoreError> {
    let store = Store::at(dir);
    let Some(warm) = read(&store) else {
        let store = Store::create(dir)?;
        return Ok((store, BTreeMap::new()));
    };
    let mut chains = BTreeMap::new();
    for (name, unit) in warm.units {
        let same_tree = plan
            .preserved
            .iter()
            .any(|p| p.name == name && p.main_pid == unit.main_pid && p.pre_dump);
        let too_long = refresh && unit.chain.rounds.len() >= MAX_CHAIN;
        if same_tree && !too_long && unit.chain.parent.is_some() {
            chains.insert(name, unit.chain);
        } else {
            tracing::info!(
                "{name}: warm snapshot dropped (process tree changed or chain too long)"
            );
            store.forget_unit(&name)?;
        }
    }
    let _ = std::fs::remove_file(store.root.join(WARM_FILE));
    Ok((store, chains))
}

fn read(store: &Store) -> Option<Warm> {
    let text = std::fs::read(store.root.join(WARM_FILE)).ok()?;
    match serde_json::from_slice(&text) {
        Ok(warm) => Some(warm),
        Err(e) => {
            tracing::warn!(
                "{}: {e}; the warm snapshot is not used",
                store.root.join(WARM_FILE).display()
            );
            None
        }
    }
}

/// Wipes a warm snapshot (`relivectl live-upgrade --discard`). Refused
/// while an upgrade runs: its images would go with it.
pub fn discard(host: &dyn UnitHost, config: &UpgradeConfig) -> Result<bool, UpgradeError> {
    host.begin_upgrade().map_err(UpgradeError::Refused)?;
    let disk = Store::at(&config.store_dir);
    let in_memory = Store::at(memory::store_dir());
    let existed = [&disk, &in_memory]
        .iter()
        .any(|s| s.root.join(WARM_FILE).exists());
    let result = disk.wipe().and_then(|()| in_memory.wipe());
    memory::unmount();
    host.end_upgrade();
    Ok(result.map(|()| existed)?)
}

/// Wipes what a warm snapshot left in the store not chosen this time.
pub fn wipe_other(choice: &StoreChoice, config: &UpgradeConfig) {
    if choice.device.is_some() {
        let _ = Store::at(&config.store_dir).wipe();
    } else if memory::is_mounted() {
        let _ = Store::at(memory::store_dir()).wipe();
        memory::unmount();
    }
}

/// Refreshes the warm snapshot every `interval_sec`, for ever (a thread of
/// its own; an upgrade running at that moment just skips a refresh).
pub fn keep_warm(seams: &Seams, config: &UpgradeConfig) {
    let interval = std::time::Duration::from_secs(config.warm_snapshot_interval_sec);
    let log = |p: Progress| tracing::debug!("warm snapshot: {} {} {}", p.phase, p.unit, p.message);
    loop {
        std::thread::sleep(interval);
        match prepare(seams, config, &log) {
            Ok(warm) => tracing::info!("warm snapshot refreshed: {} units", warm.units.len()),
            Err(e) => tracing::warn!("warm snapshot not refreshed: {e}"),
        }
    }
}

/// A store left by an upgrade that never happened (a warm snapshot, an
/// interrupted upgrade) is wiped on a fresh boot: its images hold process
/// memory and fit no process any more.
pub fn wipe_leftover(store_dir: &Path) {
    if store_dir.exists() {
        match Store::at(store_dir).wipe() {
            Ok(()) => tracing::info!("{}: leftover upgrade store wiped", store_dir.display()),
            Err(e) => tracing::error!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relive_api::plan::PlannedUnit;
    use relive_api::report::PreDumpRound;

    fn planned(name: &str, main_pid: u32) -> PlannedUnit {
        PlannedUnit {
            name: name.into(),
            priority: 100,
            main_pid,
            pids: vec![main_pid],
            estimated_bytes: 0,
            pre_dump: true,
            pre_dump_max_rounds: None,
            rollback: false,
        }
    }

    fn chain(rounds: u32) -> Chain {
        Chain {
            rounds: (1..=rounds)
                .map(|round| PreDumpRound {
                    round,
                    ..PreDumpRound::default()
                })
                .collect(),
            parent: Some(format!("pre-{rounds}")),
            ..Chain::default()
        }
    }

    /// A warm chain is topped up only for the same process tree, and a
    /// chain grown too long is started again on a refresh.
    #[test]
    fn only_chains_of_the_same_process_tree_are_kept() {
        let dir = std::env::temp_dir().join(format!("relive-warm-{}", std::process::id()));
        let store = Store::create(&dir).unwrap();
        let mut warm = Warm::default();
        for (name, pid, rounds) in [("same", 10, 2), ("restarted", 11, 2), ("long", 12, 40)] {
            let images = store.unit_dir(name).unwrap().join("pre-1");
            std::fs::create_dir_all(&images).unwrap();
            std::fs::write(images.join("pages-1.img"), b"x").unwrap();
            warm.units.insert(
                name.into(),
                WarmUnit {
                    main_pid: pid,
                    chain: chain(rounds),
                },
            );
        }
        store
            .write_file(WARM_FILE, &serde_json::to_vec(&warm).unwrap())
            .unwrap();
        let plan = Plan {
            preserved: vec![
                planned("same", 10),
                planned("restarted", 99),
                planned("long", 12),
            ],
            ..Plan::default()
        };
        let (store, chains) = open(&dir, &plan, true).unwrap();
        assert_eq!(chains.keys().collect::<Vec<_>>(), ["same"]);
        assert!(store.root.join("images/same/pre-1").exists());
        assert!(
            !store.root.join("images/restarted").exists(),
            "images of another tree go"
        );
        assert!(!store.root.join("images/long").exists());
        // Read once: the upgrade that uses it owns it now.
        assert!(!store.root.join(WARM_FILE).exists());
        // Without a warm snapshot: an empty store.
        let (_, chains) = open(&dir, &plan, true).unwrap();
        assert!(chains.is_empty());
        store.wipe().unwrap();
    }
}
