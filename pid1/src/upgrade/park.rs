//! Before the kexec: stop the restart units, freeze and checkpoint the
//! preserved ones in ascending priority, save relive's state, kexec.
//!
//! Any failure before the kexec undoes everything: checkpointed units are
//! restored from their images on this same kernel, frozen ones are thawed,
//! stopped ones started again, the kernel unloaded, the store wiped.

use super::criu::Pid1Spawner;
use super::memstore::{self, StoreChoice};
use super::plan::{Plan, PlannedUnit};
use super::predump::{self, Chain};
use super::preflight::{self, UpgradeRequest};
use super::record::{kernel_release, KexecHandover, UnitRecord};
use super::store::Store;
use super::{helper, on_loop, revive, run_job, Progress};
use crate::event_loop::CommandSender;
use crate::manager::clock::wall_usec;
use crate::manager::state::JobKind;
use crate::sys::kexec;
use crate::sys::machine::Scope;
use relive_config::UpgradeConfig;
use relive_snapshot::activity::ActivitySample;
use relive_snapshot::criu::{CgroupMode, Criu, DumpOptions, LogLevel, NetworkLock};
use relive_snapshot::freezer;
use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the whole pre-kexec part. Returns only if the upgrade did not
/// happen: with the plan (for a failed preflight) and why.
pub fn perform(
    commands: &CommandSender,
    request: &UpgradeRequest,
    config: &UpgradeConfig,
    scope: Scope,
    progress: &dyn Fn(Progress),
) -> (Plan, String) {
    match prepare(commands, request, config, scope, progress) {
        Ok(plan) => {
            let error = execute(commands, &plan, request, config, progress);
            (plan, error)
        }
        Err(failed) => failed,
    }
}

/// Marks the upgrade as running, plans it and runs the preflight (the
/// kernel stays loaded). On failure nothing has changed.
#[allow(clippy::result_large_err)] // once per upgrade; the plan explains the failure
pub fn prepare(
    commands: &CommandSender,
    request: &UpgradeRequest,
    config: &UpgradeConfig,
    scope: Scope,
    progress: &dyn Fn(Progress),
) -> Result<Plan, (Plan, String)> {
    match on_loop(commands, |m| m.begin_upgrade()) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err((Plan::default(), e.to_string())),
        Err(e) => return Err((Plan::default(), e)),
    }
    let mut plan = on_loop(commands, |m| m.upgrade_plan()).unwrap_or_default();
    progress(Progress::new("preflight", "", 0, "checking"));
    preflight::run(&mut plan, request, scope, config, true);
    if !plan.passed() {
        let failed: Vec<String> = plan
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        let _ = on_loop(commands, |m| m.end_upgrade());
        return Err((plan, format!("preflight failed: {}", failed.join("; "))));
    }
    Ok(plan)
}

/// After a passed preflight: park every unit and kexec. Returns only on
/// failure, once everything is undone, with the reason.
pub fn execute(
    commands: &CommandSender,
    plan: &Plan,
    request: &UpgradeRequest,
    config: &UpgradeConfig,
    progress: &dyn Fn(Progress),
) -> String {
    let choice = store_choice(plan, config);
    let mut parking = Parking {
        commands,
        config,
        store_dir: choice.dir.clone(),
        progress,
        records: Vec::new(),
        frozen_only: None,
        stopped: Vec::new(),
    };
    // A bug in this code must not leave services frozen or as images:
    // a panic is undone like any failure.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parking.run(plan, request)));
    let error = match run {
        Ok(Ok(never)) => match never {},
        Ok(Err(e)) => e,
        Err(panic) => format!("relive's upgrade code panicked: {}", panic_message(&panic)),
    };
    let error = match store_full(&choice.dir) {
        Some(full) => format!("{error} ({full})"),
        None => error,
    };
    progress(Progress::new("abort", "", 0, &error));
    let lost = parking.undo();
    let error = if lost.is_empty() {
        error
    } else {
        format!("{error}; {}", lost.join("; "))
    };
    tracing::error!("live upgrade aborted: {error}");
    let _ = kexec::unload();
    let store = Store::at(&choice.dir);
    if let Err(e) = store.keep_logs(Path::new(super::resume::CRIU_LOGS)) {
        tracing::warn!("cannot keep CRIU's logs: {e}");
    }
    let _ = store.wipe();
    if choice.device.is_some() {
        memstore::unmount();
    }
    let _ = on_loop(commands, |m| m.end_upgrade());
    let undone = match lost.len() {
        0 => "every service runs on the old kernel again".to_owned(),
        n => format!("every service runs on the old kernel again ({n} started afresh)"),
    };
    progress(Progress::new("aborted", "", 0, &undone));
    error
}

