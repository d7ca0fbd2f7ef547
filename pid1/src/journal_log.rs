//! relive's own records in the journal, as systemd's are: through
//! journald's native socket, with the syslog priority, SYSLOG_IDENTIFIER=
//! relive, and UNIT= naming the unit the record is about, which
//! `journalctl -u UNIT` matches for messages from PID 1.
//!
//! A unit's output that relive relays (a preserved service writes into
//! relive's pipe, which crosses a live upgrade where a stream to journald
//! cannot) goes in as the service's own: sent with the credentials of the
//! unit's main process (SCM_CREDENTIALS, which PID 1 may set to any
//! process), journald reads that process's cgroup and records the line
//! with _PID= and _SYSTEMD_UNIT= as for a line the service wrote to its
//! own stream. journalctl 257 matches `-u UNIT` only by those, not by
//! UNIT= on a record from PID 1.

use std::collections::HashMap;
use std::io::IoSlice;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use libsystemd::logging::{journal_send, Priority, SD_JOURNAL_SOCK_PATH};
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, UnixCredentials};
use tracing::Level;

/// The process whose credentials a unit's relayed lines carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sender {
    pid: i32,
    uid: u32,
    gid: u32,
}

/// Unit -> its main process, as the manager last saw it.
static SENDERS: Mutex<Option<HashMap<String, Sender>>> = Mutex::new(None);

/// Records that `unit`'s output comes from `pid` (its main process), or
/// from no known process: its lines then go in as relive's, with UNIT=.
/// Called for every relayed line: cheap when nothing changed.
pub fn note_sender(unit: &str, pid: Option<i32>) {
    let mut senders = SENDERS.lock().unwrap_or_else(|e| e.into_inner());
    let senders = senders.get_or_insert_with(HashMap::new);
    let Some(pid) = pid else {
        senders.remove(unit);
        return;
    };
    if senders.get(unit).is_some_and(|s| s.pid == pid) {
        return;
    }
    // /proc/PID belongs to the process's effective user and group.
    match std::fs::metadata(format!("/proc/{pid}")) {
        Ok(meta) => {
            let sender = Sender {
                pid,
                uid: meta.uid(),
                gid: meta.gid(),
            };
            senders.insert(unit.to_owned(), sender);
        }
        Err(_) => {
            senders.remove(unit);
        }
    }
}

fn sender_of(unit: &str) -> Option<Sender> {
    let senders = SENDERS.lock().unwrap_or_else(|e| e.into_inner());
    senders.as_ref()?.get(unit).copied()
}

/// Sends one formatted record ("LEVEL message") to journald; false when
/// journald is not there (not started yet, or stopped) or did not take it.
/// A unit's output line ("UNIT: LINE", relayed by relive) goes in as the
/// unit's: MESSAGE=LINE, SYSLOG_IDENTIFIER= the unit's name.
pub fn send(level: Level, record: &str, unit_output: bool) -> bool {
    if !std::path::Path::new(SD_JOURNAL_SOCK_PATH).exists() {
        return false;
    }
    let priority = match level {
        Level::ERROR => Priority::Error,
        Level::WARN => Priority::Warning,
        Level::INFO => Priority::Info,
        _ => Priority::Debug,
    };
    let message = strip_level(record);
    let relayed = unit_output
        .then(|| message.split_once(": "))
        .flatten()
        .filter(|(unit, _)| relive_units::unit_name::is_valid(unit));
    if let Some((unit, line)) = relayed {
        let identifier = unit.rsplit_once('.').map_or(unit, |(stem, _)| stem);
        if let Some(sender) = sender_of(unit) {
            let fields = [
                ("PRIORITY", u8::from(priority).to_string()),
                ("SYSLOG_IDENTIFIER", identifier.to_owned()),
                ("MESSAGE", line.to_owned()),
            ];
            // The process may have gone since: then as relive's.
            if send_as(sender, &fields).is_ok() {
                return true;
            }
        }
        let fields = [("SYSLOG_IDENTIFIER", identifier), ("UNIT", unit)];
        return journal_send(priority, line, fields.into_iter()).is_ok();
    }
    let mut fields = vec![("SYSLOG_IDENTIFIER", "relive")];
    if let Some(unit) = unit_of(message) {
        fields.push(("UNIT", unit));
    }
    journal_send(priority, message, fields.into_iter()).is_ok()
}

