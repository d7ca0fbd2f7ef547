//! relive: an init system (PID 1) built for live kernel upgrades.
//!
//! - [`manager`]: units, jobs and the service state machine; all state in one
//!   serializable [`manager::state::ManagerState`].
//! - [`event_loop`]: the one thread that owns the manager.
//! - [`dbus`]: the control API on a private socket (types in `relive-api`);
//!   it and [`systemd1`] only turn requests into [`control`]'s calls on
//!   the manager or on [`upgrade`].
//! - [`systemd1`]: systemd's D-Bus API, for systemctl and its kin.
//! - [`upgrade`]: PID 1's side of a live upgrade (the upgrade itself is in
//!   the `relive-snapshot` and `relive-restore` crates).
//! - [`reexec`]: handing the state to a fresh relive binary.
//! - [`final_stage`]: the machine's end from a copy of relive in /run when
//!   its own binary was deleted.
//! - [`generators`]: running systemd's unit generators.
//! - [`clients`], [`logging`]: control connections, the log.
//!
//! The kernel interfaces (spawn, cgroups, mounts) are in `relive-sys`.

pub mod clients;
pub mod control;
pub mod dbus;
pub mod event_loop;
pub mod final_stage;
pub mod generators;
pub mod initrd_stage;
pub mod journal_log;
pub mod logging;
pub mod manager;
pub mod reexec;
pub mod system_bus;
pub mod systemd1;
pub mod upgrade;
