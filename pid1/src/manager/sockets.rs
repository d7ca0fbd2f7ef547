//! `.socket` units: PID 1 opens the sockets before their services run
//! (so a client can connect while the service is still starting, and
//! boot order matters less), polls them while their service is down, and
//! starts the service on the first traffic (systemd.socket(5)).
//!
//! Accept=no: the service gets the listening descriptors (sd_listen_fds(3))
//! and the socket is `running` until the service goes down, then
//! `listening` again. Accept=yes: PID 1 accepts each connection and
//! starts one instance of `NAME@.service` for it.

use super::state::{ActiveState, JobKind, SubState, UnitResult};
use super::Manager;
use relive_sys::listen::Owner;
use relive_units::socket::SocketSection;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// An accepted connection waiting for, then owned by, its instance.
#[derive(Debug)]
pub struct Connection {
    pub fd: OwnedFd,
    pub socket: String,
    /// The peer of an IP connection (REMOTE_ADDR, REMOTE_PORT).
    pub remote: Option<(IpAddr, u16)>,
}

/// What PID 1 holds for socket units (not serializable: descriptors).
#[derive(Debug, Default)]
pub struct Listeners {
    /// Each open socket unit's descriptors, in Listen*= order.
    by_unit: BTreeMap<String, Vec<OwnedFd>>,
    /// Accept=yes connections by instance name, until the instance stops.
    pub connections: HashMap<String, Connection>,
    /// Connections accepted per socket: the next instance number.
    accepted: HashMap<String, u64>,
    /// Recent triggers per socket, for TriggerLimitBurst=.
    triggers: HashMap<String, VecDeque<super::state::Monotonic>>,
}

impl Listeners {
    /// Hands every descriptor over (for a re-exec): (descriptor, unit) in
    /// order. The caller owns them from now on.
    pub fn export(&mut self) -> Vec<(RawFd, String)> {
        std::mem::take(&mut self.by_unit)
            .into_iter()
            .flat_map(|(unit, fds)| {
                fds.into_iter()
                    .map(move |fd| (std::os::fd::IntoRawFd::into_raw_fd(fd), unit.clone()))
            })
            .collect()
    }

    /// Takes a descriptor of `unit` back (after a re-exec), in order.
    pub fn adopt(&mut self, fd: OwnedFd, unit: &str) {
        self.by_unit.entry(unit.to_owned()).or_default().push(fd);
    }

    /// A socket unit's descriptors, all at once, in Listen*= order (taken
    /// back from a restored service).
    pub fn adopt_all(&mut self, unit: &str, fds: Vec<OwnedFd>) {
        self.by_unit.insert(unit.to_owned(), fds);
    }

    /// Closes PID 1's copies of a socket unit's descriptors, leaving its
    /// files (its service keeps the sockets).
    pub fn drop_unit(&mut self, unit: &str) {
        self.by_unit.remove(unit);
    }

