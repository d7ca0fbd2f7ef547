//! CRIU's network lock tables, saved for the new kernel
//! (`relive_restore::netlock`) and merged into one on the old kernel
//! (`relive_restore::lock_merge`), so that the tables do not pile up
//! while units are parked one after another. CRIU 3 names a dump's table
//! by its root PID: once the first dump shows that, the next ones are
//! listed by name; CRIU 4 names it by the dump's run id, found as the
//! table the dump added.

use super::Parking;
use crate::error::UpgradeError;
use relive_restore::{lock_merge, netlock};
use relive_store::Store;
use std::collections::BTreeSet;

/// What the parking knows of the lock tables so far.
#[derive(Debug, Default)]
pub(super) struct LockBook {
    /// CRIU's tables after the last dump, listed when needed.
    tables: Option<Vec<String>>,
    /// This CRIU names a table by the dump's root PID.
    by_root: bool,
    /// Units whose connections are in the merged table.
    merged: BTreeSet<String>,
    /// The merged table exists.
    made: bool,
}

impl Parking<'_> {
    /// Before a dump: the tables there are, unless they will not be needed.
    pub(super) fn list_locks_before_dump(&mut self) {
        if !self.locks.by_root && self.locks.tables.is_none() {
            self.locks.tables = Some(netlock::tables(self.seams.host));
        }
    }

    /// After `name`'s dump rooted at `root`: its lock table saved, then
    /// merged. Returns the table's name, if the unit has one.
    pub(super) fn lock_after_dump(
        &mut self,
        store: &Store,
        name: &str,
        root: i32,
    ) -> Result<Option<String>, UpgradeError> {
        let lock_error = |source| UpgradeError::Lock {
            unit: name.to_owned(),
            source,
        };
        let host = self.seams.host;
        let saved = if self.locks.by_root {
            let table = netlock::table(root);
            netlock::save_named(host, store, name, &table)
                .map_err(lock_error)?
                .map(|text| (table, text))
        } else {
            let before = self.locks.tables.take().unwrap_or_default();
            let saved = netlock::save(host, store, name, root, &before).map_err(lock_error)?;
            if let Some((table, _)) = &saved {
                self.locks.by_root = *table == netlock::table(root);
            }
            saved
        };
        let Some((table, text)) = saved else {
            return Ok(None);
        };
        match lock_merge::merge(host, store, name, &table, &text, !self.locks.made) {
            Ok(()) => {
                self.locks.made = true;
                self.locks.merged.insert(name.to_owned());
                // Merged away: the next dump's new table is the only one.
                self.locks.tables = Some(Vec::new());
            }
            // CRIU's table stays and holds the connections all the same.
            Err(e) => tracing::warn!("{name}: its network lock stays CRIU's table {table}: {e}"),
        }
        Ok(Some(table))
    }

    /// The undo, before `name` is restored on the old kernel: its lock
    /// table back as CRIU left it (its restore removes it).
    pub(super) fn unmerge_lock(&mut self, store: &Store, name: &str) {
        if self.locks.merged.remove(name) {
            let others: Vec<String> = self.locks.merged.iter().cloned().collect();
            if let Err(e) = lock_merge::unmerge(self.seams.host, store, name, &others) {
                tracing::warn!("{name}: cannot put its network lock table back: {e}");
            }
        }
    }

    /// The undo's end: the merged table goes (what is left in it belongs
    /// to units started afresh).
    pub(super) fn drop_merged_locks(&mut self) {
        self.locks.merged.clear();
        if std::mem::take(&mut self.locks.made) {
            lock_merge::drop_merged(self.seams.host);
        }
    }
}
