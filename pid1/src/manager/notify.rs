//! The sd_notify protocol: one datagram socket for every service.
//!
//! Messages are attributed by the sender's credentials (SO_PASSCRED): its
//! PID's cgroup names the unit. Messages without credentials are dropped,
//! and the loop reads this socket before it reaps children, so a READY=1
//! sent just before exiting is never lost.

use super::state::*;
use super::Manager;
use relive_units::NotifyAccess;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{
    self, sockopt, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
};

/// Notify messages handled per wake-up of the loop at most.
const MAX_PER_WAKE: usize = 64;

/// Messages a non-root user may send per second; the rest are dropped.
const PER_USER_PER_SECOND: u32 = 200;

/// Bound notify socket; `NOTIFY_SOCKET` names its path.
#[derive(Debug)]
pub struct NotifySocket {
    pub fd: OwnedFd,
    limit: SenderLimit,
}

/// How many messages each non-root user sent in the current second: the
/// socket is world-writable, and one user's flood must not crowd out the
/// services' READY=1 (each message costs the loop a /proc read).
#[derive(Debug, Default)]
struct SenderLimit {
    second: Option<std::time::Instant>,
    sent: std::collections::HashMap<u32, u32>,
    dropped: u64,
}

impl SenderLimit {
    /// Whether a message from `uid` is handled.
    fn admit(&mut self, uid: u32, now: std::time::Instant) -> bool {
        if self
            .second
            .is_none_or(|s| now.duration_since(s) >= std::time::Duration::from_secs(1))
        {
            if self.dropped > 0 {
                tracing::warn!(
                    "notify: {} messages dropped (more than {PER_USER_PER_SECOND} a second from a user)",
                    self.dropped
                );
            }
            self.second = Some(now);
            self.sent.clear();
            self.dropped = 0;
        }
        if uid == 0 {
            return true;
        }
        let sent = self.sent.entry(uid).or_default();
        *sent += 1;
        let admitted = *sent <= PER_USER_PER_SECOND;
        if !admitted {
            self.dropped += 1;
        }
        admitted
    }
}

impl NotifySocket {
    pub fn bind(path: &Path) -> std::io::Result<NotifySocket> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(path);
        let fd = datagram_socket()?;
        socket::bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
        // Services running as other users must be able to send: anyone may
        // write, and the kernel-checked credentials say who did.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
        socket::setsockopt(&fd, sockopt::PassCred, &true)?;
        // Many services may report at once during boot.
        let _ = socket::setsockopt(&fd, sockopt::RcvBufForce, &(8 * 1024 * 1024));
        Ok(NotifySocket::from_fd(fd))
    }

    /// A socket bound before a re-exec.
    pub fn from_fd(fd: OwnedFd) -> NotifySocket {
        NotifySocket {
            fd,
            limit: SenderLimit::default(),
        }
    }

    /// A socket bound nowhere, for when the real one cannot be bound (a
    /// full or read-only /run): nothing arrives, and the loop runs on.
    pub fn unbound() -> std::io::Result<NotifySocket> {
        Ok(NotifySocket::from_fd(datagram_socket()?))
    }

    /// Whether it is bound to a path services can send to.
    pub fn is_bound(&self) -> bool {
        socket::getsockname::<UnixAddr>(self.fd.as_raw_fd())
            .ok()
            .and_then(|a| a.path().map(|p| !p.as_os_str().is_empty()))
            .unwrap_or(false)
    }

    /// Pending messages as (sender PID, text), MAX_PER_WAKE at most: the
    /// socket is world-writable, and a local user flooding it must not
    /// keep the loop from everything else (the rest waits in the socket;
    /// poll wakes the loop again).
    /// The messages waiting (at most a wake-up's worth): sender, text,
    /// and the descriptors it passed (for FDSTORE=1).
    pub fn receive_all(&mut self) -> Vec<(i32, String, Vec<OwnedFd>)> {
        let mut out = Vec::new();
        for _ in 0..MAX_PER_WAKE {
            let mut buf = vec![0u8; 4096];
            let mut iov = [IoSliceMut::new(&mut buf)];
            // Credentials, and up to SCM_MAX_FD descriptors.
            let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials, [RawFd; 253]);
            let msg = match socket::recvmsg::<UnixAddr>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => m,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            };
            if msg.flags.contains(MsgFlags::MSG_TRUNC) {
                tracing::warn!("notify: dropped a truncated message");
                continue;
            }
            let mut cred = None;
            let mut fds: Vec<OwnedFd> = Vec::new();
            for c in msg.cmsgs().into_iter().flatten() {
                match c {
                    ControlMessageOwned::ScmCredentials(c) => cred = Some((c.pid(), c.uid())),
                    ControlMessageOwned::ScmRights(raw) => {
                        // SAFETY: the kernel installed these descriptors in
                        // this process for this message; nobody else owns them.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                    _ => {}
                }
            }
            let len = msg.bytes;
            let Some((pid, uid)) = cred.filter(|(p, _)| *p > 0) else {
                tracing::warn!("notify: dropped a message without credentials");
                continue;
            };
            if !self.limit.admit(uid, std::time::Instant::now()) {
                continue;
            }
            out.push((pid, String::from_utf8_lossy(&buf[..len]).into_owned(), fds));
        }
        out
    }
}

