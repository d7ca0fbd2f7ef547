//! Routes one method call to its handler by object path and interface,
//! and sends the reply or systemd's error for it.

use super::paths::Object;
use super::properties::{self, Props, JOB, MANAGER, UNIT};
use crate::event_loop::{CommandSender, LoopGone};
use crate::manager::ManagerError;
use serde::Serialize;
use zbus::zvariant::DynamicType;

const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const PEER: &str = "org.freedesktop.DBus.Peer";
const INTROSPECTABLE: &str = "org.freedesktop.DBus.Introspectable";
const SCOPE: &str = "org.freedesktop.systemd1.Scope";

/// Who is calling: what access is decided on.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    /// Its process, when known (a scope's PIDs may name it as 0).
    pub pid: Option<u32>,
}

/// A D-Bus error reply: systemd's name and a message.
#[derive(Debug, Clone)]
pub struct BusError {
    pub name: &'static str,
    pub message: String,
}

impl BusError {
    pub fn new(name: &'static str, message: impl Into<String>) -> BusError {
        BusError {
            name,
            message: message.into(),
        }
    }

    pub fn invalid_args(message: impl Into<String>) -> BusError {
        BusError::new("org.freedesktop.DBus.Error.InvalidArgs", message)
    }

    pub fn unknown_method(interface: &str, member: &str) -> BusError {
        BusError::new(
            "org.freedesktop.DBus.Error.UnknownMethod",
            format!("Unknown method {member} or interface {interface}."),
        )
    }
}

impl From<ManagerError> for BusError {
    fn from(e: ManagerError) -> BusError {
        BusError {
            name: e.bus_error_name(),
            message: e.to_string(),
        }
    }
}

impl From<LoopGone> for BusError {
    fn from(_: LoopGone) -> BusError {
        BusError::new(
            "org.freedesktop.DBus.Error.NoServer",
            "relive's main loop is not answering",
        )
    }
}

impl From<zbus::Error> for BusError {
    fn from(e: zbus::Error) -> BusError {
        BusError::invalid_args(e.to_string())
    }
}

/// One method call being answered.
pub struct Call<'a> {
    pub conn: &'a zbus::blocking::Connection,
    pub msg: &'a zbus::Message,
    pub caller: Caller,
    pub commands: &'a CommandSender,
}

impl Call<'_> {
    /// Sends `e` as the reply, unless the caller wants none.
    pub fn reply_error(&self, e: &BusError) {
        let header = self.msg.header();
        if header
            .primary()
            .flags()
            .contains(zbus::message::Flags::NoReplyExpected)
        {
            return;
        }
        let name = zbus::names::ErrorName::from_static_str_unchecked(e.name);
        if let Err(send) = self.conn.reply_error(&header, name, &e.message) {
            tracing::debug!("systemd1: cannot send an error reply: {send}");
        }
    }

    /// Sends `body` as the reply.
    pub fn reply<B: Serialize + DynamicType>(&self, body: &B) -> Result<(), BusError> {
        self.conn
            .reply(&self.msg.header(), body)
            .map_err(|e| BusError::new("org.freedesktop.DBus.Error.Failed", e.to_string()))
    }

    pub fn args<B>(&self) -> Result<B, BusError>
    where
        B: serde::de::DeserializeOwned + zbus::zvariant::Type,
    {
        self.msg
            .body()
            .deserialize::<B>()
            .map_err(|e| BusError::invalid_args(format!("bad arguments: {e}")))
    }

    /// Runs `f` on the manager's loop and waits for its answer.
    pub fn on_manager<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::manager::Manager) -> R + Send + 'static,
    ) -> Result<R, BusError> {
        Ok(async_io::block_on(self.commands.call(f))?)
    }

    /// Refuses anyone but root with systemd's own words when it has no
    /// polkit to ask; the log says what was refused.
    pub fn require_root(&self, what: &str) -> Result<(), BusError> {
        if self.caller.uid == 0 {
            return Ok(());
        }
        tracing::info!(
            "systemd1: {what} refused to uid {}: root only",
            self.caller.uid
        );
        Err(BusError::new(
            "org.freedesktop.DBus.Error.AccessDenied",
            "Access denied",
        ))
    }
}

/// Answers the calls of one connection.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    pub commands: CommandSender,
}

impl Dispatcher {
    /// Answers `msg`, a method call, with its reply or error. Only a
    /// failure to send is returned.
    pub fn handle(&self, conn: &zbus::blocking::Connection, msg: &zbus::Message, caller: Caller) {
        let header = msg.header();
        let call = Call {
            conn,
            msg,
            caller,
            commands: &self.commands,
        };
        let path = header.path().map(|p| p.as_str()).unwrap_or_default();
        let interface = header
            .interface()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let member = header.member().map(|m| m.to_string()).unwrap_or_default();
        tracing::trace!(
            "systemd1: {path} {interface}.{member} from uid {}",
            caller.uid
        );
        let outcome = match Object::parse(path) {
            None => Err(BusError::new(
                "org.freedesktop.DBus.Error.UnknownObject",
                format!("Unknown object '{path}'."),
            )),
            // unit/self is the caller's own unit (systemd-run asks it).
            Some(Object::Unit(name)) if name == "self" => {
                match caller
                    .pid
                    .and_then(|pid| relive_sys::cgroup::unit_of_pid(pid as i32))
                {
                    Some(unit) => route(&call, Object::Unit(unit), &interface, &member),
                    None => Err(BusError::new(
                        "org.freedesktop.systemd1.NoUnitForPID",
                        "The caller does not belong to any unit.",
                    )),
                }
            }
            Some(object) => route(&call, object, &interface, &member),
        };
        if let Err(e) = outcome {
            tracing::debug!("systemd1: {interface}.{member}: {}: {}", e.name, e.message);
            call.reply_error(&e);
        }
    }
}

