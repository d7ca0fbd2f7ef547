//! What the manager shows: conditions, unit summaries and status for the API.

use super::state::*;
use super::Manager;
use relive_api::units::{UnitStatus, UnitSummary};
use relive_units::{Condition, ConditionKind, Unit, UpgradeMode};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The first Condition*= that fails, as `PathExists=!/x`; None if the unit
/// may start. Triggering (`|`) conditions need only one of them to hold.
pub(super) fn failed_condition(unit: &Unit) -> Option<String> {
    first_failure(unit.unit.conditions.iter().filter(|c| !c.assert))
}

/// The same for Assert*=, whose failure fails the start.
pub(super) fn failed_assertion(unit: &Unit) -> Option<String> {
    first_failure(unit.unit.conditions.iter().filter(|c| c.assert))
}

fn first_failure<'a>(checks: impl Iterator<Item = &'a Condition> + Clone) -> Option<String> {
    let describe = |c: &Condition| {
        format!(
            "{:?}={}{}",
            c.kind,
            if c.negate { "!" } else { "" },
            c.path.display()
        )
    };
    let mut triggers = checks.clone().filter(|c| c.trigger).peekable();
    if triggers.peek().is_some() && !checks.clone().filter(|c| c.trigger).any(holds) {
        return checks.clone().find(|c| c.trigger).map(describe);
    }
    checks
        .filter(|c| !c.trigger)
        .find(|c| !holds(c))
        .map(describe)
}

fn holds(c: &Condition) -> bool {
    let p: &Path = &c.path;
    let result = match c.kind {
        ConditionKind::PathExists => p.exists(),
        ConditionKind::PathIsDirectory => p.is_dir(),
        ConditionKind::PathIsSymbolicLink => p.is_symlink(),
        ConditionKind::FileNotEmpty => p.metadata().is_ok_and(|m| m.is_file() && m.len() > 0),
        ConditionKind::DirectoryNotEmpty => {
            std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some())
        }
        ConditionKind::FileIsExecutable => p
            .metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0),
        ConditionKind::PathExistsGlob => glob_exists(p),
    };
    result != c.negate
}

/// A small glob: `*` and `?` in the last path component only.
fn glob_exists(pattern: &Path) -> bool {
    let (Some(dir), Some(name)) = (
        pattern.parent(),
        pattern.file_name().and_then(|n| n.to_str()),
    ) else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name()
            .to_str()
            .is_some_and(|n| wildcard(name.as_bytes(), n.as_bytes()))
    })
}

fn wildcard(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => wildcard(&p[1..], s) || (!s.is_empty() && wildcard(p, &s[1..])),
        (Some(b'?'), Some(_)) => wildcard(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => wildcard(&p[1..], &s[1..]),
        _ => false,
    }
}

impl Manager {
    /// Records an output line of `unit`, keeping the last N.
    pub fn output_line(&mut self, unit: &str, line: String) {
        tracing::info!(target: "unit", "{unit}: {line}");
        let keep = self.config.manager.status_output_lines;
        if let Some(u) = self.state.units.get_mut(unit) {
            u.output.push_back(line);
            while u.output.len() > keep {
                u.output.pop_front();
            }
        }
    }

    pub fn list_units(&self) -> Vec<UnitSummary> {
        self.state.units.values().map(summary).collect()
    }

    pub fn unit_status(&self, name: &str) -> Option<UnitStatus> {
        let u = self.unit(name)?;
        let cfg = u.config.as_ref();
        let cgroup = relive_sys::cgroup::unit_cgroup(&u.name);
        let pids = if u.is_service() {
            self.rt
                .kernel
                .cgroup_pids(&cgroup)
                .unwrap_or_default()
                .into_iter()
                .map(|p| p as u32)
                .collect()
        } else {
            Vec::new()
        };
        let (mode, priority) = cfg
            .map(|c| (c.live_upgrade.mode, c.live_upgrade.priority))
            .unwrap_or((UpgradeMode::Restart, 0));
        Some(UnitStatus {
            name: u.name.clone(),
            description: cfg
                .and_then(|c| c.unit.description.clone())
                .unwrap_or_default(),
            load_state: u.load.as_str().into(),
            load_error: u.load_error.clone().unwrap_or_default(),
            fragment: cfg
                .map(|c| c.fragment.display().to_string())
                .unwrap_or_default(),
            dropins: cfg
                .map(|c| c.dropins.iter().map(|d| d.display().to_string()).collect())
                .unwrap_or_default(),
            active_state: u.active.as_str().into(),
            sub_state: u.sub.as_str().into(),
            result: u.result.as_str().into(),
            state_change_usec: u.state_change_usec,
            main_pid: u.main_pid.unwrap_or(0) as u32,
            cgroup: if u.is_service() {
                cgroup
            } else {
                String::new()
            },
            pids,
            restarts: u.restarts,
            status_text: u.status_text.clone().unwrap_or_default(),
            upgrade_mode: match mode {
                UpgradeMode::Preserve => "preserve",
                UpgradeMode::Restart => "restart",
                UpgradeMode::Rerun => "rerun",
            }
            .into(),
            upgrade_priority: priority,
            warnings: cfg
                .map(|c| c.warnings.iter().map(|w| w.to_string()).collect())
                .unwrap_or_default(),
            output: u.output.iter().cloned().collect(),
        })
    }
}

fn summary(u: &UnitState) -> UnitSummary {
    UnitSummary {
        name: u.name.clone(),
        description: u
            .config
            .as_ref()
            .and_then(|c| c.unit.description.clone())
            .unwrap_or_default(),
        load_state: u.load.as_str().into(),
        active_state: u.active.as_str().into(),
        sub_state: u.sub.as_str().into(),
        main_pid: u.main_pid.unwrap_or(0) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards() {
        assert!(wildcard(b"*.conf", b"a.conf"));
        assert!(wildcard(b"a?c", b"abc"));
        assert!(!wildcard(b"*.conf", b"a.con"));
        assert!(wildcard(b"*", b""));
    }
}
