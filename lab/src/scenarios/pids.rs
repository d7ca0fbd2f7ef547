//! The preserved units' PIDs, read before and after an upgrade: each
//! unit's main PID and cgroup PIDs, without those of the ssh session that
//! asked (they come and go with every command).

use super::upgrade::PRESERVED;
use crate::vm::paths::Paths;
use crate::vm::ssh;
use anyhow::{Context, Result};
use relive_api::units::UnitStatus;
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
        Pids::parse(&ssh::run(paths, port, &script)?.stdout)
    }

    /// What [`Pids::read`]'s script printed: relivectl's PID, its JSON,
    /// `@@`, the asking shell's ancestry.
    fn parse(stdout: &str) -> Result<Pids> {
        let (json, ancestry) = stdout
            .split_once("@@")
            .context("relivectl status printed nothing")?;
        let (relivectl, json) = json
            .trim()
            .split_once('\n')
            .context("relivectl status printed nothing")?;
        let statuses: Vec<UnitStatus> =
            serde_json::from_str(json.trim()).context("parsing relivectl --json status")?;
        let units: BTreeMap<String, (u32, BTreeSet<u32>)> = statuses
            .into_iter()
            .map(|s| (s.name, (s.main_pid, s.pids.into_iter().collect())))
            .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, main_pid: u32, pids: &[u32]) -> UnitStatus {
        UnitStatus {
            name: name.into(),
            description: String::new(),
            load_state: "loaded".into(),
            load_error: String::new(),
            fragment: String::new(),
            dropins: Vec::new(),
            active_state: "active".into(),
            sub_state: "running".into(),
            result: "success".into(),
            state_change_usec: 0,
            main_pid,
            cgroup: format!("/system.slice/{name}"),
            pids: pids.to_vec(),
            restarts: 0,
            status_text: String::new(),
            upgrade_mode: "preserve".into(),
            upgrade_priority: 0,
            warnings: Vec::new(),
            output: Vec::new(),
        }
    }

    /// The asking session's processes (its shell, sshd's session process,
    /// relivectl) are not the unit's: they differ on every call.
    #[test]
    fn the_asking_session_is_left_out() {
        let read = |session: [u32; 3]| {
            let [relivectl, shell, sshd] = session;
            let json = serde_json::to_string(&[
                status("ssh.service", 500, &[500, sshd, shell, relivectl]),
                status("relive-counter.service", 700, &[700, 701]),
            ])
            .unwrap();
            Pids::parse(&format!("{relivectl}\n{json}\n@@\n{shell}\n{sshd}\n500\n")).unwrap()
        };
        let (before, after) = (read([900, 901, 902]), read([910, 911, 912]));
        assert_eq!(before.transient, BTreeSet::from([900, 901, 902]));
        assert_eq!(before.differences(&after), "");
        assert_eq!(
            before.summary(),
            "relive-counter.service 700 {700, 701}, ssh.service 500 {500}"
        );
        let mut moved = read([910, 911, 912]);
        moved.units.get_mut("relive-counter.service").unwrap().0 = 800;
        assert_eq!(
            before.differences(&moved),
            "relive-counter.service: main PID 700 -> 800"
        );
    }
}
