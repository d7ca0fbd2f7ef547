//! Socket units across a live upgrade. A preserved service that socket
//! activation handed listening sockets (Accept=no) holds the same sockets
//! as PID 1: CRIU carries them in the service's images, and after the
//! restore PID 1 copies them back from the restored process, so that the
//! socket unit listens on the very sockets the service accepts on (a
//! `systemctl stop` of the service, then a connection, starts it again).
//! Opening them anew instead would fail on the restored TCP port
//! (EADDRINUSE) or take a unix socket's path away from the service.

use super::state::{ActiveState, SubState};
use super::Manager;
use relive_api::report::CarriedListener;
use std::os::fd::OwnedFd;

impl Manager {
    /// The socket units whose sockets `service` is handed, by name (the
    /// order of its descriptors): the Accept=no ones naming it in
    /// Service= (or by their name) and those in its Sockets=.
    pub(super) fn sockets_feeding(&self, service: &str) -> Vec<String> {
        let listed = self
            .service_config(service)
            .map(|s| s.sockets)
            .unwrap_or_default();
        let feeds = |name: &String, s: &relive_units::socket::SocketSection| {
            (!s.accept && s.service.as_deref() == Some(service)) || listed.contains(name)
        };
        self.state
            .units
            .iter()
            .filter(|(name, u)| {
                u.config
                    .as_ref()
                    .and_then(|c| c.socket.as_ref())
                    .is_some_and(|s| feeds(name, s))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// At the park: the listening sockets PID 1 holds for `service`'s
    /// socket units that its main process holds too, with the descriptor
    /// it has them on.
    pub(super) fn carried_listeners(&self, service: &str, main_pid: i32) -> Vec<CarriedListener> {
        let held = relive_snapshot::connections::sockets_of(main_pid as u32);
        let mut carried = Vec::new();
        for socket_unit in self.sockets_feeding(service) {
            for (index, fd) in self.rt.listeners.fds_of(&socket_unit).iter().enumerate() {
                let Ok(stat) = nix::sys::stat::fstat(fd) else {
                    continue;
                };
                let Some(&(_, service_fd)) = held.iter().find(|(ino, _)| *ino == stat.st_ino)
                else {
                    tracing::debug!("{service}: does not hold {socket_unit}'s socket {index}");
                    continue;
                };
                carried.push(CarriedListener {
                    socket_unit: socket_unit.clone(),
                    index,
                    fd: service_fd,
                });
            }
        }
        carried
    }

    /// The directories under /run (relative to it) of the carried unix
    /// sockets' paths: the new kernel's /run is empty, and CRIU binds the
    /// socket again at its path. The socket itself is not copied.
    pub(super) fn carried_socket_dirs(&self, listeners: &[CarriedListener]) -> Vec<String> {
        use relive_units::socket::{Listen, SocketAddress};
        let mut dirs: Vec<String> = listeners
            .iter()
            .filter_map(|l| {
                let socket = self
                    .state
                    .units
                    .get(&l.socket_unit)?
                    .config
                    .as_ref()?
                    .socket
                    .as_ref()?;
                let Listen::Socket {
                    address: SocketAddress::Unix(path),
                    ..
                } = &socket.listen.get(l.index)?.listen
                else {
                    return None;
                };
                let dir = path.parent()?.strip_prefix("/run").ok()?;
                (!dir.as_os_str().is_empty()).then(|| dir.to_string_lossy().into_owned())
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// After `service`'s restore: copies of its carried listening sockets
    /// become its socket units' descriptors again. A socket unit whose
    /// sockets did not all come back listens anew.
    pub fn adopt_listeners(&mut self, service: &str, pid: i32, listeners: &[CarriedListener]) {
        let mut units: Vec<&str> = listeners.iter().map(|l| l.socket_unit.as_str()).collect();
        units.dedup();
        for socket_unit in units {
            let mut mine: Vec<&CarriedListener> = listeners
                .iter()
                .filter(|l| l.socket_unit == socket_unit)
                .collect();
            mine.sort_by_key(|l| l.index);
            let copies: Result<Vec<OwnedFd>, String> = mine
                .iter()
                .map(|l| {
                    relive_sys::unix_diag::copy_of(pid as u32, l.fd)
                        .map_err(|e| format!("descriptor {} of PID {pid}: {e}", l.fd))
                })
                .collect();
            let wanted = self
                .state
                .units
                .get(socket_unit)
                .and_then(|u| u.config.as_ref()?.socket.as_ref())
                .map_or(0, |s| s.listen.len());
            match copies {
                Ok(fds) if fds.len() == wanted => {
                    tracing::info!(
                        "{socket_unit}: listening again on the sockets {service} was restored with"
                    );
                    self.rt.listeners.adopt_all(socket_unit, fds);
                    self.set_state(socket_unit, ActiveState::Active, SubState::Running);
                }
                Ok(fds) => {
                    tracing::warn!(
                        "{socket_unit}: {} of its {wanted} sockets came back with {service}; listening anew",
                        fds.len()
                    );
                    self.listen_anew(socket_unit);
                }
                Err(e) => {
                    tracing::error!("{socket_unit}: cannot take its socket back from {service}: {e}; listening anew");
                    self.listen_anew(socket_unit);
                }
            }
        }
    }

    /// Before an undo's restore of `service` on the old kernel: PID 1's
    /// copies of its socket units' sockets go, or the restore could not
    /// bind them again. The adoption after the restore, or the next start
    /// (`forget_parked`), opens them again.
    pub fn release_listeners(&mut self, service: &str) {
        for socket_unit in self.sockets_feeding(service) {
            self.rt.listeners.drop_unit(&socket_unit);
        }
    }

    /// A socket unit left without its descriptors by an upgrade (its
    /// service's restore failed, or they were released for an undo) opens
    /// them again, as a start would, before the service starts afresh.
    pub(super) fn relisten_carried(&mut self, service: &str) {
        for socket_unit in self.sockets_feeding(service) {
            let active = self
                .state
                .units
                .get(&socket_unit)
                .is_some_and(|u| u.active == ActiveState::Active);
            if active && self.rt.listeners.fds_of(&socket_unit).is_empty() {
                self.listen_anew(&socket_unit);
            }
        }
    }

    fn listen_anew(&mut self, socket_unit: &str) {
        self.rt.listeners.drop_unit(socket_unit);
        self.set_state(socket_unit, ActiveState::Inactive, SubState::Dead);
        self.start_socket(socket_unit);
    }
}
