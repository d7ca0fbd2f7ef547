//! systemd's system call groups (`@system-service`, `@privileged`, ...),
//! as systemd 252 defines them: `units/data/syscall-groups.txt`, written
//! by `scripts/syscall-groups` from `systemd-analyze syscall-filter`.
//! Debian 12's unit files were written against exactly these groups.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

const GROUPS: &str = include_str!("../data/syscall-groups.txt");

/// Group name (with its `@`) to its members, system calls and groups.
fn groups() -> &'static BTreeMap<&'static str, Vec<&'static str>> {
    static PARSED: OnceLock<BTreeMap<&'static str, Vec<&'static str>>> = OnceLock::new();
    PARSED.get_or_init(|| {
        let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut current = None;
        for line in GROUPS.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('@').map(|_| line.trim()) {
                current = Some(name);
                map.entry(name).or_default();
            } else if let Some(group) = current {
                map.entry(group).or_default().push(line.trim());
            }
        }
        map
    })
}

/// The system calls of a group (`@clock`) or a single call (`clock_settime`),
/// nested groups expanded; None for an unknown group.
pub fn expand(name: &str) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    if !name.starts_with('@') {
        out.insert(name.to_string());
        return Some(out);
    }
    let mut pending = vec![groups().get(name)?];
    let mut seen = BTreeSet::from([name]);
    while let Some(members) = pending.pop() {
        for &m in members {
            if m.starts_with('@') {
                if seen.insert(m) {
                    pending.push(groups().get(m)?);
                }
            } else {
                out.insert(m.to_string());
            }
        }
    }
    Some(out)
}

/// Whether a plain name is a system call systemd knows (`@known`).
pub fn is_known(call: &str) -> bool {
    static KNOWN: OnceLock<BTreeSet<String>> = OnceLock::new();
    KNOWN
        .get_or_init(|| expand("@known").unwrap_or_default())
        .contains(call)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_nest_and_expand() {
        let service = expand("@system-service").unwrap();
        // Directly listed, and through @basic-io and @default.
        assert!(service.contains("execve"));
        assert!(service.contains("read"));
        assert!(service.contains("write"));
        assert!(!service.contains("reboot"));
        assert!(expand("@reboot").unwrap().contains("reboot"));
        assert!(expand("@nonsense").is_none());
        assert_eq!(expand("getpid").unwrap().len(), 1);
        assert!(is_known("sethostname"));
        assert!(!is_known("frobnicate"));
    }
}
