//! The manager's side of a live upgrade: the upgrade worker asks the loop
//! (through these methods) to park, adopt and start units, so the state
//! stays owned by the loop's thread.

use super::state::*;
use super::{ExitStatus, Manager, ManagerError};
use relive_host::ParkInfo;
use relive_sys::SpawnRequest;
use std::os::fd::OwnedFd;
use std::path::Path;

impl Manager {
    /// Marks the upgrade as running; refuses a second one, or one during shutdown.
    pub fn begin_upgrade(&mut self) -> Result<(), ManagerError> {
        if self.state.shutdown.is_some() {
            return Err(ManagerError::Refused("the system is shutting down".into()));
        }
        if self.state.upgrading {
            return Err(ManagerError::Refused(
                "a live upgrade is already running".into(),
            ));
        }
        self.state.upgrading = true;
        Ok(())
    }

    /// The upgrade is over: every unit is supervised again, and a shutdown
    /// signal that came meanwhile is acted on now.
    pub fn end_upgrade(&mut self) {
        self.state.upgrading = false;
        self.state.restarted_after_restores.clear();
        for u in self.state.units.values_mut() {
            u.parked = false;
        }
        if let Some(kind) = self.state.queued_shutdown.take() {
            tracing::info!("{}: the live upgrade is over, acting on it", kind.verb());
            self.shutdown_signal(kind);
        }
    }

    /// Takes a running service out of supervision for its checkpoint.
    pub fn park(&mut self, name: &str) -> Result<ParkInfo, ManagerError> {
        if let Some(main) = self.unit(name).and_then(|u| u.main_pid) {
            self.gather_scopes(name, main);
        }
        let pipes = self.rt.outputs.inodes_of(name);
        let config = self.service_config(name);
        let mut runtime_dirs = config
            .as_ref()
            .map(|s| s.runtime_directory.clone())
            .unwrap_or_default();
        // A PID file its daemon wrote and closed (nginx's): `nginx -s
        // reload`, logrotate and ExecReload= read it after the upgrade.
        let pid_file = config.and_then(|s| s.pid_file);
        if let Some(Ok(relative)) = pid_file.as_deref().map(|p| p.strip_prefix("/run")) {
            runtime_dirs.push(relative.to_string_lossy().into_owned());
        }
        let shm = Path::new(relive_store::rundir::SHM);
        let [run_files, shm_files] = self.held_files(name, [Path::new("/run"), shm]);
        runtime_dirs.extend(run_files);
        let foreign_fifos = super::foreign_fifos::of_processes(&self.tree_pids(name));
        let listeners = self
            .unit(name)
            .and_then(|u| u.main_pid)
            .map(|main| self.carried_listeners(name, main))
            .unwrap_or_default();
        runtime_dirs.extend(self.carried_socket_dirs(&listeners));
        runtime_dirs.extend(foreign_fifos.iter().map(|f| f.run_path.clone()));
        let u = self
            .state
            .units
            .get_mut(name)
            .ok_or_else(|| ManagerError::Refused(format!("{name}: no such unit")))?;
        let main_pid = u.main_pid.ok_or_else(|| {
            ManagerError::Refused(format!("{name}: has no main process to checkpoint"))
        })?;
        if u.active != ActiveState::Active || u.job.is_some() {
            return Err(ManagerError::Refused(format!(
                "{name}: is {} ({}), not settled",
                u.active.as_str(),
                u.sub.as_str()
            )));
        }
        u.parked = true;
        u.deadline = None;
        Ok(ParkInfo {
            main_pid,
            cgroup: self.unit_cgroup(name),
            pipes,
            runtime_dirs,
            shm_files,
            foreign_fifos,
            listeners,
        })
    }

    /// The processes in the unit's cgroup and the cgroups below it.
    fn tree_pids(&self, name: &str) -> Vec<i32> {
        let cgroup = self.unit_cgroup(name);
        let children = self.rt.kernel.cgroup_children(&cgroup).unwrap_or_default();
        std::iter::once(cgroup.clone())
            .chain(children.iter().map(|c| format!("{cgroup}/{c}")))
            .flat_map(|c| self.rt.kernel.cgroup_pids(&c).unwrap_or_default())
            .collect()
    }

