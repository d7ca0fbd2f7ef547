//! The connection to relive and the calls relivectl makes.
//!
//! The verbs talk to the `Api` trait rather than to the zbus proxy, so that
//! their output and exit codes can be tested against a fake.

use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::proxy::Manager1Proxy;
use relive_api::names::{INTERFACE, OBJECT_PATH};
use relive_api::units::{SecurityCheck, SocketSummary, TimerSummary, UnitStatus, UnitSummary};
use zbus::blocking::connection::Builder;
use zbus::proxy::CacheProperties;

use crate::cli::LiveUpgradeArgs;
use crate::error::CtlError;
use relive_api::plan::Plan;
use relive_api::progress::CancelAnswer;
use relive_api::progress::Progress;
use relive_api::report::UpgradeReport;
use relive_api::warm::Warm;

/// The methods of `org.relive.Manager1`, with errors already sorted.
pub trait Api {
    fn list_units(&self) -> Result<Vec<UnitSummary>, CtlError>;
    fn list_timers(&self) -> Result<Vec<TimerSummary>, CtlError>;
    fn list_sockets(&self) -> Result<Vec<SocketSummary>, CtlError>;
    fn get_unit(&self, name: &str) -> Result<UnitStatus, CtlError>;
    /// The protections a service runs with (`relivectl security`).
    fn unit_security(&self, name: &str) -> Result<Vec<SecurityCheck>, CtlError>;
    /// Performs a job verb on one unit; returns once the job is done.
    fn unit_job(&self, job: Job, name: &str) -> Result<(), CtlError>;
    /// Performs a verb that concerns the whole manager.
    fn manager_call(&self, call: ManagerCall) -> Result<(), CtlError>;
    /// Plans a live kernel upgrade (`--dry-run`).
    fn live_upgrade(&self, args: &LiveUpgradeArgs) -> Result<Plan, CtlError>;
    /// Performs it, passing each progress step on as it comes. Returns
    /// Ok when the connection closed because the machine is kexecing.
    fn live_upgrade_run(
        &self,
        args: &LiveUpgradeArgs,
        on_progress: Box<dyn Fn(Progress) + Send>,
    ) -> Result<(), CtlError>;
    /// Starts it detached: the plan once the preflight passed.
    fn start_live_upgrade(&self, args: &LiveUpgradeArgs) -> Result<Plan, CtlError>;
    /// The last completed upgrade's report.
    fn upgrade_report(&self) -> Result<UpgradeReport, CtlError>;
    /// Takes or refreshes the warm snapshot (`--prepare`).
    fn prepare_live_upgrade(&self) -> Result<Warm, CtlError>;
    /// Wipes it (`--discard`); true if there was one.
    fn discard_live_upgrade(&self) -> Result<bool, CtlError>;
    /// Cancels the upgrade under way before its stoppage (`--cancel`).
    fn cancel_live_upgrade(&self) -> Result<CancelAnswer, CtlError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Start,
    Stop,
    Restart,
    Reload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagerCall {
    DaemonReload,
    DaemonReexec,
    PowerOff,
    Reboot,
    Halt,
}

/// The live connection to relive.
#[derive(Debug)]
pub struct Client {
    proxy: Manager1Proxy<'static>,
}

impl Client {
    /// Connects peer-to-peer: relive serves D-Bus on a private socket, with
    /// no bus daemon in between.
    pub fn connect(path: &Path) -> Result<Client, CtlError> {
        let stream = UnixStream::connect(path)
            .map_err(|err| CtlError::from_connect(path.to_owned(), err))?;
        let handshake = |source| CtlError::Handshake {
            path: path.to_owned(),
            source: Box::new(source),
        };
        let conn = Builder::async_io_unix_stream(stream)
            .p2p()
            .build()
            .map_err(handshake)?;
        // A peer-to-peer proxy still needs a destination; the server ignores
        // it.
        let proxy = proxy(&conn, INTERFACE, OBJECT_PATH).map_err(handshake)?;
        Ok(Client { proxy })
    }

