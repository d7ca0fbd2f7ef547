//! PID 1's side of a live upgrade. The upgrade itself lives in the
//! `relive-snapshot` (before the kexec) and `relive-restore` (after it)
//! crates; here PID 1 lends them its loop ([`host::LoopHost`]), chooses
//! the real seams (CRIU, the cgroup freezer, kexec) and runs each
//! operation on a worker thread of its own ([`Upgrades`]), so that the
//! D-Bus adapters only translate requests.

mod helper;
pub mod host;

use crate::event_loop::CommandSender;
use crate::manager::state::{ActiveState, ManagerState, SubState};
use host::LoopHost;
use relive_api::plan::Plan;
use relive_api::progress::Progress;
use relive_config::UpgradeConfig;
use relive_restore::revive::CriuRestorer;
use relive_snapshot::control::{CancelAnswer, UpgradeControl};
use relive_snapshot::dump::CriuDumper;
use relive_snapshot::warm::Warm;
use relive_snapshot::{park, preflight, warm, Seams, UpgradeError, UpgradeRequest};
use relive_store::kexec::{Kexec, LiveKexec};
use relive_store::{KexecHandover, Store};
use relive_sys::freezer::CgroupFreezer;
use relive_sys::machine::Scope;

pub use relive_restore::resume::REPORT_PATH;

/// The running kernel's kexec, with relive's queued log records written
/// out before the machine leaves this kernel.
#[derive(Debug, Default)]
struct FlushingKexec(LiveKexec);

impl Kexec for FlushingKexec {
    fn load(
        &self,
        kernel: &std::path::Path,
        initrd: Option<&std::path::Path>,
        cmdline: &str,
    ) -> Result<(), relive_sys::kexec::KexecError> {
        self.0.load(kernel, initrd, cmdline)
    }

    fn unload(&self) -> Result<(), relive_sys::kexec::KexecError> {
        self.0.unload()
    }

    fn boot(&self, carrier: &dyn relive_store::carrier::Carrier) -> relive_store::kexec::BootError {
        crate::logging::flush();
        self.0.boot(carrier)
    }
}

/// The live system's seams: PID 1's loop, CRIU, the cgroup freezer, kexec.
#[derive(Debug)]
struct Live {
    host: LoopHost,
    dumper: CriuDumper,
    restorer: CriuRestorer,
    freezer: CgroupFreezer,
    kexec: FlushingKexec,
}

impl Live {
    fn new(commands: &CommandSender, config: &UpgradeConfig) -> Live {
        Live {
            host: LoopHost {
                commands: commands.clone(),
            },
            dumper: CriuDumper::new(&config.criu),
            restorer: CriuRestorer::new(&config.criu),
            freezer: CgroupFreezer::default(),
            kexec: FlushingKexec::default(),
        }
    }

    fn seams(&self) -> Seams<'_> {
        Seams {
            host: &self.host,
            dumper: &self.dumper,
            restorer: &self.restorer,
            freezer: &self.freezer,
            kexec: &self.kexec,
            control: &CONTROL,
        }
    }
}

/// Where this PID 1's upgrade stands, for `relivectl live-upgrade
/// --cancel`: one upgrade at a time runs in the process.
static CONTROL: UpgradeControl = UpgradeControl::new();

/// Cancels the upgrade under way, if its stoppage has not begun.
pub fn cancel() -> CancelAnswer {
    CONTROL.cancel()
}

/// The upgrade operations the control API offers. Each blocks its caller
/// (run them off the D-Bus executor) or starts a thread of its own.
#[derive(Debug, Clone)]
pub struct Upgrades {
    pub commands: CommandSender,
    pub config: UpgradeConfig,
    pub scope: Scope,
}

impl Upgrades {
    /// `--dry-run`: the plan and the preflight; nothing stays loaded.
    pub fn dry_run(&self, request: &UpgradeRequest) -> Result<Plan, UpgradeError> {
        let live = Live::new(&self.commands, &self.config);
        let mut plan = relive_host::UnitHost::plan(&live.host).map_err(UpgradeError::Refused)?;
        preflight::run(
            &mut plan,
            request,
            self.scope,
            &self.config,
            (&live.kexec, &live.dumper),
            false,
        );
        Ok(plan)
    }

    /// The whole upgrade. Returns only if it did not happen, with why
    /// (on success the machine kexecs).
    pub fn perform(&self, request: &UpgradeRequest, progress: &dyn Fn(Progress)) -> String {
        let started_usec = relive_sys::wall_usec();
        let live = Live::new(&self.commands, &self.config);
        let seams = live.seams();
        // A refused preflight changed nothing: it is no upgrade to report.
        let plan = match park::prepare(&seams, request, &self.config, self.scope, progress) {
            Ok(plan) => plan,
            Err(failed) => return failed.error.to_string(),
        };
        let aborted = park::execute(&seams, &plan, request, &self.config, progress);
        record_abort(request, started_usec, &aborted);
        aborted.to_string()
    }