fn route(call: &Call<'_>, object: Object, interface: &str, member: &str) -> Result<(), BusError> {
    match (interface, member) {
        (PROPERTIES, "Get") => {
            let (iface, name): (String, String) = call.args()?;
            let props = properties_of(call, &object, &iface, Some(&name))?;
            let value = props.get(name.as_str()).ok_or_else(|| {
                BusError::new(
                    "org.freedesktop.DBus.Error.UnknownProperty",
                    format!("Unknown property {iface}.{name}"),
                )
            })?;
            call.reply(&(value,))
        }
        (PROPERTIES, "GetAll") => {
            let iface: String = call.args()?;
            let props = properties_of(call, &object, &iface, None)?;
            call.reply(&props)
        }
        (PROPERTIES, "Set") => Err(BusError::new(
            "org.freedesktop.DBus.Error.PropertyReadOnly",
            "relive's systemd1 properties are read-only",
        )),
        (PEER, "Ping") => call.reply(&()),
        (PEER, "GetMachineId") => {
            let id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
            call.reply(&id.trim())
        }
        (INTROSPECTABLE, "Introspect") => call.reply(&introspection(&object)),
        (relive_api::names::INTERFACE, _) if matches!(object, Object::Manager | Object::Relive) => {
            super::relive_methods::spawn(call.conn, call.msg, call.caller, call.commands);
            Ok(())
        }
        _ => match object {
            Object::Manager if interface == MANAGER || interface.is_empty() => {
                super::manager_methods::call(call, member)
            }
            Object::Unit(name)
                if interface == UNIT
                    || interface.is_empty()
                    || (interface == SCOPE && member == "Abandon") =>
            {
                super::manager_methods::unit_call(call, &name, member)
            }
            Object::Job(id) if interface == JOB || interface.is_empty() => match member {
                "Cancel" => super::manager_methods::cancel_job(call, id),
                _ => Err(BusError::unknown_method(interface, member)),
            },
            _ => Err(BusError::unknown_method(interface, member)),
        },
    }
}

/// The properties of `object` on `interface`; every interface's for "".
/// `wanted`: the one property a Get asks for (None: all of them).
fn properties_of(
    call: &Call<'_>,
    object: &Object,
    interface: &str,
    wanted: Option<&str>,
) -> Result<Props, BusError> {
    let unknown = || {
        BusError::new(
            "org.freedesktop.DBus.Error.UnknownInterface",
            format!("Unknown interface '{interface}'."),
        )
    };
    match object {
        Object::Manager => {
            if !interface.is_empty() && interface != MANAGER {
                return Err(unknown());
            }
            let view = call.on_manager(|m| m.manager_view())?;
            Ok(properties::manager_props(&view))
        }
        Object::Unit(name) => {
            let name = name.clone();
            let load = call.caller.uid == 0;
            let view = call.on_manager(move |m| m.unit_view(&name, load))?;
            let kind = view
                .state
                .config
                .as_ref()
                .map(|c| c.kind)
                .or_else(|| properties::kind_of_name(&view.state.name));
            let type_iface = kind.and_then(properties::type_interface);
            // The type's interface first, as systemd's vtables come.
            let mut props = Props::new();
            if interface.is_empty() || Some(interface) == type_iface {
                props.extend(properties::type_props(&view));
            }
            if interface.is_empty() || interface == UNIT {
                let file_state =
                    wanted.is_none_or(|w| matches!(w, "UnitFileState" | "UnitFilePreset"));
                props.extend(properties::unit_props(&view, file_state));
            }
            if props.is_empty() && !interface.is_empty() && Some(interface) != type_iface {
                return Err(unknown());
            }
            Ok(props)
        }
        Object::Relive => Err(unknown()),
        Object::Job(id) => {
            if !interface.is_empty() && interface != JOB {
                return Err(unknown());
            }
            let id = *id;
            let job = call
                .on_manager(move |m| m.job_views().into_iter().find(|j| j.id == id))?
                .ok_or_else(|| no_such_job(id))?;
            Ok(properties::job_props(&job))
        }
    }
}

pub fn no_such_job(id: u64) -> BusError {
    BusError::new(
        "org.freedesktop.systemd1.NoSuchJob",
        format!("Job {id} does not exist."),
    )
}

/// Enough introspection data for busctl to list the interfaces; the
/// methods are systemd's, documented in org.freedesktop.systemd1(5).
fn introspection(object: &Object) -> String {
    let interfaces: &[&str] = match object {
        Object::Manager => &[MANAGER, relive_api::names::INTERFACE],
        Object::Relive => &[relive_api::names::INTERFACE],
        Object::Unit(_) => &[UNIT],
        Object::Job(_) => &[JOB],
    };
    let mut xml = String::from(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n\
         \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n",
    );
    for i in [PEER, INTROSPECTABLE, PROPERTIES].iter().chain(interfaces) {
        xml.push_str(&format!(" <interface name=\"{i}\"/>\n"));
    }
    xml.push_str("</node>\n");
    xml
}
