//! New TCP connections held while a unit is checkpointed
//! (`relive_restore::syn_hold`): from just before its freeze, SYNs to the
//! ports its processes listen on are dropped, so that their clients send
//! them again and connect to the restored service. What the kernel had
//! already queued is given a moment to be accepted first: CRIU cannot
//! carry an unaccepted connection (and refuses the dump without
//! `--skip-in-flight`, which relive gives it).

use super::Parking;
use crate::connections::{all_sockets, sockets_of, TcpSocket};
use relive_restore::syn_hold;
use relive_store::Store;
use std::time::{Duration, Instant};

/// How long the service gets to accept what the kernel queued before the
/// hold. It is still running; only units frozen before it wait.
const DRAIN: Duration = Duration::from_secs(1);

impl Parking<'_> {
    /// Just before `name` is frozen: its listeners' new connections held
    /// (once per unit; a group member frozen ahead comes here first).
    /// A hold that cannot be installed only costs the clients a refusal:
    /// the upgrade goes on. Returns the connections still unaccepted.
    pub(super) fn hold_new_connections(&mut self, name: &str) -> u32 {
        if self.holds.contains_key(name) {
            return 0;
        }
        let pids = crate::predump::cgroup_pids(name);
        let inodes: Vec<u64> = pids
            .iter()
            .flat_map(|&pid| sockets_of(pid))
            .map(|(inode, _)| inode)
            .collect();
        let listening = |sockets: Vec<TcpSocket>| -> Vec<TcpSocket> {
            sockets
                .into_iter()
                .filter(|s| s.is_listening() && inodes.contains(&s.inode))
                .collect()
        };
        let mut ports: Vec<u16> = listening(all_sockets())
            .iter()
            .map(|s| s.local.port())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        if ports.is_empty() {
            return 0;
        }
        let store = Store::at(&self.store_dir);
        let first = self.holds.is_empty();
        match syn_hold::install(self.seams.host, &store, name, &ports, first) {
            Ok(()) => {
                self.holds.insert(name.to_owned(), ports);
            }
            Err(e) => {
                tracing::warn!("{name}: cannot hold new connections ({e}); they may be refused during the stoppage");
            }
        }
        let started = Instant::now();
        loop {
            let queued: u32 = listening(all_sockets()).iter().map(|s| s.queued).sum();
            if queued == 0 {
                return 0;
            }
            if started.elapsed() >= DRAIN {
                tracing::warn!("{name}: {queued} connection(s) it had not accepted will be reset");
                return queued;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The undo: every hold goes (the services run again, or start
    /// afresh and listen anew).
    pub(super) fn release_holds(&mut self) {
        if !std::mem::take(&mut self.holds).is_empty() {
            syn_hold::drop_table(self.seams.host);
        }
    }
}
