//! relive's kernel interfaces, each behind a small seam so the code above
//! can be tested without processes: [`Kernel`] is what the manager calls,
//! [`RealKernel`] the implementation on a live system; [`freezer::Freezer`]
//! what the upgrade freezes units with.
//!
//! - [`spawn`]: starting a process from a multi-threaded PID 1 (clone3
//!   into its cgroup, an exec-status pipe);
//! - [`cgroup`], [`freezer`]: cgroup v2, and freezing one;
//! - [`kexec`]: loading, unloading and booting a kernel; [`readonly`]: the
//!   file systems left clean for it;
//! - [`machine`], [`mounts`]: what PID 1 of a machine sets up and tears down;
//! - [`pid_space`]: keeping services' PIDs free across a kexec;
//! - [`sched`], [`users`]: idle priority, user and group look-ups without NSS;
//! - [`ExitStatus`]: how a process ended.

pub mod autofs;
pub mod cgroup;
pub mod cpu_where;
pub mod device_filter;
pub mod exits;
pub mod freezer;
pub mod kernel_boot;
pub mod kexec;
pub mod laps;
pub mod listen;
pub mod load;
pub mod machine;
pub mod mount_flags;
pub mod mounts;
pub mod namespace;
pub mod pid_space;
pub mod process_attrs;
pub mod readonly;
pub mod sched;
pub mod seccomp;
pub mod spawn;
pub mod timens;
pub mod tty;
pub mod unix_diag;
pub mod userns;
pub mod users;

use std::io;
use std::os::fd::OwnedFd;

pub use spawn::{ExecOutcome, ExecStatus, SpawnError, SpawnRequest, Spawned, Stdio};

/// What the manager asks of the kernel. One implementation talks to Linux;
/// tests use a recording fake.
pub trait Kernel: Send {
    /// Starts a process as described and returns at once, with the status
    /// of its exec to poll (it may be slow to come: never wait for it).
    fn spawn(&mut self, request: SpawnRequest) -> Result<Spawned, SpawnError>;
    /// Sends `signal` to `pid`. ESRCH is not an error (it already exited).
    fn kill(&mut self, pid: i32, signal: i32) -> io::Result<()>;
    /// Creates the cgroup `path` (relative to the cgroup2 root) and its parents.
    fn cgroup_create(&mut self, path: &str) -> io::Result<()>;
    /// Writes resource settings into the cgroup `path`, enabling their
    /// controllers above it first.
    fn cgroup_configure(
        &mut self,
        path: &str,
        settings: &[relive_units::resources::CgroupSetting],
    ) -> io::Result<()>;
    /// Moves `pid` (all its threads) into the cgroup `path`.
    fn cgroup_attach(&mut self, path: &str, pid: i32) -> io::Result<()>;
    /// PIDs in the cgroup (not in its children). A missing cgroup is empty.
    fn cgroup_pids(&self, path: &str) -> io::Result<Vec<i32>>;
    /// SIGKILLs every process of the cgroup at once (cgroup.kill).
    fn cgroup_kill(&mut self, path: &str) -> io::Result<()>;
    /// Whether any process is left in the cgroup or below (cgroup.events):
    /// one small read, however many processes there are. A missing cgroup
    /// is empty.
    fn cgroup_populated(&self, path: &str) -> io::Result<bool>;
    /// Removes the cgroup and those below it if they are empty; a busy or
    /// missing one is left alone.
    fn cgroup_remove(&mut self, path: &str);
    /// DeviceAllow=/DevicePolicy=: lets the cgroup's processes open and
    /// create only the devices `rules` allow (a BPF device program).
    fn cgroup_devices(&mut self, path: &str, rules: &[device_filter::Rule]) -> io::Result<()>;
    /// Delegate=: makes `controllers` available in the cgroup and, with
    /// `owner` (uid, gid), hands the cgroup to the service's user.
    fn cgroup_delegate(
        &mut self,
        path: &str,
        controllers: &[String],
        owner: Option<(u32, u32)>,
    ) -> io::Result<()>;
    /// The names of the cgroups directly below `path`.
    fn cgroup_children(&self, path: &str) -> io::Result<Vec<String>>;
    /// The cgroup a process is in, relative to the root (e.g. `/system.slice/a.service`).
    fn cgroup_of(&self, pid: i32) -> Option<String>;
    /// Opens one listening socket, FIFO or special file of a `.socket` unit.
    fn listen(
        &mut self,
        listen: &relive_units::socket::Listen,
        unit: &relive_units::socket::SocketSection,
        owner: listen::Owner,
    ) -> io::Result<OwnedFd>;
}

/// The live system.
#[derive(Debug)]
pub struct RealKernel {
    pub cgroups: cgroup::CgroupFs,
}

impl Kernel for RealKernel {
    fn spawn(&mut self, request: SpawnRequest) -> Result<Spawned, SpawnError> {
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

    fn cgroup_configure(
        &mut self,
        path: &str,
        settings: &[relive_units::resources::CgroupSetting],
    ) -> io::Result<()> {
        let mut controllers: Vec<&str> = settings.iter().map(|s| s.controller).collect();
        controllers.dedup();
        self.cgroups.enable_controllers(path, &controllers)?;
        for s in settings {
            self.cgroups
                .write(path, s.file, &s.value)
                .map_err(|e| io::Error::new(e.kind(), format!("{}=: {e}", s.directive)))?;
        }
        Ok(())
    }

    fn cgroup_attach(&mut self, path: &str, pid: i32) -> io::Result<()> {
        self.cgroups.write(path, "cgroup.procs", &pid.to_string())
    }

    fn cgroup_pids(&self, path: &str) -> io::Result<Vec<i32>> {
        self.cgroups.pids(path)
    }

    fn cgroup_kill(&mut self, path: &str) -> io::Result<()> {
        self.cgroups.kill_all(path)
    }

    fn cgroup_populated(&self, path: &str) -> io::Result<bool> {
        self.cgroups.populated(path)
    }

    fn cgroup_children(&self, path: &str) -> io::Result<Vec<String>> {
        self.cgroups.children(path)
    }

    fn cgroup_remove(&mut self, path: &str) {
        self.cgroups.remove(path)
    }

    fn cgroup_delegate(
        &mut self,
        path: &str,
        controllers: &[String],
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        self.cgroups.delegate(path, controllers, owner)
    }

    fn cgroup_devices(&mut self, path: &str, rules: &[device_filter::Rule]) -> io::Result<()> {
        device_filter::attach(&self.cgroups.dir(path), rules)
    }

    fn listen(
        &mut self,
        listen: &relive_units::socket::Listen,
        unit: &relive_units::socket::SocketSection,
        owner: listen::Owner,
    ) -> io::Result<OwnedFd> {
        listen::open(listen, unit, owner)
    }

    fn cgroup_of(&self, pid: i32) -> Option<String> {
        cgroup::cgroup_of(pid)
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    pub fn describe(self) -> String {
        match self {
            ExitStatus::Exited(c) => match spawn::ChildStep::name_of(c) {
                Some(step) => format!("status={c}/{step}"),
                None => format!("status={c}"),
            },
            ExitStatus::Signaled(s) => format!("signal={}", signal_name(s)),
        }
    }

    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }
}

/// A signal's name without its SIG prefix (`TERM`), or its number.
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().trim_start_matches("SIG").to_owned())
        .unwrap_or_else(|_| sig.to_string())
}

/// The wall clock in µs since the epoch: what upgrade timings are in
/// (CLOCK_MONOTONIC restarts with a kernel; the wall clock does not).
pub fn wall_usec() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
