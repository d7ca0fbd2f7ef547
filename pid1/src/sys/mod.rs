//! Kernel interfaces, each behind a small seam so the manager can be tested
//! without processes: [`Kernel`] is what the manager calls, [`RealKernel`]
//! the implementation on a live system.

pub mod cgroup;
pub mod kexec;
pub mod machine;
pub mod mounts;
pub mod sched;
pub mod spawn;
pub mod users;

use std::io;

pub use spawn::{SpawnError, SpawnRequest, Stdio};

/// What the manager asks of the kernel. One implementation talks to Linux;
/// tests use a recording fake.
pub trait Kernel: Send {
    /// Starts a process as described; returns its PID once it has exec'd.
    fn spawn(&mut self, request: SpawnRequest) -> Result<i32, SpawnError>;
    /// Sends `signal` to `pid`. ESRCH is not an error (it already exited).
    fn kill(&mut self, pid: i32, signal: i32) -> io::Result<()>;
    /// Creates the cgroup `path` (relative to the cgroup2 root) and its parents.
    fn cgroup_create(&mut self, path: &str) -> io::Result<()>;
    /// PIDs in the cgroup (not in its children). A missing cgroup is empty.
    fn cgroup_pids(&self, path: &str) -> io::Result<Vec<i32>>;
    /// SIGKILLs every process of the cgroup at once (cgroup.kill).
    fn cgroup_kill(&mut self, path: &str) -> io::Result<()>;
    /// Removes the cgroup if it is empty; a busy or missing one is left alone.
    fn cgroup_remove(&mut self, path: &str);
    /// The cgroup a process is in, relative to the root (e.g. `/system.slice/a.service`).
    fn cgroup_of(&self, pid: i32) -> Option<String>;
}

/// The live system.
#[derive(Debug)]
pub struct RealKernel {
    pub cgroups: cgroup::CgroupFs,
}

impl Kernel for RealKernel {
    fn spawn(&mut self, request: SpawnRequest) -> Result<i32, SpawnError> {
        let cgroup_dir = match &request.cgroup {
            Some(path) => {
                Some(
                    self.cgroups
                        .open_dir(path)
                        .map_err(|source| SpawnError::Cgroup {
                            path: path.clone(),
                            source,
                        })?,
                )
            }
            None => None,
        };
        spawn::spawn(&request, cgroup_dir.as_ref())
    }

    fn kill(&mut self, pid: i32, signal: i32) -> io::Result<()> {
        // A service process is a child of PID 1 (or adopted by it) and is
        // only reaped by the manager's loop, which then forgets the PID: the
        // PID cannot be reused while the manager still refers to it.
        // SAFETY: kill(2) takes plain integers and touches no memory.
        let rc = unsafe { libc::kill(pid, signal) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ESRCH) {
            Ok(())
        } else {
            Err(err)
        }
    }

    fn cgroup_create(&mut self, path: &str) -> io::Result<()> {
        self.cgroups.create(path)
    }

    fn cgroup_pids(&self, path: &str) -> io::Result<Vec<i32>> {
        self.cgroups.pids(path)
    }

    fn cgroup_kill(&mut self, path: &str) -> io::Result<()> {
        self.cgroups.kill_all(path)
    }

    fn cgroup_remove(&mut self, path: &str) {
        self.cgroups.remove(path)
    }

    fn cgroup_of(&self, pid: i32) -> Option<String> {
        cgroup::cgroup_of(pid)
    }
}