    pub fn fds_of(&self, unit: &str) -> &[OwnedFd] {
        self.by_unit
            .get(unit)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

impl Manager {
    fn socket_config(&self, name: &str) -> Option<SocketSection> {
        self.socket_ref(name).cloned()
    }

    fn socket_ref(&self, name: &str) -> Option<&SocketSection> {
        self.state.units.get(name)?.config.as_ref()?.socket.as_ref()
    }

    /// The start job of a socket unit: open everything it listens on.
    pub(super) fn start_socket(&mut self, name: &str) {
        let Some(cfg) = self.start_config(name) else {
            return;
        };
        let Some(socket) = cfg.socket.clone() else {
            return;
        };
        if let Some(service) = socket.service.as_deref().filter(|_| !socket.accept) {
            if self.unit(service).is_some_and(|s| s.is_up()) {
                // systemd refuses too: the running service holds the sockets.
                self.finish_job(
                    name,
                    Err(super::ManagerError::JobFailed(format!(
                        "Socket service {service} already active, refusing."
                    ))),
                );
                return;
            }
        }
        let owner = match self.socket_owner(&socket) {
            Ok(owner) => owner,
            Err(msg) => return self.fail_socket(name, UnitResult::Resources(msg)),
        };
        let mut fds = Vec::new();
        for listen in &socket.listen {
            match self.rt.kernel.listen(&listen.listen, &socket, owner) {
                Ok(fd) => fds.push(fd),
                Err(e) => {
                    let msg = format!(
                        "{}: cannot listen on {}: {e}",
                        listen.location,
                        listen.listen.describe()
                    );
                    tracing::error!("{name}: {msg}");
                    return self.fail_socket(name, UnitResult::Resources(msg));
                }
            }
        }
        self.rt.listeners.by_unit.insert(name.to_owned(), fds);
        self.state.units.get_mut(name).expect("unit exists").result = UnitResult::Success;
        tracing::info!("listening on {name}");
        self.set_state(name, ActiveState::Active, SubState::Listening);
        // Its service may already run (started before, or without it).
        if let Some(service) = socket.service.filter(|_| !socket.accept) {
            self.socket_trigger_notify(&service);
        }
    }

    fn socket_owner(&mut self, socket: &SocketSection) -> Result<Owner, String> {
        if socket.socket_user.is_none() && socket.socket_group.is_none() {
            return Ok(Owner::default());
        }
        let user = self
            .accounts()
            .resolve(
                socket.socket_user.as_deref(),
                socket.socket_group.as_deref(),
                &[],
            )
            .map_err(|e| e.to_string())?;
        Ok(Owner {
            uid: socket.socket_user.as_ref().map(|_| user.credentials.uid),
            gid: Some(user.credentials.gid),
        })
    }

    /// Closes the socket's descriptors (its service keeps its copies).
    fn close_socket(&mut self, name: &str) {
        self.rt.listeners.by_unit.remove(name);
        self.rt.listeners.triggers.remove(name);
        if let Some(socket) = self.socket_config(name).filter(|s| s.remove_on_stop) {
            for listen in &socket.listen {
                relive_sys::listen::remove_files(&listen.listen, &socket);
            }
        }
    }

    pub(super) fn stop_socket(&mut self, name: &str) {
        self.close_socket(name);
        self.set_state(name, ActiveState::Inactive, SubState::Dead);
    }

    fn fail_socket(&mut self, name: &str, result: UnitResult) {
        self.close_socket(name);
        self.state.units.get_mut(name).expect("unit exists").result = result;
        self.set_state(name, ActiveState::Failed, SubState::Failed);
    }

    /// The descriptors of sockets waiting for traffic, for the loop to poll.
    pub fn listening_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.rt
            .listeners
            .by_unit
            .iter()
            .filter(|(unit, _)| {
                self.state
                    .units
                    .get(*unit)
                    .is_some_and(|u| u.sub == SubState::Listening)
            })
            .flat_map(|(_, fds)| fds.iter().map(|fd| fd.as_fd()))
            .collect()
    }

    /// Traffic on a listening descriptor.
    pub fn socket_ready(&mut self, fd: RawFd) {
        let Some(name) = self
            .rt
            .listeners
            .by_unit
            .iter()
            .find(|(_, fds)| fds.iter().any(|f| f.as_raw_fd() == fd))
            .map(|(unit, _)| unit.clone())
        else {
            return;
        };
        let Some(socket) = self.socket_config(&name) else {
            return;
        };
        if self.state.units[&name].sub != SubState::Listening {
            return;
        }
        if !self.trigger_allowed(&name, &socket) {
            tracing::warn!("{name}: trigger limit hit, refusing further activation");
            return self.fail_socket(&name, UnitResult::TriggerLimitHit);
        }
        if socket.accept {
            self.accept_connection(&name, &socket, fd);
            return;
        }
        let Some(service) = socket.service else {
            return;
        };
        let busy = self
            .unit(&service)
            .is_some_and(|s| s.is_up() || s.job.is_some());
        if !busy && self.state.shutdown.is_some() {
            // journald's sockets outlive journald at a poweroff, and logs
            // still arrive: nothing starts now. Closed, so that the traffic
            // does not wake the loop again and again.
            tracing::debug!("{name}: traffic during the shutdown, {service} not started");
            self.close_socket(&name);
            self.set_state(&name, ActiveState::Inactive, SubState::Dead);
            return;
        }
        if !busy {
            tracing::info!("{name}: traffic, starting {service}");
            if let Err(e) = self.enqueue(&service, JobKind::Start) {
                tracing::error!("{name}: cannot start {service}: {e}");
                return self.fail_socket(&name, UnitResult::Resources(e.to_string()));
            }
        }
        self.set_state(&name, ActiveState::Active, SubState::Running);
    }

    /// TriggerLimitIntervalSec=/TriggerLimitBurst= (0 in either: no limit).
    fn trigger_allowed(&mut self, name: &str, socket: &SocketSection) -> bool {
        let interval = socket.trigger_limit_interval.as_nanos() as u64;
        if interval == 0 || socket.trigger_limit_burst == 0 {
            return true;
        }
        let now = super::clock::now();
        let times = self
            .rt
            .listeners
            .triggers
            .entry(name.to_owned())
            .or_default();
        times.retain(|t| now.saturating_sub(*t) < interval);
        if times.len() >= socket.trigger_limit_burst as usize {
            return false;
        }
        times.push_back(now);
        true
    }

    fn accept_connection(&mut self, name: &str, socket: &SocketSection, fd: RawFd) {
        let Some(listener) = self
            .rt
            .listeners
            .fds_of(name)
            .iter()
            .find(|f| f.as_raw_fd() == fd)
        else {
            return;
        };
        let conn = match relive_sys::listen::accept(listener) {
            Ok(conn) => conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => {
                tracing::warn!("{name}: accept failed: {e}");
                return;
            }
        };
        let open = self
            .rt
            .listeners
            .connections
            .values()
            .filter(|c| c.socket == name)
            .count();
        if open >= socket.max_connections as usize {
            tracing::warn!("{name}: too many incoming connections ({open}), dropping connection");
            return;
        }
        let counter = self
            .rt
            .listeners
            .accepted
            .entry(name.to_owned())
            .or_default();
        let nr = *counter;
        *counter += 1;
        let template = socket.service.clone().unwrap_or_default();
        let instance_text = format!("{nr}-{}", relive_sys::listen::connection_name(&conn));
        let Some(instance) = relive_units::unit_name::with_instance(&template, &instance_text)
        else {
            tracing::warn!("{name}: no valid instance of {template} for {instance_text}");
            return;
        };
        let instance = self.load(&instance);
        if self.unit(&instance).is_none_or(|u| u.config.is_none()) {
            tracing::warn!("{name}: cannot load {instance}, dropping connection");
            return;
        }
        let remote = relive_sys::listen::peer_ip(&conn);
        self.rt.listeners.connections.insert(
            instance.clone(),
            Connection {
                fd: conn,
                socket: name.to_owned(),
                remote,
            },
        );
        if let Err(e) = self.enqueue(&instance, JobKind::Start) {
            tracing::warn!("{name}: cannot start {instance}: {e}");
            self.rt.listeners.connections.remove(&instance);
        }
    }

    /// A service changed state: the sockets that start it follow
    /// (systemd's `socket_trigger_notify()`), and an Accept=yes instance
    /// that went down lets its connection go.
    pub(super) fn socket_trigger_notify(&mut self, service: &str) {
        let Some(u) = self.state.units.get(service) else {
            return;
        };
        // A pending auto-restart counts as down: the socket listens again.
        let up = u.is_up() && u.sub != SubState::AutoRestart;
        let (active, result) = (u.active, u.result.clone());
        if !up && self.rt.listeners.connections.remove(service).is_some() {
            tracing::debug!("{service}: connection closed");
        }
        if self.rt.listeners.by_unit.is_empty() {
            return;
        }
        let sockets: Vec<String> = self
            .rt
            .listeners
            .by_unit
            .keys()
            .filter(|s| {
                self.socket_ref(s)
                    .is_some_and(|c| !c.accept && c.service.as_deref() == Some(service))
            })
            .cloned()
            .collect();
        for socket in sockets {
            let sub = self.state.units[&socket].sub;
            if !matches!(sub, SubState::Listening | SubState::Running) {
                continue;
            }
            if up {
                if sub == SubState::Listening {
                    self.set_state(&socket, ActiveState::Active, SubState::Running);
                }
            } else if active == ActiveState::Failed && result == UnitResult::StartLimitHit {
                tracing::warn!("{socket}: its service hit its start limit");
                self.fail_socket(&socket, UnitResult::ServiceStartLimitHit);
            } else if sub == SubState::Running {
                self.set_state(&socket, ActiveState::Active, SubState::Listening);
            }
        }
    }

    /// What socket activation hands `service`'s main process: descriptors
    /// in order and their names (`LISTEN_FDNAMES`).
    pub(super) fn activation_fds(&self, service: &str) -> Vec<(RawFd, String)> {
        if let Some(conn) = self.rt.listeners.connections.get(service) {
            return vec![(conn.fd.as_raw_fd(), "connection".into())];
        }
        let mut fds = Vec::new();
        for socket in self.sockets_feeding(service) {
            let Some(cfg) = self.socket_ref(&socket) else {
                continue;
            };
            let fd_name = cfg
                .file_descriptor_name
                .clone()
                .unwrap_or_else(|| socket.clone());
            let open = self.rt.listeners.fds_of(&socket);
            fds.extend(open.iter().map(|fd| (fd.as_raw_fd(), fd_name.clone())));
        }
        fds
    }
}