/// A relivectl that asked for a detached upgrade may live in a unit about
/// to be checkpointed (an ssh session): CRIU cannot dump its connection to
/// relive. Wait (a little) until every control client has gone.
pub fn wait_for_clients_to_leave(progress: &dyn Fn(Progress)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    if crate::dbus::control_clients() > 0 {
        progress(Progress::new(
            "wait",
            "",
            0,
            "waiting for control clients to disconnect",
        ));
    }
    while crate::dbus::control_clients() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Parking<'a> {
    commands: &'a CommandSender,
    config: &'a UpgradeConfig,
    /// The chosen store's directory.
    store_dir: PathBuf,
    progress: &'a dyn Fn(Progress),
    /// Units checkpointed so far (their processes are gone).
    records: Vec<UnitRecord>,
    /// A unit frozen but not checkpointed (the dump failed): (name, main PID, cgroup).
    frozen_only: Option<(String, i32, String)>,
    /// Restart units stopped so far.
    stopped: Vec<String>,
}

impl Parking<'_> {
    fn run(
        &mut self,
        plan: &Plan,
        request: &UpgradeRequest,
    ) -> Result<std::convert::Infallible, String> {
        let started_usec = wall_usec();
        let choice = store_choice(plan, self.config);
        (self.progress)(Progress::new("store", "", 0, &choice.note));
        super::warm::wipe_other(&choice, self.config);
        memstore::open(self.commands, &choice)?;
        // A warm snapshot (`--prepare`) is topped up rather than redone.
        let (store, warm) = super::warm::open(&choice.dir, plan, false)?;
        if super::fault::injected("store-full", "any") {
            match super::fault::fill(&store.root) {
                Ok(bytes) => tracing::warn!("injected fault: store filled with {bytes} bytes"),
                Err(e) => tracing::warn!("injected fault store-full: {e}"),
            }
        }
        // Injected faults for the new kernel travel with the store.
        if Path::new(super::fault::FAULT_FILE).exists() {
            let _ = std::fs::copy(super::fault::FAULT_FILE, store.root.join("fault-inject"));
        }
        let phase1_started_usec = wall_usec();
        let mut lost = Vec::new();
        let two_phase = self.config.pre_dump && !request.single_phase;
        let chains = if two_phase {
            let count = plan.preserved.iter().filter(|u| u.pre_dump).count();
            (self.progress)(Progress::new(
                "phase1",
                "",
                0,
                &format!("pre-dumping {count} units in the background"),
            ));
            let chains = predump::phase1(&store, plan, self.config, self.progress, warm)?;
            lost = predump::start_lost(self.commands, &chains, self.progress)?;
            // Written out now, so the sync before the kexec flushes only
            // the final dumps.
            nix::unistd::sync();
            chains
        } else {
            // Single-phase: everything is dumped in the stoppage, so a warm
            // snapshot's images are of no use.
            for name in warm.keys() {
                store.forget_unit(name).map_err(|e| e.to_string())?;
            }
            BTreeMap::new()
        };
        let phase1_ended_usec = wall_usec();
        (self.progress)(Progress::new("phase2", "", 0, "stoppage begins"));
        for name in &plan.restarted {
            (self.progress)(Progress::new("stop", name, 0, "stopping (Mode=restart)"));
            run_job(self.commands, name, JobKind::Stop)?;
            self.stopped.push(name.clone());
        }
        for unit in &plan.preserved {
            let chain = chains.get(&unit.name).cloned().unwrap_or_else(|| Chain {
                convergence: no_pre_dump_reason(two_phase, self.config, unit),
                ..Chain::default()
            });
            self.checkpoint(&store, unit, chain)?;
        }
        for record in &self.records {
            if super::fault::injected("corrupt-image", &record.name) {
                // Both the final dump and (for a busy unit) its parents hold pages.
                let dir = store.root.join("images").join(&record.name);
                match super::fault::corrupt_images(&dir) {
                    Ok(path) => tracing::warn!("injected fault: corrupted {}", path.display()),
                    Err(e) => tracing::warn!("injected fault corrupt-image {}: {e}", record.name),
                }
            }
        }
        // The handover carries the configuration the services run with;
        // files edited meanwhile are applied by a daemon-reload, not now.
        let edited = super::plan::edited_unit_files(plan).into_iter().map(|path| {
            let note = format!(
                "{} was edited during the upgrade: the services keep the configuration they ran with; `relivectl daemon-reload` applies the new file",
                path.display()
            );
            tracing::warn!("{note}");
            note
        });
        let notes: Vec<String> = lost.into_iter().chain(edited).collect();
        (self.progress)(Progress::new("handover", "", 0, "saving relive's state"));
        let state = async_io::block_on(self.commands.call(|m| m.state.clone()))
            .map_err(|_| "relive's loop is gone".to_owned())?;
        let handover = KexecHandover {
            state,
            plan: plan.clone(),
            units: self.records.clone(),
            kernel_from: kernel_release(),
            kernel_to: request.kernel.display().to_string(),
            started_usec,
            kexec_usec: wall_usec(),
            mode: if two_phase {
                "two-phase"
            } else {
                "single-phase"
            }
            .into(),
            phase1_started_usec,
            phase1_ended_usec,
            store: choice.note.clone(),
            notes,
            previous: super::record::PreviousKernel::running(),
            rolled_back: None,
        };
        let payload = serde_json::to_vec(&handover).map_err(|e| e.to_string())?;
        store.write_state(&payload).map_err(|e| e.to_string())?;
        (self.progress)(Progress::new(
            "kexec",
            "",
            0,
            &format!("booting {}", request.kernel.display()),
        ));
        Err(boot_loaded_kernel(choice.device.as_deref()))
    }

    /// Freeze, dump (CRIU ends the processes), save the network lock.
    fn checkpoint(
        &mut self,
        store: &Store,
        planned: &PlannedUnit,
        chain: Chain,
    ) -> Result<(), String> {
        let name = planned.name.as_str();
        let unit = name.to_owned();
        let info = on_loop(self.commands, move |m| m.park(&unit))??;
        let cgroup_dir = Path::new(CGROUP_ROOT).join(info.cgroup.trim_start_matches('/'));
        // Sampled before freezing: entering the freezer costs every task a
        // little CPU time.
        let frozen_pids = predump::cgroup_pids(name);
        let now = ActivitySample::take(Path::new("/proc"), &frozen_pids).ok();
        let final_dump = match (&chain.parent, &chain.baseline, &now) {
            (None, _, _) => "full",
            (Some(_), Some(baseline), Some(now)) if now.ran_since(baseline).is_empty() => {
                "clean-skip"
            }
            (Some(_), _, _) => "incremental",
        };
        (self.progress)(Progress::new("freeze", name, 0, "freezing"));
        let frozen_usec = wall_usec();
        self.frozen_only = Some((name.to_owned(), info.main_pid, info.cgroup.clone()));
        freezer::freeze(&cgroup_dir, FREEZE_TIMEOUT).map_err(|e| format!("{name}: {e}"))?;
        if super::fault::injected("panic", name) {
            panic!("injected fault (panic {name})");
        }
        (self.progress)(Progress::new("dump", name, 0, "checkpointing"));
        let dir_path = store.unit_dir(name).map_err(|e| e.to_string())?;
        let dir =
            std::fs::File::open(&dir_path).map_err(|e| format!("{}: {e}", dir_path.display()))?;
        let mut options = DumpOptions::new(info.main_pid, dir.as_fd());
        options.leave_running = false;
        options.tcp_established = true;
        options.ext_unix_sk = true;
        options.file_locks = true;
        options.freeze_cgroup = Some(cgroup_dir.clone());
        options.manage_cgroups = Some(CgroupMode::Soft);
        options.network_lock = Some(NetworkLock::Nftables);
        options.log_file = Some("dump.log".into());
        options.log_level = LogLevel::Info;
        // Only the pages dirtied since the last pre-dump are written; the
        // rest are found in the parent images at restore.
        options.parent_img = chain.parent.as_ref().map(PathBuf::from);
        options.track_mem = chain.parent.is_some();
        if super::fault::injected("dump-fail", name) {
            return Err(format!(
                "{name}: CRIU dump failed: injected fault ({})",
                super::fault::FAULT_FILE
            ));
        }
        let started = Instant::now();
        let client = Criu {
            path: self.config.criu.clone(),
            reply_timeout: super::criu::timeout_for(planned.estimated_bytes),
        };
        let dump = |options: &DumpOptions| {
            if super::fault::injected("dump-kills", name) {
                let error = super::fault::kill_process("dump-kills", info.main_pid);
                return Err(format!("{name}: CRIU dump failed: {error}"));
            }
            client
                .start(&Pid1Spawner)
                .and_then(|session| {
                    if super::fault::injected("criu-kill-dump", name) {
                        super::fault::kill_with_parasite_in(session.pid(), info.main_pid);
                    }
                    session.dump(options, |_| {})
                })
                .map_err(|e| format!("{name}: CRIU dump failed: {e}"))
        };
        let mut final_dump = final_dump;
        if let Err(first) = dump(&options) {
            // A passing process CRIU cannot seize (ssh's pre-auth child
            // has no file descriptors to spare) fails a dump for a moment:
            // one more try, the tasks running in between. Full this time:
            // the failed dump may have reset the memory tracking.
            tracing::warn!("{first}; trying once more");
            (self.progress)(Progress::new(
                "dump",
                name,
                0,
                &format!("{first}; trying once more"),
            ));
            freezer::thaw(&cgroup_dir, FREEZE_TIMEOUT).map_err(|e| format!("{name}: {e}"))?;
            std::thread::sleep(Duration::from_secs(1));
            if !alive(info.main_pid) {
                // A CRIU killed with its parasite inside takes the process
                // with it: nothing left to dump; the undo starts it afresh.
                return Err(format!(
                    "{first}; its main process {} died with the failed dump",
                    info.main_pid
                ));
            }
            freezer::freeze(&cgroup_dir, FREEZE_TIMEOUT).map_err(|e| format!("{name}: {e}"))?;
            clear_top_level_images(&dir_path);
            options.parent_img = None;
            options.track_mem = false;
            final_dump = "full";
            dump(&options).map_err(|second| format!("{second} (and before: {first})"))?;
        }
        let dump_ms = started.elapsed().as_secs_f64() * 1000.0;
        // From here on the processes are gone: undoing means restoring.
        self.frozen_only = None;
        let mut record = UnitRecord {
            name: name.to_owned(),
            mode: "preserve".into(),
            priority: planned.priority,
            main_pid: info.main_pid,
            pids: frozen_pids,
            cgroup: info.cgroup,
            pipes: info.pipes,
            runtime_dirs: info.runtime_dirs.clone(),
            image_bytes: store.unit_bytes(name),
            frozen_usec,
            dump_ms,
            stoppage_bytes: relive_snapshot::criu::images_size(&dir_path).unwrap_or(0),
            final_dump: final_dump.into(),
            pre_dumps: chain.rounds,
            convergence: chain.convergence,
            rollback: planned.rollback,
            ..UnitRecord::default()
        };
        self.records.push(record.clone());
        store.seal_unit(name).map_err(|e| e.to_string())?;
        super::rundir::save(Path::new("/run"), &info.runtime_dirs, &store.run_dir(name))
            .map_err(|e| format!("{name}: saving its runtime directories: {e}"))?;
        record.lock_saved = save_lock(self.commands, store, name, info.main_pid)?;
        *self.records.last_mut().expect("just pushed") = record.clone();
        (self.progress)(Progress::new(
            "dumped",
            name,
            record.image_bytes,
            &format!(
                "{:.0} ms, {final_dump}, {} bytes written in the stoppage",
                dump_ms, record.stoppage_bytes
            ),
        ));
        Ok(())
    }

    /// Puts everything back as it was before the upgrade. Returns the
    /// units whose state was lost on the way (started afresh), with why.
    fn undo(&mut self) -> Vec<String> {
        let store = Store::at(&self.store_dir);
        let mut lost = Vec::new();
        if let Some((name, pid, cgroup)) = self.frozen_only.take() {
            let dir = Path::new(CGROUP_ROOT).join(cgroup.trim_start_matches('/'));
            if let Err(e) = freezer::thaw(&dir, FREEZE_TIMEOUT) {
                tracing::error!("{name}: cannot thaw: {e}");
            }
            // A process CRIU's parasite was in when CRIU died ends as soon
            // as it runs again.
            std::thread::sleep(Duration::from_millis(200));
            if alive(pid) {
                let _ = async_io::block_on(
                    self.commands
                        .call(move |m| m.unpark(&name, pid, Vec::new())),
                );
            } else {
                lost.push(self.start_afresh(
                    &name,
                    &format!("its main process {pid} died during the failed dump"),
                ));
            }
        }
        let records = std::mem::take(&mut self.records);
        for record in records.into_iter().rev() {
            match revive::restore(&store, &record, &self.config.criu, Path::new(CGROUP_ROOT)) {
                Ok(revived) => {
                    tracing::info!("{}: restored on the old kernel", record.name);
                    let name = record.name.clone();
                    let _ = async_io::block_on(
                        self.commands
                            .call(move |m| m.unpark(&name, revived.pid, revived.outputs)),
                    );
                }
                Err(e) => lost.push(self.start_afresh(
                    &record.name,
                    &format!("could not be restored after the aborted upgrade: {e}"),
                )),
            }
        }
        let stopped = std::mem::take(&mut self.stopped);
        for name in stopped.into_iter().rev() {
            if let Err(e) = run_job(self.commands, &name, JobKind::Start) {
                tracing::error!("{name}: cannot start again: {e}");
            }
        }
        lost
    }

    /// A parked unit whose processes are gone: back under supervision,
    /// started like any unit. Returns the loss, for the report.
    fn start_afresh(&self, name: &str, why: &str) -> String {
        let unit = name.to_owned();
        let reason = why.to_owned();
        let _ = on_loop(self.commands, move |m| {
            m.forget_parked(&unit, &reason);
            let _ = m.request(&unit, JobKind::Start);
        });
        format!("{name}: state lost: {why}; started afresh")
    }
}

