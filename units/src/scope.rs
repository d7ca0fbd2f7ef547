//! The [Scope] and [Slice] sections: units that own a cgroup but start
//! no process. A scope groups processes someone else started (logind's
//! session scopes, `systemd-run --scope`); a slice is a node of the
//! cgroup tree that services, scopes and other slices sit in.

use crate::model::{KillMode, Timeout};
use crate::resources::Resources;
use serde::{Deserialize, Serialize};

/// What relive does with a scope's processes and its cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeSection {
    pub kill_mode: KillMode,
    pub kill_signal: i32,
    /// SIGHUP right after KillSignal=, to the processes' sessions (logind
    /// asks for it: a shell ignores SIGTERM but ends on a hangup).
    pub send_sighup: bool,
    /// SIGKILL once TimeoutStopSec= has passed.
    pub send_sigkill: bool,
    pub timeout_stop: Timeout,
    pub resources: Resources,
}

impl Default for ScopeSection {
    fn default() -> Self {
        ScopeSection {
            kill_mode: KillMode::ControlGroup,
            kill_signal: 15,
            send_sighup: false,
            send_sigkill: true,
            timeout_stop: Timeout::Default,
            resources: Resources::default(),
        }
    }
}

/// A slice's own settings: the limits of everything below it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceSection {
    pub resources: Resources,
}

/// The root slice, which every other one is below.
pub const ROOT_SLICE: &str = "-.slice";

/// The slice a slice is in: `user-1000.slice` is in `user.slice`,
/// `user.slice` in the root slice (systemd's `slice_build_parent_slice`).
/// None for the root slice itself.
pub fn parent_slice(slice: &str) -> Option<String> {
    let prefix = slice.strip_suffix(".slice")?;
    if slice == ROOT_SLICE {
        return None;
    }
    Some(match prefix.rfind('-') {
        Some(dash) => format!("{}.slice", &prefix[..dash]),
        None => ROOT_SLICE.to_string(),
    })
}

/// A slice's cgroup path relative to the cgroup2 root: each dash starts
/// a level (`user-1000.slice` -> `/user.slice/user-1000.slice`), the root
/// slice is the root.
pub fn slice_cgroup(slice: &str) -> String {
    let mut levels = Vec::new();
    let mut current = Some(slice.to_string());
    while let Some(s) = current.filter(|s| s != ROOT_SLICE) {
        current = parent_slice(&s);
        levels.push(s);
    }
    levels.reverse();
    levels.iter().map(|l| format!("/{l}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_nest_at_each_dash() {
        assert_eq!(
            parent_slice("user-1000.slice").as_deref(),
            Some("user.slice")
        );
        assert_eq!(parent_slice("user.slice").as_deref(), Some("-.slice"));
        assert_eq!(parent_slice("-.slice"), None);
        assert_eq!(parent_slice("a-b-c.slice").as_deref(), Some("a-b.slice"));
        assert_eq!(
            slice_cgroup("user-1000.slice"),
            "/user.slice/user-1000.slice"
        );
        assert_eq!(slice_cgroup("system.slice"), "/system.slice");
        assert_eq!(slice_cgroup("-.slice"), "");
        assert_eq!(
            slice_cgroup("a-b-c.slice"),
            "/a.slice/a-b.slice/a-b-c.slice"
        );
    }
}
