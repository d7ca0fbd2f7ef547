//! The benchmarks: what relive costs at boot, what a live upgrade costs
//! the services against a cold reboot, and the two-phase snapshot's
//! stoppage against memory size and dirty rate.
//!
//! - [`boot`]: `bench-boot`, relive against systemd as PID 1.
//! - [`upgrade`]: `bench-upgrade`, a live upgrade against a cold reboot.
//! - [`twophase`]: `bench`, the two-phase snapshot's stoppage; [`svg`]
//!   draws its figures.

pub mod boot;
pub mod svg;
pub mod twophase;
pub mod upgrade;