/// One record to journald's native socket with `sender`'s credentials.
fn send_as(sender: Sender, fields: &[(&str, String)]) -> nix::Result<()> {
    let socket = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let address = UnixAddr::new(SD_JOURNAL_SOCK_PATH)?;
    let datagram = native_datagram(fields);
    let credentials = UnixCredentials::from(libc::ucred {
        pid: sender.pid,
        uid: sender.uid,
        gid: sender.gid,
    });
    let control = [ControlMessage::ScmCredentials(&credentials)];
    use std::os::fd::AsRawFd;
    nix::sys::socket::sendmsg(
        socket.as_raw_fd(),
        &[IoSlice::new(&datagram)],
        &control,
        // A journald that does not keep up never holds relive's log writer.
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        Some(&address),
    )?;
    Ok(())
}

/// journald's native protocol: `KEY=value` lines; a value holding a
/// newline as `KEY`, newline, its length (64-bit little endian), the
/// value, newline.
fn native_datagram(fields: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in fields {
        out.extend_from_slice(key.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The record without the level tracing's formatter puts first.
fn strip_level(record: &str) -> &str {
    let record = record.trim();
    match record.split_once(' ') {
        Some((level, rest)) if ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level) => {
            rest.trim_start()
        }
        _ => record,
    }
}

/// The first word that names a unit: relive's records say "NAME: what
/// happened" or "starting NAME".
fn unit_of(message: &str) -> Option<&str> {
    message
        .split_whitespace()
        .map(|w| {
            w.trim_end_matches([':', ',', '.', ';'])
                .trim_matches(['\'', '"'])
        })
        .find(|w| relive_units::unit_name::is_valid(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_fields_as_journald_reads_them() {
        let fields = [
            ("PRIORITY", "6".to_owned()),
            ("MESSAGE", "two\nlines".to_owned()),
        ];
        let mut expected = b"PRIORITY=6\nMESSAGE\n".to_vec();
        expected.extend_from_slice(&9u64.to_le_bytes());
        expected.extend_from_slice(b"two\nlines\n");
        assert_eq!(native_datagram(&fields), expected);
    }

    #[test]
    fn a_sender_is_forgotten_with_its_process() {
        let me = std::process::id() as i32;
        note_sender("relay-test.service", Some(me));
        assert_eq!(sender_of("relay-test.service").map(|s| s.pid), Some(me));
        note_sender("relay-test.service", None);
        assert_eq!(sender_of("relay-test.service"), None);
        // A PID with no process: nothing to send as.
        note_sender("relay-test.service", Some(i32::MAX));
        assert_eq!(sender_of("relay-test.service"), None);
    }

    #[test]
    fn records_name_their_unit() {
        for (record, unit) in [
            (" INFO starting nginx.service\n", Some("nginx.service")),
            (
                "ERROR nginx.service: main process exited, status=1",
                Some("nginx.service"),
            ),
            (
                " WARN Job for never-named.service failed: timeout.",
                Some("never-named.service"),
            ),
            (
                " INFO serial-getty@ttyS0.service: started",
                Some("serial-getty@ttyS0.service"),
            ),
            (" INFO reloaded unit files from 9 directories", None),
        ] {
            assert_eq!(unit_of(strip_level(record)), unit, "{record}");
        }
        assert_eq!(
            strip_level(" INFO starting a.service\n"),
            "starting a.service"
        );
    }
}
