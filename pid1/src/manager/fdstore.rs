//! The file descriptor store (FileDescriptorStoreMax=, sd_pid_notify_with_fds
//! with FDSTORE=1): a service hands PID 1 descriptors to keep, and gets
//! them back, after its sockets, when it starts again (LISTEN_FDS,
//! LISTEN_FDNAMES). journald keeps its clients' streams there, logind its
//! sessions' devices, so that a restart loses nothing. The store lives
//! while the unit is up or restarting, is emptied when it stops for good
//! (or as FileDescriptorStorePreserve= says: never while the unit is
//! loaded, or at every stop), and is handed to the next relive across
//! daemon-reexec.

use super::Manager;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

impl Manager {
    pub(super) fn store_fds(&mut self, name: &str, fd_name: &str, fds: Vec<OwnedFd>) {
        let max = self
            .service_config(name)
            .map(|s| s.fd_store_max)
            .unwrap_or(0) as usize;
        let store = self.rt.fd_store.entry(name.to_owned()).or_default();
        let mut refused = 0;
        for fd in fds {
            if store.len() < max {
                store.push((fd_name.to_owned(), fd));
            } else {
                refused += 1;
            }
        }
        if refused > 0 {
            tracing::warn!(
                "{name}: {refused} descriptors not stored (FileDescriptorStoreMax={max})"
            );
        }
    }

    pub(super) fn remove_stored_fds(&mut self, name: &str, fd_name: &str) {
        if let Some(store) = self.rt.fd_store.get_mut(name) {
            store.retain(|(n, _)| n != fd_name);
        }
    }

    /// What a starting main process gets after its sockets.
    pub(super) fn stored_fds(&self, name: &str) -> Vec<(RawFd, String)> {
        self.rt
            .fd_store
            .get(name)
            .map(|s| {
                s.iter()
                    .map(|(n, fd)| (fd.as_raw_fd(), n.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A unit stopped for good (not restarting): its store is closed.
    pub(super) fn release_fd_store(&mut self, name: &str) {
        if let Some(store) = self.rt.fd_store.remove(name) {
            tracing::debug!("{name}: {} stored descriptors closed", store.len());
        }
    }
}
