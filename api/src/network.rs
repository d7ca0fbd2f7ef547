//! The machine's network as the old kernel had it, carried across the
//! kexec so that the new kernel has it before the restores: the
//! addresses and routes of the physical interfaces, and ifupdown's own
//! record of what it brought up.

use serde::{Deserialize, Serialize};

/// What `relive_restore::netstate` recorded before the stoppage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    pub links: Vec<LinkState>,
    pub routes: Vec<RouteState>,
    /// ifupdown's state files under /run/network (name, contents): with
    /// them, its `ifup -a` in the new kernel finds the interfaces up.
    #[serde(default)]
    pub ifupdown: Vec<(String, String)>,
}

/// A physical interface, found again in the new kernel by its hardware
/// address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    pub name: String,
    pub mac: String,
    pub mtu: u32,
    pub up: bool,
    pub addresses: Vec<AddressState>,
}

/// An address of global scope, with its lifetimes (seconds;
/// u32::MAX: forever).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressState {
    /// "inet" or "inet6".
    pub family: String,
    pub local: String,
    pub prefixlen: u8,
    pub valid_lft: u32,
    pub preferred_lft: u32,
}

/// A route of the main table that the kernel did not make itself from an
/// address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteState {
    /// "inet" or "inet6".
    pub family: String,
    /// "default" or a prefix.
    pub dst: String,
    pub gateway: Option<String>,
    pub dev: String,
    pub protocol: Option<String>,
    pub metric: Option<u32>,
    pub scope: Option<String>,
    pub prefsrc: Option<String>,
}
