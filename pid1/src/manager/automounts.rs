//! Automount units (systemd.automount(5)): an autofs mount on Where=; the
//! first access starts the .mount unit of the same name, and the waiting
//! processes go on once it is mounted (or get ENOENT if it fails). The
//! kernel's requests arrive on a pipe the loop polls.

use super::state::*;
use super::Manager;
use relive_sys::autofs::{self, Autofs};
use relive_units::unit_name;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};

/// The autofs mounts relive serves, by automount unit, and the requests
/// waiting for each one's mount.
#[derive(Debug, Default)]
pub struct Automounts {
    mounts: HashMap<String, Autofs>,
    waiting: HashMap<String, Vec<u32>>,
}

impl Automounts {
    /// Gives up the mounts' descriptors for a re-exec: (requests, ioctl,
    /// unit, tokens waiting).
    pub fn export(&mut self) -> Vec<(RawFd, RawFd, String, Vec<u32>)> {
        self.mounts
            .drain()
            .map(|(unit, autofs)| {
                let (requests, ioctl) = autofs.into_fds();
                let waiting = self.waiting.remove(&unit).unwrap_or_default();
                (requests.into_raw_fd(), ioctl.into_raw_fd(), unit, waiting)
            })
            .collect()
    }

    /// Serves a mount again after a re-exec (or a failed one).
    pub fn adopt(&mut self, requests: OwnedFd, ioctl: OwnedFd, unit: &str, waiting: Vec<u32>) {
        self.mounts
            .insert(unit.to_owned(), Autofs::from_fds(requests, ioctl));
        if !waiting.is_empty() {
            self.waiting.insert(unit.to_owned(), waiting);
        }
    }

    /// The request pipes to poll.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.mounts.values().map(|a| a.requests.as_fd()).collect()
    }
}

impl Manager {
    pub(super) fn start_automount(&mut self, name: &str) {
        let Some(cfg) = self.start_config(name) else {
            return;
        };
        let Some(section) = cfg.automount.clone() else {
            return;
        };
        if self.rt.automounts.mounts.contains_key(name) {
            self.set_state(name, ActiveState::Active, SubState::Waiting);
            return;
        }
        match Autofs::mount(
            &section.where_,
            section.directory_mode,
            section.timeout_idle,
        ) {
            Ok(autofs) => {
                self.rt.automounts.mounts.insert(name.to_owned(), autofs);
                let u = self.state.units.get_mut(name).expect("unit exists");
                u.result = UnitResult::Success;
                self.set_state(name, ActiveState::Active, SubState::Waiting);
            }
            Err(e) => {
                tracing::error!(
                    "{name}: cannot mount autofs on {}: {e}",
                    section.where_.display()
                );
                let u = self.state.units.get_mut(name).expect("unit exists");
                u.result = UnitResult::Resources(e.to_string());
                self.set_state(name, ActiveState::Failed, SubState::Failed);
            }
        }
    }

    pub(super) fn stop_automount(&mut self, name: &str) {
        if let Some(autofs) = self.rt.automounts.mounts.remove(name) {
            for token in self.rt.automounts.waiting.remove(name).unwrap_or_default() {
                let _ = autofs.fail(token);
            }
            if let Some(point) = self.automount_point(name) {
                if let Err(e) = autofs::unmount(&point) {
                    tracing::warn!("{name}: cannot unmount {}: {e}", point.display());
                }
            }
        }
        self.set_state(name, ActiveState::Inactive, SubState::Dead);
    }

    fn automount_point(&self, name: &str) -> Option<std::path::PathBuf> {
        let cfg = self.state.units.get(name)?.config.as_ref()?;
        Some(cfg.automount.as_ref()?.where_.clone())
    }

    /// The kernel reported accesses on the autofs behind `fd`.
    pub fn automount_ready(&mut self, fd: RawFd) {
        let Some((name, tokens)) = self
            .rt
            .automounts
            .mounts
            .iter_mut()
            .find(|(_, a)| a.requests.as_raw_fd() == fd)
            .map(|(name, a)| (name.clone(), a.read_requests()))
        else {
            return;
        };
        if tokens.is_empty() {
            return;
        }
        let Some(mount) = unit_name::same_name(&name, "mount") else {
            return;
        };
        let mount = self.load(&mount);
        self.rt
            .automounts
            .waiting
            .entry(name.clone())
            .or_default()
            .extend(tokens);
        if self.state.units[&mount].active == ActiveState::Active {
            self.answer_automount(&name, true);
            return;
        }
        tracing::info!("{name}: got an access, starting {mount}");
        self.set_state(&name, ActiveState::Active, SubState::Running);
        if let Err(e) = self.enqueue(&mount, JobKind::Start) {
            tracing::warn!("{name}: cannot start {mount}: {e}");
            self.answer_automount(&name, false);
            self.set_state(&name, ActiveState::Active, SubState::Waiting);
        }
    }

    /// A mount unit changed state: the automount of the same name lets
    /// its callers through or fails them, and is `running` while its mount
    /// is there, `waiting` otherwise (systemd's sub-states).
    pub(super) fn automount_mount_notify(&mut self, mount: &str) {
        let Some(automount) = unit_name::same_name(mount, "automount") else {
            return;
        };
        if !self.rt.automounts.mounts.contains_key(&automount) {
            return;
        }
        let sub = match self.state.units[mount].active {
            ActiveState::Active => {
                self.answer_automount(&automount, true);
                SubState::Running
            }
            ActiveState::Failed | ActiveState::Inactive => {
                self.answer_automount(&automount, false);
                SubState::Waiting
            }
            _ => return,
        };
        if self.state.units[&automount].active == ActiveState::Active {
            self.set_state(&automount, ActiveState::Active, sub);
        }
    }

    fn answer_automount(&mut self, name: &str, mounted: bool) {
        let tokens = self.rt.automounts.waiting.remove(name).unwrap_or_default();
        let Some(autofs) = self.rt.automounts.mounts.get(name) else {
            return;
        };
        for token in tokens {
            let answered = if mounted {
                autofs.ready(token)
            } else {
                autofs.fail(token)
            };
            if let Err(e) = answered {
                tracing::warn!("{name}: cannot answer the kernel's request {token}: {e}");
            }
        }
    }
}
