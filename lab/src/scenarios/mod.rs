//! What the lab checks in a guest: the lab tests (`check`), live upgrades
//! under load (`upgrade-check`), the fault matrix (`faults`) and the demo.
//!
//! - [`check`]: one boot per kernel, the guest checked over ssh.
//! - [`upgrade`]: asking relive for a live upgrade and waiting for it; its
//!   report. [`pids`]: the preserved units' PIDs before and after.
//! - [`upgrade_check`]: an aborted upgrade, then real ones, with the
//!   two-phase snapshot and the stores checked.
//! - [`echo_client`]: a host-side TCP client that must see no gap lost.
//! - [`faults`]: injected faults and bad input; no service may be lost.
//! - [`ansible`]: Ansible's systemd_service module against relive.
//! - [`apt_service`]: a packaged service installed with apt, started by
//!   its maintainer scripts through systemctl and relive.
//! - [`package`]: relive's Debian package installed, its GRUB entries,
//!   removed while it runs, then systemd booting the same disk.
//! - [`fleet`]: rolling upgrades of several guests with the repository's
//!   Ansible collection, and a FleetLock server.
//! - [`demo`]: one upgrade, shown to a person.

pub mod activation;
pub mod ansible;
pub mod apt_service;
pub mod check;
pub mod compare;
pub mod criu_compat;
pub mod demo;
pub mod download;
pub mod echo_client;
pub mod faults;
pub mod feed;
pub mod fleet;
pub mod kernel_hook;
pub mod package;
pub mod pids;
pub mod server;
pub mod upgrade;
pub mod upgrade_check;
