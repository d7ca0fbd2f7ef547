//! The preserved units' PIDs, read before and after an upgrade: each
//! unit's main PID and cgroup PIDs, without those of the ssh session that
//! asked (they come and go with every command).

use super::upgrade::PRESERVED;
use crate::vm::paths::Paths;
use crate::vm::ssh;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};

/// The preserved units' main PIDs and cgroup PIDs, and the PIDs of the ssh
/// session that asked (transient: they are gone once it ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pids {
    pub units: BTreeMap<String, (u32, BTreeSet<u32>)>,
    pub transient: BTreeSet<u32>,
}

impl Pids {
    pub fn read(paths: &Paths, port: u16) -> Result<Pids> {
        // Transient, besides the asking shell's ancestry up to the
        // listener (sshd's session process, bash): relivectl itself, a
        // child of that shell in ssh.service's cgroup (its PID is printed
        // first: `exec` keeps it). The listener is not transient: it is
        // ssh.service's main PID, kept out below.
        let script = format!(
            "sh -c 'echo $$; exec relivectl --json status {}'; echo @@; p=$$; while [ \"$p\" -gt 1 ]; do echo $p; \
             p=$(awk '/^PPid:/{{print $2}}' /proc/$p/status); done",
            PRESERVED.join(" ")
        );
        let out = ssh::run(paths, port, &script)?;
        let (json, ancestry) = out
            .stdout
            .split_once("@@")
            .context("relivectl status printed nothing")?;
        let (relivectl, json) = json
            .trim()
            .split_once('\n')
            .context("relivectl status printed nothing")?;
        let statuses: Vec<serde_json::Value> =
            serde_json::from_str(json.trim()).context("parsing relivectl --json status")?;
        let mut units = BTreeMap::new();
        for s in statuses {
            let name = s["name"].as_str().unwrap_or_default().to_owned();
            let main = s["main_pid"].as_u64().unwrap_or(0) as u32;
            let pids = s["pids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_u64())
                        .map(|p| p as u32)
                        .collect()
                })
                .unwrap_or_default();
            units.insert(name, (main, pids));
        }
        let mains: BTreeSet<u32> = units.values().map(|(m, _)| *m).collect();
        let transient = ancestry
            .split_whitespace()
            .chain([relivectl.trim()])
            .filter_map(|p| p.parse().ok())
            .filter(|p| !mains.contains(p))
            .collect();
        Ok(Pids { units, transient })
    }

    /// Each unit's PIDs without the asking session's.
    pub fn lasting(&self) -> BTreeMap<String, (u32, BTreeSet<u32>)> {
        self.units
            .iter()
            .map(|(name, (main, pids))| {
                (
                    name.clone(),
                    (*main, pids.difference(&self.transient).copied().collect()),
                )
            })
            .collect()
    }

    /// "" when `after` has the same main PIDs and lasting PIDs; else what
    /// differs.
    pub fn differences(&self, after: &Pids) -> String {
        let (before, after) = (self.lasting(), after.lasting());
        let mut diffs = Vec::new();
        for (name, (main, pids)) in &before {
            match after.get(name) {
                None => diffs.push(format!("{name}: gone")),
                Some((main2, pids2)) => {
                    if main != main2 || *main == 0 {
                        diffs.push(format!("{name}: main PID {main} -> {main2}"));
                    }
                    if pids != pids2 {
                        diffs.push(format!("{name}: PIDs {pids:?} -> {pids2:?}"));
                    }
                }
            }
        }
        diffs.join("; ")
    }

    pub fn summary(&self) -> String {
        self.lasting()
            .iter()
            .map(|(name, (main, pids))| format!("{name} {main} {pids:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
