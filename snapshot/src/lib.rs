//! The snapshot side of a live upgrade.
//!
//! For now: freezing a unit's cgroup (the stoppage starts here) and sampling
//! each task's CPU time (a task that did not run since its pre-dump needs no
//! memory re-dump). CRIU dumps arrive with the live-upgrade issue.

pub mod activity;
pub mod freezer;
