//! A [`Restorer`] that restores nothing: it records which units it was
//! asked for, in order, and fails the ones it is told to.

use crate::revive::{Restorer, Revived};
use crate::RestoreError;
use relive_api::report::UnitRecord;
use relive_host::HostError;
use relive_store::Store;
use std::collections::BTreeSet;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct FakeRestorer {
    /// Units restored (or tried), in order.
    pub restored: Mutex<Vec<String>>,
    /// Units whose restore fails.
    pub failing: Mutex<BTreeSet<String>>,
}

impl FakeRestorer {
    pub fn failing(units: &[&str]) -> FakeRestorer {
        let fake = FakeRestorer::default();
        fake.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(units.iter().map(|u| u.to_string()));
        fake
    }

    pub fn restored(&self) -> Vec<String> {
        self.restored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Restorer for FakeRestorer {
    fn restore(&self, _store: &Store, record: &UnitRecord) -> Result<Revived, RestoreError> {
        self.restored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.name.clone());
        if self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&record.name)
        {
            return Err(RestoreError::Host(HostError::Manager(format!(
                "{}: restore failed (fake)",
                record.name
            ))));
        }
        Ok(Revived {
            pid: record.main_pid,
            outputs: Vec::new(),
            elapsed_ms: 1.0,
            verify_ms: 0.0,
        })
    }
}
