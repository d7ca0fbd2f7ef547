//! CRIU's network lock tables, saved for the new kernel
//! (`relive_restore::netlock`) and merged into one on the old kernel
//! (`relive_restore::lock_merge`), so that the tables do not pile up
//! while units are parked one after another. CRIU 3 names a dump's table
//! by its root PID: once the first dump shows that, the next ones are
//! listed by name; CRIU 4 names it by the dump's run id, found as the
//! table the dump added.
//!
//! A unit without a TCP connection has a table with nothing in it: with
//! CRIU 3 it is neither listed nor merged, an empty table of its name is
//! saved (the new kernel makes it for CRIU's restore to delete), and
//! CRIU's is deleted with a few others in one nft run. Two nft runs per
//! unit were a fifth of the parking of 80 small units.

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
    /// Units whose table was empty (saved as such, not merged).
    emptied: BTreeSet<String>,
    /// Empty CRIU tables not yet deleted: (unit, table).
    to_delete: Vec<(String, String)>,
}

/// Empty tables deleted together in one nft run.
const DELETE_TOGETHER: usize = 8;

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
        tcp_connections: Option<bool>,
    ) -> Result<Option<String>, UpgradeError> {
        let lock_error = |source| UpgradeError::Lock {
            unit: name.to_owned(),
            source,
        };
        let host = self.seams.host;
        if self.locks.by_root && tcp_connections == Some(false) {
            let table = netlock::table(root);
            netlock::save_empty(store, name, &table).map_err(lock_error)?;
            self.locks.emptied.insert(name.to_owned());
            self.locks.to_delete.push((name.to_owned(), table.clone()));
            if self.locks.to_delete.len() >= DELETE_TOGETHER {
                self.delete_empty_tables();
            }
            return Ok(Some(table));
        }
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
        if self.locks.emptied.remove(name) {
            // Still there (not deleted yet): CRIU's restore deletes it.
            let pending = self
                .locks
                .to_delete
                .iter()
                .position(|(unit, _)| unit == name);
            match pending {
                Some(at) => drop(self.locks.to_delete.remove(at)),
                None => {
                    if let Err(e) = netlock::load(self.seams.host, store, name) {
                        tracing::warn!("{name}: cannot put its empty network lock table back: {e}");
                    }
                }
            }
        }
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
        self.delete_empty_tables();
        self.locks.merged.clear();
        if std::mem::take(&mut self.locks.made) {
            lock_merge::drop_merged(self.seams.host);
        }
    }

    /// CRIU's empty tables kept for deletion, deleted in one nft run (an
    /// undo takes those of the units it restores out of the list: CRIU's
    /// restore deletes them).
    fn delete_empty_tables(&mut self) {
        let tables: Vec<String> = std::mem::take(&mut self.locks.to_delete)
            .into_iter()
            .map(|(_, table)| table)
            .collect();
        if let Err(e) = netlock::delete_tables(self.seams.host, &tables) {
            tracing::warn!("cannot delete CRIU's empty lock tables {tables:?}: {e}");
        }
    }
}
