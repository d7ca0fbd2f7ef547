//! Restoring one unit from its images, with the same PIDs, into its
//! cgroup, as a child of relive; its output pipes handed back to relive.
//! Used after the kexec, and on the old kernel when an upgrade aborts.

use crate::RestoreError;
use relive_api::report::ClockOffsets;
use relive_api::report::UnitRecord;
use relive_criu::pid1::{timeout_for, Pid1Spawner};
use relive_criu::{Criu, InheritFd, LogLevel, RestoreOptions};
use relive_store::Store;
use relive_sys::timens::ClockAtKexec;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A unit back alive: its root PID and the read ends of its output pipes.
#[derive(Debug)]
pub struct Revived {
    pub pid: i32,
    pub outputs: Vec<OwnedFd>,
    pub elapsed_ms: f64,
    /// Spent checking the images before the restore.
    pub verify_ms: f64,
    /// Where the restore's time went (relive_sys::laps), for the log.
    pub steps: String,
}

/// The check of a unit's images against the manifest, waited for once
/// CRIU has rebuilt its processes and before they run: its time (ms), or
/// why the images are refused, in which case they never run.
pub type Check<'a> = &'a (dyn Fn() -> Result<f64, RestoreError> + Sync);

/// Restores a unit: CRIU on a live system ([`CriuRestorer`]), a fake in
/// tests. The images are checked meanwhile (`check`): their processes,
/// rebuilt, run only once it passed.
pub trait Restorer: Sync {
    /// `lazy`: the view of the images a lazy restore reads
    /// ([`crate::lazy`]), its daemon listening there; None: the store's
    /// images, restored whole.
    fn restore(
        &self,
        store: &Store,
        record: &UnitRecord,
        check: Check<'_>,
        lazy: Option<&Path>,
    ) -> Result<Revived, RestoreError>;
    /// Starts a lazy restore of `record` (its view, the page server, the
    /// daemon); None where there are none (tests).
    fn start_lazy(
        &self,
        _host: &dyn relive_host::UnitHost,
        _store: &Store,
        _record: &UnitRecord,
    ) -> Option<Result<crate::lazy::Lazy, crate::lazy::LazyError>> {
        None
    }
    /// Lets CRIU learn the new kernel once, ahead of the first restore
    /// (its kernel probe, cached in /run/criu.kdat for every later CRIU);
    /// false if the probe failed (each restore then probes for itself).
    fn probe_kernel(&self) -> bool {
        true
    }
    /// Makes the system's one clock (relive_sys::timens) for what is
    /// restored and started from now on: in a new kernel continuing the
    /// clocks `at_kexec` gave, on the kernel that dumped (an undo) the
    /// one the services had. None where there is none.
    fn one_clock(&self, _at_kexec: Option<&ClockAtKexec>) -> Option<ClockOffsets> {
        None
    }
}

/// Checks the unit's images against the store's manifest; returns how
/// long that took (ms). Never restore from images that fail it.
pub fn verify(store: &Store, name: &str) -> Result<f64, RestoreError> {
    timed(|| store.verify_unit(name))
}

/// [`verify`], but for the page images of a unit restored lazily, whose
/// blocks are checked as they are served (`crate::lazy`).
pub fn verify_but_pages(store: &Store, name: &str) -> Result<f64, RestoreError> {
    timed(|| store.verify_unit_but_pages(name))
}

fn timed(
    check: impl FnOnce() -> Result<(), relive_store::StoreError>,
) -> Result<f64, RestoreError> {
    let verifying = Instant::now();
    check().map_err(RestoreError::ImagesRefused)?;
    Ok(verifying.elapsed().as_secs_f64() * 1000.0)
}

/// Restores a unit while its images are checked on a thread of its own:
/// the check no longer sits in front of CRIU's restore, and the
/// processes run only once it passed.
pub fn restore(
    restorer: &dyn Restorer,
    store: &Store,
    record: &UnitRecord,
) -> Result<Revived, RestoreError> {
    std::thread::scope(|scope| {
        let checking = std::sync::Mutex::new(Some(scope.spawn(|| verify(store, &record.name))));
        let check = || {
            let handle = checking.lock().unwrap_or_else(|e| e.into_inner()).take();
            match handle.map(|h| h.join()) {
                Some(Ok(result)) => result,
                Some(Err(_)) => Err(RestoreError::CheckPanicked),
                None => Err(RestoreError::CheckedTwice),
            }
        };
        restore_checked(restorer, store, record, &check, None)
    })
}

