//! Live kernel upgrades: the plan and the preflight (`relivectl
//! live-upgrade --dry-run`), phase 1's background pre-dumps (`predump`,
//! `warm`), the stoppage (`park`: freeze, CRIU dump, kexec), the store
//! that carries the images (`store`, `memstore`), and the resume in the
//! new kernel (`resume`, `verifier`, `revive`, `rollback`).

pub mod connections;
pub mod criu;
pub mod fault;
pub mod helper;
pub mod memstore;
pub mod park;
pub mod plan;
pub mod predump;
pub mod preflight;
pub mod record;
pub mod resume;
pub mod revive;
pub mod rollback;
pub mod rundir;
pub mod store;
pub mod verifier;
pub mod warm;

/// A step of the upgrade, shown live by `relivectl live-upgrade`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub phase: String,
    pub unit: String,
    pub bytes: u64,
    pub message: String,
}

impl Progress {
    pub fn new(phase: &str, unit: &str, bytes: u64, message: &str) -> Progress {
        Progress {
            phase: phase.into(),
            unit: unit.into(),
            bytes,
            message: message.into(),
        }
    }
}

/// Runs `f` on the manager's thread and waits for its result (for the
/// upgrade's worker threads, which never touch the manager themselves).
pub fn on_loop<R: Send + 'static>(
    commands: &crate::event_loop::CommandSender,
    f: impl FnOnce(&mut crate::manager::Manager) -> R + Send + 'static,
) -> Result<R, String> {
    async_io::block_on(commands.call(f)).map_err(|_| "relive's loop is gone".to_owned())
}

/// Queues a job and waits until it is done.
pub fn run_job(
    commands: &crate::event_loop::CommandSender,
    name: &str,
    kind: crate::manager::state::JobKind,
) -> Result<(), String> {
    let unit = name.to_owned();
    let waiting = on_loop(commands, move |m| m.request(&unit, kind))?.map_err(|e| e.to_string())?;
    async_io::block_on(waiting.recv())
        .map_err(|_| format!("{name}: job dropped"))?
        .map_err(|e| e.to_string())
}

/// Queues a start of each unit at once (the manager runs them in their
/// After= order, the independent ones side by side) and waits until all
/// are done. Returns the units that failed, with why.
pub fn start_together(
    commands: &crate::event_loop::CommandSender,
    names: &[String],
) -> Vec<(String, String)> {
    let units = names.to_vec();
    let queued = match on_loop(commands, move |m| {
        units
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    m.request(name, crate::manager::state::JobKind::Start),
                )
            })
            .collect::<Vec<_>>()
    }) {
        Ok(queued) => queued,
        Err(e) => return names.iter().map(|n| (n.clone(), e.clone())).collect(),
    };
    let mut failed = Vec::new();
    for (name, job) in queued {
        let done = match job {
            Ok(waiting) => async_io::block_on(waiting.recv())
                .map_err(|_| "job dropped".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = done {
            failed.push((name, e));
        }
    }
    failed
}
