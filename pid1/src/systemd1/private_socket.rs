//! /run/systemd/private: systemd's peer-to-peer socket, which systemctl
//! run as root connects to first (before the system bus, which may not
//! run yet). Root-only, as systemd makes it.

use super::dispatch::{Caller, Dispatcher};
use super::events::BusEvent;
use super::paths::{job_path, unit_path, MANAGER};
use super::properties::{object_path, MANAGER as MANAGER_IFACE, UNIT};
use crate::event_loop::CommandSender;
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use zbus::zvariant::Value;

pub const PRIVATE_SOCKET: &str = "/run/systemd/private";

/// Makes /run/systemd/system (what sd_booted() looks for: tools treat
/// the machine as run by systemd's manager) and serves the private
/// socket from a thread.
pub fn serve_private(run_systemd: &Path, commands: CommandSender) -> io::Result<()> {
    std::fs::create_dir_all(run_systemd.join("system"))?;
    let path = run_systemd.join("private");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new()
        .name("systemd1-accept".into())
        .spawn(move || crate::dbus::accept_loop(listener, commands, serve_connection))?;
    Ok(())
}

fn serve_connection(stream: UnixStream, uid: u32, commands: CommandSender) {
    let pid = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .ok()
        .and_then(|c| u32::try_from(c.pid()).ok());
    // The iterator exists before the connection reads: systemctl sends
    // its first call right after the handshake, and a message read before
    // anyone listens would be lost.
    let messages = match crate::dbus::p2p_server(stream, uid)
        .and_then(|b| b.build_message_iterator().map_err(io::Error::other))
    {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!("{PRIVATE_SOCKET}: handshake failed: {e}");
            return;
        }
    };
    let conn = zbus::blocking::Connection::from(&messages);
    // systemd sends its signals to every private connection, subscribed
    // or not: systemctl waits for JobRemoved without asking.
    let events = match async_io::block_on(commands.call(|m| {
        let units = m.state.units.values();
        m.rt.bus_events.subscribe(units)
    })) {
        Ok(rx) => rx,
        Err(_) => return,
    };
    let forwarder = {
        let conn = conn.clone();
        let events = events.clone();
        std::thread::Builder::new()
            .name("systemd1-signals".into())
            .spawn(move || forward_signals(&conn, &events, None))
    };
    let dispatcher = Dispatcher { commands };
    for message in messages {
        let Ok(message) = message else { break };
        if message.header().message_type() == zbus::message::Type::MethodCall {
            dispatcher.handle(&conn, &message, Caller { uid, pid });
        }
    }
    // The client is gone: the forwarder's channel closes, it ends.
    events.close();
    if let Ok(thread) = forwarder {
        let _ = thread.join();
    }
}

/// Sends each event as systemd's signal until the channel closes.
/// `destination` is None on a peer-to-peer connection.
pub fn forward_signals(
    conn: &zbus::blocking::Connection,
    events: &async_channel::Receiver<BusEvent>,
    destination: Option<&str>,
) {
    while let Ok(event) = events.recv_blocking() {
        let sent = match &event {
            BusEvent::JobNew { id, unit } => conn.emit_signal(
                destination,
                MANAGER,
                MANAGER_IFACE,
                "JobNew",
                &(*id as u32, object_path(job_path(*id)), unit.as_str()),
            ),
            BusEvent::JobRemoved { id, unit, result } => conn.emit_signal(
                destination,
                MANAGER,
                MANAGER_IFACE,
                "JobRemoved",
                &(
                    *id as u32,
                    object_path(job_path(*id)),
                    unit.as_str(),
                    result.as_str(),
                ),
            ),
            BusEvent::UnitNew { unit } => conn.emit_signal(
                destination,
                MANAGER,
                MANAGER_IFACE,
                "UnitNew",
                &(unit.as_str(), object_path(unit_path(unit))),
            ),
            BusEvent::UnitRemoved { unit } => conn.emit_signal(
                destination,
                MANAGER,
                MANAGER_IFACE,
                "UnitRemoved",
                &(unit.as_str(), object_path(unit_path(unit))),
            ),
            BusEvent::StartupFinished {
                kernel_usec,
                userspace_usec,
            } => conn.emit_signal(
                destination,
                MANAGER,
                MANAGER_IFACE,
                "StartupFinished",
                &(
                    0u64,
                    0u64,
                    *kernel_usec,
                    0u64,
                    *userspace_usec,
                    kernel_usec + userspace_usec,
                ),
            ),
            BusEvent::UnitChanged { unit, active, sub } => {
                let changed: HashMap<&str, Value<'_>> = [
                    ("ActiveState", Value::from(*active)),
                    ("SubState", Value::from(*sub)),
                ]
                .into_iter()
                .collect();
                conn.emit_signal(
                    destination,
                    unit_path(unit).as_str(),
                    "org.freedesktop.DBus.Properties",
                    "PropertiesChanged",
                    &(UNIT, changed, Vec::<String>::new()),
                )
            }
            BusEvent::Reloading(active) => conn.emit_signal(
                destination,
                MANAGER,
                MANAGER_IFACE,
                "Reloading",
                &(*active,),
            ),
        };
        if sent.is_err() {
            break;
        }
    }
}