/// Restores a unit whose images `check` checks meanwhile (or waits for,
/// when a [`crate::verifier::Verifier`] checks them ahead).
pub fn restore_checked(
    restorer: &dyn Restorer,
    store: &Store,
    record: &UnitRecord,
    check: Check<'_>,
    lazy: Option<&Path>,
) -> Result<Revived, RestoreError> {
    #[cfg(feature = "fault-injection")]
    {
        use relive_host::fault::{self, Fault};
        if fault::injected_in_store(&store.root, Fault::RestoreFail, &record.name) {
            return Err(RestoreError::Injected(Fault::RestoreFail.name()));
        }
    }
    restorer.restore(store, record, check, lazy)
}

/// CRIU restores the unit into its cgroup under `cgroup_root`.
#[derive(Debug, Clone)]
pub struct CriuRestorer {
    pub criu: PathBuf,
    pub cgroup_root: PathBuf,
}

impl CriuRestorer {
    pub fn new(criu: &Path) -> CriuRestorer {
        CriuRestorer {
            criu: criu.to_owned(),
            cgroup_root: relive_sys::cgroup::ROOT.into(),
        }
    }
}

impl Restorer for CriuRestorer {
    fn one_clock(&self, at_kexec: Option<&ClockAtKexec>) -> Option<ClockOffsets> {
        crate::clock::one_clock(at_kexec)
    }

    fn probe_kernel(&self) -> bool {
        let started = Instant::now();
        // CRIU tries TCP repair on a loopback connection; the network's
        // rerun units bring lo up too, later (ifup lo is idempotent).
        if !relive_sys::namespace::bring_loopback_up() {
            tracing::warn!("cannot bring lo up for CRIU's probe of the new kernel");
        }
        // What a restore needs learnt is CRIU's kerndat: a FEATURE_CHECK
        // computes and caches it, without the rest of `criu check`'s tests
        // (seconds under emulation; the preflight ran them on the old
        // kernel, and a restore that fails starts its unit afresh).
        match relive_criu::pid1::learn_kernel(&self.criu) {
            Ok(features) => {
                tracing::info!(
                    "CRIU learnt the new kernel in {:.0} ms, ahead of the restores (memory tracking {}, lazy pages {})",
                    started.elapsed().as_secs_f64() * 1000.0,
                    yes_no(features.mem_track),
                    yes_no(features.lazy_pages),
                );
                true
            }
            Err(e) => {
                tracing::warn!("CRIU's probe of the new kernel failed: {e}");
                false
            }
        }
    }

    fn start_lazy(
        &self,
        host: &dyn relive_host::UnitHost,
        store: &Store,
        record: &UnitRecord,
    ) -> Option<Result<crate::lazy::Lazy, crate::lazy::LazyError>> {
        Some(crate::lazy::start(host, &self.criu, store, record))
    }