/// A non-blocking unix datagram socket, closed on exec.
fn datagram_socket() -> std::io::Result<OwnedFd> {
    Ok(socket::socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?)
}

impl Manager {
    /// Handles one sd_notify message from `pid`.
    pub fn notify_message(&mut self, pid: i32, text: &str) {
        self.notify_message_with_fds(pid, text, Vec::new());
    }

    /// [`Manager::notify_message`] with the descriptors it passed, which
    /// FDSTORE=1 keeps (any others are closed).
    pub fn notify_message_with_fds(&mut self, pid: i32, text: &str, fds: Vec<OwnedFd>) {
        let Some(name) = self.unit_of_pid(pid) else {
            tracing::debug!("notify: message from PID {pid}, which belongs to no unit");
            return;
        };
        let Some(svc) = self.service_config(&name) else {
            return;
        };
        let u = &self.state.units[&name];
        let allowed = match svc.notify_access {
            NotifyAccess::None => false,
            NotifyAccess::Main => {
                u.main_pid == Some(pid) || svc.service_type.notifies() && u.main_pid.is_none()
            }
            NotifyAccess::Exec | NotifyAccess::All => true,
        };
        if !allowed {
            // Tools that always notify (NotifyAccess=none is the default for
            // non-notify services) are common: not worth a warning.
            tracing::debug!("{name}: notify message from PID {pid} ignored (NotifyAccess=)");
            return;
        }
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
        };
        if field("FDSTORE") == Some("1") {
            self.store_fds(&name, field("FDNAME").unwrap_or("stored"), fds);
        } else if field("FDSTOREREMOVE") == Some("1") {
            self.remove_stored_fds(&name, field("FDNAME").unwrap_or("stored"));
        }
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "READY" if value == "1" => self.notify_ready(&name),
                "STATUS" => {
                    self.state
                        .units
                        .get_mut(&name)
                        .expect("unit exists")
                        .status_text = Some(value.to_owned())
                }
                "MAINPID" => self.notify_main_pid(&name, value),
                "WATCHDOG" if value == "1" => self.arm_watchdog(&name),
                "WATCHDOG" if value == "trigger" => self.watchdog_expired(&name),
                "WATCHDOG_USEC" => {
                    if let Ok(usec) = value.parse::<u64>() {
                        let u = self.state.units.get_mut(&name).expect("unit exists");
                        u.watchdog_override =
                            (usec > 0).then(|| std::time::Duration::from_micros(usec));
                        self.arm_watchdog(&name);
                    }
                }
                "RELOADING" if value == "1" => {
                    let u = self.state.units.get_mut(&name).expect("unit exists");
                    u.reloading = true;
                    if u.active == ActiveState::Active {
                        self.set_state(&name, ActiveState::Reloading, SubState::Reload);
                    }
                }
                "STOPPING" if value == "1" => {
                    let u = &self.state.units[&name];
                    if matches!(u.active, ActiveState::Active | ActiveState::Reloading) {
                        tracing::info!("{name}: service reports it is stopping");
                        self.set_state(&name, ActiveState::Deactivating, SubState::StopSigterm);
                    }
                }
                _ => {}
            }
        }
    }

    fn notify_ready(&mut self, name: &str) {
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.ready = true;
        let was_reloading = std::mem::take(&mut u.reloading);
        match u.sub {
            SubState::Start if u.control_pid.is_none() => {
                self.set_state(name, ActiveState::Activating, SubState::StartPost);
                self.run_phase(name, ExecPhase::StartPost, 0);
            }
            SubState::Reload if was_reloading && u.control_pid.is_none() => {
                self.set_state(name, ActiveState::Active, SubState::Running);
            }
            _ => {}
        }
    }

    fn notify_main_pid(&mut self, name: &str, value: &str) {
        let Ok(pid) = value.trim().parse::<i32>() else {
            return;
        };
        if self.unit_of_pid(pid).as_deref() == Some(name) {
            self.state
                .units
                .get_mut(name)
                .expect("unit exists")
                .main_pid = Some(pid);
        } else {
            tracing::warn!("{name}: MAINPID={pid} refused: not a process of the unit");
        }
    }

    /// The unit a process belongs to: by main/control PID, else by cgroup.
    pub fn unit_of_pid(&self, pid: i32) -> Option<String> {
        if let Some(u) = self
            .state
            .units
            .values()
            .find(|u| u.main_pid == Some(pid) || u.control_pid == Some(pid))
        {
            return Some(u.name.clone());
        }
        let cgroup = self.rt.kernel.cgroup_of(pid)?;
        relive_sys::cgroup::unit_of_cgroup(&cgroup).map(str::to_owned)
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_flooding_user_is_cut_off_each_second_and_root_never() {
        let mut limit = SenderLimit::default();
        let now = Instant::now();
        let admitted = (0..1000).filter(|_| limit.admit(65534, now)).count();
        assert_eq!(admitted, PER_USER_PER_SECOND as usize);
        assert!(limit.admit(1000, now), "another user has its own share");
        assert!(
            (0..1000).all(|_| limit.admit(0, now)),
            "root is not limited"
        );
        assert!(
            limit.admit(65534, now + Duration::from_secs(1)),
            "a new second"
        );
    }
}
