//! Raising `kernel.pid_max` and moving the PID counter past a floor.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where the two sysctls live; a test points them at plain files.
#[derive(Debug, Clone)]
pub struct PidSysctls {
    pub pid_max: PathBuf,
    pub ns_last_pid: PathBuf,
}

impl Default for PidSysctls {
    fn default() -> Self {
        PidSysctls {
            pid_max: "/proc/sys/kernel/pid_max".into(),
            ns_last_pid: "/proc/sys/kernel/ns_last_pid".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PidSpaceError {
    /// A sysctl could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A sysctl held something that is not a number.
    #[error("{path}: not a number: {value:?}")]
    NotANumber { path: PathBuf, value: String },
}

/// What `prepare` changed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidSpace {
    pub pid_max: u32,
    pub last_pid_before: u32,
    pub last_pid_after: u32,
}

impl PidSysctls {
    /// Raises pid_max to at least `pid_max` (never lowers it) and moves the
    /// PID counter to at least `floor` (never backwards, which could hand out
    /// low PIDs again). Within a PID namespace ns_last_pid is that
    /// namespace's own counter.
    pub fn prepare(&self, pid_max: u32, floor: u32) -> Result<PidSpace, PidSpaceError> {
        let current_max = read_number(&self.pid_max)?;
        let new_max = current_max.max(pid_max);
        if new_max != current_max {
            write_number(&self.pid_max, new_max)?;
        }
        let last_pid_before = read_number(&self.ns_last_pid)?;
        let target = floor.min(new_max.saturating_sub(1));
        let last_pid_after = last_pid_before.max(target);
        if last_pid_after != last_pid_before {
            write_number(&self.ns_last_pid, last_pid_after)?;
        }
        Ok(PidSpace {
            pid_max: new_max,
            last_pid_before,
            last_pid_after,
        })
    }
}

fn read_number(path: &Path) -> Result<u32, PidSpaceError> {
    let text = fs::read_to_string(path).map_err(|source| PidSpaceError::Io {
        path: path.to_owned(),
        source,
    })?;
    text.trim().parse().map_err(|_| PidSpaceError::NotANumber {
        path: path.to_owned(),
        value: text.trim().to_owned(),
    })
}

fn write_number(path: &Path, value: u32) -> Result<(), PidSpaceError> {
    fs::write(path, value.to_string()).map_err(|source| PidSpaceError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysctls(dir: &Path, pid_max: &str, last: &str) -> PidSysctls {
        let s = PidSysctls {
            pid_max: dir.join("pid_max"),
            ns_last_pid: dir.join("ns_last_pid"),
        };
        fs::write(&s.pid_max, pid_max).unwrap();
        fs::write(&s.ns_last_pid, last).unwrap();
        s
    }

    fn tempdir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("relive-pidspace-{tag}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn raises_max_and_moves_counter() {
        let dir = tempdir("raise");
        let s = sysctls(&dir, "32768\n", "120\n");
        let r = s.prepare(4_194_304, 20_000).unwrap();
        assert_eq!(
            r,
            PidSpace {
                pid_max: 4_194_304,
                last_pid_before: 120,
                last_pid_after: 20_000
            }
        );
        assert_eq!(fs::read_to_string(&s.pid_max).unwrap(), "4194304");
        assert_eq!(fs::read_to_string(&s.ns_last_pid).unwrap(), "20000");
    }

    #[test]
    fn never_lowers_anything() {
        let dir = tempdir("lower");
        let s = sysctls(&dir, "4194304\n", "30000\n");
        let r = s.prepare(65_536, 20_000).unwrap();
        assert_eq!(r.pid_max, 4_194_304);
        assert_eq!(r.last_pid_after, 30_000);
    }

    #[test]
    fn garbage_is_named() {
        let dir = tempdir("garbage");
        let s = sysctls(&dir, "lots\n", "1\n");
        let e = s.prepare(65_536, 20_000).unwrap_err();
        assert!(
            e.to_string().contains("pid_max: not a number: \"lots\""),
            "{e}"
        );
    }
}