    /// Connects through the system bus, where relive serves its interface
    /// on systemd's name and object.
    pub fn connect_bus() -> Result<Client, CtlError> {
        let bus = std::path::PathBuf::from(SYSTEM_BUS);
        let handshake = |source| CtlError::Handshake {
            path: bus.clone(),
            source: Box::new(source),
        };
        let conn = zbus::blocking::Connection::system().map_err(handshake)?;
        let proxy = proxy(&conn, SYSTEMD_NAME, SYSTEMD_PATH).map_err(handshake)?;
        Ok(Client { proxy })
    }
}

/// relive's interface at `destination` and `path`. No property cache: the
/// interface has no properties, and caching would subscribe to signals
/// (through a bus that, peer to peer, is not there).
fn proxy(
    conn: &zbus::blocking::Connection,
    destination: &'static str,
    path: &'static str,
) -> zbus::Result<Manager1Proxy<'static>> {
    Manager1Proxy::builder(conn)
        .destination(destination)?
        .path(path)?
        .cache_properties(CacheProperties::No)
        .build()
}

/// The system bus's socket (for messages), systemd's name and object.
const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
const SYSTEMD_NAME: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";

impl Api for Client {
    fn live_upgrade_run(
        &self,
        a: &LiveUpgradeArgs,
        on_progress: Box<dyn Fn(Progress) + Send>,
    ) -> Result<(), CtlError> {
        // Subscribe before the call, so that no step is missed. A plain
        // match rule, not the proxy's signal stream: that one orders the
        // signals against the bus's NameOwnerChanged, which a
        // peer-to-peer connection never sends, and held them back.
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(INTERFACE)
            .and_then(|b| b.member("Progress"))
            .map_err(CtlError::from_call)?
            .build();
        let signals = zbus::blocking::MessageIterator::for_match_rule(
            rule,
            self.proxy.inner().connection(),
            None,
        )
        .map_err(CtlError::from_call)?;
        std::thread::spawn(move || {
            for signal in signals.flatten() {
                let Ok((phase, unit, bytes, message)) =
                    signal.body().deserialize::<(String, String, u64, String)>()
                else {
                    continue;
                };
                // A phase this relivectl does not know (a newer relive)
                // is skipped rather than misnamed.
                match phase.parse() {
                    Ok(phase) => on_progress(Progress::new(phase, &unit, bytes, &message)),
                    Err(e) => eprintln!("relivectl: {e}: {message}"),
                }
            }
        });
        let path = |p: &std::path::Path| p.display().to_string();
        let initrd = a.initrd.as_deref().map(path).unwrap_or_default();
        match self.proxy.live_upgrade(
            &a.kernel.as_deref().map(path).unwrap_or_default(),
            &initrd,
            &a.append,
            a.reuse_cmdline,
            false,
            &upgrade_options(a),
        ) {
            // The machine went down into the new kernel.
            Err(zbus::Error::InputOutput(_)) => Ok(()),
            Err(e) => Err(CtlError::from_call(e)),
            Ok(_) => Err(CtlError::Protocol(
                "relive answered a live upgrade without performing it".into(),
            )),
        }
    }

    fn start_live_upgrade(&self, a: &LiveUpgradeArgs) -> Result<Plan, CtlError> {
        let path = |p: &std::path::Path| p.display().to_string();
        let initrd = a.initrd.as_deref().map(path).unwrap_or_default();
        let json = self
            .proxy
            .start_live_upgrade(
                &a.kernel.as_deref().map(path).unwrap_or_default(),
                &initrd,
                &a.append,
                a.reuse_cmdline,
                &upgrade_options(a),
            )
            .map_err(CtlError::from_call)?;
        serde_json::from_str(&json).map_err(|e| {
            CtlError::Protocol(format!(
                "relive sent a plan this relivectl cannot read: {e}"
            ))
        })
    }

    fn prepare_live_upgrade(&self) -> Result<Warm, CtlError> {
        let json = self
            .proxy
            .prepare_live_upgrade()
            .map_err(CtlError::from_call)?;
        serde_json::from_str(&json).map_err(|e| {
            CtlError::Protocol(format!(
                "relive sent a snapshot summary this relivectl cannot read: {e}"
            ))
        })
    }

    fn discard_live_upgrade(&self) -> Result<bool, CtlError> {
        self.proxy
            .discard_live_upgrade()
            .map_err(CtlError::from_call)
    }

