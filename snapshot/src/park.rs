//! Before the kexec: stop the restart units, freeze and checkpoint the
//! preserved ones in ascending priority, save relive's state, kexec.
//!
//! Any failure before the kexec undoes everything: checkpointed units are
//! restored from their images on this same kernel, frozen ones are thawed,
//! stopped ones started again, the kernel unloaded, the store wiped.

use crate::dump::{DumpError, DumpJob};
use crate::predump::{self, Chain};
use crate::{preflight, warm, Seams, UpgradeError, UpgradeRequest};
use relive_api::plan::{Plan, PlannedUnit, StoreChoice};
use relive_api::progress::{Phase, Progress};
use relive_api::report::{FinalDump, Loss, MountFlag, UnitMode, UnitRecord, UpgradeMode};
use relive_config::{DeadlineAction, UpgradeConfig};
use relive_criu::activity::ActivitySample;
use relive_host::{panic_message, Job};
use relive_restore::{cgroup_dir, revive, syn_hold};
use relive_store::handover::{kernel_release, PreviousKernel};
use relive_store::{KexecHandover, Store};
use relive_sys::machine::Scope;
use relive_sys::wall_usec;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod groups;
mod holds;
mod locks;

/// An upgrade that did not start: the plan (with its failed checks) and why.
#[derive(Debug)]
pub struct NotStarted {
    pub plan: Plan,
    pub error: UpgradeError,
}

/// An upgrade that failed and was undone.
#[derive(Debug)]
pub struct Aborted {
    pub error: UpgradeError,
    /// The store's file system was full: the likely cause.
    pub store_full: Option<String>,
    /// The units whose state was lost on the way, each with why.
    pub lost: Vec<Loss>,
}

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        if let Some(full) = &self.store_full {
            write!(f, " ({full})")?;
        }
        for lost in &self.lost {
            write!(f, "; {lost}")?;
        }
        Ok(())
    }
}

/// Marks the upgrade as running, plans it and runs the preflight (the
/// kernel stays loaded). On failure nothing has changed.
pub fn prepare(
    seams: &Seams,
    request: &UpgradeRequest,
    config: &UpgradeConfig,
    scope: Scope,
    progress: &dyn Fn(Progress),
) -> Result<Plan, Box<NotStarted>> {
    if let Err(e) = seams.host.begin_upgrade() {
        return Err(Box::new(NotStarted {
            plan: Plan::default(),
            error: UpgradeError::Refused(e),
        }));
    }
    let mut plan = seams.host.plan().unwrap_or_default();
    progress(Progress::new(Phase::Preflight, "", 0, "checking"));
    preflight::run(
        &mut plan,
        request,
        scope,
        config,
        (seams.kexec, seams.dumper),
        true,
    );
    if !plan.passed() {
        seams.host.end_upgrade();
        let error = UpgradeError::Preflight(plan.failures());
        return Err(Box::new(NotStarted { plan, error }));
    }
    Ok(plan)
}

/// After a passed preflight: park every unit and kexec. Returns only on
/// failure, once everything is undone.
pub fn execute(
    seams: &Seams,
    plan: &Plan,
    request: &UpgradeRequest,
    config: &UpgradeConfig,
    progress: &dyn Fn(Progress),
) -> Aborted {
    seams.control.begin();
    let choice = store_choice(plan, config);
    let mut parking = Parking {
        seams,
        config,
        store_dir: choice.dir.clone(),
        progress,
        records: Vec::new(),
        frozen_only: None,
        frozen_ahead: Vec::new(),
        ties: std::collections::HashMap::new(),
        pipe_ties: std::collections::HashMap::new(),
        held_sockets: std::collections::HashMap::new(),
        preserved: plan.preserved.iter().map(|u| u.name.clone()).collect(),
        stopped: Vec::new(),
        full_at_failure: None,
        locks: locks::LockBook::default(),
        holds: BTreeMap::new(),
        lazy_restore: request.lazy_restore || config.lazy_restore,
    };
    // A bug in this code must not leave services frozen or as images:
    // a panic is undone like any failure.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parking.run(plan, request)));
    let error = match run {
        Ok(Ok(never)) => match never {},
        Ok(Err(e)) => e,
        Err(panic) => UpgradeError::Panic(panic_message(&panic)),
    };
    let store_full = parking
        .full_at_failure
        .take()
        .or_else(|| store_full(&choice.dir))
        .or_else(|| out_of_space(&error, &choice.dir));
    let mut aborted = Aborted {
        error,
        store_full,
        lost: Vec::new(),
    };
    progress(Progress::new(Phase::Abort, "", 0, &aborted.to_string()));
    aborted.lost = parking.undo();
    tracing::error!("live upgrade aborted: {aborted}");
    let _ = seams.kexec.unload();
    let store = Store::at(&choice.dir);
    if let Err(e) = store.keep_logs(Path::new(relive_restore::resume::CRIU_LOGS)) {
        tracing::warn!("cannot keep CRIU's logs: {e}");
    }
    let _ = store.wipe();
    relive_store::carrier::for_choice(&choice).close();
    seams.host.end_upgrade();
    let undone = match aborted.lost.len() {
        0 => "every service runs on the old kernel again".to_owned(),
        n => format!("every service runs on the old kernel again ({n} started afresh)"),
    };
    progress(Progress::new(Phase::Aborted, "", 0, &undone));
    seams.control.end();
    aborted
}