fn alive(pid: i32) -> bool {
    relive_snapshot::activity::alive(Path::new("/proc"), pid as u32)
}

/// Saves the nftables table CRIU left to hold the unit's TCP connections
/// (`inet CRIU-<pid>`): the new kernel must have it before its network
/// comes up, or it answers the peers with RST. No table: no connections.
fn save_lock(
    commands: &CommandSender,
    store: &Store,
    name: &str,
    pid: i32,
) -> Result<bool, String> {
    let table = format!("CRIU-{pid}");
    let out = helper::run(
        commands,
        &["/usr/sbin/nft", "list", "table", "inet", &table],
    )?;
    if out.status != crate::manager::ExitStatus::Exited(0) || !out.stdout.contains("table inet") {
        tracing::debug!(
            "{name}: no network lock table {table}: {}",
            out.stderr.trim()
        );
        return Ok(false);
    }
    let path = store.lock_file(name);
    std::fs::write(&path, out.stdout).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(true)
}

/// Why a preserved unit had no pre-dumps, for the report.
fn no_pre_dump_reason(two_phase: bool, config: &UpgradeConfig, unit: &PlannedUnit) -> String {
    if !config.pre_dump {
        "no pre-dumps: pre_dump = false in relive.toml".into()
    } else if !two_phase {
        "no pre-dumps: single-phase upgrade requested".into()
    } else if !unit.pre_dump {
        "no pre-dumps: PreDump=no".into()
    } else {
        "no pre-dumps".into()
    }
}

