//! CRIU's network lock tables, saved for the new kernel
//! (`relive_restore::netlock`). CRIU 3 names a dump's table by its root
//! PID: once the first dump shows that, the tables of every later unit are
//! saved together from one listing just before the handover, instead of
//! two `nft` runs per unit in the stoppage. CRIU 4 names it by the dump's
//! run id: each dump's new table is found and saved after it.

use super::Parking;
use crate::error::UpgradeError;
use relive_restore::netlock;
use relive_store::Store;

/// What the parking knows of the lock tables so far.
#[derive(Debug, Default)]
pub(super) struct LockBook {
    /// CRIU's tables after the last dump (listed once, then each dump's
    /// own added); None until listed.
    tables: Option<Vec<String>>,
    /// This CRIU names a table by the dump's root PID.
    by_root: bool,
    /// (unit, table) to be saved before the handover.
    deferred: Vec<(String, String)>,
}

/// A unit's lock table after its dump.
pub(super) struct UnitLock {
    /// Its name, if the unit has one.
    pub table: Option<String>,
    /// Saved already (else it is saved with the others before the kexec).
    pub saved: bool,
}

impl Parking<'_> {
    /// Before a dump: the tables there are, unless they will not be needed.
    pub(super) fn list_locks_before_dump(&mut self) {
        if !self.locks.by_root && self.locks.tables.is_none() {
            self.locks.tables = Some(netlock::tables(self.seams.host));
        }
    }

    /// After `name`'s dump rooted at `root`: its lock table.
    pub(super) fn lock_after_dump(
        &mut self,
        store: &Store,
        name: &str,
        root: i32,
    ) -> Result<UnitLock, UpgradeError> {
        if self.locks.by_root {
            let table = netlock::table(root);
            self.locks.deferred.push((name.to_owned(), table.clone()));
            return Ok(UnitLock {
                table: Some(table),
                saved: false,
            });
        }
        let mut tables = self.locks.tables.take().unwrap_or_default();
        let table =
            netlock::save(self.seams.host, store, name, root, &tables).map_err(|source| {
                UpgradeError::Lock {
                    unit: name.to_owned(),
                    source,
                }
            })?;
        if let Some(t) = &table {
            self.locks.by_root = *t == netlock::table(root);
            tables.push(t.clone());
        }
        self.locks.tables = Some(tables);
        let saved = table.is_some();
        Ok(UnitLock { table, saved })
    }

    /// Before the handover: the deferred tables, saved from one listing;
    /// each record says whether its table crosses the kexec.
    pub(super) fn save_deferred_locks(&mut self, store: &Store) -> Result<(), UpgradeError> {
        let deferred = std::mem::take(&mut self.locks.deferred);
        let saved = netlock::save_many(self.seams.host, store, &deferred).map_err(|source| {
            UpgradeError::Lock {
                unit: deferred
                    .iter()
                    .map(|(unit, _)| unit.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                source,
            }
        })?;
        for record in self
            .records
            .iter_mut()
            .filter(|r| deferred.iter().any(|(unit, _)| *unit == r.name))
        {
            record.lock_saved = saved.contains(&record.name);
        }
        Ok(())
    }
}
