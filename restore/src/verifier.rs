//! Checking the images ahead of their restores, on a thread of its own.
//!
//! After the kexec, a unit's images are read twice: once to check them
//! against the manifest, once by CRIU to restore. Checking them in the
//! background, in restore order, from the moment relive has read the
//! handover overlaps the most critical units' checks with CRIU's probe,
//! the network locks and the rerun units, and each unit's with its own
//! restore: CRIU rebuilds a unit's processes while its check goes on,
//! and they wait for its verdict (at CRIU's "post-restore") before they
//! run. The other units' checks wait until the most critical units are
//! restored: under emulation they took a CPU and the disk for seconds
//! from the probe and the first restores.

use crate::revive;
use crate::RestoreError;
use relive_api::report::UnitRecord;
use relive_store::handover::KexecHandover;
use relive_store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};

/// Whether the rollback units are restored first, each checked on the
/// spot: then the others are checked only once they are back, since a
/// rollback unmounts the memory store, which the checks would keep busy.
pub fn rollback_first(handover: &KexecHandover, records: &[UnitRecord]) -> bool {
    handover.rolled_back.is_none() && records.iter().any(|r| r.rollback)
}

/// The units checked ahead, in restore order (most critical first).
pub fn check_order(handover: &KexecHandover, records: &[UnitRecord]) -> Vec<String> {
    let rollback_first = rollback_first(handover, records);
    records
        .iter()
        .rev()
        .filter(|r| !r.rollback || !rollback_first)
        .map(|r| r.name.clone())
        .collect()
}

/// How many of [`check_order`]'s units are the most critical priority's:
/// the checks beyond them wait until those are restored
/// ([`Verifier::open_rest`]).
fn first_tier(records: &[UnitRecord], order: &[String]) -> usize {
    let priority_of = |name: &String| records.iter().find(|r| &r.name == name).map(|r| r.priority);
    let first = order.first().and_then(priority_of);
    order
        .iter()
        .take_while(|name| priority_of(name) == first)
        .count()
}

/// The check of a new kernel's images, started as soon as the handover
/// is read, beside CRIU's probe and the early rerun units, so that each
/// unit's check is further ahead of its restore. None with rollback
/// units ([`rollback_first`]).
pub fn check_ahead(store: &Store, handover: &KexecHandover) -> Option<Verifier> {
    let units = &handover.units;
    (!rollback_first(handover, units))
        .then(|| Verifier::by_priority(store, units, check_order(handover, units)))
}

#[derive(Debug, Default)]
struct Results {
    /// By unit: the check's time (ms), or why the images were refused.
    done: HashMap<String, Result<f64, RestoreError>>,
    /// The thread has ended (normally or not).
    finished: bool,
    /// Asked to stop after the unit it is checking.
    stop: bool,
    /// The units past the gate: checked once [`Verifier::open_rest`] is
    /// called (`open`).
    gated: std::collections::HashSet<String>,
    open: bool,
}

