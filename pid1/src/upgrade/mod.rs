//! Live kernel upgrades.
//!
//! So far: the plan and the preflight, which `relivectl live-upgrade
//! --dry-run` shows. The upgrade itself (freeze, CRIU dump, kexec, restore)
//! is being built on top of them.

pub mod connections;
pub mod criu;
pub mod plan;
pub mod preflight;
pub mod store;
