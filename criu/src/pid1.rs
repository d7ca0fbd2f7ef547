//! CRIU from PID 1: `criu swrk` started with relive's own spawner (so the
//! main loop reaps it like any child), and the checks the preflight runs.

use crate::{CheckOptions, Criu, Spawner};
use relive_sys::spawn::{self, SpawnRequest, Stdio};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// Starts `criu swrk FD` as a child of relive, in relive's own cgroup.
#[derive(Debug, Default)]
pub struct Pid1Spawner {
    /// CRIU runs with no_new_privs: the tree it restores inherits it
    /// (CRIU 3.17 does not restore it itself).
    pub no_new_privs: bool,
}

impl Spawner for Pid1Spawner {
    fn spawn_swrk(
        &self,
        criu: &Path,
        sock: BorrowedFd<'_>,
        keep: &[BorrowedFd<'_>],
    ) -> io::Result<i32> {
        let cstr = |s: &str| {
            CString::new(s)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in argument"))
        };
        let criu_path = cstr(&criu.to_string_lossy())?;
        let request = SpawnRequest {
            // CRIU's own messages go to its log file; stray ones to the console.
            stderr: Stdio::Inherit,
            keep_fds: std::iter::once(sock.as_raw_fd())
                .chain(keep.iter().map(|fd| fd.as_raw_fd()))
                .collect(),
            process: relive_sys::process_attrs::ProcessSettings {
                no_new_privs: self.no_new_privs,
                ..Default::default()
            },
            ..SpawnRequest::program(
                criu_path.clone(),
                vec![
                    criu_path,
                    cstr("swrk")?,
                    cstr(&sock.as_raw_fd().to_string())?,
                ],
                vec![cstr(
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                )?],
            )
        };
        // Not the manager's loop: this thread may wait for the exec.
        let spawned = spawn::spawn(&request, None).map_err(|e| io::Error::other(e.to_string()))?;
        let pid = spawned.pid;
        spawned
            .exec
            .wait()
            .map_err(|e| io::Error::other(e.to_string()))?;
        // CRIU holds the tasks it dumps (ptrace, its parasite inside): the
        // OOM killer must pick anything but it, or they die with it.
        let _ = std::fs::write(format!("/proc/{pid}/oom_score_adj"), "-1000");
        Ok(pid)
    }
}

/// [`Pid1Spawner`], and then `lower(pid)` puts CRIU in the background
/// before it runs (it waits for its first request): for the pre-dumps,
/// which must not take the CPU or the disk from the services they copy.
/// Failing to lower it only costs the services, so `lower` logs.
#[derive(Debug)]
pub struct BackgroundSpawner<F>(pub F);

impl<F: Fn(i32)> Spawner for BackgroundSpawner<F> {
    fn spawn_swrk(
        &self,
        criu: &Path,
        sock: BorrowedFd<'_>,
        keep: &[BorrowedFd<'_>],
    ) -> io::Result<i32> {
        let pid = Pid1Spawner::default().spawn_swrk(criu, sock, keep)?;
        (self.0)(pid);
        Ok(pid)
    }
}

/// CRIU at SCHED_IDLE and in the idle I/O class.
pub fn make_idle(pid: i32) {
    if let Err(e) = relive_sys::sched::make_idle(pid) {
        tracing::warn!("criu swrk {pid}: cannot lower its priority: {e}");
    }
}

/// How long CRIU may stay silent while it dumps, pre-dumps or restores
/// `bytes` of memory: CRIU answers only at the end, and a pre-dump at idle
/// priority of 2 GiB under emulation took more than two minutes. At least
/// CRIU's default; beyond it, 4 MiB/s.
pub fn timeout_for(bytes: u64) -> std::time::Duration {
    let secs = 30 + bytes / (4 << 20);
    Criu::DEFAULT_REPLY_TIMEOUT.max(std::time::Duration::from_secs(secs))
}

/// Why `criu check` failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Criu(#[from] crate::CriuError),
}

/// CRIU learns the running kernel (FEATURE_CHECK: its kerndat, cached in
/// /run/criu.kdat for every later CRIU) and says what it offers there.
pub fn learn_kernel(criu: &Path) -> Result<crate::Features, crate::CriuError> {
    let client = Criu {
        path: criu.to_owned(),
        ..Criu::default()
    };
    client.start(&Pid1Spawner::default())?.feature_check()
}

/// `criu check` over RPC, its log in `work_dir` (created, root-only);
/// returns the version of the CRIU that passed.
pub fn check(criu: &Path, work_dir: &Path) -> Result<crate::CriuVersion, CheckError> {
    let io = |source| CheckError::Io {
        path: work_dir.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(work_dir)
        .map_err(io)?;
    let dir = std::fs::File::open(work_dir).map_err(io)?;
    let client = Criu {
        path: criu.to_owned(),
        ..Criu::default()
    };
    let version = client.start(&Pid1Spawner::default())?.version()?;
    let mut options = CheckOptions::new(dir.as_fd());
    options.log_file = Some("check.log".into());
    client.start(&Pid1Spawner::default())?.check(&options)?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_trees_get_longer_to_answer() {
        assert_eq!(timeout_for(0), Criu::DEFAULT_REPLY_TIMEOUT);
        assert_eq!(timeout_for(2 << 30).as_secs(), 30 + 512);
    }
}
