//! A warm snapshot as relivectl shows it (`relivectl live-upgrade
//! --prepare`): per unit, its pre-dump rounds so far. relive keeps more
//! per unit (the activity baseline, the parent image); the JSON carries
//! it, and this reader ignores what it does not need.

use crate::report::PreDumpRound;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Warm {
    /// When it was last refreshed (wall clock, µs).
    pub taken_usec: u64,
    pub units: BTreeMap<String, WarmUnit>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WarmUnit {
    /// The tree's root when it was pre-dumped.
    pub main_pid: u32,
    pub chain: ChainSummary,
}

/// A unit's pre-dump chain: its rounds and why they stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainSummary {
    pub rounds: Vec<PreDumpRound>,
    #[serde(default)]
    pub convergence: String,
}
