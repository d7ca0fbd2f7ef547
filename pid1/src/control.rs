//! relive's own operations (org.relive.Manager1), shared by the control
//! socket's zbus interface (`dbus.rs`) and the systemd1 dispatcher, which
//! serves the same interface on /run/systemd/private and the system bus.
//! Access is checked by the callers; these only do the work.

use crate::dbus::ApiError;
use crate::event_loop::CommandSender;
use crate::manager::state::JobKind;
use crate::manager::{JobOutcome, ManagerError};
use crate::upgrade::{Upgrades, REPORT_PATH};
use relive_api::progress::Progress;
use relive_api::units::UnitStatus;
use relive_snapshot::UpgradeRequest;
use relive_sys::machine::ShutdownKind;
use std::collections::HashMap;

/// Queues a job and waits for its outcome.
pub async fn job(commands: &CommandSender, name: String, kind: JobKind) -> Result<(), ApiError> {
    let queued = commands.call(move |m| m.request(&name, kind)).await?;
    let outcome: JobOutcome = queued?
        .recv()
        .await
        .map_err(|_| ApiError::Refused("the job was dropped".into()))?;
    Ok(outcome?)
}

pub async fn get_unit(commands: &CommandSender, name: String) -> Result<UnitStatus, ApiError> {
    let status = commands
        .call(move |m| {
            let canonical = m.load(&name);
            m.unit_status(&canonical)
                .filter(|s| s.load_state != "not-found")
                .ok_or(ManagerError::NoSuchUnit {
                    reason: "no unit file of that name in the unit search path".into(),
                    name,
                })
        })
        .await??;
    Ok(status)
}

/// The protections a service runs with, as JSON.
pub async fn unit_security(commands: &CommandSender, name: String) -> Result<String, ApiError> {
    let checks = commands
        .call(move |m| {
            let canonical = m.load(&name);
            m.unit_security(&canonical).ok_or(ManagerError::NoSuchUnit {
                reason: "not a loaded service".into(),
                name,
            })
        })
        .await??;
    encode(&checks)
}

/// Generators first, as systemd: from a thread of their own, so that the
/// loop serves on while they run; then the unit files.
pub async fn daemon_reload(commands: &CommandSender) -> Result<(), ApiError> {
    if let Some(generators) = commands.call(|m| m.generators()).await? {
        let loop_commands = commands.clone();
        blocking::unblock(move || {
            generators.run(&mut crate::generators::LoopSpawner::new(loop_commands))
        })
        .await;
    }
    Ok(commands.call(|m| m.daemon_reload()).await?)
}

pub async fn daemon_reexec(commands: &CommandSender) -> Result<(), ApiError> {
    Ok(commands.call(|m| m.request_reexec()).await??)
}

/// The upgrade operations, with the manager's configuration.
async fn upgrades(commands: &CommandSender) -> Result<Upgrades, ApiError> {
    let (scope, config) = commands
        .call(|m| (m.rt.scope, m.config.upgrade.clone()))
        .await?;
    Ok(Upgrades {
        commands: commands.clone(),
        config,
        scope,
    })
}

/// The arguments of LiveUpgrade and StartLiveUpgrade.
#[derive(Debug, Clone)]
pub struct UpgradeArgs {
    pub kernel: String,
    pub initrd: String,
    pub append: String,
    pub reuse_cmdline: bool,
    pub dry_run: bool,
    pub options: HashMap<String, String>,
}

/// LiveUpgrade's arguments as D-Bus carries them: kernel, initrd,
/// append, reuse the command line, dry run, options.
pub type UpgradeCall = (String, String, String, bool, bool, HashMap<String, String>);

impl From<UpgradeCall> for UpgradeArgs {
    fn from(call: UpgradeCall) -> UpgradeArgs {
        let (kernel, initrd, append, reuse_cmdline, dry_run, options) = call;
        UpgradeArgs {
            kernel,
            initrd,
            append,
            reuse_cmdline,
            dry_run,
            options,
        }
    }
}

impl UpgradeArgs {
    fn request(self) -> Result<UpgradeRequest, ApiError> {
        UpgradeRequest::new(
            self.kernel,
            self.initrd,
            self.append,
            self.reuse_cmdline,
            self.dry_run,
            &self.options,
        )
        .map_err(|e| ApiError::Refused(e.to_string()))
    }
}

/// A dry run returns the plan (JSON). A real upgrade reports each step
/// to `progress` and, on success, kexecs: it never returns then.
pub async fn live_upgrade(
    commands: &CommandSender,
    args: UpgradeArgs,
    progress: impl Fn(Progress) + Send + 'static,
) -> Result<String, ApiError> {
    let dry_run = args.dry_run;
    let request = args.request()?;
    let upgrades = upgrades(commands).await?;
    if dry_run {
        // Loading a kernel takes a second or two: not on the executor.
        let plan = blocking::unblock(move || upgrades.dry_run(&request))
            .await
            .map_err(|e| ApiError::Refused(e.to_string()))?;
        return encode(&plan);
    }
    // The upgrade runs on its own thread.
    let error = blocking::unblock(move || {
        upgrades.perform(&request, &|p: Progress| {
            tracing::info!("live upgrade: {} {} {}", p.phase, p.unit, p.message);
            progress(p);
        })
    })
    .await;
    Err(ApiError::JobFailed(format!(
        "live upgrade not done: {error}"
    )))
}

/// Returns the plan once the preflight passed; the upgrade goes on once
/// every control client has disconnected.
pub async fn start_live_upgrade(
    commands: &CommandSender,
    args: UpgradeArgs,
) -> Result<String, ApiError> {
    let request = args.request()?;
    let upgrades = upgrades(commands).await?;
    let plan = blocking::unblock(move || upgrades.start_detached(request))
        .await
        .map_err(|e| ApiError::JobFailed(format!("live upgrade not started: {e}")))?;
    encode(&plan)
}

/// Runs phase 1 now and keeps it as a warm snapshot (JSON).
pub async fn prepare_live_upgrade(commands: &CommandSender) -> Result<String, ApiError> {
    let upgrades = upgrades(commands).await?;
    let warm = blocking::unblock(move || upgrades.prepare_warm())
        .await
        .map_err(|e| ApiError::JobFailed(format!("no warm snapshot: {e}")))?;
    encode(&warm)
}

/// Cancels the upgrade under way if its stoppage has not begun; says
/// what it found (JSON: `relive_snapshot::control::CancelAnswer`).
pub fn cancel_live_upgrade() -> Result<String, ApiError> {
    encode(&crate::upgrade::cancel())
}

/// Wipes the warm snapshot; true if there was one.
pub async fn discard_live_upgrade(commands: &CommandSender) -> Result<bool, ApiError> {
    let upgrades = upgrades(commands).await?;
    blocking::unblock(move || upgrades.discard_warm())
        .await
        .map_err(|e| ApiError::Refused(e.to_string()))
}

pub fn upgrade_report() -> Result<String, ApiError> {
    std::fs::read_to_string(REPORT_PATH).map_err(|e| {
        ApiError::Refused(format!(
            "no upgrade report ({REPORT_PATH}: {e}): no live upgrade has completed on this machine"
        ))
    })
}

pub async fn shutdown(commands: &CommandSender, kind: ShutdownKind) -> Result<(), ApiError> {
    Ok(commands.call(move |m| m.begin_shutdown(kind)).await??)
}

/// A plan, a warm snapshot: JSON for the caller.
pub fn encode(value: &impl serde::Serialize) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|e| ApiError::Refused(format!("cannot encode: {e}")))
}