/// A relivectl that asked for a detached upgrade may live in a unit about
/// to be checkpointed (an ssh session): CRIU cannot dump its connection to
/// relive. Wait (a little) until every control client has gone.
pub fn wait_for_clients_to_leave(seams: &Seams, progress: &dyn Fn(Progress)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    if seams.host.control_clients() > 0 {
        progress(Progress::new(
            Phase::Wait,
            "",
            0,
            "waiting for control clients to disconnect",
        ));
    }
    while seams.host.control_clients() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long a unit's control clients get to let go of relive.
const LET_GO: Duration = Duration::from_secs(5);

/// A unit frozen but not checkpointed (its dump failed).
#[derive(Debug)]
struct FrozenOnly {
    name: String,
    main_pid: i32,
    cgroup: String,
}

struct Parking<'a> {
    seams: &'a Seams<'a>,
    config: &'a UpgradeConfig,
    /// The chosen store's directory.
    store_dir: PathBuf,
    progress: &'a dyn Fn(Progress),
    /// Units checkpointed so far (their processes are gone).
    records: Vec<UnitRecord>,
    frozen_only: Option<FrozenOnly>,
    /// Members of a group frozen with the one being parked, not yet
    /// parked themselves.
    frozen_ahead: Vec<FrozenOnly>,
    /// Unix ties of the group being parked, by unit, found once all of
    /// it was frozen.
    ties: std::collections::HashMap<String, Vec<crate::unix_ties::HeldTie>>,
    /// Pipes and FIFOs the group's members share, by unit, found with the
    /// unix ties (their bytes are in the store, the pipes held by
    /// relive_restore::pipe_switch).
    pipe_ties: std::collections::HashMap<String, Vec<relive_api::report::PipeTie>>,
    /// Copies of the tied sockets, holding the connections up while the
    /// members of a group are dumped one after another.
    held_sockets: std::collections::HashMap<u64, std::os::fd::OwnedFd>,
    /// The preserved units' names.
    preserved: Vec<String>,
    /// Restart units stopped so far.
    stopped: Vec<String>,
    /// The store's file system was full when a dump failed (said before
    /// the failed dump's files are removed, which frees space again).
    full_at_failure: Option<String>,
    /// CRIU's network lock tables (`park/locks.rs`).
    locks: locks::LockBook,
    /// The ports whose new connections are held while their units are
    /// parked (`holds`, one table for all), by unit.
    holds: BTreeMap<String, Vec<u16>>,
    /// The units are to be restored lazily (the request or the
    /// configuration), but for the rollback units.
    lazy_restore: bool,
}

