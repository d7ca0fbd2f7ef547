//! A [`Restorer`] that restores nothing: it records which units it was
//! asked for, in order, and fails the ones it is told to.

use crate::revive::{Restorer, Revived};
use crate::RestoreError;
use relive_api::report::UnitRecord;
use relive_host::HostError;
use relive_store::Store;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct FakeRestorer {
    /// Units rebuilt whose check passed (restored, or failed after), in order.
    pub restored: Mutex<Vec<String>>,
    /// Units whose restore fails.
    pub failing: Mutex<BTreeSet<String>>,
    /// How long each restore takes (so that restores run at once overlap).
    pub takes: Duration,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
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

    /// One whose every restore takes `takes`.
    pub fn taking(takes: Duration) -> FakeRestorer {
        FakeRestorer {
            takes,
            ..FakeRestorer::default()
        }
    }

    /// The most restores that ran at the same time.
    pub fn most_at_once(&self) -> usize {
        self.most_in_flight.load(Ordering::SeqCst)
    }

    pub fn restored(&self) -> Vec<String> {
        self.restored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Restorer for FakeRestorer {
    fn restore(
        &self,
        _store: &Store,
        record: &UnitRecord,
        check: crate::revive::Check<'_>,
        _lazy: Option<&std::path::Path>,
    ) -> Result<Revived, RestoreError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.takes);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        // As CRIU at "post-restore": rebuilt, run only if the check passed.
        let verify_ms = check()?;
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
            verify_ms,
            steps: String::new(),
        })
    }
}
