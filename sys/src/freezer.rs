//! cgroup v2 freezer: write `cgroup.freeze`, then confirm in `cgroup.events`.
//!
//! Writing 1 only asks the kernel to freeze; the cgroup is frozen once
//! `cgroup.events` says `frozen 1`. A task stuck in an uninterruptible sleep
//! can delay that, so waiting is bounded by a timeout.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    /// A cgroup file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The kernel did not confirm the new state in time.
    #[error("{cgroup}: not {state} after {waited:?}")]
    Timeout {
        cgroup: PathBuf,
        state: &'static str,
        waited: Duration,
    },
}

/// What the upgrade freezes units with: the cgroup v2 freezer on a live
/// system ([`CgroupFreezer`]), a recording fake in tests ([`fake`]).
pub trait Freezer: Sync {
    /// Freezes every task of `cgroup` and returns once that is confirmed.
    fn freeze(&self, cgroup: &Path) -> Result<(), FreezeError>;
    /// Thaws `cgroup` and returns once that is confirmed.
    fn thaw(&self, cgroup: &Path) -> Result<(), FreezeError>;
    /// Ends every task of `cgroup` at once (cgroup.kill), frozen or not.
    fn kill(&self, cgroup: &Path) -> Result<(), FreezeError>;
}

/// The kernel's cgroup v2 freezer, each change waited for up to `timeout`.
#[derive(Debug, Clone, Copy)]
pub struct CgroupFreezer {
    pub timeout: Duration,
}

impl Default for CgroupFreezer {
    fn default() -> CgroupFreezer {
        CgroupFreezer {
            timeout: Duration::from_secs(10),
        }
    }
}

impl Freezer for CgroupFreezer {
    fn freeze(&self, cgroup: &Path) -> Result<(), FreezeError> {
        freeze(cgroup, self.timeout)
    }

    fn thaw(&self, cgroup: &Path) -> Result<(), FreezeError> {
        thaw(cgroup, self.timeout)
    }

    fn kill(&self, cgroup: &Path) -> Result<(), FreezeError> {
        let path = cgroup.join("cgroup.kill");
        fs::write(&path, "1").map_err(|source| FreezeError::Io { path, source })
    }
}

/// A freezer that records what it was asked and freezes nothing.
pub mod fake {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum FreezerCall {
        Freeze(PathBuf),
        Thaw(PathBuf),
        Kill(PathBuf),
    }

    #[derive(Debug, Default)]
    pub struct FakeFreezer {
        pub calls: Mutex<Vec<FreezerCall>>,
    }

    impl FakeFreezer {
        pub fn calls(&self) -> Vec<FreezerCall> {
            self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }

        fn record(&self, call: FreezerCall) {
            self.calls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(call);
        }
    }

    impl Freezer for FakeFreezer {
        fn freeze(&self, cgroup: &Path) -> Result<(), FreezeError> {
            self.record(FreezerCall::Freeze(cgroup.to_owned()));
            Ok(())
        }

        fn thaw(&self, cgroup: &Path) -> Result<(), FreezeError> {
            self.record(FreezerCall::Thaw(cgroup.to_owned()));
            Ok(())
        }

        fn kill(&self, cgroup: &Path) -> Result<(), FreezeError> {
            self.record(FreezerCall::Kill(cgroup.to_owned()));
            Ok(())
        }
    }
}

/// Freezes every task of `cgroup` (a directory in the cgroup2 tree) and
/// returns once the kernel confirms it.
pub fn freeze(cgroup: &Path, timeout: Duration) -> Result<(), FreezeError> {
    set_frozen(cgroup, true, timeout)
}

/// Thaws `cgroup` and returns once the kernel confirms it.
pub fn thaw(cgroup: &Path, timeout: Duration) -> Result<(), FreezeError> {
    set_frozen(cgroup, false, timeout)
}

/// Whether `cgroup.events` reports the cgroup frozen.
pub fn is_frozen(cgroup: &Path) -> Result<bool, FreezeError> {
    let path = cgroup.join("cgroup.events");
    let text = fs::read_to_string(&path).map_err(|source| FreezeError::Io { path, source })?;
    Ok(text.lines().any(|l| l.trim() == "frozen 1"))
}

fn set_frozen(cgroup: &Path, frozen: bool, timeout: Duration) -> Result<(), FreezeError> {
    let path = cgroup.join("cgroup.freeze");
    fs::write(&path, if frozen { "1" } else { "0" })
        .map_err(|source| FreezeError::Io { path, source })?;
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        if is_frozen(cgroup)? == frozen {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(FreezeError::Timeout {
                cgroup: cgroup.to_owned(),
                state: if frozen { "frozen" } else { "thawed" },
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host's cgroup2 mount, if it has one we may write to.
    fn cgroup2_root() -> Option<PathBuf> {
        let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
        text.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            right.starts_with("cgroup2 ").then(|| PathBuf::from(point))
        })
    }

    #[test]
    fn freeze_stops_a_busy_process_and_thaw_resumes_it() {
        let Some(root) = cgroup2_root() else {
            eprintln!("SKIPPED: no cgroup2 hierarchy");
            return;
        };
        let cgroup = root.join(format!("relive-freezer-test-{}", std::process::id()));
        if fs::create_dir(&cgroup).is_err() {
            eprintln!("SKIPPED: cannot create a cgroup (not root?)");
            return;
        }
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        fs::write(cgroup.join("cgroup.procs"), child.id().to_string()).unwrap();
        let cpu = || {
            let stat = fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
            let fields: Vec<u64> = stat
                .rsplit(") ")
                .next()
                .unwrap()
                .split(' ')
                .skip(11)
                .take(2)
                .map(|f| f.parse().unwrap())
                .collect();
            fields[0] + fields[1]
        };
        freeze(&cgroup, Duration::from_secs(5)).unwrap();
        assert!(is_frozen(&cgroup).unwrap());
        let before = cpu();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(cpu(), before, "a frozen process used CPU");
        thaw(&cgroup, Duration::from_secs(5)).unwrap();
        assert!(!is_frozen(&cgroup).unwrap());
        let thawed = cpu();
        std::thread::sleep(Duration::from_millis(300));
        assert!(cpu() > thawed, "the thawed process did not run");
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = fs::remove_dir(&cgroup);
    }

    #[test]
    fn missing_cgroup_is_an_error_naming_the_path() {
        let e = freeze(Path::new("/nonexistent/cg"), Duration::from_millis(10)).unwrap_err();
        assert!(
            e.to_string().starts_with("/nonexistent/cg/cgroup.freeze:"),
            "{e}"
        );
    }
}