    fn restore(
        &self,
        store: &Store,
        record: &UnitRecord,
        check: Check<'_>,
        lazy: Option<&Path>,
    ) -> Result<Revived, RestoreError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| RestoreError::Io { path, source }
        };
        let mut laps = relive_sys::laps::Laps::start();
        // /run starts empty in a new kernel: what the unit kept there comes back first.
        relive_store::rundir::restore(&store.run_dir(&record.name), Path::new("/run"))
            .and_then(|()| {
                let shm = Path::new(relive_store::rundir::SHM);
                relive_store::rundir::restore(&store.shm_dir(&record.name), shm)
            })
            .map_err(RestoreError::RuntimeDirs)?;
        for point in missing_mountpoints(record, Path::new("/run")) {
            std::fs::create_dir_all(&point).map_err(io(&point))?;
        }
        laps.lap("runtime files");
        let cgroup = self.cgroup_root.join(record.cgroup.trim_start_matches('/'));
        std::fs::create_dir_all(&cgroup).map_err(io(&cgroup))?;
        let dir_path = match lazy {
            Some(view) => view.to_owned(),
            None => store.root.join("images").join(&record.name),
        };
        let dir = std::fs::File::open(&dir_path).map_err(io(&dir_path))?;
        // New pipes stand in for the ones the unit wrote to: CRIU gives the
        // restored processes our write ends, we keep the read ends.
        let mut reads = Vec::new();
        let mut writes = Vec::new();
        for _ in &record.pipes {
            let (r, w) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(RestoreError::Pipe)?;
            reads.push(r);
            writes.push(w);
        }
        // FIFOs another mount namespace had opened (an ssh login's session
        // FIFO, logind's): opened again by their path, which the runtime
        // files just brought back. Read-write, so that the open does not
        // wait for the other end.
        let mut fifos = Vec::new();
        for fifo in &record.foreign_fifos {
            let path = Path::new("/run").join(&fifo.run_path);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io(&path))?;
            fifos.push((fifo.key.clone(), std::os::fd::OwnedFd::from(file)));
        }
        // Sockets in place of those tied to other units (or to processes
        // gone with the old kernel).
        let mut ties = Vec::new();
        for tie in &record.unix_ties {
            let end = crate::switchboard::end_for(store, tie)
                .map_err(io(&crate::switchboard::queue_dir(store)))?;
            ties.push((format!("socket:[{}]", tie.inode), end));
        }
        // One pipe for every holder of a pipe the group shared.
        for tie in &record.pipe_ties {
            let end = crate::pipe_switch::end_for(store, tie)
                .map_err(io(&crate::pipe_switch::queue_dir(store)))?;
            if let Some(end) = end {
                ties.push((tie.key(), end));
            }
        }
        let keep: Vec<_> = writes
            .iter()
            .map(|w| w.as_fd())
            .chain(fifos.iter().map(|(_, f)| f.as_fd()))
            .chain(ties.iter().map(|(_, s)| s.as_fd()))
            .collect();
        let client = Criu {
            path: self.criu.clone(),
            reply_timeout: timeout_for(record.image_bytes),
        };
        let started = Instant::now();
        let spawner = Pid1Spawner {
            no_new_privs: record.no_new_privs,
        };
        laps.lap("ends");
        let session = client.start_keeping(&spawner, &keep)?;
        laps.lap("criu start");
        let mut options = RestoreOptions::new(dir.as_fd());
        options.tcp_established = true;
        options.ext_unix_sk = true;
        options.file_locks = true;
        options.shell_job = record.shell_job;
        options.log_file = Some("restore.log".into());
        options.log_level = LogLevel::Info;
        options.lazy_pages = lazy.is_some();
        // Into the system's one clock, when there is one.
        if relive_sys::timens::open_pinned().is_some() {
            options.join_time_ns = Some(relive_sys::timens::PATH.into());
        }
        if record.own_mount_namespace {
            // CRIU builds the service's mount namespace on this root.
            options.root = Some("/".into());
        }
        options.inherit_fds = record
            .pipes
            .iter()
            .zip(&writes)
            .map(|(inode, w)| InheritFd {
                key: format!("pipe:[{inode}]"),
                fd: w.as_fd(),
            })
            .chain(fifos.iter().chain(&ties).map(|(key, f)| InheritFd {
                key: key.clone(),
                fd: f.as_fd(),
            }))
            .collect();
        // CRIU stops at "post-restore" with the processes rebuilt and not
        // yet run: there the images' check (under way since before the
        // restore) is waited for, and a refusal kills them unrun.
        options.notify_scripts = true;
        let mut checked: Option<Result<f64, RestoreError>> = None;
        let restored = {
            let _unscaled = WindowScalingOff::new();
            session.restore(&options, |note| {
                if note.script == "post-restore" {
                    laps.lap("criu");
                    let result = check();
                    laps.lap("check wait");
                    note.refuse = result.is_err();
                    checked = Some(result);
                }
            })
        };
        let (verify_ms, outcome) = match (checked, restored) {
            (Some(Err(refused)), _) => return Err(refused),
            (_, Err(e)) => return Err(e.into()),
            (Some(Ok(ms)), Ok(outcome)) => (ms, outcome),
            (None, Ok(outcome)) => {
                // CRIU let them run without stopping where it must: they
                // are ended rather than run from unchecked images.
                kill_restored(outcome.pid, record);
                return Err(RestoreError::Unchecked);
            }
        };
        // CRIU 3.17 does not carry I/O priorities: set each again.
        for &(pid, ioprio) in &record.ioprios {
            if let Err(e) = relive_sys::sched::set_ioprio_of_all_threads(pid as i32, ioprio) {
                tracing::warn!(
                    "{}: cannot set the I/O priority of PID {pid} again: {e}",
                    record.name
                );
            }
        }
        laps.lap("criu");
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        // CRIU answers with the tree's root: the main process, or the
        // supervisor above it, which kept its PID as every process did.
        let root = record.dumped_root();
        if outcome.pid != root {
            tracing::warn!(
                "{}: restored as PID {} (was {root})",
                record.name,
                outcome.pid,
            );
        }
        let main_pid = if outcome.pid == root {
            record.main_pid
        } else {
            outcome.pid
        };
        Ok(Revived {
            pid: main_pid,
            outputs: reads,
            elapsed_ms,
            verify_ms,
            steps: laps.to_string(),
        })
    }
}

