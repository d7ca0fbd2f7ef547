//! relive on the system bus, where systemd is: once dbus.service runs,
//! PID 1 connects to it and takes the name org.freedesktop.systemd1.
//!
//! - Bus activation: dbus-daemon (started with `--systemd-activation`)
//!   asks the owner of org.freedesktop.systemd1 to start the unit named by
//!   a service's `SystemdService=`, with an ActivationRequest signal. Until
//!   someone owns that name it holds every such request for its 25 s
//!   timeout: each `pam_systemd` login would wait that long for logind.
//!   relive starts the unit, and reports a unit that cannot start with
//!   ActivationFailure, so that the client gets its error at once.
//! - Type=dbus services are ready when their BusName= gets an owner:
//!   NameOwnerChanged signals go to the manager.
//!
//! - systemd's own interfaces (org.freedesktop.systemd1.Manager, the unit
//!   and job objects) are answered by [`crate::systemd1::Dispatcher`] on a
//!   thread of their own, with the caller's uid asked of the bus; their
//!   signals are broadcast for as long as relive is connected.
//!
//! The connection lives on a thread of its own, which waits for the
//! manager to say the bus service has started, and again after the bus
//! has gone away.

use crate::event_loop::CommandSender;
use crate::manager::state::JobKind;
use crate::manager::ManagerError;
use std::sync::mpsc;

/// The bus driver's name, and systemd's.
const DRIVER: &str = "org.freedesktop.DBus";
const SYSTEMD: &str = "org.freedesktop.systemd1";
/// Where dbus-daemon's activation signals live.
const ACTIVATOR: &str = "org.freedesktop.systemd1.Activator";

/// The manager's handle on the bus thread.
#[derive(Debug)]
pub struct SystemBus {
    started: mpsc::Sender<()>,
}

impl SystemBus {
    /// Starts the thread; it connects at the first [`SystemBus::bus_started`].
    pub fn spawn(commands: CommandSender) -> std::io::Result<SystemBus> {
        let (started, wait) = mpsc::channel();
        std::thread::Builder::new()
            .name("system-bus".into())
            .spawn(move || run(wait, commands))?;
        Ok(SystemBus { started })
    }

    /// The bus service has (re)started: connect to it.
    pub fn bus_started(&self) {
        let _ = self.started.send(());
    }
}

