//! relive-busclient: a D-Bus client whose connection a live kernel upgrade
//! must keep. It connects to the system bus, owns the name
//! `org.relive.Lab1`, and subscribes to the `org.relive.Lab1.Ping` signal
//! (a match rule in dbus-daemon). Each signal it receives is a line
//! `ping ARG` appended to `pings` in its runtime directory (and printed).
//! After an upgrade its unique name must be the same, it must still own
//! the name, and a signal sent after the upgrade must reach it: the
//! connection, the name and the match rule crossed the kexec with
//! dbus-daemon.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;

const NAME: &str = "org.relive.Lab1";
const INTERFACE: &str = "org.relive.Lab1";

fn main() -> Result<()> {
    let dir = std::env::var_os("RUNTIME_DIRECTORY")
        .map(PathBuf::from)
        .context("RUNTIME_DIRECTORY is not set: run relive-busclient from its unit")?;
    let conn = zbus::blocking::Connection::system().context("connecting to the system bus")?;
    let messages = zbus::blocking::MessageIterator::from(&conn);
    let driver = zbus::blocking::fdo::DBusProxy::new(&conn)?;
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(INTERFACE)?
        .member("Ping")?
        .build();
    driver.add_match_rule(rule)?;
    conn.request_name_with_flags(NAME, zbus::fdo::RequestNameFlags::DoNotQueue.into())
        .with_context(|| format!("owning {NAME}"))?;
    let unique = conn
        .unique_name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    println!("relive-busclient: {unique} owns {NAME}, waiting for {INTERFACE}.Ping");
    let path = dir.join("pings");
    for message in messages {
        let message = message.context("reading from the bus")?;
        let header = message.header();
        let is_ping = header.message_type() == zbus::message::Type::Signal
            && header.interface().is_some_and(|i| i.as_str() == INTERFACE)
            && header.member().is_some_and(|m| m.as_str() == "Ping");
        if !is_ping {
            continue;
        }
        let arg: String = message.body().deserialize().unwrap_or_default();
        println!("ping {arg}");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "ping {arg}")?;
    }
    Ok(())
}
