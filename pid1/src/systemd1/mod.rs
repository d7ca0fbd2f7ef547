//! systemd's own D-Bus API, org.freedesktop.systemd1, served by relive so
//! that Debian's systemctl, logind and the tools built on them manage a
//! relive system as they manage a systemd one.
//!
//! The same dispatcher answers on two transports: /run/systemd/private
//! (peer-to-peer, what systemctl uses as root) and the system bus, where
//! relive owns the name org.freedesktop.systemd1 (see `system_bus`).
//! Messages are dispatched by hand rather than through zbus's object
//! server: unit objects are as many as the units, made on demand from
//! their path, and systemctl asks for every interface's properties at
//! once (GetAll with an empty interface name), which zbus's Properties
//! implementation refuses.
//!
//! relive's own interface, org.relive.Manager1 (live upgrades), is served
//! on the same object and transports (`relive_methods.rs`).
//!
//! Access is systemd's without polkit: reading is for everyone,
//! changing anything is for root; relive's interface is root-only.

mod cgroup_props;
mod dispatch;
pub mod events;
mod manager_methods;
pub mod paths;
mod private_socket;
mod properties;
mod relive_methods;
mod transient;
mod unit_file_methods;

pub use dispatch::{Caller, Dispatcher};
pub use private_socket::{forward_signals, serve_private, PRIVATE_SOCKET};
