//! relive: an init system (PID 1) built for live kernel upgrades.
//!
//! - [`sys`]: the kernel behind small seams (spawn, cgroups, mounts, machine).
//! - [`manager`]: units, jobs and the service state machine; all state in one
//!   serializable [`manager::state::ManagerState`].
//! - [`event_loop`]: the one thread that owns the manager.
//! - [`dbus`]: the control API on a private socket; [`api`] its types.

pub mod api;
pub mod dbus;
pub mod event_loop;
pub mod logging;
pub mod manager;
pub mod reexec;
pub mod sys;
pub mod upgrade;
