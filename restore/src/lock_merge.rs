//! CRIU's lock tables merged into one on the old kernel.
//!
//! Each dump leaves an nftables table (`netlock`) that drops its unit's
//! connections until the kexec. With many units parked one after another
//! the tables pile up, and every `nft` run, CRIU's own inside each dump
//! included, reads them all: in the lab, a dump of a small process took
//! 0.19 s beside no table and 2.6 s beside 160, and parking 90 units took
//! 160 s. So once a unit's table is saved for the new kernel, its
//! connections move into relive's one table ([`MERGED`]) and CRIU's is
//! deleted, in one nft transaction (no packet passes in between). An undo
//! puts the unit's table back before restoring it on the old kernel, as
//! CRIU left it, and takes its connections out of the merged table.

use crate::netlock::{LockError, NFT};
use relive_host::{run_ok, UnitHost};
use relive_store::Store;

/// relive's table for the connections of every unit dumped so far.
pub const MERGED: &str = "relive-locks";

/// The elements of each set in a table's listing: (set, elements).
fn set_elements(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut set: Option<String> = None;
    let mut elements: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("set ") {
            set = Some(rest.trim_end_matches('{').trim().to_owned());
        }
        if let Some(rest) = line.strip_prefix("elements = {") {
            elements = Some(String::new());
            collect(&mut elements, &mut found, &set, rest);
        } else if elements.is_some() {
            collect(&mut elements, &mut found, &set, line);
        }
    }
    found
}

/// Adds `part` of an elements list; at its closing brace, files it.
fn collect(
    elements: &mut Option<String>,
    found: &mut Vec<(String, String)>,
    set: &Option<String>,
    part: &str,
) {
    let Some(list) = elements.as_mut() else {
        return;
    };
    let (part, closed) = match part.strip_suffix('}') {
        Some(p) => (p, true),
        None => (part, false),
    };
    list.push_str(part.trim());
    list.push(' ');
    if closed {
        let list = elements.take().unwrap_or_default();
        if let Some(set) = set {
            found.push((set.clone(), list.trim().trim_end_matches(',').to_owned()));
        }
    }
}