fn run(started: mpsc::Receiver<()>, commands: CommandSender) {
    while started.recv().is_ok() {
        // Several starts while we were connected, or while it failed:
        // one connection attempt covers them.
        while started.try_recv().is_ok() {}
        // A bus restored or restarted by a live upgrade may take a moment
        // to answer: a few tries, then wait for the next start.
        for attempt in 1..=CONNECT_ATTEMPTS {
            match serve(&commands) {
                Ok(()) => {
                    tracing::info!("system bus: disconnected");
                    break;
                }
                Err(Failure::Connect(e)) if attempt < CONNECT_ATTEMPTS => {
                    tracing::debug!("system bus: cannot connect yet ({e}), trying again");
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
                Err(Failure::Connect(e) | Failure::Lost(e)) => {
                    tracing::warn!("system bus: {e}");
                    break;
                }
            }
        }
        let _ = commands.send(|m| m.bus_disconnected());
    }
}

/// Connection attempts per start of the bus, a second apart.
const CONNECT_ATTEMPTS: u32 = 5;

/// Why `serve` returned.
enum Failure {
    /// No connection was made.
    Connect(zbus::Error),
    /// The connection failed once made.
    Lost(zbus::Error),
}

impl From<zbus::Error> for Failure {
    fn from(e: zbus::Error) -> Self {
        Failure::Lost(e)
    }
}

impl From<zbus::fdo::Error> for Failure {
    fn from(e: zbus::fdo::Error) -> Self {
        Failure::Lost(e.into())
    }
}

/// Connects, subscribes, takes the name, then handles signals until the
/// bus goes away.
fn serve(commands: &CommandSender) -> Result<(), Failure> {
    let conn = zbus::blocking::connection::Builder::system()
        .and_then(|b| b.build())
        .map_err(Failure::Connect)?;
    // Every message from here on, so that no signal slips between the
    // subscription and the loop below.
    let messages = zbus::blocking::MessageIterator::from(&conn);
    let driver = zbus::blocking::fdo::DBusProxy::new(&conn)?;
    for (interface, member) in [
        (ACTIVATOR, "ActivationRequest"),
        (DRIVER, "NameOwnerChanged"),
    ] {
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(DRIVER)?
            .interface(interface)?
            .member(member)?
            .build();
        driver.add_match_rule(rule)?;
    }
    let names: Vec<String> = driver
        .list_names()?
        .into_iter()
        .map(|n| n.to_string())
        .filter(|n| !n.starts_with(':'))
        .collect();
    let _ = commands.send(move |m| m.bus_connected(names));
    let calls = serve_calls(&conn, commands)?;
    match conn.request_name_with_flags(SYSTEMD, zbus::fdo::RequestNameFlags::DoNotQueue.into()) {
        Ok(_) => tracing::info!("system bus: connected as {SYSTEMD}"),
        Err(e) => tracing::warn!("system bus: connected, but cannot own {SYSTEMD}: {e}"),
    }
    for message in messages {
        let message = message?;
        let header = message.header();
        if header.message_type() == zbus::message::Type::MethodCall {
            let _ = calls.send(message.clone());
            continue;
        }
        // dbus-daemon sets the sender: only the driver's signals count.
        if header.message_type() != zbus::message::Type::Signal
            || header.sender().map(|s| s.as_str()) != Some(DRIVER)
        {
            continue;
        }
        let interface = header.interface().map(|i| i.to_string());
        let member = header.member().map(|m| m.to_string());
        match (interface.as_deref(), member.as_deref()) {
            (Some(ACTIVATOR), Some("ActivationRequest")) => {
                if let Ok(unit) = message.body().deserialize::<String>() {
                    activate(&conn, commands, unit);
                }
            }
            (Some(DRIVER), Some("NameOwnerChanged")) => {
                let Ok((name, _old, new)) =
                    message.body().deserialize::<(String, String, String)>()
                else {
                    continue;
                };
                if !name.starts_with(':') {
                    let _ =
                        commands.send(move |m| m.bus_name_owner_changed(&name, !new.is_empty()));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Starts the threads that answer systemd1 method calls and broadcast
/// its signals on `conn`; returns where the calls go. Both end with the
/// connection (the channel's sender is dropped, the events' receiver
/// closed when a send fails).
fn serve_calls(
    conn: &zbus::blocking::Connection,
    commands: &CommandSender,
) -> Result<mpsc::Sender<zbus::Message>, Failure> {
    let events = async_io::block_on(commands.call(|m| {
        let units = m.state.units.values();
        m.rt.bus_events.subscribe(units)
    }))
    .map_err(|_| Failure::Lost(zbus::Error::Failure("relive's loop is gone".into())))?;
    let signals_conn = conn.clone();
    let signals_events = events.clone();
    std::thread::Builder::new()
        .name("systemd1-bus-signals".into())
        .spawn(move || crate::systemd1::forward_signals(&signals_conn, &signals_events, None))
        .map_err(|e| Failure::Lost(zbus::Error::InputOutput(e.into())))?;
    let (tx, rx) = mpsc::channel::<zbus::Message>();
    let conn = conn.clone();
    let dispatcher = crate::systemd1::Dispatcher {
        commands: commands.clone(),
    };
    std::thread::Builder::new()
        .name("systemd1-bus-calls".into())
        .spawn(move || {
            let driver = zbus::blocking::fdo::DBusProxy::new(&conn);
            for message in rx {
                let header = message.header();
                let credentials =
                    header
                        .sender()
                        .zip(driver.as_ref().ok())
                        .and_then(|(sender, d)| {
                            d.get_connection_credentials(sender.clone().into()).ok()
                        });
                let credentials = credentials.as_ref();
                // Without a known uid, a caller is not root.
                let caller = crate::systemd1::Caller {
                    uid: credentials
                        .and_then(|c| c.unix_user_id())
                        .unwrap_or(u32::MAX),
                    pid: credentials.and_then(|c| c.process_id()),
                };
                dispatcher.handle(&conn, &message, caller);
            }
            events.close();
        })
        .map_err(|e| Failure::Lost(zbus::Error::InputOutput(e.into())))?;
    Ok(tx)
}

/// Starts `unit` for dbus-daemon; on its own thread, since the job may
/// take a while and the signals must keep flowing.
fn activate(conn: &zbus::blocking::Connection, commands: &CommandSender, unit: String) {
    let conn = conn.clone();
    let commands = commands.clone();
    let spawned = std::thread::Builder::new()
        .name("bus-activation".into())
        .spawn(move || {
            // Every ssh login asks for logind: debug level, not the console.
            tracing::debug!("system bus: activating {unit}");
            let outcome = async_io::block_on(async {
                let name = unit.clone();
                let queued = commands
                    .call(move |m| m.request(&name, JobKind::Start))
                    .await
                    .map_err(|_| ManagerError::Refused("relive is shutting down".into()))?;
                queued?
                    .recv()
                    .await
                    .map_err(|_| ManagerError::Refused("the job was dropped".into()))?
            });
            if let Err(e) = outcome {
                // A missing or masked unit is the client's answer, not news.
                if matches!(e, ManagerError::NoSuchUnit { .. }) {
                    tracing::debug!("system bus: cannot activate {unit}: {e}");
                } else {
                    tracing::warn!("system bus: cannot activate {unit}: {e}");
                }
                let reply = (unit.as_str(), e.bus_error_name(), e.to_string());
                if let Err(e) = conn.emit_signal(
                    Some(DRIVER),
                    "/org/freedesktop/systemd1",
                    ACTIVATOR,
                    "ActivationFailure",
                    &reply,
                ) {
                    tracing::warn!("system bus: cannot report the failure: {e}");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("system bus: no thread for an activation: {e}");
    }
}
