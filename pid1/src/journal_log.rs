//! relive's own records in the journal, as systemd's are: through
//! journald's native socket, with the syslog priority, SYSLOG_IDENTIFIER=
//! relive, and UNIT= naming the unit the record is about, which
//! `journalctl -u UNIT` matches for messages from PID 1.

use libsystemd::logging::{journal_send, Priority, SD_JOURNAL_SOCK_PATH};
use tracing::Level;

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
        let fields = [("SYSLOG_IDENTIFIER", identifier), ("UNIT", unit)];
        return journal_send(priority, line, fields.into_iter()).is_ok();
    }
    let mut fields = vec![("SYSLOG_IDENTIFIER", "relive")];
    if let Some(unit) = unit_of(message) {
        fields.push(("UNIT", unit));
    }
    journal_send(priority, message, fields.into_iter()).is_ok()
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
