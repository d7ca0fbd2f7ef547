//! The snapshot side of a live upgrade.
//!
//! - [`freezer`]: freezing a unit's cgroup (the stoppage starts here);
//! - [`activity`]: each task's CPU time (a task that did not run since its
//!   pre-dump needs no memory re-dump);
//! - [`criu`]: relive's own client of CRIU's RPC (`criu swrk`), with
//!   pre-dump, dump, restore and check.

pub mod activity;
pub mod criu;
pub mod freezer;
