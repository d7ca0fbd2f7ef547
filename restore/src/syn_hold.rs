//! New TCP connections to a preserved service wait while it is
//! checkpointed. From just before its freeze until its restore, SYNs to
//! the ports it listens on are dropped (an nftables table, `inet
//! relive-hold-MAIN_PID`), so that the clients' TCP sends them again
//! (after 1, 3, 7, 15... s) and they connect once the restored service
//! listens. Otherwise the old kernel would queue them on a listener
//! being checkpointed (CRIU refuses a dump with an unaccepted connection
//! and cannot carry one), and the new kernel, its addresses back before
//! the service's restore, would refuse them.
//!
//! The table is saved in the store and loaded in the new kernel with
//! CRIU's network locks, before any address is up; it goes once the
//! service is restored (or has failed to be, and starts afresh).

use crate::netlock::{LockError, NFT};
use relive_api::report::UnitRecord;
use relive_host::{run_ok, HostError, UnitHost};
use relive_store::Store;
use std::path::PathBuf;

pub fn table(main_pid: i32) -> String {
    format!("relive-hold-{main_pid}")
}

/// Where the table of `unit` is saved in the store.
pub fn file(store: &Store, unit: &str) -> PathBuf {
    store.root.join("lock").join(format!("{unit}.hold.nft"))
}

/// The table's text: drops the first packet (SYN without ACK) of a
/// connection to any of `ports`.
pub fn ruleset(table: &str, ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!(
        "table inet {table} {{\n\tchain input {{\n\t\ttype filter hook input priority -10; policy accept;\n\t\ttcp dport {{ {} }} tcp flags & (syn | ack) == syn drop\n\t}}\n}}\n",
        ports.join(", ")
    )
}

/// Holds new connections to `ports` from now on, and saves the table for
/// the new kernel. Returns its name.
pub fn install(
    host: &dyn UnitHost,
    store: &Store,
    unit: &str,
    main_pid: i32,
    ports: &[u16],
) -> Result<String, LockError> {
    let name = table(main_pid);
    let path = file(store, unit);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| LockError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    std::fs::write(&path, ruleset(&name, ports)).map_err(|source| LockError::Io {
        path: path.clone(),
        source,
    })?;
    run_ok(host, &[NFT, "-f", &path.display().to_string()])?;
    tracing::info!("{unit}: new connections to ports {ports:?} held until its restore");
    Ok(name)
}

/// Lets new connections to the unit's ports in again.
pub fn release(host: &dyn UnitHost, unit: &str, table: &str) -> Result<(), HostError> {
    run_ok(host, &[NFT, "delete", "table", "inet", table])?;
    tracing::info!("{unit}: new connections let in again");
    Ok(())
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
    if let Err(e) = release(host, &record.name, &record.hold_table) {
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
    fn the_ruleset_drops_only_the_first_packet_to_the_ports() {
        let text = ruleset(&table(812), &[80, 7100]);
        assert!(text.starts_with("table inet relive-hold-812 {"), "{text}");
        assert!(
            text.contains("tcp dport { 80, 7100 } tcp flags & (syn | ack) == syn drop"),
            "{text}"
        );
        assert!(
            text.contains("hook input priority -10; policy accept;"),
            "{text}"
        );
    }
}
