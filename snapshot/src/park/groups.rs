//! Preservation groups while parking: units tied by unix sockets, pipes
//! or FIFOs are all frozen before the first of them is dumped, and the
//! queues of their ties read while everything that could write to them
//! is frozen.

use super::{FrozenOnly, Parking};
use crate::pipes;
use crate::unix_ties::{self, HeldTie, Sockets};
use crate::UpgradeError;
use relive_api::report::{PipeTie, TiePeer, UnitRecord, UnixKind};
use relive_restore::cgroup_dir;
use relive_restore::{pipe_switch, switchboard};
use relive_store::Store;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

impl Parking<'_> {
    /// Before `name` is parked: the other members of its group that are
    /// still running are frozen too (each is checkpointed in its turn).
    pub(super) fn freeze_group_ahead(
        &mut self,
        group: &[String],
        name: &str,
    ) -> Result<(), UpgradeError> {
        for member in group.iter().filter(|m| *m != name) {
            let done = self.records.iter().any(|r| &r.name == member);
            let frozen = self.frozen_ahead.iter().any(|f| &f.name == member);
            if done || frozen {
                continue;
            }
            let info = self
                .seams
                .host
                .park(member)
                .map_err(|source| UpgradeError::Park {
                    unit: member.clone(),
                    source,
                })?;
            self.hold_new_connections(member);
            // Recorded first: a failed freeze is thawed by the undo too.
            self.frozen_ahead.push(FrozenOnly {
                name: member.clone(),
                main_pid: info.main_pid,
                cgroup: info.cgroup.clone(),
            });
            self.seams
                .freezer
                .freeze(&cgroup_dir(&info.cgroup))
                .map_err(|source| UpgradeError::Freeze {
                    unit: member.clone(),
                    source,
                })?;
            tracing::info!("{member}: frozen with {name}, its group");
        }
        Ok(())
    }

    /// Once `name` is frozen (and its group with it): its unix ties and
    /// the pipes it shares with its group, with what waits on them saved
    /// in the store for the restore.
    pub(super) fn take_ties(
        &mut self,
        store: &Store,
        group: &[String],
        name: &str,
    ) -> Result<(Vec<HeldTie>, Vec<PipeTie>), UpgradeError> {
        if !self.ties.contains_key(name) {
            self.find_ties(store, group, name);
            self.find_pipe_ties(store, group, name)
                .map_err(|source| UpgradeError::Pipes {
                    unit: name.to_owned(),
                    source,
                })?;
        }
        Ok((
            self.ties.remove(name).unwrap_or_default(),
            self.pipe_ties.remove(name).unwrap_or_default(),
        ))
    }

    /// The pipes and FIFOs only members of the group share: what waits in
    /// each is taken out into the store (no image carries it, the restore
    /// writes it once), and relive holds each pipe until the kexec or the
    /// undo, which puts the bytes back.
    fn find_pipe_ties(
        &mut self,
        store: &Store,
        group: &[String],
        name: &str,
    ) -> std::io::Result<()> {
        if group.is_empty() {
            return Ok(());
        }
        let members: Vec<(String, Vec<u32>)> = group
            .iter()
            .filter(|m| m.as_str() == name || !self.records.iter().any(|r| &r.name == *m))
            .map(|m| (m.clone(), crate::predump::cgroup_pids(m)))
            .collect();
        let mut ties = pipes::ties_of_group(&members, &pipes::all_pipe_fds());
        let mut taken: HashMap<String, (u64, u64)> = HashMap::new();
        for held in ties.values_mut().flatten() {
            let key = held.tie.key();
            if !taken.contains_key(&key) {
                let copy = relive_sys::unix_diag::copy_of(held.pid, held.fd)?;
                let pipe = pipe_switch::read_write(copy.as_fd())?;
                let capacity = pipe_switch::capacity(pipe.as_fd())?;
                let bytes = pipe_switch::take_out(pipe.as_fd())?;
                let len = bytes.len() as u64;
                // Held (with the bytes, for an undo) before the store is
                // written: a failed write is undone like any park.
                pipe_switch::hold(&held.tie, pipe, bytes.clone());
                pipe_switch::save_queue(store, &held.tie.queue_file(), &bytes)?;
                tracing::info!("{key}: shared by {name}'s group, {len} bytes waiting carried");
                taken.insert(key.clone(), (capacity, len));
            }
            (held.tie.capacity, held.tie.queued) = taken[&key];
        }
        self.pipe_ties.extend(
            ties.into_iter()
                .map(|(unit, held)| (unit, held.into_iter().map(|h| h.tie).collect())),
        );
        Ok(())
    }

    /// After an undo: a member restored from its images is connected
    /// again with a member of its group that was never dumped (its dump
    /// failed, or came later) and still holds its old socket, whose peer
    /// relive held. A relay joins the new end with the held one, so that
    /// the connection goes on and nothing queued is lost or repeated.
    pub(super) fn bridge_half_undone(&mut self, store: &Store, restored: &[UnitRecord]) {
        for record in restored {
            for tie in &record.unix_ties {
                let TiePeer::Unit { unit, inode: peer } = &tie.peer else {
                    continue;
                };
                if restored.iter().any(|r| &r.name == unit) {
                    continue;
                }
                let (Some(end), Some(held)) = (
                    switchboard::take(*peer),
                    self.held_sockets.remove(&tie.inode),
                ) else {
                    continue;
                };
                let what = format!("{} <-> {unit}", record.name);
                // What each side had not read yet was handed to the
                // restored one from the store, and is still queued on the
                // old sockets: not twice.
                let skip_end = switchboard::queued_len(store, *peer);
                let skip_held = switchboard::queued_len(store, tie.inode);
                match switchboard::relay(end, skip_end, held, skip_held, &what) {
                    Ok(()) => tracing::info!("{what}: connected again through relive"),
                    Err(e) => tracing::warn!("{what}: cannot connect again: {e}"),
                }
            }
        }
    }

    /// A member ran for a moment (its dump is tried once more) and is
    /// frozen again: it may have read what waited on its unix sockets, or
    /// written to its group's. Every held stream socket's queue is read
    /// again, so that the restore neither repeats nor loses a byte.
    /// `current` are the ties of the member being dumped, already taken
    /// out of `self.ties`. A datagram socket's queue cannot be carried
    /// (see unix_ties::hold): it stays as it was read.
    pub(super) fn peek_queues_again(&mut self, store: &Store, current: &mut [HeldTie]) {
        let ties = current
            .iter_mut()
            .chain(self.ties.values_mut().flatten())
            .map(|held| &mut held.tie)
            .chain(self.records.iter_mut().flat_map(|r| r.unix_ties.iter_mut()));
        peek_again(store, &self.held_sockets, ties);
    }

    fn find_ties(&mut self, store: &Store, group: &[String], name: &str) {
        let members: Vec<(&str, Vec<u32>)> = if group.is_empty() {
            vec![name]
        } else {
            group.iter().map(String::as_str).collect()
        }
        .into_iter()
        .filter(|member| !self.records.iter().any(|r| r.name == *member))
        .map(|member| (member, crate::predump::cgroup_pids(member)))
        .collect();
        // A unit alone: who holds which socket is read only if it has a
        // socket connected outside itself.
        let sockets = match &members[..] {
            [(_, pids)] if group.is_empty() => Sockets::around(pids),
            _ => Sockets::now(),
        };
        let sockets = match sockets {
            Ok(sockets) => sockets,
            Err(e) => {
                tracing::warn!("{name}: cannot list unix sockets (sock_diag): {e}");
                return;
            }
        };
        let unit_of = |pid: u32| relive_sys::cgroup::unit_of_pid(pid as i32);
        let preserved = |unit: &str| self.preserved.iter().any(|p| p == unit);
        let mut found = Vec::new();
        for (member, pids) in members {
            let mut held = unix_ties::ties_of(member, &pids, &sockets, &unit_of, &preserved);
            for tie in &mut held {
                let copy = save_queue(store, member, tie);
                // A connection to relive itself (its own client of the
                // bus that dbus-daemon is) must end when CRIU ends the
                // process: held, it would keep relive waiting on a bus
                // that is gone, and it would not connect to the one
                // restored (an undo's logind then waited for its name
                // until its start timed out).
                let peer = sockets.all.get(&tie.tie.inode).map(|s| s.peer);
                let to_relive = peer.and_then(|p| sockets.holders.get(&p)) == Some(&1);
                if let Some(copy) = copy.filter(|_| !to_relive) {
                    self.held_sockets.insert(tie.tie.inode, copy);
                }
            }
            found.push((member.to_owned(), held));
        }
        self.ties.extend(found);
    }
}

