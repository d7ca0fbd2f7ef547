//! One unit, as `relivectl list-units` and `relivectl status` show it.

use serde::{Deserialize, Serialize};
use zvariant::Type;

/// One line of `relivectl list-units`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct UnitSummary {
    pub name: String,
    pub description: String,
    /// loaded, not-found, error, masked
    pub load_state: String,
    /// active, reloading, inactive, failed, activating, deactivating
    pub active_state: String,
    /// running, exited, dead, start-pre, start, stop-sigterm, auto-restart, ...
    pub sub_state: String,
    /// 0 when there is none.
    pub main_pid: u32,
}

/// Everything `relivectl status UNIT` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct UnitStatus {
    pub name: String,
    pub description: String,
    pub load_state: String,
    /// Why loading failed (file:line: message), empty if it did not.
    pub load_error: String,
    /// The unit file and its drop-ins.
    pub fragment: String,
    pub dropins: Vec<String>,
    pub active_state: String,
    pub sub_state: String,
    /// success, exit-code, signal, timeout, core-dump, start-limit-hit,
    /// dependency, resources, condition, protocol.
    pub result: String,
    /// Wall-clock time of the last active-state change, µs since the epoch.
    pub state_change_usec: u64,
    pub main_pid: u32,
    /// The cgroup path relative to the cgroup2 root, e.g. /system.slice/ssh.service.
    pub cgroup: String,
    /// PIDs currently in the cgroup.
    pub pids: Vec<u32>,
    /// Automatic restarts since the unit was last started by request.
    pub restarts: u32,
    /// Last STATUS= sent over sd_notify.
    pub status_text: String,
    /// The [X-LiveUpgrade] policy: preserve, restart or rerun, and its priority.
    pub upgrade_mode: String,
    pub upgrade_priority: u16,
    /// Load warnings (unsupported directives) as file:line: message.
    pub warnings: Vec<String>,
    /// The most recent lines the unit's processes wrote to stdout/stderr.
    pub output: Vec<String>,
}

/// One line of `relivectl list-timers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct TimerSummary {
    pub unit: String,
    /// The unit it starts.
    pub activates: String,
    pub active_state: String,
    /// The next elapse, µs since the epoch; 0 when none is armed.
    pub next_usec: u64,
    /// The last elapse, µs since the epoch; 0 when it never elapsed.
    pub last_usec: u64,
}

/// One line of `relivectl list-sockets`: one listening address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct SocketSummary {
    /// As systemd prints it: `/run/x.sock`, `[::]:22`, `audit 1`.
    pub listen: String,
    /// Stream, Datagram, SequentialPacket, FIFO, Special, Netlink.
    pub kind: String,
    pub unit: String,
    /// The service it starts (a template for Accept=yes).
    pub activates: String,
}

/// Whether a protection is in force for a unit (`relivectl security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    /// Asked for and enforced.
    On,
    /// Not asked for.
    Off,
    /// Asked for, but relive does not apply it (its best-effort list).
    NotApplied,
    /// Asked for and not implemented: the unit does not start.
    Refused,
}

/// One line of `relivectl security UNIT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityCheck {
    /// The directive (`ProtectSystem`), or a pseudo-name (`User`).
    pub setting: String,
    pub protection: Protection,
    /// What it protects against, or its value.
    pub description: String,
}
