//! relive's own interface, org.relive.Manager1, on systemd's object and
//! transports: `busctl call org.freedesktop.systemd1
//! /org/freedesktop/systemd1 org.relive.Manager1 LiveUpgrade ...` from any
//! D-Bus client. The work is `crate::control`'s, as on the control
//! socket. Each call runs on a thread of its own: a job or an upgrade
//! takes a while, and the connection's other calls must not wait for it.

use super::dispatch::{BusError, Call, Caller};
use crate::control::{self, UpgradeArgs};
use crate::dbus::ApiError;
use crate::event_loop::CommandSender;
use crate::manager::state::JobKind;
use relive_api::names::INTERFACE;
use relive_api::progress::Progress;
use relive_sys::machine::ShutdownKind;
use std::collections::HashMap;
use zbus::DBusError;

impl From<ApiError> for BusError {
    fn from(e: ApiError) -> BusError {
        BusError::new(
            e.error_name(),
            e.description().map_or_else(|| e.to_string(), str::to_owned),
        )
    }
}

/// Answers `msg` from a new thread.
pub fn spawn(
    conn: &zbus::blocking::Connection,
    msg: &zbus::Message,
    caller: Caller,
    commands: &CommandSender,
) {
    let (conn, msg, commands) = (conn.clone(), msg.clone(), commands.clone());
    let spawned = std::thread::Builder::new()
        .name("relive-call".into())
        .spawn(move || {
            let call = Call {
                conn: &conn,
                msg: &msg,
                caller,
                commands: &commands,
            };
            let member = msg
                .header()
                .member()
                .map(|m| m.to_string())
                .unwrap_or_default();
            if let Err(e) = answer(&call, &member) {
                call.reply_error(&e);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("systemd1: no thread for a relive call: {e}");
    }
}

fn block<T>(f: impl std::future::Future<Output = Result<T, ApiError>>) -> Result<T, BusError> {
    async_io::block_on(f).map_err(BusError::from)
}

fn answer(call: &Call<'_>, member: &str) -> Result<(), BusError> {
    call.require_root(member)?;
    let commands = call.commands;
    let job = |kind: JobKind| -> Result<(), BusError> {
        let name: String = call.args()?;
        block(control::job(commands, name, kind))?;
        call.reply(&())
    };
    match member {
        "ListUnits" => call.reply(&call.on_manager(|m| m.list_units())?),
        "ListSockets" => call.reply(&call.on_manager(|m| m.list_sockets())?),
        "ListTimers" => call.reply(&call.on_manager(|m| m.list_timers())?),
        "GetUnit" => {
            let name: String = call.args()?;
            call.reply(&block(control::get_unit(commands, name))?)
        }
        "UnitSecurity" => {
            let name: String = call.args()?;
            call.reply(&block(control::unit_security(commands, name))?)
        }
        "StartUnit" => job(JobKind::Start),
        "StopUnit" => job(JobKind::Stop),
        "RestartUnit" => job(JobKind::Restart),
        "ReloadUnit" => job(JobKind::Reload),
        "DaemonReload" => {
            block(control::daemon_reload(commands))?;
            call.reply(&())
        }
        "DaemonReexec" => {
            block(control::daemon_reexec(commands))?;
            call.reply(&())
        }
        "LiveUpgrade" => {
            let args = UpgradeArgs::from(call.args::<control::UpgradeCall>()?);
            let conn = call.conn.clone();
            let path = call
                .msg
                .header()
                .path()
                .map_or(super::paths::MANAGER.to_owned(), |p| p.to_string());
            let plan = block(control::live_upgrade(commands, args, move |p: Progress| {
                let body = (
                    p.phase.as_str(),
                    p.unit.as_str(),
                    p.bytes,
                    p.message.as_str(),
                );
                let _ = conn.emit_signal(None::<&str>, path.as_str(), INTERFACE, "Progress", &body);
            }))?;
            call.reply(&plan)
        }
        "StartLiveUpgrade" => {
            type Args = (String, String, String, bool, HashMap<String, String>);
            let (kernel, initrd, append, reuse, options): Args = call.args()?;
            let args = UpgradeArgs::from((kernel, initrd, append, reuse, false, options));
            call.reply(&block(control::start_live_upgrade(commands, args))?)
        }
        "PrepareLiveUpgrade" => call.reply(&block(control::prepare_live_upgrade(commands))?),
        "CancelLiveUpgrade" => call.reply(&control::cancel_live_upgrade()?),
        "DiscardLiveUpgrade" => call.reply(&block(control::discard_live_upgrade(commands))?),
        "UpgradeReport" => call.reply(&control::upgrade_report()?),
        "PowerOff" => shutdown(call, ShutdownKind::PowerOff),
        "Reboot" => shutdown(call, ShutdownKind::Reboot),
        "Halt" => shutdown(call, ShutdownKind::Halt),
        _ => Err(BusError::unknown_method(INTERFACE, member)),
    }
}

fn shutdown(call: &Call<'_>, kind: ShutdownKind) -> Result<(), BusError> {
    block(control::shutdown(call.commands, kind))?;
    call.reply(&())
}
