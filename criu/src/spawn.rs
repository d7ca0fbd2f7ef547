//! Starting `criu swrk`: behind a trait, because PID 1 starts and reaps its
//! children itself.
//!
//! relive reaps every child in its own loop (`waitid(P_ALL)`), so this
//! client never waits on a process: a library `wait` would race that loop
//! and steal exit statuses. relive implements [`Spawner`] with its clone3
//! spawner; [`CommandSpawner`] is for tests and tools only.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;

/// Starts `criu swrk <fd>` as a child process.
///
/// The contract, which [`CommandSpawner`] shows in full:
/// - the child execs `criu` with the arguments `swrk <N>`, where N is the
///   number of `sock` — the same number in the child as in the caller;
/// - `sock` and every descriptor of `keep` are open in the child at the same
///   numbers as in the caller and without `FD_CLOEXEC` (clear the flag in the
///   child between fork and exec; the caller's copies stay close-on-exec).
///   `keep` carries the descriptors named by `RestoreOptions::inherit_fds`,
///   which CRIU looks up by number in its own table;
/// - the caller, not this client, reaps the child.
///
/// Returns the child's pid, which the client reports so a hung CRIU can be
/// killed.
pub trait Spawner {
    fn spawn_swrk(
        &self,
        criu: &Path,
        sock: BorrowedFd<'_>,
        keep: &[BorrowedFd<'_>],
    ) -> io::Result<i32>;
}

/// A [`Spawner`] built on `std::process::Command`, for tests and tools.
///
/// **Not for PID 1**: it keeps each `Child` and reaps it with `Child::wait`
/// in [`CommandSpawner::wait_all`], which would race PID 1's own reaper; and
/// it cannot place CRIU in a cgroup at clone time.
#[derive(Debug, Default)]
pub struct CommandSpawner {
    children: Mutex<Vec<Child>>,
}

impl CommandSpawner {
    pub fn new() -> CommandSpawner {
        CommandSpawner::default()
    }

    /// Waits for every CRIU this spawner started and not yet waited for, in
    /// start order. CRIU's swrk exits after answering a request (after the
    /// final DUMP of a pre-dump series), or when its socket is closed.
    pub fn wait_all(&self) -> io::Result<Vec<ExitStatus>> {
        let children: Vec<Child> = {
            let mut guard = self.children.lock().unwrap_or_else(|p| p.into_inner());
            guard.drain(..).collect()
        };
        children.into_iter().map(|mut c| c.wait()).collect()
    }
}

impl Spawner for CommandSpawner {
    fn spawn_swrk(
        &self,
        criu: &Path,
        sock: BorrowedFd<'_>,
        keep: &[BorrowedFd<'_>],
    ) -> io::Result<i32> {
        let inherited: Vec<RawFd> = std::iter::once(sock.as_raw_fd())
            .chain(keep.iter().map(|fd| fd.as_raw_fd()))
            .collect();
        // Command redirects 0..2 in the child; a descriptor there would be
        // replaced before CRIU could use it.
        if let Some(fd) = inherited.iter().find(|&&fd| fd < 3) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor {fd} for criu swrk is a stdio number"),
            ));
        }
        let mut cmd = Command::new(criu);
        cmd.arg("swrk")
            .arg(sock.as_raw_fd().to_string())
            .stdin(Stdio::null());
        let for_child = inherited.clone();
        // SAFETY: the hook runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed: it calls fcntl only, reads a
        // Vec that was allocated before the fork, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &for_child {
                    clear_cloexec(fd)?;
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        let pid = i32::try_from(child.id())
            .map_err(|_| io::Error::other(format!("pid {} out of range", child.id())))?;
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(child);
        Ok(pid)
    }
}

/// Lets `fd` survive exec. Called in the forked child only.
fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD takes no pointer argument; a bad fd only yields EBADF.
    let flags = unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_SETFD takes an integer flag set; a bad fd only yields EBADF.
    let rc = unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, flags & !nix::libc::FD_CLOEXEC) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
