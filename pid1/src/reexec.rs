//! `relivectl daemon-reexec`: relive hands its state to a fresh copy of its
//! binary (possibly a newer one) without touching any service.
//!
//! The processes are untouched because the PID does not change across
//! execve(2): relive stays their parent. What must travel is the manager's
//! state (in a memfd, wrapped in the handover envelope of
//! `relive_store::envelope`) and the descriptors that services or clients
//! use: the notify socket, the control socket, the output pipes.

use crate::event_loop::EventLoop;
use crate::manager::state::ManagerState;
use relive_store::envelope::{self as handover, HandoverKind};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Everything the next relive needs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Handover {
    pub state: ManagerState,
    pub next_job_id: u64,
    pub notify_fd: RawFd,
    pub control_fd: Option<RawFd>,
    /// Output pipes: read end and the unit writing to it.
    pub outputs: Vec<(RawFd, String)>,
    /// Socket units' descriptors, in each unit's Listen*= order.
    #[serde(default)]
    pub listeners: Vec<(RawFd, String)>,
    /// File descriptor stores: descriptor, unit, name, in order.
    #[serde(default)]
    pub fd_store: Vec<(RawFd, String, String)>,
    /// Automount units' autofs mounts: request pipe, ioctl descriptor,
    /// unit, the kernel's requests still waiting.
    #[serde(default)]
    pub automounts: Vec<(RawFd, RawFd, String, Vec<u32>)>,
    /// Wall clock at serialization, µs since the epoch.
    pub written_at_usec: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReexecError {
    #[error("cannot read the handover: {0}")]
    Io(#[from] io::Error),
    #[error("invalid handover: {0}")]
    Envelope(#[from] handover::HandoverError),
    #[error("the handover is a {0:?} handover, not a re-exec")]
    WrongKind(HandoverKind),
    #[error("cannot decode the handover's state: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Serializes the state and execs `binary` with `args` plus
/// `--deserialize FD`. Returns only on failure, leaving everything as it
/// was: the caller goes on running.
pub fn exec_self(
    event_loop: &mut EventLoop,
    control_fd: Option<RawFd>,
    binary: &str,
    args: &[String],
) -> io::Error {
    let outputs = event_loop.manager.rt.outputs.export();
    let listeners = event_loop.manager.rt.listeners.export();
    let automounts = event_loop.manager.rt.automounts.export();
    let fd_store: Vec<(RawFd, String, String)> =
        std::mem::take(&mut event_loop.manager.rt.fd_store)
            .into_iter()
            .flat_map(|(unit, fds)| {
                fds.into_iter().map(move |(name, fd)| {
                    (std::os::fd::IntoRawFd::into_raw_fd(fd), unit.clone(), name)
                })
            })
            .collect();
    let handover = Handover {
        state: event_loop.manager.state.clone(),
        next_job_id: event_loop.manager.rt.next_job_id,
        notify_fd: event_loop.notify_fd(),
        control_fd,
        outputs: outputs.clone(),
        listeners: listeners.clone(),
        fd_store: fd_store.clone(),
        automounts: automounts.clone(),
        written_at_usec: crate::manager::clock::wall_usec(),
    };
    let error = match try_exec(&handover, binary, args) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // Still here: take the pipes back and carry on.
    for (fd, unit) in outputs {
        // SAFETY: `export` gave up ownership of these open descriptors.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = set_cloexec(&fd, true);
        event_loop.manager.rt.outputs.adopt(fd, &unit);
    }
    for (fd, unit) in listeners {
        // SAFETY: `export` gave up ownership of these open descriptors.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = set_cloexec(&fd, true);
        event_loop.manager.rt.listeners.adopt(fd, &unit);
    }
    for (fd, unit, name) in fd_store {
        // SAFETY: taken out of the store above; owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = set_cloexec(&fd, true);
        event_loop
            .manager
            .rt
            .fd_store
            .entry(unit)
            .or_default()
            .push((name, fd));
    }
    for (requests, ioctl, unit, waiting) in automounts {
        // SAFETY: `export` gave up ownership of these open descriptors.
        let (requests, ioctl) =
            unsafe { (OwnedFd::from_raw_fd(requests), OwnedFd::from_raw_fd(ioctl)) };
        let _ = set_cloexec(&requests, true);
        let _ = set_cloexec(&ioctl, true);
        event_loop
            .manager
            .rt
            .automounts
            .adopt(requests, ioctl, &unit, waiting);
    }
    for fd in [Some(handover.notify_fd), control_fd].into_iter().flatten() {
        let _ = set_cloexec_raw(fd, true);
    }
    error
}

fn try_exec(
    handover: &Handover,
    binary: &str,
    args: &[String],
) -> io::Result<std::convert::Infallible> {
    let payload = serde_json::to_vec(handover).map_err(io::Error::other)?;
    let bytes = handover::encode(HandoverKind::Reexec, &payload);
    // Not close-on-exec: the next relive reads it.
    let memfd =
        nix::sys::memfd::memfd_create(c"relive-handover", nix::sys::memfd::MFdFlags::empty())?;
    let mut file = std::fs::File::from(memfd);
    file.write_all(&bytes)?;
    file.rewind()?;
    let mut inherited: Vec<RawFd> = vec![handover.notify_fd];
    inherited.extend(handover.control_fd);
    inherited.extend(handover.outputs.iter().map(|(fd, _)| *fd));
    inherited.extend(handover.listeners.iter().map(|(fd, _)| *fd));
    inherited.extend(handover.fd_store.iter().map(|(fd, _, _)| *fd));
    inherited.extend(handover.automounts.iter().flat_map(|(r, i, _, _)| [*r, *i]));
    for fd in &inherited {
        set_cloexec_raw(*fd, false)?;
    }
    let memfd_number = std::os::fd::AsRawFd::as_raw_fd(&file);
    let mut argv: Vec<CString> = vec![CString::new(binary)?];
    argv.extend(
        strip_deserialize(args)
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<Vec<_>, _>>()?,
    );
    argv.push(CString::new("--deserialize")?);
    argv.push(CString::new(memfd_number.to_string())?);
    tracing::info!("handing over to {binary} ({} bytes of state)", bytes.len());
    let path = CString::new(binary)?;
    let result = nix::unistd::execv(&path, &argv);
    drop(file);
    Err(io::Error::from(result.unwrap_err()))
}

/// The previous `--deserialize FD` is not passed on.
fn strip_deserialize(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a == "--deserialize" {
            skip = true;
        } else if !a.starts_with("--deserialize=") {
            out.push(a.clone());
        }
    }
    out
}

/// Reads the handover from the memfd the previous relive passed on (and
/// closes it).
pub fn read_handover(fd: RawFd) -> Result<Handover, ReexecError> {
    // SAFETY: the previous relive opened this descriptor for us and
    // nothing else in this process owns it.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    decode(&bytes)
}

/// Checks the envelope and decodes the state in it.
pub fn decode(bytes: &[u8]) -> Result<Handover, ReexecError> {
    let (kind, payload) = handover::decode(bytes)?;
    if kind != HandoverKind::Reexec {
        return Err(ReexecError::WrongKind(kind));
    }
    Ok(serde_json::from_slice(payload)?)
}

/// Takes ownership of an inherited descriptor and marks it close-on-exec again.
///
/// # Safety
/// `fd` must be an open descriptor that nothing else in the process owns.
pub unsafe fn adopt_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: guaranteed by the caller.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = set_cloexec(&fd, true);
    fd
}

fn set_cloexec(fd: &OwnedFd, on: bool) -> io::Result<()> {
    set_cloexec_raw(std::os::fd::AsRawFd::as_raw_fd(fd), on)
}

fn set_cloexec_raw(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: the descriptor is open for the duration of the call (the
    // callers own it); fcntl does not take ownership.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let flags = if on {
        nix::fcntl::FdFlag::FD_CLOEXEC
    } else {
        nix::fcntl::FdFlag::empty()
    };
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(flags))?;
    Ok(())
}

/// The binary to exec: the path relive was started as, if it is absolute
/// (a package upgrade replaces that file), else /proc/self/exe.
pub fn own_binary() -> String {
    match std::env::args().next() {
        Some(a) if a.starts_with('/') && std::path::Path::new(&a).exists() => a,
        _ => std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "/proc/self/exe".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_deserialize_argument_is_dropped() {
        let args: Vec<String> = ["--units-dir", "/u", "--deserialize", "7", "--target", "t"]
            .map(String::from)
            .into();
        assert_eq!(
            strip_deserialize(&args),
            ["--units-dir", "/u", "--target", "t"]
        );
    }

    /// The handover format is a compatibility promise: what relive 0.1
    /// handed to its successor (a fixture written by that code) decodes.
    #[test]
    fn a_re_exec_handover_written_by_relive_0_1_decodes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../store/tests/fixtures/reexec-handover.bin"
        );
        let bytes = std::fs::read(path).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back.next_job_id, 17);
        assert_eq!((back.notify_fd, back.control_fd), (5, Some(6)));
        assert_eq!(back.outputs, [(7, "counter.service".to_owned())]);
        let counter = &back.state.units["counter.service"];
        assert_eq!(counter.active, crate::manager::state::ActiveState::Active);
        assert!(counter.config.as_ref().unwrap().service.is_some());
        assert_eq!(back.state.default_target, "multi-user.target");
    }

    /// The kexec handover's manager state, written by relive 0.1, is read
    /// back by this relive's resume.
    #[test]
    fn a_kexec_handover_written_by_relive_0_1_resumes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../store/tests/fixtures/kexec-handover.bin"
        );
        let bytes = std::fs::read(path).unwrap();
        let (_, payload) = handover::decode(&bytes).unwrap();
        let kexec: relive_store::KexecHandover = serde_json::from_slice(payload).unwrap();
        let state = crate::upgrade::state_for_new_kernel(&kexec).unwrap();
        let counter = &state.units["counter.service"];
        assert!(counter.parked, "preserved: parked until its restore");
        assert_eq!(counter.main_pid, None, "PIDs belong to the old kernel");
        let cron = &state.units["cron.service"];
        assert_eq!(cron.active, crate::manager::state::ActiveState::Inactive);
    }

    #[test]
    fn handover_round_trips_through_a_memfd() {
        let state = ManagerState {
            default_target: "multi-user.target".into(),
            ..ManagerState::default()
        };
        let handover = Handover {
            state,
            next_job_id: 42,
            notify_fd: 5,
            control_fd: None,
            outputs: vec![(9, "a.service".into())],
            listeners: vec![(10, "a.socket".into())],
            fd_store: vec![(11, "a.service".into(), "kept".into())],
            automounts: vec![(12, 13, "a.automount".into(), vec![7])],
            written_at_usec: 1,
        };
        let bytes = handover::encode(
            HandoverKind::Reexec,
            &serde_json::to_vec(&handover).unwrap(),
        );
        let memfd =
            nix::sys::memfd::memfd_create(c"test", nix::sys::memfd::MFdFlags::empty()).unwrap();
        let mut file = std::fs::File::from(memfd);
        file.write_all(&bytes).unwrap();
        file.rewind().unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
        let back = read_handover(fd).unwrap();
        assert_eq!(back.next_job_id, 42);
        assert_eq!(back.state.default_target, "multi-user.target");
        assert_eq!(back.outputs, [(9, "a.service".to_owned())]);
    }
}
