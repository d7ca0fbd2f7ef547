//! Per-task CPU time, to tell which tasks ran between two samples.
//!
//! `/proc/PID/task/TID/schedstat` holds the time spent on the CPU in
//! nanoseconds as its first field. A task whose figure did not change between
//! two samples executed no code in between.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// CPU time in nanoseconds per thread id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivitySample {
    pub cpu_ns: BTreeMap<u32, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: unexpected content {content:?}")]
    Format { path: PathBuf, content: String },
}

impl ActivitySample {
    /// Samples every thread of every process in `pids`, reading from `proc`
    /// (normally `/proc`). A process that exited meanwhile is skipped.
    pub fn take(proc: &Path, pids: &[u32]) -> Result<ActivitySample, ActivityError> {
        let mut sample = ActivitySample::default();
        for pid in pids {
            let task_dir = proc.join(pid.to_string()).join("task");
            let entries = match fs::read_dir(&task_dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(ActivityError::Io {
                        path: task_dir,
                        source,
                    })
                }
            };
            for entry in entries.flatten() {
                let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                if let Some(ns) = read_cpu_ns(&entry.path().join("schedstat"))? {
                    sample.cpu_ns.insert(tid, ns);
                }
            }
        }
        Ok(sample)
    }

    /// Threads that ran since `earlier`, or that are new since then.
    pub fn ran_since(&self, earlier: &ActivitySample) -> Vec<u32> {
        self.cpu_ns
            .iter()
            .filter(|(tid, ns)| earlier.cpu_ns.get(tid) != Some(ns))
            .map(|(tid, _)| *tid)
            .collect()
    }
}

/// Whether every thread of `pids` is asleep right now (state S, D, I, T
/// or t in /proc/PID/task/TID/stat): such a unit is pre-dumped first,
/// since freezing it costs it nothing. Threads that vanish are skipped.
pub fn all_asleep(proc: &Path, pids: &[u32]) -> bool {
    pids.iter().all(|pid| {
        let Ok(tasks) = fs::read_dir(proc.join(pid.to_string()).join("task")) else {
            return true;
        };
        tasks
            .flatten()
            .all(|task| state_in(&task.path().join("stat")) != Some('R'))
    })
}

/// Whether process `pid` exists and has not exited (a zombie or a dying
/// process is not alive).
pub fn alive(proc: &Path, pid: u32) -> bool {
    matches!(state_in(&proc.join(pid.to_string()).join("stat")), Some(s) if s != 'Z' && s != 'X')
}

/// The state letter of a `/proc/.../stat` file; None if it is gone.
fn state_in(stat: &Path) -> Option<char> {
    let stat = fs::read_to_string(stat).ok()?;
    // "TID (comm) STATE ...": comm may hold spaces and parentheses.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim().chars().next())
}

fn read_cpu_ns(path: &Path) -> Result<Option<u64>, ActivityError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // A thread that exits while being read gives ESRCH.
        Err(e) if e.raw_os_error() == Some(3) => return Ok(None),
        Err(source) => {
            return Err(ActivityError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    match text.split_whitespace().next().and_then(|f| f.parse().ok()) {
        Some(ns) => Ok(Some(ns)),
        None => Err(ActivityError::Format {
            path: path.to_owned(),
            content: text,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_busy_thread_shows_as_running_and_a_sleeping_one_does_not() {
        let proc = Path::new("/proc");
        let sleeper = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = sleeper.id();
        // Let the sleeper reach its sleep.
        std::thread::sleep(Duration::from_millis(100));
        let me = std::process::id();
        let before = ActivitySample::take(proc, &[pid, me]).unwrap();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        std::hint::black_box(x);
        let after = ActivitySample::take(proc, &[pid, me]).unwrap();
        let ran = after.ran_since(&before);
        let mut sleeper = sleeper;
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert!(
            !ran.contains(&pid),
            "sleeping process counted as running: {ran:?}"
        );
        assert!(
            ran.contains(&current_tid()),
            "busy thread not seen: {ran:?}"
        );
    }

    /// The test harness runs each test on its own thread.
    fn current_tid() -> u32 {
        let link = fs::read_link("/proc/thread-self").unwrap();
        link.file_name().unwrap().to_str().unwrap().parse().unwrap()
    }

    #[test]
    fn a_sleeper_is_asleep_and_a_spinning_thread_is_not() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let asleep = all_asleep(Path::new("/proc"), &[sleeper.id()]);
        // This test's own thread is running while it reads its own state.
        let me_asleep = all_asleep(Path::new("/proc"), &[std::process::id()]);
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert!(asleep);
        assert!(!me_asleep);
    }

    #[test]
    fn a_zombie_is_not_alive_and_a_running_process_is() {
        let proc = Path::new("/proc");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not reaped yet: a zombie once it has exited.
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(proc, pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!alive(proc, pid), "an exited, unreaped child is a zombie");
        assert!(proc.join(pid.to_string()).exists());
        child.wait().unwrap();
        assert!(!alive(proc, pid));
        assert!(alive(proc, std::process::id()));
    }

    #[test]
    fn exited_process_is_skipped() {
        let sample = ActivitySample::take(Path::new("/proc"), &[u32::MAX - 1]).unwrap();
        assert!(sample.cpu_ns.is_empty());
    }
}