/// What waits on a tie, into the store (`unix-queues/INODE`); a queue
/// that cannot be read is not carried, and the log says so. Returns the
/// copy of the socket that keeps the connection up until the parking
/// ends (unix_ties::hold).
fn save_queue(store: &Store, unit: &str, held: &mut HeldTie) -> Option<OwnedFd> {
    let (copy, bytes) = match unix_ties::hold(held) {
        Ok(got) => got,
        Err(e) => {
            tracing::warn!(
                "{unit}: unix socket {} not held, {} bytes queued on it not carried: {e}",
                held.tie.inode,
                held.tie.queued
            );
            held.tie.queued = 0;
            return None;
        }
    };
    match write_queue(store, held.tie.inode, &bytes) {
        Ok(()) => held.tie.queued = bytes.len() as u64,
        Err(e) => {
            tracing::warn!(
                "{unit}: {} bytes queued on unix socket {} not carried: {e}",
                bytes.len(),
                held.tie.inode
            );
            held.tie.queued = 0;
        }
    }
    Some(copy)
}

/// What waits on each of `ties` whose socket relive holds (`held`, by
/// inode), read again into its queue file and `queued`.
fn peek_again<'a>(
    store: &Store,
    held: &HashMap<u64, OwnedFd>,
    ties: impl Iterator<Item = &'a mut relive_api::report::UnixTie>,
) {
    for tie in ties {
        let Some(copy) = held.get(&tie.inode) else {
            continue;
        };
        if tie.kind != UnixKind::Stream {
            continue;
        }
        let read = relive_sys::unix_diag::peek(copy.as_fd())
            .and_then(|bytes| write_queue(store, tie.inode, &bytes).map(|()| bytes.len()));
        match read {
            Ok(len) => tie.queued = len as u64,
            Err(e) => tracing::warn!(
                "unix socket {}: what waits on it after the retry is not carried: {e}",
                tie.inode
            ),
        }
    }
}