/// Dropped, it stops the thread and waits for it: the store may be
/// unmounted right after (a rollback, the end of a resume).
#[derive(Debug)]
pub struct Verifier {
    store: Store,
    /// The units restored lazily, whose page images are not read here.
    served: Arc<HashSet<String>>,
    shared: Arc<(Mutex<Results>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Marks the thread finished however it ends, so no waiter blocks forever.
struct Finish(Arc<(Mutex<Results>, Condvar)>);

impl Drop for Finish {
    fn drop(&mut self) {
        let (lock, ready) = &*self.0;
        lock.lock().unwrap_or_else(|e| e.into_inner()).finished = true;
        ready.notify_all();
    }
}

impl Verifier {
    /// Starts checking `units`, in that order; those past the first
    /// `first` once [`Verifier::open_rest`] is called. Reading and
    /// hashing images takes a CPU and the disk for seconds under
    /// emulation: the later units' checks wait until the most critical
    /// units' restores, which they would slow down, are done.
    /// Those in `served` are restored lazily: their page images are
    /// checked block by block as they are served, not here.
    pub fn start(
        store: &Store,
        units: Vec<String>,
        first: usize,
        served: HashSet<String>,
    ) -> Verifier {
        let served = Arc::new(served);
        let thread_served = Arc::clone(&served);
        let results = Results {
            gated: units.iter().skip(first).cloned().collect(),
            ..Results::default()
        };
        let shared = Arc::new((Mutex::new(results), Condvar::new()));
        let thread_shared = Arc::clone(&shared);
        let thread_store = store.clone();
        let spawned = std::thread::Builder::new()
            .name("relive-verify".into())
            .spawn(move || {
                let _finish = Finish(Arc::clone(&thread_shared));
                for name in units {
                    let (lock, opened) = &*thread_shared;
                    let mut results = lock.lock().unwrap_or_else(|e| e.into_inner());
                    while results.gated.contains(&name) && !results.open && !results.stop {
                        results = opened.wait(results).unwrap_or_else(|e| e.into_inner());
                    }
                    if results.stop {
                        break;
                    }
                    drop(results);
                    let result = check(&thread_store, &thread_served, &name);
                    let (lock, ready) = &*thread_shared;
                    lock.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .done
                        .insert(name, result);
                    ready.notify_all();
                }
            });
        let thread = match spawned {
            Ok(thread) => Some(thread),
            Err(e) => {
                tracing::warn!("cannot start the image check thread ({e}): checking inline");
                shared.0.lock().unwrap_or_else(|e| e.into_inner()).finished = true;
                None
            }
        };
        Verifier {
            store: store.clone(),
            served,
            shared,
            thread,
        }
    }

    /// Checks `order`'s units, those of the most critical priority first
    /// and the others once [`Verifier::open_rest`] is called.
    pub fn by_priority(store: &Store, records: &[UnitRecord], order: Vec<String>) -> Verifier {
        let first = first_tier(records, &order);
        let served = records
            .iter()
            .filter(|r| r.lazy_restore)
            .map(|r| r.name.clone())
            .collect();
        Verifier::start(store, order, first, served)
    }

    /// The checks past the first units go on.
    pub fn open_rest(&self) {
        let (lock, ready) = &*self.shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).open = true;
        ready.notify_all();
    }

    /// The check of `name`'s images: waits for the thread's, or checks
    /// here if the thread did not (it was not asked, or it ended early).
    /// A wait for a unit past the gate opens it: its restore is next.
    pub fn wait(&self, name: &str) -> Result<f64, RestoreError> {
        let (lock, ready) = &*self.shared;
        let mut results = lock.lock().unwrap_or_else(|e| e.into_inner());
        if results.gated.contains(name) && !results.open {
            results.open = true;
            ready.notify_all();
        }
        loop {
            if let Some(result) = results.done.remove(name) {
                return result;
            }
            if results.finished {
                drop(results);
                return check(&self.store, &self.served, name);
            }
            results = ready.wait(results).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A unit's check: whole, or but its page images for one restored lazily.
fn check(store: &Store, served: &HashSet<String>, name: &str) -> Result<f64, RestoreError> {
    if served.contains(name) {
        revive::verify_but_pages(store, name)
    } else {
        revive::verify(store, name)
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_run_ahead_and_a_damaged_unit_is_refused() {
        let root = std::env::temp_dir().join(format!("relive-verifier-{}", std::process::id()));
        let store = Store::create(&root).unwrap();
        for (name, bytes) in [("a.service", 4096), ("b.service", 8192)] {
            let dir = store.unit_dir(name).unwrap();
            std::fs::write(dir.join("pages-1.img"), vec![1u8; bytes]).unwrap();
            store.seal_unit(name).unwrap();
        }
        let b_pages = store.unit_dir("b.service").unwrap().join("pages-1.img");
        std::fs::write(&b_pages, vec![2u8; 8192]).unwrap();
        let verifier = Verifier::start(
            &store,
            vec!["a.service".into(), "b.service".into()],
            1,
            HashSet::new(),
        );
        assert!(verifier.wait("a.service").is_ok());
        // b.service is past the gate: not checked until someone needs it.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let checked_b = |v: &Verifier| v.shared.0.lock().unwrap().done.contains_key("b.service");
        assert!(!checked_b(&verifier));
        let refused = verifier.wait("b.service").unwrap_err().to_string();
        assert!(refused.contains("pages-1.img does not match"), "{refused}");
        // Not in the thread's list: checked on the spot.
        let unknown = verifier.wait("c.service").unwrap_err().to_string();
        assert!(unknown.contains("no manifest for c.service"), "{unknown}");
        store.wipe().unwrap();
    }

    #[test]
    fn the_units_past_the_first_tier_are_checked_once_it_is_restored() {
        let root = std::env::temp_dir().join(format!("relive-gate-{}", std::process::id()));
        let store = Store::create(&root).unwrap();
        let names = ["a.service", "b.service", "c.service"];
        for name in names {
            let dir = store.unit_dir(name).unwrap();
            std::fs::write(dir.join("pages-1.img"), vec![1u8; 4096]).unwrap();
            store.seal_unit(name).unwrap();
        }
        let verifier = Verifier::start(&store, names.map(String::from).to_vec(), 2, HashSet::new());
        assert!(verifier.wait("a.service").is_ok());
        assert!(verifier.wait("b.service").is_ok());
        std::thread::sleep(std::time::Duration::from_millis(200));
        let checked = |name: &str| verifier.shared.0.lock().unwrap().done.contains_key(name);
        assert!(!checked("c.service"));
        verifier.open_rest();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !checked("c.service") && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(checked("c.service"));
        drop(verifier);
        store.wipe().unwrap();
    }

    #[test]
    fn the_first_tier_is_the_most_critical_priority() {
        let record = |name: &str, priority| UnitRecord {
            priority,
            ..UnitRecord::not_dumped(
                name,
                relive_api::report::UnitMode::Preserve,
                relive_api::report::Outcome::Restored,
            )
        };
        let records = [record("low", 100), record("b", 900), record("a", 900)];
        let order: Vec<String> = ["a", "b", "low"].map(String::from).to_vec();
        assert_eq!(first_tier(&records, &order), 2);
        assert_eq!(first_tier(&records, &[]), 0);
    }
}
