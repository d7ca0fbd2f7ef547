//! `.mount` and `.swap` units (systemd.mount(5), systemd.swap(5)): what
//! /etc/fstab says, through systemd-fstab-generator's units. relive runs
//! mount(8) and umount(8), swapon(8) and swapoff(8) as the units' control
//! processes, and takes the kernel's word for the state: a mount is active
//! while /proc/self/mountinfo lists its mount point, a swap while
//! /proc/swaps lists it, whoever did it. A mount point in the kernel's
//! table has a unit even without a file (as under systemd), so that
//! RequiresMountsFor= and parent mounts find it.

use super::clock;
use super::state::{ActiveState, SubState, UnitResult};
use super::Manager;
use relive_sys::spawn::{SpawnRequest, Stdio};
use relive_sys::ExitStatus;
use relive_units::mount::MountSection;
use relive_units::{unit_name, Timeout, UnitKind};
use std::path::Path;

/// What a mount or swap unit's control process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Mount,
    Unmount,
    SwapOn,
    SwapOff,
}

/// Mount points never unmounted by a stop: the root and the kernel's
/// API file systems (systemd's "perpetual" units).
const PERPETUAL: &[&str] = &["/", "/proc", "/sys", "/dev", "/run", "/sys/fs/cgroup"];

/// The kernel's API file systems, which systemd never makes units of
/// (mount_point_is_api(), mount_point_ignore()): dependencies on them are
/// on units that do not exist.
const API_MOUNT_POINTS: &[&str] = &[
    "/proc",
    "/sys",
    "/sys/kernel/security",
    "/sys/fs/smackfs",
    "/dev",
    "/dev/shm",
    "/dev/pts",
    "/run",
    "/sys/fs/cgroup",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup/systemd",
    "/sys/fs/pstore",
    "/sys/firmware/efi/efivars",
    "/sys/fs/bpf",
    "/sys/fs/selinux",
    "/dev/console",
    "/proc/kmsg",
    "/proc/sys",
    "/proc/sys/kernel/random/boot_id",
];

/// The kernel's mount points, read once for as many questions as needed.
pub fn mount_points() -> Vec<std::path::PathBuf> {
    procfs::process::Process::myself()
        .and_then(|me| me.mountinfo())
        .map(|mounts| mounts.into_iter().map(|m| m.mount_point).collect())
        .unwrap_or_default()
}

/// Whether the kernel lists `path` as a mount point (an automount's
/// autofs counts, as for ConditionPathIsMountPoint=).
pub fn mounted(path: &Path) -> bool {
    mount_points().iter().any(|m| m == path)
}

/// Whether a file system is mounted on `path`: its top entry, not an
/// automount's autofs waiting for the real one.
fn file_system_mounted(path: &Path) -> bool {
    mount_entry(path).is_some_and(|(_, fs_type)| fs_type != AUTOFS)
}

/// The file system type of an automount's trap.
const AUTOFS: &str = "autofs";

/// The kernel's entry for a mount point: (source, file system type).
fn mount_entry(path: &Path) -> Option<(String, String)> {
    procfs::process::Process::myself()
        .and_then(|me| me.mountinfo())
        .ok()?
        .into_iter()
        .rev()
        .find(|m| m.mount_point == path)
        .map(|m| (m.mount_source.unwrap_or_default(), m.fs_type))
}

/// Whether /proc/swaps lists `what` (a device or file, links followed).
fn swap_active(what: &Path) -> bool {
    let want = std::fs::canonicalize(what).unwrap_or_else(|_| what.to_path_buf());
    std::fs::read_to_string("/proc/swaps").is_ok_and(|text| {
        text.lines()
            .skip(1)
            .filter_map(|l| l.split_ascii_whitespace().next())
            .any(|dev| Path::new(dev) == want)
    })
}

/// The mount(8)/umount(8)/swapon(8)/swapoff(8) command line.
fn command(control: Control, m: Option<&MountSection>, what: &str, target: &str) -> Vec<String> {
    let mut argv: Vec<String> = Vec::new();
    match control {
        Control::Mount => {
            let m = m.expect("a mount has its section");
            argv.extend(["/bin/mount".into(), what.into(), target.into()]);
            if let Some(t) = &m.fs_type {
                argv.extend(["-t".into(), t.clone()]);
            }
            if let Some(o) = &m.options {
                argv.extend(["-o".into(), o.clone()]);
            }
            if m.sloppy {
                argv.push("-s".into());
            }
        }
        Control::Unmount => {
            argv.extend(["/bin/umount".into(), target.into()]);
            if m.is_some_and(|m| m.lazy_unmount) {
                argv.push("-l".into());
            }
            if m.is_some_and(|m| m.force_unmount) {
                argv.push("-f".into());
            }
        }
        Control::SwapOn => argv.extend(["/sbin/swapon".into(), what.into()]),
        Control::SwapOff => argv.extend(["/sbin/swapoff".into(), what.into()]),
    }
    argv
}