/// The merged table's definition: the first lock table's own sets,
/// chains and rules under relive's name, without its elements.
fn definition(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("elements = {") {
            skipping = !trimmed.ends_with('}');
            continue;
        }
        if skipping {
            skipping = !trimmed.ends_with('}');
            continue;
        }
        match trimmed.strip_prefix("table inet ") {
            Some(_) => out.push_str(&format!("table inet {MERGED} {{\n")),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Moves `unit`'s connections from CRIU's `table` (listed as `text`) into
/// the merged table, made first when `first`, and deletes CRIU's.
pub fn merge(
    host: &dyn UnitHost,
    store: &Store,
    unit: &str,
    table: &str,
    text: &str,
    first: bool,
) -> Result<(), LockError> {
    let mut batch = if first {
        definition(text)
    } else {
        String::new()
    };
    for (set, elements) in set_elements(text) {
        batch += &format!("add element inet {MERGED} {set} {{ {elements} }}\n");
    }
    batch += &format!("delete table inet {table}\n");
    run_batch(host, store, unit, "merge", &batch)
}

/// Puts `unit`'s saved lock table back and takes its connections out of
/// the merged table, but for those the units in `still_merged` hold too:
/// a loopback connection between two preserved units is in both units'
/// tables, and its other end is not restored yet.
pub fn unmerge(
    host: &dyn UnitHost,
    store: &Store,
    unit: &str,
    still_merged: &[String],
) -> Result<(), LockError> {
    let saved = store.lock_file(unit);
    let read = |path: std::path::PathBuf| {
        std::fs::read_to_string(&path).map_err(|source| LockError::Io { path, source })
    };
    let text = read(saved.clone())?;
    let mut kept = std::collections::HashSet::new();
    for other in still_merged {
        for (set, elements) in set_elements(&read(store.lock_file(other))?) {
            kept.extend(split(&elements).map(|e| (set.clone(), e.to_owned())));
        }
    }
    let mut batch = format!("include \"{}\"\n", saved.display());
    for (set, elements) in set_elements(&text) {
        let own: Vec<&str> = split(&elements)
            .filter(|e| !kept.contains(&(set.clone(), (*e).to_owned())))
            .collect();
        if !own.is_empty() {
            batch += &format!(
                "delete element inet {MERGED} {set} {{ {} }}\n",
                own.join(", ")
            );
        }
    }
    run_batch(host, store, unit, "unmerge", &batch)
}

/// The elements of an elements list.
fn split(elements: &str) -> impl Iterator<Item = &str> {
    elements.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// Deletes the merged table, once no unit's connections need it.
pub fn drop_merged(host: &dyn UnitHost) {
    if let Err(e) = run_ok(host, &[NFT, "delete", "table", "inet", MERGED]) {
        tracing::warn!("cannot delete the network lock table {MERGED}: {e}");
    }
}

fn run_batch(
    host: &dyn UnitHost,
    store: &Store,
    unit: &str,
    what: &str,
    batch: &str,
) -> Result<(), LockError> {
    let path = store.root.join("lock").join(format!("{unit}.{what}.nft"));
    std::fs::write(&path, batch).map_err(|source| LockError::Io {
        path: path.clone(),
        source,
    })?;
    run_ok(host, &[NFT, "-f", &path.display().to_string()])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nft list table` of a CRIU 3.17 dump's lock (nft 1.0.6).
    const LISTED: &str = "table inet CRIU-812 {
\tset conns4 {
\t\ttype ipv4_addr . inet_service . ipv4_addr . inet_service
\t\telements = { 127.0.0.1 . 6379 . 127.0.0.1 . 43210,
\t\t\t     127.0.0.1 . 43210 . 127.0.0.1 . 6379 }
\t}

\tset conns6 {
\t\ttype ipv6_addr . inet_service . ipv6_addr . inet_service
\t}

\tchain output {
\t\ttype filter hook output priority filter; policy accept;
\t\tmeta mark 0x000c114 accept
\t\tip saddr . tcp sport . ip daddr . tcp dport @conns4 drop
\t}
}
";

    #[test]
    fn the_elements_of_each_set_are_read() {
        assert_eq!(
            set_elements(LISTED),
            [(
                "conns4".to_owned(),
                "127.0.0.1 . 6379 . 127.0.0.1 . 43210, 127.0.0.1 . 43210 . 127.0.0.1 . 6379"
                    .to_owned()
            )]
        );
        let one_line = "\tset conns4 {\n\t\telements = { 10.0.2.15 . 22 . 10.0.2.2 . 5555 }\n\t}\n";
        assert_eq!(
            set_elements(one_line)[0].1,
            "10.0.2.15 . 22 . 10.0.2.2 . 5555"
        );
    }

    #[test]
    fn the_merged_table_is_the_first_one_renamed_and_emptied() {
        let def = definition(LISTED);
        assert!(
            def.starts_with("table inet relive-locks {\n\tset conns4 {\n"),
            "{def}"
        );
        assert!(!def.contains("elements") && !def.contains("43210"), "{def}");
        assert!(def.contains("ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop"));
        assert!(def.trim_end().ends_with('}'));
    }

    #[test]
    fn a_merge_and_its_undo_are_one_nft_run_each() {
        let dir = std::env::temp_dir().join(format!("relive-lock-merge-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lock")).unwrap();
        let store = Store::at(&dir);
        std::fs::write(store.lock_file("redis.service"), LISTED).unwrap();
        let host = relive_host::fake::FakeHost::new(relive_api::plan::Plan::default());
        merge(&host, &store, "redis.service", "CRIU-812", LISTED, true).unwrap();
        let batch = std::fs::read_to_string(dir.join("lock/redis.service.merge.nft")).unwrap();
        assert!(batch.starts_with("table inet relive-locks {"), "{batch}");
        assert!(batch.ends_with(
            "add element inet relive-locks conns4 { 127.0.0.1 . 6379 . 127.0.0.1 . 43210, 127.0.0.1 . 43210 . 127.0.0.1 . 6379 }\ndelete table inet CRIU-812\n"
        ), "{batch}");
        unmerge(&host, &store, "redis.service", &[]).unwrap();
        let undo = std::fs::read_to_string(dir.join("lock/redis.service.unmerge.nft")).unwrap();
        assert_eq!(
            undo,
            format!(
                "include \"{}\"\ndelete element inet relive-locks conns4 {{ 127.0.0.1 . 6379 . 127.0.0.1 . 43210, 127.0.0.1 . 43210 . 127.0.0.1 . 6379 }}\n",
                store.lock_file("redis.service").display()
            )
        );
        let runs = host
            .calls()
            .into_iter()
            .filter(|c| matches!(c, relive_host::fake::HostCall::Helper(_)))
            .count();
        assert_eq!(runs, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A loopback connection between two preserved units is in both
    /// tables: undoing one keeps it dropped for the other, whose restore
    /// comes later (else the kernel resets it in between).
    #[test]
    fn an_undo_keeps_what_another_merged_unit_holds_too() {
        let dir = std::env::temp_dir().join(format!("relive-lock-shared-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lock")).unwrap();
        let store = Store::at(&dir);
        std::fs::write(store.lock_file("redis.service"), LISTED).unwrap();
        let client = "table inet CRIU-900 {\n\tset conns4 {\n\t\telements = { 127.0.0.1 . 43210 . 127.0.0.1 . 6379, 127.0.0.1 . 6379 . 127.0.0.1 . 43210 }\n\t}\n}\n";
        std::fs::write(store.lock_file("client.service"), client).unwrap();
        let host = relive_host::fake::FakeHost::new(relive_api::plan::Plan::default());
        unmerge(&host, &store, "redis.service", &["client.service".into()]).unwrap();
        let undo = std::fs::read_to_string(dir.join("lock/redis.service.unmerge.nft")).unwrap();
        assert!(!undo.contains("delete element"), "{undo}");
        // The client's own undo, redis back already: all of it goes.
        unmerge(&host, &store, "client.service", &[]).unwrap();
        let undo = std::fs::read_to_string(dir.join("lock/client.service.unmerge.nft")).unwrap();
        assert!(undo.ends_with("delete element inet relive-locks conns4 { 127.0.0.1 . 43210 . 127.0.0.1 . 6379, 127.0.0.1 . 6379 . 127.0.0.1 . 43210 }\n"), "{undo}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
