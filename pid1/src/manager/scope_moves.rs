//! A service's processes that live in scopes, across its checkpoint.
//!
//! An ssh login's processes descend from sshd (ssh.service) but logind
//! puts them in a session scope (/user.slice/user-0.slice/session-3.scope).
//! CRIU checkpoints a service's whole process tree, yet freezes and
//! seizes only the cgroup it is given: a descendant elsewhere cannot be
//! seized and the checkpoint fails. So before a service is parked, such
//! descendants are moved below the service's own cgroup, into a child
//! named after their scope (`ssh.service/session-3.scope`), and the scope
//! is parked with it; CRIU restores them into that child, and once the
//! service runs again (restored, or its upgrade undone) they go back to
//! their scope, which is active again.

use super::state::{ActiveState, SubState};
use super::Manager;
use relive_units::UnitKind;
use std::collections::HashMap;

impl Manager {
    /// Moves the descendants of `main_pid` that are outside the unit's
    /// cgroup below it; parks the scopes they came from.
    pub(super) fn gather_scopes(&mut self, name: &str, main_pid: i32) {
        let own = self.unit_cgroup(name);
        for pid in descendants(main_pid) {
            let Some(cgroup) = self.rt.kernel.cgroup_of(pid) else {
                continue;
            };
            if cgroup == own || cgroup.starts_with(&format!("{own}/")) {
                continue;
            }
            let leaf = cgroup.rsplit('/').next().unwrap_or_default().to_owned();
            if leaf.is_empty() {
                continue;
            }
            let target = format!("{own}/{leaf}");
            let moved = self
                .rt
                .kernel
                .cgroup_create(&target)
                .and_then(|()| self.rt.kernel.cgroup_attach(&target, pid));
            match moved {
                Ok(()) => tracing::info!(
                    "{name}: process {pid} of {leaf} moved to {target} for the checkpoint"
                ),
                Err(e) => {
                    tracing::warn!("{name}: cannot move process {pid} below its cgroup: {e}");
                    continue;
                }
            }
            if let Some(scope) = self.state.units.get_mut(&leaf) {
                if scope
                    .config
                    .as_ref()
                    .is_some_and(|c| c.kind == UnitKind::Scope)
                {
                    scope.parked = true;
                }
            }
        }
    }

    /// The processes of scopes below the unit's cgroup go back to their
    /// scope, which is active again (its transient file written again if
    /// a new kernel's /run lacks it).
    pub(super) fn return_scopes(&mut self, name: &str) {
        let own = self.unit_cgroup(name);
        for child in self.rt.kernel.cgroup_children(&own).unwrap_or_default() {
            let Some(config) = self
                .state
                .units
                .get(&child)
                .and_then(|u| u.config.clone())
                .filter(|c| c.kind == UnitKind::Scope)
            else {
                continue;
            };
            let from = format!("{own}/{child}");
            let to = config.cgroup();
            if let Err(e) = self.rt.kernel.cgroup_create(&to) {
                tracing::warn!("{child}: cannot make its cgroup again: {e}");
                continue;
            }
            for pid in self.rt.kernel.cgroup_pids(&from).unwrap_or_default() {
                if let Err(e) = self.rt.kernel.cgroup_attach(&to, pid) {
                    tracing::warn!("{child}: cannot move process {pid} back: {e}");
                }
            }
            self.rt.kernel.cgroup_remove(&from);
            self.rewrite_transient(&child);
            let u = self.state.units.get_mut(&child).expect("found above");
            u.parked = false;
            u.deadline = Some(super::clock::now());
            tracing::info!("{child}: its processes are back in {to}");
            self.set_state(&child, ActiveState::Active, SubState::Running);
        }
    }
}

/// Every descendant of `root` (not `root` itself), from /proc.
fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(all) = procfs::process::all_processes() {
        for process in all.flatten() {
            if let Ok(stat) = process.stat() {
                children.entry(stat.ppid).or_default().push(stat.pid);
            }
        }
    }
    let mut found = Vec::new();
    let mut next = vec![root];
    while let Some(pid) = next.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            found.push(child);
            next.push(child);
        }
    }
    found
}