impl Manager {
    /// A unit for a mount point the kernel lists but no file describes.
    pub(super) fn mount_from_kernel(&self, name: &str) -> Option<relive_units::Unit> {
        let path = unit_name::to_path(name)?;
        if API_MOUNT_POINTS.contains(&path.as_str()) {
            return None;
        }
        let (source, fs_type) = mount_entry(Path::new(&path)).filter(|(_, t)| t != AUTOFS)?;
        let mut unit = relive_units::Unit::synthetic(name, UnitKind::Mount, &path);
        unit.mount = Some(MountSection {
            what: source,
            where_: path.into(),
            fs_type: Some(fs_type),
            options: None,
            sloppy: false,
            lazy_unmount: false,
            force_unmount: false,
            directory_mode: 0o755,
            timeout: Timeout::Default,
        });
        unit.unit.default_dependencies = false;
        Some(unit)
    }

    /// RequiresMountsFor= and a mount's parents: Requires= and After= on
    /// the mount unit of each path that has one (a file, or the kernel's
    /// table).
    pub(super) fn add_mount_dependencies(&mut self, name: &str) {
        let Some(cfg) = self.state.units.get(name).and_then(|u| u.config.clone()) else {
            return;
        };
        let mut paths: Vec<(String, bool)> = cfg
            .unit
            .requires_mounts_for
            .iter()
            .map(|p| (p.clone(), true))
            .collect();
        if let Some(m) = &cfg.mount {
            // The parents, not the mount point itself.
            paths.push((m.where_.to_string_lossy().into_owned(), false));
        }
        let mut needed: Vec<String> = Vec::new();
        let points = mount_points();
        for (path, inclusive) in paths {
            let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            let count = parts.len() + usize::from(inclusive);
            for n in 0..count {
                let prefix = format!("/{}", parts[..n].join("/"));
                let mount = unit_name::from_path(&prefix, "mount");
                if mount == name || needed.contains(&mount) {
                    continue;
                }
                let known = !API_MOUNT_POINTS.contains(&prefix.as_str())
                    && (points.iter().any(|p| p == Path::new(&prefix)) || self.loader_has(&mount));
                if known {
                    needed.push(mount);
                }
            }
        }
        if needed.is_empty() {
            return;
        }
        for mount in &needed {
            self.load(mount);
        }
        if let Some(cfg) = self
            .state
            .units
            .get_mut(name)
            .and_then(|u| u.config.as_mut())
        {
            for mount in needed {
                if !cfg.unit.requires.contains(&mount) {
                    cfg.unit.requires.push(mount.clone());
                }
                if !cfg.unit.after.contains(&mount) {
                    cfg.unit.after.push(mount);
                }
            }
        }
    }

    pub(super) fn start_mount(&mut self, name: &str) {
        let Some(cfg) = self.start_config(name) else {
            return;
        };
        if let Some(m) = &cfg.mount {
            if file_system_mounted(&m.where_) {
                return self.set_state(name, ActiveState::Active, SubState::Mounted);
            }
            if let Err(e) = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(m.directory_mode)
                .create(&m.where_)
            {
                let msg = format!("cannot make {}: {e}", m.where_.display());
                tracing::error!("{name}: {msg}");
                return self.fail_mount(name, UnitResult::Resources(msg));
            }
            let target = m.where_.to_string_lossy().into_owned();
            self.run_control(name, Control::Mount, &cfg, &m.what, &target, m.timeout);
        } else if let Some(s) = &cfg.swap {
            if swap_active(&s.what) {
                return self.set_state(name, ActiveState::Active, SubState::SwapActive);
            }
            let what = s.what.to_string_lossy().into_owned();
            self.run_control(name, Control::SwapOn, &cfg, &what, &what, s.timeout);
        }
    }

    pub(super) fn stop_mount(&mut self, name: &str) {
        let Some(cfg) = self.state.units[name].config.clone() else {
            return;
        };
        if let Some(m) = &cfg.mount {
            let target = m.where_.to_string_lossy().into_owned();
            if PERPETUAL.contains(&target.as_str()) {
                // Never unmounted by a stop (systemd refuses to).
                let (active, sub) = (self.state.units[name].active, self.state.units[name].sub);
                self.set_state(name, active, sub);
                return self.finish_job(name, Ok(()));
            }
            if !file_system_mounted(&m.where_) {
                return self.set_state(name, ActiveState::Inactive, SubState::Dead);
            }
            self.run_control(name, Control::Unmount, &cfg, &m.what, &target, m.timeout);
        } else if let Some(s) = &cfg.swap {
            if !swap_active(&s.what) {
                return self.set_state(name, ActiveState::Inactive, SubState::Dead);
            }
            let what = s.what.to_string_lossy().into_owned();
            self.run_control(name, Control::SwapOff, &cfg, &what, &what, s.timeout);
        }
    }