impl Parking<'_> {
    fn run(
        &mut self,
        plan: &Plan,
        request: &UpgradeRequest,
    ) -> Result<std::convert::Infallible, UpgradeError> {
        let started_usec = wall_usec();
        let choice = store_choice(plan, self.config);
        (self.progress)(Progress::new(Phase::Store, "", 0, &choice.note));
        warm::wipe_other(&choice, self.config);
        warm::open_store(self.seams.host, &choice)?;
        // A warm snapshot (`--prepare`) is topped up rather than redone.
        let (store, warm) = warm::open(&choice.dir, plan, false)?;
        #[cfg(feature = "fault-injection")]
        {
            use relive_host::fault::{self, Fault};
            if fault::injected(Fault::StoreFull, "any") {
                match fault::fill(&store.root) {
                    Ok(bytes) => tracing::warn!("injected fault: store filled with {bytes} bytes"),
                    Err(e) => tracing::warn!("injected fault store-full: {e}"),
                }
            }
            // Injected faults for the new kernel travel with the store.
            fault::carry_into(&store.root);
        }
        let phase1_started_usec = wall_usec();
        let phase1_sample = crate::budget::Phase1Sample::take();
        let mut losses = Vec::new();
        let two_phase = self.config.pre_dump && !request.single_phase;
        let chains = if two_phase {
            let count = plan.preserved.iter().filter(|u| u.pre_dump).count();
            (self.progress)(Progress::new(
                Phase::Phase1,
                "",
                0,
                &format!("pre-dumping {count} units in the background"),
            ));
            let control = self.seams.control;
            let (chains, cut) = predump::phase1(
                self.seams.dumper,
                &store,
                plan,
                self.config,
                self.progress,
                warm,
                &|| control.cancelled(),
            )?;
            losses = predump::start_lost(self.seams, &chains, self.progress)?;
            if let Some(predump::Cut::Deadline(after)) = cut {
                if self.config.pre_dump_deadline_action == DeadlineAction::Abort {
                    return Err(UpgradeError::Phase1Deadline {
                        secs: after.as_secs(),
                    });
                }
            }
            // Written out now, so the sync before the kexec flushes only
            // the final dumps.
            nix::unistd::sync();
            chains
        } else {
            // Single-phase: everything is dumped in the stoppage, so a warm
            // snapshot's images are of no use.
            for name in warm.keys() {
                store.forget_unit(name)?;
            }
            BTreeMap::new()
        };
        let phase1_ended_usec = wall_usec();
        let phase1_cpu = two_phase.then(|| phase1_sample.cost());
        if let Some(cost) = &phase1_cpu {
            tracing::info!("live upgrade: {}", cost.summary());
        }
        if !self.seams.control.stoppage_begins() {
            return Err(UpgradeError::Cancelled);
        }
        // Read now rather than in the stoppage: it costs three `ip` runs.
        let network = relive_restore::netstate::record(
            self.seams.host,
            Path::new("/sys/class/net"),
            Path::new("/run/network"),
        )
        .inspect_err(|e| {
            tracing::warn!(
                "the network is not recorded ({e}): the restores will wait for its units"
            )
        })
        .ok();
        (self.progress)(Progress::new(Phase::Phase2, "", 0, "stoppage begins"));
        for name in &plan.restarted {
            (self.progress)(Progress::new(
                Phase::Stop,
                name,
                0,
                "stopping (Mode=restart)",
            ));
            self.seams
                .host
                .run_job(name, Job::Stop)
                .map_err(|source| UpgradeError::Stop {
                    unit: name.clone(),
                    source,
                })?;
            self.stopped.push(name.clone());
            // What it reads back when it starts, as it left it.
            let paths = plan.carried_on_restart_of(name);
            if !paths.is_empty() {
                relive_store::rundir::save(Path::new("/run"), paths, &store.run_dir(name))
                    .map_err(|source| UpgradeError::RuntimeDirs {
                        unit: name.clone(),
                        source,
                    })?;
            }
        }
        let mut ended = Vec::new();
        for unit in &plan.preserved {
            let chain = chains.get(&unit.name).cloned().unwrap_or_else(|| Chain {
                convergence: no_pre_dump_reason(two_phase, self.config, unit),
                ..Chain::default()
            });
            let group = plan.group_of(&unit.name).unwrap_or_default();
            let parked = self
                .freeze_group_ahead(&group, &unit.name)
                .and_then(|()| self.checkpoint(&store, unit, chain, &group));
            match parked {
                // Parking is the first step: nothing was done to it.
                Err(UpgradeError::Park { .. }) if self.seams.host.ended_on_its_own(&unit.name) => {
                    let note = format!(
                        "{} ended on its own before its checkpoint (its last run a success): nothing to carry; it starts again as its unit says",
                        unit.name
                    );
                    tracing::info!("{note}");
                    (self.progress)(Progress::new(Phase::Dump, &unit.name, 0, &note));
                    ended.push(note);
                }
                result => result?,
            }
        }
        #[cfg(feature = "fault-injection")]
        for record in &self.records {
            use relive_host::fault::{self, Fault};
            if fault::injected(Fault::CorruptImage, &record.name) {
                // Both the final dump and (for a busy unit) its parents hold pages.
                let dir = store.root.join("images").join(&record.name);
                match fault::corrupt_images(&dir) {
                    Ok(path) => tracing::warn!("injected fault: corrupted {}", path.display()),
                    Err(e) => tracing::warn!("injected fault corrupt-image {}: {e}", record.name),
                }
            }
        }
        // The handover carries the configuration the services run with;
        // files edited meanwhile are applied by a daemon-reload, not now.
        let edited = crate::plan::edited_unit_files(plan).into_iter().map(|path| {
            let note = format!(
                "{} was edited during the upgrade: the services keep the configuration they ran with; `relivectl daemon-reload` applies the new file",
                path.display()
            );
            tracing::warn!("{note}");
            note
        });
        let notes: Vec<String> = losses
            .iter()
            .map(Loss::to_string)
            .chain(ended)
            .chain(edited)
            .collect();
        (self.progress)(Progress::new(
            Phase::Handover,
            "",
            0,
            "saving relive's state",
        ));
        let state = self
            .seams
            .host
            .manager_state()
            .map_err(UpgradeError::State)?;
        let kexec_usec = wall_usec();
        let handover = KexecHandover {
            state,
            plan: plan.clone(),
            units: self.records.clone(),
            kernel_from: kernel_release(),
            kernel_to: request.kernel.display().to_string(),
            started_usec,
            kexec_usec,
            mode: if two_phase {
                UpgradeMode::TwoPhase
            } else {
                UpgradeMode::SinglePhase
            },
            phase1_started_usec,
            phase1_ended_usec,
            phase1_cpu,
            store: choice.note.clone(),
            notes,
            losses,
            previous: PreviousKernel::running(),
            rolled_back: None,
            clock: relive_sys::timens::ClockAtKexec::now(kexec_usec),
            network,
        };
        let writing = std::time::Instant::now();
        store.write_handover(&handover)?;
        tracing::info!(
            "live upgrade: handover written in {:.0} ms",
            writing.elapsed().as_secs_f64() * 1000.0
        );
        (self.progress)(Progress::new(
            Phase::Kexec,
            "",
            0,
            &format!("booting {}", request.kernel.display()),
        ));
        let carrier = relive_store::carrier::for_choice(&choice);
        Err(self.seams.kexec.boot(&*carrier).into())
    }

    /// A control client running inside the unit (relivectl from an ssh
    /// session) is told, by a Wait step naming the unit, to let go of its
    /// connection, and waited for a moment: CRIU cannot checkpoint a
    /// connection to relive itself. relivectl follows the upgrade again
    /// once its unit is restored.
    fn let_go(&self, name: &str, cgroup: &str) {
        if self.seams.host.control_clients_in(cgroup) == 0 {
            return;
        }
        (self.progress)(Progress::new(
            Phase::Wait,
            name,
            0,
            "waiting for the control clients in this unit to let go",
        ));
        let deadline = Instant::now() + LET_GO;
        while self.seams.host.control_clients_in(cgroup) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freeze, dump (CRIU ends the processes), save the network lock.
    fn checkpoint(
        &mut self,
        store: &Store,
        planned: &PlannedUnit,
        chain: Chain,
        group: &[String],
    ) -> Result<(), UpgradeError> {
        let name = planned.name.as_str();
        let unit = || name.to_owned();
        let mut laps = relive_sys::laps::Laps::start();
        let info = self
            .seams
            .host
            .park(name)
            .map_err(|source| UpgradeError::Park {
                unit: unit(),
                source,
            })?;
        self.let_go(name, &info.cgroup);
        laps.lap("park");
        let cgroup = cgroup_dir(&info.cgroup);
        // Sampled before freezing: entering the freezer costs every task a
        // little CPU time.
        let frozen_pids = predump::cgroup_pids(name);
        let now = ActivitySample::take(Path::new("/proc"), &frozen_pids).ok();
        let mut final_dump = match (&chain.parent, &chain.baseline, &now) {
            (None, _, _) => FinalDump::Full,
            (Some(_), Some(baseline), Some(now)) if now.ran_since(baseline).is_empty() => {
                FinalDump::CleanSkip
            }
            (Some(_), _, _) => FinalDump::Incremental,
        };
        let unaccepted_reset = self.hold_new_connections(name);
        laps.lap("hold");
        (self.progress)(Progress::new(Phase::Freeze, name, 0, "freezing"));
        let frozen_usec = wall_usec();
        // Tracked as this unit's freeze from now on.
        self.frozen_ahead.retain(|f| f.name != name);
        self.frozen_only = Some(FrozenOnly {
            name: unit(),
            main_pid: info.main_pid,
            cgroup: info.cgroup.clone(),
        });
        let freeze = |e| UpgradeError::Freeze {
            unit: unit(),
            source: e,
        };
        self.seams.freezer.freeze(&cgroup).map_err(freeze)?;
        laps.lap("freeze");
        let (mut ties, mut pipe_ties) = self.take_ties(store, group, name)?;
        laps.lap("ties");
        // Read now, frozen: the dump ends the processes. CRIU 3.17 carries
        // neither; the restore sets them again.
        let no_new_privs = relive_sys::sched::no_new_privs_of(info.main_pid);
        let mount_ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
        let own_mount_namespace = mount_ns(&info.main_pid.to_string()) != mount_ns("self");
        let mount_flags = if own_mount_namespace {
            relive_sys::mount_flags::of_process(info.main_pid)
                .map(|mounts| {
                    mounts
                        .into_iter()
                        .map(|(path, flags)| {
                            (
                                path,
                                flags.into_iter().filter_map(MountFlag::from_name).collect(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let ioprios = frozen_pids
            .iter()
            .filter_map(|&pid| {
                let prio = relive_sys::sched::ioprio_of(pid as i32).ok()?;
                (prio != 0).then_some((pid, prio))
            })
            .collect();
        #[cfg(feature = "fault-injection")]
        if relive_host::fault::injected(relive_host::fault::Fault::Panic, name) {
            panic!("injected fault (panic {name})");
        }
        (self.progress)(Progress::new(Phase::Dump, name, 0, "checkpointing"));
        let images = |source| UpgradeError::Images {
            unit: unit(),
            source,
        };
        let dir = store.unit_dir(name).map_err(images)?;
        // CRIU dumps from the unit's topmost process, the main one as a
        // rule (the preflight found every process below it).
        let (root, shell_job) = crate::tree::dump_root(info.main_pid as u32, &frozen_pids);
        let root = root as i32;
        // CRIU 4 names its lock table by a run id: the new one is the unit's.
        self.list_locks_before_dump();
        // Without one, its lock table holds nothing (park/locks.rs).
        let tcp_connections = crate::connections::holds_tcp_connections(&frozen_pids);
        // Only the pages dirtied since the last pre-dump are written; the
        // rest are found in the parent images at restore.
        let mut job = DumpJob {
            unit: name,
            root_pid: root,
            shell_job,
            dir: &dir,
            cgroup_dir: &cgroup,
            parent: chain.parent.as_ref().map(PathBuf::from),
            estimated_bytes: planned.estimated_bytes,
            external: info
                .foreign_fifos
                .iter()
                .map(|f| f.key.clone())
                .chain(ties.iter().map(|t| format!("unix[{}]", t.tie.inode)))
                .collect(),
        };
        laps.lap("prepare");
        let started = Instant::now();
        if let Err(first) = self.seams.dumper.dump(&job) {
            self.full_at_failure = self.full_at_failure.take().or_else(|| store_full(&dir));
            // A passing process CRIU cannot seize (ssh's pre-auth child
            // has no file descriptors to spare) fails a dump for a moment:
            // one more try, the tasks running in between. Full this time:
            // the failed dump may have reset the memory tracking.
            let text = format!("{name}: CRIU dump failed: {first}; trying once more");
            tracing::warn!("{text}");
            (self.progress)(Progress::new(Phase::Dump, name, 0, &text));
            // What relive took out of its group's pipes goes back while
            // it runs, and is taken out again, with what it wrote, once
            // it is frozen again; its unix sockets' queues are read again.
            for (pipe, e) in relive_restore::pipe_switch::put_back() {
                tracing::error!("{pipe}: what waited in it cannot be put back: {e}");
            }
            self.seams.freezer.thaw(&cgroup).map_err(freeze)?;
            std::thread::sleep(Duration::from_secs(1));
            if !alive(info.main_pid) {
                // A CRIU killed with its parasite inside takes the process
                // with it: nothing left to dump; the undo starts it afresh.
                return Err(UpgradeError::DiedInDump {
                    unit: unit(),
                    first: Box::new(first),
                    pid: info.main_pid,
                });
            }
            self.seams.freezer.freeze(&cgroup).map_err(freeze)?;
            let again = relive_restore::pipe_switch::take_out_again(store).map_err(|source| {
                UpgradeError::Pipes {
                    unit: unit(),
                    source,
                }
            })?;
            for tie in &mut pipe_ties {
                if let Some((_, bytes)) = again.iter().find(|(key, _)| *key == tie.key()) {
                    tie.queued = *bytes;
                }
            }
            self.peek_queues_again(store, &mut ties);
            clear_top_level_images(&dir);
            job.parent = None;
            final_dump = FinalDump::Full;
            self.seams.dumper.dump(&job).map_err(|second: DumpError| {
                // The undo thaws this unit: its images are of no use,
                // and a store the dump filled would fail the restores
                // of the units dumped before it (CRIU makes its work
                // directories there).
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!("{}: {e}", dir.display());
                }
                UpgradeError::DumpRetry {
                    unit: unit(),
                    first: Box::new(first),
                    second: Box::new(second),
                }
            })?;
        }
        let dump_ms = started.elapsed().as_secs_f64() * 1000.0;
        laps.lap("dump");
        // From here on the processes are gone: undoing means restoring.
        self.frozen_only = None;
        let mut record = UnitRecord {
            name: unit(),
            mode: UnitMode::Preserve,
            priority: planned.priority,
            main_pid: info.main_pid,
            tree_root: if root == info.main_pid { 0 } else { root },
            shell_job,
            pids: frozen_pids,
            cgroup: info.cgroup,
            pipes: info.pipes,
            runtime_dirs: info.runtime_dirs.clone(),
            shm_files: info.shm_files.clone(),
            foreign_fifos: info.foreign_fifos.clone(),
            unix_ties: ties.into_iter().map(|t| t.tie).collect(),
            pipe_ties,
            listeners: info.listeners.clone(),
            hold_table: if self.holds.contains_key(name) {
                syn_hold::TABLE.to_owned()
            } else {
                String::new()
            },
            hold_ports: self.holds.get(name).cloned().unwrap_or_default(),
            unaccepted_reset,
            image_bytes: store.unit_bytes(name),
            frozen_usec,
            dump_ms,
            stoppage_bytes: relive_criu::images_size(&dir).unwrap_or(0),
            final_dump: Some(final_dump),
            pre_dumps: chain.rounds,
            convergence: chain.convergence,
            rollback: planned.rollback,
            lazy_restore: self.lazy_restore && !planned.rollback,
            no_new_privs,
            ioprios,
            own_mount_namespace,
            mount_flags,
            ..UnitRecord::default()
        };
        self.records.push(record.clone());
        laps.lap("record");
        store.seal_unit(name).map_err(images)?;
        laps.lap("seal");
        relive_store::rundir::save(Path::new("/run"), &info.runtime_dirs, &store.run_dir(name))
            .and_then(|()| {
                let shm = Path::new(relive_store::rundir::SHM);
                relive_store::rundir::save(shm, &info.shm_files, &store.shm_dir(name))
            })
            .map_err(|source| UpgradeError::RuntimeDirs {
                unit: unit(),
                source,
            })?;
        laps.lap("runtime files");
        let lock = self.lock_after_dump(store, name, root, tcp_connections)?;
        laps.lap("locks");
        record.lock_saved = lock.is_some();
        record.lock_table = lock.unwrap_or_default();
        if let Some(last) = self.records.last_mut() {
            *last = record.clone();
        }
        tracing::info!("{name}: parked in {laps}");
        (self.progress)(Progress::new(
            Phase::Dumped,
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
    fn undo(&mut self) -> Vec<Loss> {
        let store = Store::at(&self.store_dir);
        let host = self.seams.host;
        let mut lost = Vec::new();
        let ahead = std::mem::take(&mut self.frozen_ahead);
        // What relive took out of the group's shared pipes goes back
        // before any of them runs.
        for (pipe, e) in relive_restore::pipe_switch::put_back() {
            tracing::error!("{pipe}: what waited in it cannot be put back: {e}");
        }
        for frozen in self.frozen_only.take().into_iter().chain(ahead) {
            if let Err(e) = self.seams.freezer.thaw(&cgroup_dir(&frozen.cgroup)) {
                tracing::error!("{}: cannot thaw: {e}", frozen.name);
            }
            // A process CRIU's parasite was in when CRIU died ends as soon
            // as it runs again.
            std::thread::sleep(Duration::from_millis(200));
            if alive(frozen.main_pid) {
                host.unpark(&frozen.name, frozen.main_pid, Vec::new());
            } else {
                lost.push(self.start_afresh(
                    &frozen.name,
                    &format!(
                        "its main process {} died during the failed dump",
                        frozen.main_pid
                    ),
                ));
            }
        }
        let records = std::mem::take(&mut self.records);
        if !records.is_empty() {
            // The units undone read one clock again, as before.
            self.seams.restorer.one_clock(None);
        }
        let _hang_up = relive_restore::switchboard::HangUpAfter;
        let mut restored = Vec::new();
        for record in records.into_iter().rev() {
            if !record.listeners.is_empty() {
                // PID 1's copies keep the sockets bound: the restore
                // binds them again.
                host.release_listeners(&record.name);
            }
            self.unmerge_lock(&store, &record.name);
            match revive::restore(self.seams.restorer, &store, &record) {
                Ok(revived) => {
                    tracing::info!("{}: restored on the old kernel", record.name);
                    host.unpark(&record.name, revived.pid, revived.outputs);
                    if !record.listeners.is_empty() {
                        host.adopt_listeners(&record.name, revived.pid, &record.listeners);
                    }
                    restored.push(record);
                }
                Err(e) => lost.push(self.start_afresh(
                    &record.name,
                    &format!("could not be restored after the aborted upgrade: {e}"),
                )),
            }
        }
        self.bridge_half_undone(&store, &restored);
        self.drop_merged_locks();
        self.release_holds();
        let stopped = std::mem::take(&mut self.stopped);
        for name in stopped.into_iter().rev() {
            if let Err(e) = host.run_job(&name, Job::Start) {
                tracing::error!("{name}: cannot start again: {e}");
            }
        }
        lost
    }

    /// A parked unit whose processes are gone: back under supervision,
    /// started like any unit. Returns the loss, for the report.
    fn start_afresh(&self, name: &str, why: &str) -> Loss {
        self.seams.host.forget_parked(name, why);
        self.seams.host.queue_start(name);
        Loss {
            unit: name.to_owned(),
            reason: why.to_owned(),
        }
    }
}

fn alive(pid: i32) -> bool {
    relive_criu::activity::alive(Path::new("/proc"), pid as u32)
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

/// Removes the files of a failed dump (its pre-dumps stay).
fn clear_top_level_images(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| !t.is_dir()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A write into the store that failed with ENOSPC, by the error's text
/// (CRIU's own): the store was full then, even if space has been freed
/// since (the failed dump's files, or a daemon's own cleanup).
fn out_of_space(error: &UpgradeError, dir: &Path) -> Option<String> {
    let enospc = std::io::Error::from_raw_os_error(nix::libc::ENOSPC).to_string();
    let text = error.to_string();
    let message = enospc.split(" (os error").next().unwrap_or(&enospc);
    text.contains(message).then(|| {
        format!(
            "the store's file system at {} is full (a write failed: {message})",
            dir.display()
        )
    })
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
            relive_api::human(free)
        )
    })
}

#[cfg(test)]
mod out_of_space_tests {
    use super::*;

    #[test]
    fn an_enospc_in_the_error_says_the_store_was_full() {
        let dir = Path::new("/var/lib/relive/upgrade");
        let full = UpgradeError::Panic(
            "DUMP failed in CRIU: bfd: Error flushing image: No space left on device".into(),
        );
        let said = out_of_space(&full, dir).expect("full");
        assert!(
            said.contains("is full") && said.contains("/var/lib/relive/upgrade"),
            "{said}"
        );
        let other = UpgradeError::Panic("DUMP failed in CRIU: Permission denied".into());
        assert_eq!(out_of_space(&other, dir), None);
    }
}
