//! New TCP connections to a preserved service wait while it is
//! checkpointed. From just before its freeze until its restore, SYNs to
//! the ports it listens on are dropped, so that the clients' TCP sends
//! them again (after 1, 3, 7, 15... s) and they connect once the restored
//! service listens. Otherwise the old kernel would queue them on a
//! listener being checkpointed (CRIU refuses a dump with an unaccepted
//! connection and cannot carry one), and the new kernel, its addresses
//! back before the service's restore, would refuse them.
//!
//! One nftables table holds every unit's ports (`inet relive-hold`, a set
//! of ports and one rule): a table per unit made each `nft` run slower
//! with every parked unit, and there is one run per unit on each side of
//! the kexec. A unit's ports are added to the set before its freeze and
//! saved in the store (`lock/UNIT.hold.nft`, beside the table's own
//! file); the new kernel loads them with CRIU's network locks, before any
//! address is up, and each unit's ports leave the set once it is restored
//! (or has failed to be, and starts afresh), lifted by a thread of
//! its own (`hold_lifter`) so that no restore waits for the nft run. The
//! table goes when the restores are over.

use crate::netlock::{LockError, NFT};
use relive_api::report::UnitRecord;
use relive_host::{run_ok, HostError, UnitHost};
use relive_store::Store;
use std::path::PathBuf;

/// The table that holds new connections to the parked units.
pub const TABLE: &str = "relive-hold";

/// Where the table itself is saved in the store.
pub fn table_file(store: &Store) -> PathBuf {
    store.root.join("lock").join(format!("{TABLE}.nft"))
}

/// Where the ports `unit` holds are saved in the store.
pub fn file(store: &Store, unit: &str) -> PathBuf {
    store.root.join("lock").join(format!("{unit}.hold.nft"))
}

/// The table: drops the first packet (SYN without ACK) of a connection
/// to any port in its set. Made anew (a table left by an earlier attempt
/// goes first), so that its one rule is never there twice.
pub fn table_ruleset() -> String {
    format!(
        "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n\tset ports {{\n\t\ttype inet_service\n\t}}\n\tchain input {{\n\t\ttype filter hook input priority -10; policy accept;\n\t\ttcp dport @ports tcp flags & (syn | ack) == syn drop\n\t}}\n}}\n"
    )
}

fn port_list(ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!("{{ {} }}", ports.join(", "))
}

/// A unit's part: its ports into the table's set.
pub fn ruleset(ports: &[u16]) -> String {
    format!("add element inet {TABLE} ports {}\n", port_list(ports))
}

fn write(path: &std::path::Path, text: &str) -> Result<(), LockError> {
    let io = |source| LockError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)
}

/// Holds new connections to `ports` from now on, and saves them for the
/// new kernel; `first`: the parking's first hold, which makes the table.
pub fn install(
    host: &dyn UnitHost,
    store: &Store,
    unit: &str,
    ports: &[u16],
    first: bool,
) -> Result<(), LockError> {
    let load = |path: &PathBuf| run_ok(host, &[NFT, "-f", &path.display().to_string()]);
    if first {
        let table = table_file(store);
        write(&table, &table_ruleset())?;
        load(&table)?;
    }
    let path = file(store, unit);
    write(&path, &ruleset(ports))?;
    load(&path)?;
    tracing::info!("{unit}: new connections to ports {ports:?} held until its restore");
    Ok(())
}

/// Lets new connections to the unit's ports in again. A record of an
/// older relive names a table of the unit's own.
pub fn release(
    host: &dyn UnitHost,
    unit: &str,
    table: &str,
    ports: &[u16],
) -> Result<(), HostError> {
    crate::netlock::run_commands(host, &[lift_command(table, ports)])?;
    tracing::info!("{unit}: new connections let in again");
    Ok(())
}

/// The nft command that lifts a hold: its ports out of the one table's
/// set, or (a record of an older relive, no ports) its own table deleted.
pub fn lift_command(table: &str, ports: &[u16]) -> Vec<String> {
    let words = if ports.is_empty() {
        vec!["delete", "table", "inet", table]
    } else {
        vec!["delete", "element", "inet", table, "ports"]
    };
    let mut command: Vec<String> = words.into_iter().map(str::to_owned).collect();
    if !ports.is_empty() {
        command.push(port_list(ports));
    }
    command
}

/// Every hold has ended: the table goes.
pub fn drop_table(host: &dyn UnitHost) {
    if let Err(e) = run_ok(host, &[NFT, "delete", "table", "inet", TABLE]) {
        tracing::warn!("cannot remove the table that held new connections: {e}");
    }
}

/// A unit restored as `pid`: PID 1 takes its socket units' sockets back,
/// and the connections held come in.
pub fn restored(host: &dyn UnitHost, record: &UnitRecord, pid: i32) {
    if !record.listeners.is_empty() {
        host.adopt_listeners(&record.name, pid, &record.listeners);
    }
    ended(host, record);
}

/// The unit's hold ends (restored, or to be started afresh).
pub fn ended(host: &dyn UnitHost, record: &UnitRecord) {
    if record.hold_table.is_empty() {
        return;
    }
    if let Err(e) = release(host, &record.name, &record.hold_table, &record.hold_ports) {
        tracing::warn!(
            "{}: cannot lift its hold on new connections: {e}",
            record.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_drops_only_the_first_packet_to_the_units_ports() {
        let table = table_ruleset();
        assert!(
            table.starts_with("table inet relive-hold\ndelete table inet relive-hold\n"),
            "{table}"
        );
        assert!(
            table.contains("tcp dport @ports tcp flags & (syn | ack) == syn drop"),
            "{table}"
        );
        assert!(
            table.contains("hook input priority -10; policy accept;"),
            "{table}"
        );
        assert_eq!(
            ruleset(&[80, 7100]),
            "add element inet relive-hold ports { 80, 7100 }\n"
        );
    }
}
