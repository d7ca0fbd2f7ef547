//! The After=/Before= graph of the loaded units, indexed once per pass.
//!
//! Deciding whether a job may run asks "which units is this one ordered
//! after, and which after it?" for every queued job. Answered by scanning
//! every unit's lists, that is O(units²) per job: at a poweroff with 60
//! stop jobs among 300 units it kept PID 1 busy for about a second per
//! pass under TCG. The index answers in O(its edges).

use super::state::ManagerState;
use std::collections::HashMap;

/// Both directions of the ordering relation, by canonical unit name.
#[derive(Default)]
pub(super) struct OrderIndex {
    /// unit -> the units it starts after (its After= and others' Before=).
    after: HashMap<String, Vec<String>>,
    /// unit -> the units that start after it.
    before: HashMap<String, Vec<String>>,
}

impl OrderIndex {
    pub(super) fn build(state: &ManagerState) -> OrderIndex {
        let canonical = |name: &String| state.aliases.get(name).unwrap_or(name).clone();
        let mut index = OrderIndex::default();
        for u in state.units.values() {
            let Some(cfg) = u.config.as_ref() else {
                continue;
            };
            for first in &cfg.unit.after {
                index.add(&canonical(first), &u.name);
            }
            for later in &cfg.unit.before {
                index.add(&u.name, &canonical(later));
            }
        }
        index
    }

    /// From each unit's (After=, Before=) lists, without a manager.
    #[cfg(test)]
    pub(super) fn from_lists(units: &HashMap<&str, (Vec<String>, Vec<String>)>) -> OrderIndex {
        let mut index = OrderIndex::default();
        for (name, (after, before)) in units {
            for first in after {
                index.add(first, name);
            }
            for later in before {
                index.add(name, later);
            }
        }
        index
    }

    fn add(&mut self, first: &str, then: &str) {
        self.after
            .entry(then.to_owned())
            .or_default()
            .push(first.to_owned());
        self.before
            .entry(first.to_owned())
            .or_default()
            .push(then.to_owned());
    }

    /// The units `name` is ordered after.
    pub(super) fn ordered_before(&self, name: &str) -> &[String] {
        self.after.get(name).map_or(&[], Vec::as_slice)
    }

    /// The units ordered after `name`.
    pub(super) fn ordered_after(&self, name: &str) -> &[String] {
        self.before.get(name).map_or(&[], Vec::as_slice)
    }
}
