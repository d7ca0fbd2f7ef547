//! The cgroup2 tree: one cgroup per unit, below its slice's
//! (`/system.slice/NAME.service`, `/user.slice/user-0.slice/session-3.scope`).
//!
//! relive uses cgroups to find, kill and freeze every process of a unit,
//! and, for units with resource settings (MemoryMax= and friends), to
//! limit them: those settings enable their controllers on the way down
//! from the root. Paths given to this module are relative to the cgroup2
//! root, with or without a leading '/'.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Where PID 1 mounts cgroup2.
pub const ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, Clone)]
pub struct CgroupFs {
    /// Where cgroup2 is mounted, normally /sys/fs/cgroup.
    pub root: PathBuf,
}

impl CgroupFs {
    pub fn new(root: impl Into<PathBuf>) -> CgroupFs {
        CgroupFs { root: root.into() }
    }

    pub fn dir(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    pub fn create(&self, path: &str) -> io::Result<()> {
        let dir = self.dir(path);
        fs::create_dir_all(&dir).map_err(|e| with_path(e, &dir))
    }

    /// Enables `controllers` for `path`: in cgroup.subtree_control of
    /// each cgroup above it, from the root down. A controller the root
    /// does not offer is an error naming it.
    pub fn enable_controllers(&self, path: &str, controllers: &[&str]) -> io::Result<()> {
        if controllers.is_empty() {
            return Ok(());
        }
        let offered_file = self.root.join("cgroup.controllers");
        let offered = fs::read_to_string(&offered_file).map_err(|e| with_path(e, &offered_file))?;
        if let Some(missing) = controllers
            .iter()
            .find(|c| !offered.split_whitespace().any(|o| o == **c))
        {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the {missing} controller is not available in {}",
                    self.root.display()
                ),
            ));
        }
        let mut dir = self.root.clone();
        let parents: Vec<&str> = path.trim_matches('/').split('/').collect();
        for (i, part) in parents.iter().enumerate() {
            let control = dir.join("cgroup.subtree_control");
            let enabled = fs::read_to_string(&control).map_err(|e| with_path(e, &control))?;
            for c in controllers {
                if !enabled.split_whitespace().any(|e| e == *c) {
                    fs::write(&control, format!("+{c}")).map_err(|e| with_path(e, &control))?;
                }
            }
            if i + 1 < parents.len() {
                dir = dir.join(part);
            }
        }
        Ok(())
    }

    /// Writes `value` to the cgroup's `file` (`memory.max`).
    pub fn write(&self, path: &str, file: &str, value: &str) -> io::Result<()> {
        let target = self.dir(path).join(file);
        fs::write(&target, value).map_err(|e| with_path(e, &target))
    }

    /// An O_PATH|O_DIRECTORY descriptor, for clone3's CLONE_INTO_CGROUP.
    pub fn open_dir(&self, path: &str) -> io::Result<OwnedFd> {
        let dir = self.dir(path);
        nix::fcntl::open(
            &dir,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| with_path(io::Error::from(e), &dir))
    }

    pub fn pids(&self, path: &str) -> io::Result<Vec<i32>> {
        let file = self.dir(path).join("cgroup.procs");
        match fs::read_to_string(&file) {
            Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(with_path(e, &file)),
        }
    }

    /// The names of the cgroups directly below `path`.
    pub fn children(&self, path: &str) -> io::Result<Vec<String>> {
        let dir = self.dir(path);
        match fs::read_dir(&dir) {
            Ok(entries) => Ok(entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(with_path(e, &dir)),
        }
    }

    /// `populated` from cgroup.events; a missing cgroup is empty.
    pub fn populated(&self, path: &str) -> io::Result<bool> {
        let file = self.dir(path).join("cgroup.events");
        match fs::read_to_string(&file) {
            Ok(text) => Ok(text.lines().any(|l| l.trim() == "populated 1")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(with_path(e, &file)),
        }
    }

    pub fn kill_all(&self, path: &str) -> io::Result<()> {
        let file = self.dir(path).join("cgroup.kill");
        match fs::write(&file, "1") {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Kernels before 5.14 have no cgroup.kill: signal each process.
                for pid in self.pids(path)? {
                    // SAFETY: kill(2) takes plain integers and touches no memory.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                Ok(())
            }
            Err(e) => Err(with_path(e, &file)),
        }
    }

    /// Removes the cgroup and the cgroups below it (a delegated unit's
    /// own), deepest first. EBUSY (processes left, e.g. KillMode=process)
    /// and ENOENT are expected: such a cgroup is left alone.
    pub fn remove(&self, path: &str) {
        for child in self.children(path).unwrap_or_default() {
            self.remove(&format!("{}/{child}", path.trim_end_matches('/')));
        }
        let _ = fs::remove_dir(self.dir(path));
    }

    /// Delegate=: makes `controllers` (those the machine offers) available
    /// in the cgroup, and with `owner` gives the cgroup to the service's
    /// user, as systemd does: the directory and the files through which
    /// processes and controllers are managed below it.
    pub fn delegate(
        &self,
        path: &str,
        controllers: &[String],
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        let offered_file = self.root.join("cgroup.controllers");
        let offered = fs::read_to_string(&offered_file).map_err(|e| with_path(e, &offered_file))?;
        let available: Vec<&str> = controllers
            .iter()
            .map(String::as_str)
            .filter(|c| offered.split_whitespace().any(|o| o == *c))
            .collect();
        self.enable_controllers(path, &available)?;
        let Some((uid, gid)) = owner else {
            return Ok(());
        };
        let dir = self.dir(path);
        for file in [
            "",
            "cgroup.procs",
            "cgroup.threads",
            "cgroup.subtree_control",
        ] {
            let target = if file.is_empty() {
                dir.clone()
            } else {
                dir.join(file)
            };
            match std::os::unix::fs::chown(&target, Some(uid), Some(gid)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && file == "cgroup.threads" => {}
                other => other.map_err(|e| with_path(e, &target))?,
            }
        }
        Ok(())
    }
}

/// The cgroup2 path of `pid` (the `0::` line of /proc/PID/cgroup).
pub fn cgroup_of(pid: i32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_owned())
}