/// Ends a tree CRIU restored without the stop relive waits at: its root
/// and the PIDs the unit had (CRIU gives them back).
fn kill_restored(root: i32, record: &UnitRecord) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    tracing::error!(
        "{}: CRIU resumed it without stopping at post-restore: ended unchecked",
        record.name
    );
    for pid in std::iter::once(root).chain(record.pids.iter().map(|&p| p as i32)) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The mount points under `run` (/run) of the unit's own mount namespace
/// that are not there in the new kernel's /run: a mount the namespace
/// copied when the service started, such as a logged-in user's
/// /run/user/UID, which logind mounts again only later. CRIU rebuilds
/// the namespace on PID 1's /run and needs each mount point to exist
/// ("Can't stat mountpoint"); the restored mount then covers it.
fn missing_mountpoints(record: &UnitRecord, run: &Path) -> Vec<PathBuf> {
    record
        .mount_flags
        .iter()
        .filter_map(|(point, _)| Path::new(point).strip_prefix("/run").ok())
        .filter(|below| !below.as_os_str().is_empty())
        .map(|below| run.join(below))
        .filter(|path| !path.exists())
        .collect()
}

fn yes_no(yes: bool) -> &'static str {
    if yes {
        "yes"
    } else {
        "no"
    }
}

/// TCP window scaling off for the duration of a restore.
///
/// CRIU 3.17.1 restores the window-scale option only for connections that
/// negotiated it. A restored connection that did not (QEMU's user network
/// never does) otherwise gets the new kernel's own receive scale: it then
/// advertises a window shrunk by that shift to a peer that never agreed to
/// scaling — a few bytes — and the connection crawls (an ssh session stalls).
/// With scaling off while the sockets are created, their scale is 0, as
/// negotiated; connections that did negotiate scaling get theirs from CRIU.
///
/// Restores run in parallel: the first to start turns scaling off, the
/// last to end turns it back to what it was.
struct WindowScalingOff;

/// The restores under way, and the setting they found.
static SCALING_OFF: std::sync::Mutex<(usize, Option<String>)> = std::sync::Mutex::new((0, None));

const WINDOW_SCALING: &str = "/proc/sys/net/ipv4/tcp_window_scaling";

impl WindowScalingOff {
    fn new() -> WindowScalingOff {
        let mut off = SCALING_OFF.lock().unwrap_or_else(|e| e.into_inner());
        if off.0 == 0 {
            let previous = std::fs::read_to_string(WINDOW_SCALING).ok();
            if previous.as_deref().map(str::trim) != Some("0") {
                if let Err(e) = std::fs::write(WINDOW_SCALING, "0") {
                    tracing::warn!("{WINDOW_SCALING}: {e}");
                }
            }
            off.1 = previous;
        }
        off.0 += 1;
        WindowScalingOff
    }
}

impl Drop for WindowScalingOff {
    fn drop(&mut self) {
        let mut off = SCALING_OFF.lock().unwrap_or_else(|e| e.into_inner());
        off.0 = off.0.saturating_sub(1);
        if off.0 == 0 {
            if let Some(previous) = off.1.take() {
                let _ = std::fs::write(WINDOW_SCALING, previous.trim());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_s_mount_points_missing_from_run_are_named() {
        let run = std::env::temp_dir().join(format!("relive-run-{}", std::process::id()));
        std::fs::create_dir_all(run.join("lock")).unwrap();
        let record = UnitRecord {
            mount_flags: ["/", "/run", "/run/lock", "/run/user/0", "/srv/data"]
                .iter()
                .map(|p| (p.to_string(), Vec::new()))
                .collect(),
            ..UnitRecord::default()
        };
        assert_eq!(missing_mountpoints(&record, &run), [run.join("user/0")]);
        std::fs::remove_dir_all(&run).unwrap();
    }
}