    /// Files and FIFOs under each of `roots` (tmpfs: /run, /dev/shm) the
    /// unit's processes hold open or have mapped, relative to that root
    /// (cron keeps /run/crond.pid open and locked; an ssh login's sshd
    /// holds logind's session FIFO; postgres maps its dynamic shared
    /// memory from /dev/shm): the new kernel starts them empty, and CRIU
    /// reopens and maps files by their path. One pass over /proc for all
    /// roots: this runs on PID 1's loop, in the stoppage.
    pub(super) fn held_files<const N: usize>(
        &self,
        name: &str,
        roots: [&Path; N],
    ) -> [Vec<String>; N] {
        let mut files: [std::collections::BTreeSet<String>; N] =
            std::array::from_fn(|_| Default::default());
        for pid in self.tree_pids(name) {
            let Ok(process) = procfs::process::Process::new(pid) else {
                continue;
            };
            let open = process
                .fd()
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|fd| match fd.target {
                    procfs::process::FDTarget::Path(path) => Some(path),
                    _ => None,
                });
            let mapped =
                process
                    .maps()
                    .into_iter()
                    .flatten()
                    .filter_map(|map| match map.pathname {
                        procfs::process::MMapPath::Path(path) => Some(path),
                        _ => None,
                    });
            for path in open.chain(mapped) {
                let Some((i, relative)) = roots
                    .iter()
                    .enumerate()
                    .find_map(|(i, root)| Some((i, path.strip_prefix(root).ok()?)))
                else {
                    continue;
                };
                let kept = std::fs::metadata(&path).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.is_file() || m.file_type().is_fifo()
                });
                if kept && !relative.as_os_str().is_empty() {
                    files[i].insert(relative.to_string_lossy().into_owned());
                }
            }
        }
        files.map(|set| set.into_iter().collect())
    }

    /// Puts a parked unit back under supervision (the upgrade was aborted
    /// before its checkpoint, or it was restored): `pid` is its main PID.
    pub fn unpark(&mut self, name: &str, pid: i32, outputs: Vec<OwnedFd>) {
        for fd in outputs {
            self.rt.outputs.adopt(fd, name);
        }
        if let Some(u) = self.state.units.get_mut(name) {
            u.parked = false;
            u.main_pid = Some(pid);
            u.control_pid = None;
            u.control = None;
            u.deadline = None;
            u.active = ActiveState::Active;
            u.sub = SubState::Running;
        }
        self.return_scopes(name);
        if name == relive_units::DBUS_SERVICE {
            // Restored (or thawed) dbus-daemon closed relive's old
            // connection: PID 1 connects again and takes its name.
            self.system_bus_started();
        }
        // It may have exited between the restore and now: check.
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            tracing::warn!("{name}: main process {pid} is gone right after its restore");
            self.main_exited(name, ExitStatus::Exited(255));
        }
    }

    /// Before a restore: the unit's cgroup and RuntimeDirectory= (owner,
    /// mode), as a start would make them.
    pub fn prepare_restore(&mut self, name: &str) -> Result<(), ManagerError> {
        let svc = self
            .service_config(name)
            .ok_or_else(|| ManagerError::Refused(format!("{name}: not a service")))?;
        self.prepare_unit_resources(name, &svc)
            .map_err(ManagerError::Refused)
    }

    /// A parked unit whose state was lost: it starts afresh like any unit.
    pub fn forget_parked(&mut self, name: &str, reason: &str) {
        if let Some(u) = self.state.units.get_mut(name) {
            tracing::warn!("{name}: state lost ({reason}); starting it afresh");
            u.parked = false;
            u.main_pid = None;
            u.control_pid = None;
            u.control = None;
            u.active = ActiveState::Inactive;
            u.sub = SubState::Dead;
        }
        // Its socket units, if they lost their sockets with it, listen
        // again before it starts.
        self.relisten_carried(name);
    }

    /// Starts a helper program (nft, CRIU's lazy-pages daemon...) on the
    /// loop's thread, so its exit cannot be reaped before someone waits
    /// for it: its PID, and its exit to come.
    pub fn run_helper_pid(
        &mut self,
        request: SpawnRequest,
    ) -> Result<(i32, async_channel::Receiver<ExitStatus>), String> {
        // The text is the helper's error, which the caller wraps.
        let spawned = self.rt.kernel.spawn(request).map_err(|e| e.to_string())?;
        let pid = spawned.pid;
        self.rt.execs.add(pid, None, spawned.exec);
        let (tx, rx) = async_channel::bounded(1);
        self.rt.pid_waiters.insert(pid, tx);
        Ok((pid, rx))
    }
}