/// The cgroup path of a unit.
pub fn unit_cgroup(unit: &str) -> String {
    format!("/system.slice/{unit}")
}

/// The unit a cgroup path belongs to, if it is a unit's (or a child of
/// one): the first part below the slices, as systemd's
/// `cg_path_get_unit()` finds it (`/user.slice/user-0.slice/session-3.scope`
/// is session-3.scope's).
pub fn unit_of_cgroup(path: &str) -> Option<&str> {
    path.split('/')
        .filter(|part| !part.is_empty())
        .find(|part| !part.ends_with(".slice"))
        .filter(|part| part.contains('.'))
}

/// The unit process `pid` belongs to, by its cgroup.
pub fn unit_of_pid(pid: i32) -> Option<String> {
    unit_of_cgroup(&cgroup_of(pid)?).map(str::to_owned)
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_from_cgroup_paths() {
        assert_eq!(
            unit_of_cgroup("/system.slice/ssh.service"),
            Some("ssh.service")
        );
        assert_eq!(
            unit_of_cgroup("/system.slice/ssh.service/sub"),
            Some("ssh.service")
        );
        assert_eq!(unit_of_cgroup("/init.scope"), Some("init.scope"));
        assert_eq!(unit_of_cgroup("/system.slice/"), None);
        assert_eq!(unit_of_cgroup("/"), None);
        assert_eq!(
            unit_of_cgroup("/user.slice/user-0.slice/session-3.scope/x"),
            Some("session-3.scope")
        );
        assert_eq!(unit_cgroup("a.service"), "/system.slice/a.service");
    }
}