    fn cancel_live_upgrade(&self) -> Result<CancelAnswer, CtlError> {
        let json = self
            .proxy
            .cancel_live_upgrade()
            .map_err(CtlError::from_call)?;
        serde_json::from_str(&json).map_err(|e| {
            CtlError::Protocol(format!(
                "relive sent a cancel answer this relivectl cannot read: {e}"
            ))
        })
    }

    fn unit_security(&self, name: &str) -> Result<Vec<SecurityCheck>, CtlError> {
        let json = self
            .proxy
            .unit_security(name)
            .map_err(CtlError::from_call)?;
        serde_json::from_str(&json).map_err(|e| {
            CtlError::Protocol(format!(
                "relive sent checks this relivectl cannot read: {e}"
            ))
        })
    }

    fn upgrade_report(&self) -> Result<UpgradeReport, CtlError> {
        let json = self.proxy.upgrade_report().map_err(CtlError::from_call)?;
        serde_json::from_str(&json).map_err(|e| {
            CtlError::Protocol(format!(
                "relive sent a report this relivectl cannot read: {e}"
            ))
        })
    }

    fn live_upgrade(&self, a: &LiveUpgradeArgs) -> Result<Plan, CtlError> {
        let path = |p: &std::path::Path| p.display().to_string();
        let initrd = a.initrd.as_deref().map(path).unwrap_or_default();
        let json = self
            .proxy
            .live_upgrade(
                &a.kernel.as_deref().map(path).unwrap_or_default(),
                &initrd,
                &a.append,
                a.reuse_cmdline,
                a.dry_run,
                &upgrade_options(a),
            )
            .map_err(CtlError::from_call)?;
        serde_json::from_str(&json).map_err(|e| {
            CtlError::Protocol(format!(
                "relive sent a plan this relivectl cannot read: {e}"
            ))
        })
    }

    fn list_units(&self) -> Result<Vec<UnitSummary>, CtlError> {
        self.proxy.list_units().map_err(CtlError::from_call)
    }

    fn list_timers(&self) -> Result<Vec<TimerSummary>, CtlError> {
        self.proxy.list_timers().map_err(CtlError::from_call)
    }

    fn list_sockets(&self) -> Result<Vec<SocketSummary>, CtlError> {
        self.proxy.list_sockets().map_err(CtlError::from_call)
    }

    fn get_unit(&self, name: &str) -> Result<UnitStatus, CtlError> {
        self.proxy.get_unit(name).map_err(CtlError::from_call)
    }

    fn unit_job(&self, job: Job, name: &str) -> Result<(), CtlError> {
        let p = &self.proxy;
        match job {
            Job::Start => p.start_unit(name),
            Job::Stop => p.stop_unit(name),
            Job::Restart => p.restart_unit(name),
            Job::Reload => p.reload_unit(name),
        }
        .map_err(CtlError::from_call)
    }

    fn manager_call(&self, call: ManagerCall) -> Result<(), CtlError> {
        let p = &self.proxy;
        let result = match call {
            ManagerCall::DaemonReload => p.daemon_reload(),
            ManagerCall::DaemonReexec => p.daemon_reexec(),
            ManagerCall::PowerOff => p.power_off(),
            ManagerCall::Reboot => p.reboot(),
            ManagerCall::Halt => p.halt(),
        };
        match result {
            // The system may go down before the answer reaches us: the
            // connection closing is the expected outcome, as for systemctl.
            Err(zbus::Error::InputOutput(_)) if !matches!(call, ManagerCall::DaemonReload) => {
                Ok(())
            }
            other => other.map_err(CtlError::from_call),
        }
    }
}

/// The D-Bus options of an upgrade from the command line's flags.
fn upgrade_options(a: &LiveUpgradeArgs) -> std::collections::HashMap<&str, &str> {
    let mut options = std::collections::HashMap::new();
    if a.single_phase {
        options.insert("single-phase", "yes");
    }
    if let Some(store) = &a.store {
        options.insert("store", store.as_str());
    }
    if a.minimal_initrd {
        options.insert("initrd", "minimal");
    }
    if a.lazy_restore {
        options.insert("restore", "lazy");
    }
    options
}