/// The store the preflight chose (the disk store for a plan without one).
fn store_choice(plan: &Plan, config: &UpgradeConfig) -> StoreChoice {
    plan.store
        .clone()
        .unwrap_or_else(|| StoreChoice::disk(&config.store_dir, "disk store".into()))
}

/// The text of a caught panic.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Removes the files of a failed dump (its pre-dumps stay).
fn clear_top_level_images(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| !t.is_dir()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether the store's file system is (all but) full: the likely cause of
/// a failed dump, said with the error.
fn store_full(dir: &Path) -> Option<String> {
    let existing = dir.ancestors().find(|p| p.exists())?;
    let stat = nix::sys::statvfs::statvfs(existing).ok()?;
    let free = stat.blocks_free() as u64 * stat.fragment_size() as u64;
    let size = stat.blocks() as u64 * stat.fragment_size() as u64;
    (free < (size / 100).max(16 << 20)).then(|| {
        format!(
            "the store's file system at {} is full: {} free",
            existing.display(),
            super::preflight::human(free)
        )
    })
}

/// Boots the loaded kernel with the store written: syncs, unmounts the
/// memory store on `memory_device` (the next kernel mounts it again: it
/// must be clean), remounts / read-only (kexec unmounts nothing). Returns
/// only on failure, with everything mounted as before, and why.
pub fn boot_loaded_kernel(memory_device: Option<&Path>) -> String {
    nix::unistd::sync();
    if memory_device.is_some() {
        if let Err(e) = memstore::unmount_checked() {
            return e;
        }
    }
    let _ = crate::sys::machine::remount_root(true);
    nix::unistd::sync();
    let e = kexec::boot_loaded();
    let _ = crate::sys::machine::remount_root(false);
    if let Some(device) = memory_device {
        let _ = memstore::mount(device);
    }
    format!("kexec failed: {e}")
}