/// The queue file of unix socket `inode` (`unix-queues/INODE`): `bytes`,
/// or no file when nothing waits.
fn write_queue(store: &Store, inode: u64, bytes: &[u8]) -> std::io::Result<()> {
    let dir = relive_restore::switchboard::queue_dir(store);
    pipe_switch::write_queue_file(&dir, &inode.to_string(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use relive_api::report::UnixTie;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_queue_read_by_a_member_that_ran_again_is_read_again() {
        let dir = std::env::temp_dir().join(format!("relive-peek-again-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::at(&dir);
        let (mut writer, mut reader) = UnixStream::pair().unwrap();
        let inode = 7;
        let held = HashMap::from([(inode, OwnedFd::from(reader.try_clone().unwrap()))]);
        let mut tie = UnixTie {
            inode,
            kind: UnixKind::Stream,
            name: String::new(),
            nonblocking: false,
            peer: TiePeer::Unit {
                unit: "peer.service".into(),
                inode: 8,
            },
            queued: 0,
        };
        let file = relive_restore::switchboard::queue_dir(&store).join("7");
        writer.write_all(b"one two").unwrap();
        peek_again(&store, &held, std::iter::once(&mut tie));
        assert_eq!(std::fs::read(&file).unwrap(), b"one two");
        assert_eq!(tie.queued, 7);
        // The member ran: it read "one " and its peer wrote " three".
        let mut four = [0u8; 4];
        reader.read_exact(&mut four).unwrap();
        writer.write_all(b" three").unwrap();
        peek_again(&store, &held, std::iter::once(&mut tie));
        assert_eq!(std::fs::read(&file).unwrap(), b"two three");
        assert_eq!(tie.queued, 9);
        // Then everything: no file is left to write twice.
        let mut rest = [0u8; 9];
        reader.read_exact(&mut rest).unwrap();
        peek_again(&store, &held, std::iter::once(&mut tie));
        assert!(!file.exists());
        assert_eq!(tie.queued, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