    fn run_control(
        &mut self,
        name: &str,
        control: Control,
        cfg: &relive_units::Unit,
        what: &str,
        target: &str,
        timeout: Timeout,
    ) {
        let mut argv = command(control, cfg.mount.as_ref(), what, target);
        if let (Control::SwapOn, Some(s)) = (control, &cfg.swap) {
            if let Some(p) = s.priority {
                argv.extend(["-p".into(), p.to_string()]);
            }
            if let Some(o) = &s.options {
                argv.extend(["-o".into(), o.clone()]);
            }
        }
        let request = argv
            .iter()
            .map(|a| super::exec::cstring(a))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|argv| {
                Ok(SpawnRequest {
                    stdout: Stdio::Inherit,
                    stderr: Stdio::Inherit,
                    umask: 0o022,
                    // As systemd's mount units (same_pgrp): an automount
                    // may be waiting for this mount.
                    same_process_group: true,
                    ..SpawnRequest::program(
                        argv[0].clone(),
                        argv,
                        vec![super::exec::cstring("PATH=/usr/sbin:/usr/bin:/sbin:/bin")?],
                    )
                })
            });
        let spawned = request.and_then(|r| self.rt.kernel.spawn(r).map_err(|e| e.to_string()));
        let spawned = match spawned {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{name}: {}: {e}", argv.join(" "));
                return self.fail_mount(name, UnitResult::Resources(e));
            }
        };
        tracing::info!("{name}: {}", argv.join(" "));
        self.rt.execs.add(spawned.pid, Some(name), spawned.exec);
        self.rt
            .controls
            .insert(spawned.pid, (name.to_owned(), control));
        let limit = match timeout {
            Timeout::After(d) => Some(d),
            Timeout::Infinity => None,
            Timeout::Default => Some(std::time::Duration::from_secs_f64(
                self.config.manager.default_timeout_start_sec,
            )),
        };
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.control_pid = Some(spawned.pid);
        u.deadline = limit.map(|d| clock::after(clock::now(), d));
        let (active, sub) = match control {
            Control::Mount | Control::SwapOn => (ActiveState::Activating, SubState::Start),
            Control::Unmount | Control::SwapOff => (ActiveState::Deactivating, SubState::Stop),
        };
        self.set_state(name, active, sub);
    }

    /// A control process ended: the kernel says what it did.
    pub(super) fn control_done(&mut self, name: &str, control: Control, status: ExitStatus) {
        let Some(cfg) = self.state.units.get(name).and_then(|u| u.config.clone()) else {
            return;
        };
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.control_pid = None;
        u.deadline = None;
        let now_active = match (&cfg.mount, &cfg.swap) {
            (Some(m), _) => file_system_mounted(&m.where_),
            (_, Some(s)) => swap_active(&s.what),
            _ => false,
        };
        let up = if cfg.mount.is_some() {
            SubState::Mounted
        } else {
            SubState::SwapActive
        };
        match control {
            Control::Mount | Control::SwapOn if status.success() || now_active => {
                self.set_state(name, ActiveState::Active, up)
            }
            Control::Mount | Control::SwapOn => {
                tracing::warn!("{name}: {}", status.describe());
                self.fail_mount(name, super::service::failure_result(status));
            }
            Control::Unmount | Control::SwapOff if !now_active => {
                self.set_state(name, ActiveState::Inactive, SubState::Dead)
            }
            Control::Unmount | Control::SwapOff => {
                tracing::warn!("{name}: still in use: {}", status.describe());
                self.set_state(name, ActiveState::Active, up);
                self.finish_job(
                    name,
                    Err(super::ManagerError::JobFailed(format!(
                        "{name}: {} failed, {}",
                        if control == Control::Unmount {
                            "umount"
                        } else {
                            "swapoff"
                        },
                        status.describe()
                    ))),
                );
            }
        }
    }

    /// The deadline of a mount or swap unit: its control process hangs.
    pub(super) fn mount_timeout(&mut self, name: &str) {
        if let Some(pid) = self.state.units.get(name).and_then(|u| u.control_pid) {
            tracing::warn!("{name}: timed out, killing its control process");
            let _ = self.rt.kernel.kill(pid, libc::SIGKILL);
            self.state.units.get_mut(name).expect("unit exists").result = UnitResult::Timeout;
        }
    }

    fn fail_mount(&mut self, name: &str, result: UnitResult) {
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.result = result;
        u.control_pid = None;
        u.deadline = None;
        self.set_state(name, ActiveState::Failed, SubState::Failed);
    }
}

use std::os::unix::fs::DirBuilderExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_as_fstab_asks() {
        let m = MountSection {
            what: "/dev/vdb".into(),
            where_: "/srv".into(),
            fs_type: Some("ext4".into()),
            options: Some("noatime,nofail".into()),
            sloppy: false,
            lazy_unmount: true,
            force_unmount: false,
            directory_mode: 0o755,
            timeout: Timeout::Default,
        };
        assert_eq!(
            command(Control::Mount, Some(&m), "/dev/vdb", "/srv"),
            [
                "/bin/mount",
                "/dev/vdb",
                "/srv",
                "-t",
                "ext4",
                "-o",
                "noatime,nofail"
            ]
        );
        assert_eq!(
            command(Control::Unmount, Some(&m), "/dev/vdb", "/srv"),
            ["/bin/umount", "/srv", "-l"]
        );
        assert_eq!(
            command(Control::SwapOff, None, "/swapfile", "/swapfile"),
            ["/sbin/swapoff", "/swapfile"]
        );
    }
}