    /// Plans and checks the upgrade, then performs it on a thread of its
    /// own once every control client has left (the caller may be in a
    /// unit about to be checkpointed). Returns the plan.
    pub fn start_detached(&self, request: UpgradeRequest) -> Result<Plan, UpgradeError> {
        let log =
            |p: Progress| tracing::info!("live upgrade: {} {} {}", p.phase, p.unit, p.message);
        let live = Live::new(&self.commands, &self.config);
        let plan = park::prepare(&live.seams(), &request, &self.config, self.scope, &log)
            .map_err(|failed| failed.error)?;
        let (config, answer) = (self.config.clone(), plan.clone());
        let spawned = std::thread::Builder::new()
            .name("upgrade".into())
            .spawn(move || {
                let started_usec = relive_sys::wall_usec();
                let seams = live.seams();
                park::wait_for_clients_to_leave(&seams, &log);
                let aborted = park::execute(&seams, &plan, &request, &config, &log);
                record_abort(&request, started_usec, &aborted);
            });
        if let Err(e) = spawned {
            let host = LoopHost {
                commands: self.commands.clone(),
            };
            relive_host::UnitHost::end_upgrade(&host);
            return Err(UpgradeError::Refused(relive_host::HostError::Manager(
                format!("cannot start the upgrade thread: {e}"),
            )));
        }
        Ok(answer)
    }

    /// Runs phase 1 now and keeps it as a warm snapshot.
    pub fn prepare_warm(&self) -> Result<Warm, UpgradeError> {
        let live = Live::new(&self.commands, &self.config);
        let log =
            |p: Progress| tracing::info!("warm snapshot: {} {} {}", p.phase, p.unit, p.message);
        warm::prepare(&live.seams(), &self.config, &log)
    }

    /// Wipes the warm snapshot; true if there was one.
    pub fn discard_warm(&self) -> Result<bool, UpgradeError> {
        let live = Live::new(&self.commands, &self.config);
        warm::discard(&live.host, &self.config)
    }

    /// Refreshes the warm snapshot every `warm_snapshot_interval_sec`, on
    /// a thread of its own.
    pub fn keep_warm(&self) -> std::io::Result<()> {
        let (commands, config) = (self.commands.clone(), self.config.clone());
        std::thread::Builder::new()
            .name("warm-snapshot".into())
            .spawn(move || {
                let live = Live::new(&commands, &config);
                warm::keep_warm(&live.seams(), &config);
            })
            .map(drop)
    }
}

/// An upgrade that did not happen is the last upgrade's story too: the
/// report says so (`relivectl upgrade-report`), instead of still showing
/// the one before.
fn record_abort(request: &UpgradeRequest, started_usec: u64, aborted: &park::Aborted) {
    let report = relive_api::report::UpgradeReport {
        kernel_from: relive_store::handover::kernel_release(),
        kernel_to: request.kernel.display().to_string(),
        started_usec,
        finished_usec: relive_sys::wall_usec(),
        aborted: Some(aborted.to_string()),
        losses: aborted.lost.clone(),
        clock: relive_api::report::CLOCK_NOTE.into(),
        ..Default::default()
    };
    if let Err(e) = relive_restore::resume::write_report(std::path::Path::new(REPORT_PATH), &report)
    {
        tracing::error!("{e}");
    }
}

/// Before a store left by an upgrade that never finished is wiped: its
/// story (which units' states were lost, and why) becomes the report.
pub fn record_interrupted(store: &Store, why: &str) {
    let Some(report) = relive_restore::interrupted::report(store, why) else {
        return;
    };
    tracing::error!(
        "{}; {} units started afresh",
        report.aborted.as_deref().unwrap_or("interrupted"),
        report.losses.len()
    );
    if let Err(e) = relive_restore::resume::write_report(std::path::Path::new(REPORT_PATH), &report)
    {
        tracing::error!("{e}");
    }
}

/// After a kexec: resumes on a thread of its own (the loop must run
/// meanwhile: the restores ask it to adopt the units). relive started at
/// `started_usec`; `ahead` is what it did before this (CRIU's probe).
pub fn resume_after_kexec(
    commands: &CommandSender,
    config: &UpgradeConfig,
    store: Store,
    handover: KexecHandover,
    (started_usec, ahead): (u64, relive_restore::Ahead),
) -> std::io::Result<()> {
    let live = Live::new(commands, config);
    std::thread::Builder::new()
        .name("upgrade-resume".into())
        .spawn(move || {
            let seams = live.seams().restore();
            let report =
                relive_restore::resume::resume(seams, &store, handover, started_usec, ahead);
            relive_restore::resume::finish(&store, &report);
        })
        .map(drop)
}

/// The manager's state to start from in the new kernel: the old one, with
/// everything that belonged to the old kernel (PIDs, deadlines, jobs)
/// cleared; preserved units parked until their restore.
pub fn state_for_new_kernel(handover: &KexecHandover) -> Result<ManagerState, serde_json::Error> {
    let mut state: ManagerState = serde_json::from_str(handover.state.get())?;
    state.upgrading = true;
    state.shutdown = None;
    state.restarted_after_restores = handover.plan.restarted.clone();
    // Socket units whose sockets a preserved service carries: active,
    // their descriptors taken back from it once it is restored.
    let carried: std::collections::BTreeSet<&str> = handover
        .units
        .iter()
        .flat_map(|r| r.listeners.iter().map(|l| l.socket_unit.as_str()))
        .collect();
    for u in state.units.values_mut() {
        u.main_pid = None;
        u.control_pid = None;
        u.control = None;
        u.job = None;
        u.deadline = None;
        u.start_times.clear();
        u.parked = handover.units.iter().any(|r| r.name == u.name);
        if !u.parked && !carried.contains(u.name.as_str()) {
            u.active = ActiveState::Inactive;
            u.sub = SubState::Dead;
        }
    }
    Ok(state)
}
