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
//!
//! The new kernel gets one table too ([`resume_ruleset`]): every unit's
//! connections in relive's table, and under each CRIU name an empty
//! table, which CRIU deletes by name at the end of the unit's restore
//! (its network unlock). Loaded as 80 CRIU tables, they made every later
//! nft run slow (a third of a second each under emulation, one per
//! restore and one per hold). A unit's connections leave relive's table
//! at CRIU's "post-restore" ([`release_on_resume`]), where CRIU itself
//! would unlock them: the sockets are rebuilt and the tasks not yet run.

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
    let others = still_merged
        .iter()
        .map(|other| read(store.lock_file(other)))
        .collect::<Result<Vec<_>, _>>()?;
    let batch = format!(
        "include \"{}\"\n{}",
        saved.display(),
        deletions(&text, others.iter().map(String::as_str))
    );
    run_batch(host, store, unit, "unmerge", &batch)
}

/// The `delete element` commands that take the connections of `own` (a
/// saved table's text) out of the merged table, but for those a table of
/// `others` holds too.
fn deletions<'a>(own: &str, others: impl IntoIterator<Item = &'a str>) -> String {
    let kept: std::collections::HashSet<(String, String)> = others
        .into_iter()
        .flat_map(set_elements)
        .flat_map(|(set, elements)| {
            split(&elements)
                .map(|e| (set.clone(), e.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut batch = String::new();
    for (set, elements) in set_elements(own) {
        let released: Vec<&str> = split(&elements)
            .filter(|e| !kept.contains(&(set.clone(), (*e).to_owned())))
            .collect();
        if !released.is_empty() {
            batch += &format!(
                "delete element inet {MERGED} {set} {{ {} }}\n",
                released.join(", ")
            );
        }
    }
    batch
}

/// The new kernel's lock ruleset for `locked` (unit, its CRIU table's
/// name), from their saved tables; None when none could be read.
pub fn resume_ruleset(store: &Store, locked: &[(String, String)]) -> Option<String> {
    let texts: Vec<(&str, String)> = locked
        .iter()
        .filter_map(|(unit, table)| {
            let text = std::fs::read_to_string(store.lock_file(unit));
            text.inspect_err(|e| tracing::warn!("{unit}: its network lock is unreadable: {e}"))
                .ok()
                .map(|text| (table.as_str(), text))
        })
        .collect();
    if texts.is_empty() {
        return None;
    }
    // The first table with sets in it (a unit without TCP connections
    // saved an empty one), else an empty table of relive's name.
    let mut ruleset = texts
        .iter()
        .find(|(_, text)| text.lines().any(|l| l.trim_start().starts_with("set ")))
        .map_or_else(
            || format!("table inet {MERGED} {{\n}}\n"),
            |(_, text)| definition(text),
        );
    for (table, text) in &texts {
        for (set, elements) in set_elements(text) {
            ruleset += &format!("add element inet {MERGED} {set} {{ {elements} }}\n");
        }
        ruleset += &format!("add table inet {table}\n");
    }
    Some(ruleset)
}

/// The store whose units' connections wait in the new kernel's merged
/// table, and those units with their saved tables' text (read once);
/// None while the units' own tables hold them (or no upgrade resumes).
type OnResume = Option<(std::path::PathBuf, Vec<(String, String)>)>;
static ON_RESUME: std::sync::Mutex<OnResume> = std::sync::Mutex::new(None);

fn on_resume() -> std::sync::MutexGuard<'static, OnResume> {
    ON_RESUME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The merged table of [`resume_ruleset`] was loaded for `units` of
/// `store`.
pub fn merged_on_resume(store: &Store, units: Vec<String>) {
    let texts = units
        .into_iter()
        .map(|unit| {
            let text = std::fs::read_to_string(store.lock_file(&unit)).unwrap_or_default();
            (unit, text)
        })
        .collect();
    *on_resume() = Some((store.root.clone(), texts));
}

/// `unit` is restored and its images passed their check: its
/// connections leave the merged table, but for those a unit not yet
/// released holds too (a loopback connection's other end). One release
/// at a time: two at once could each delete an element the other holds,
/// and a batch that deletes a missing element fails whole.
pub fn release_on_resume(host: &dyn UnitHost, store: &Store, unit: &str) {
    let mut waiting = on_resume();
    let Some((_, units)) = waiting.as_mut().filter(|(root, _)| *root == store.root) else {
        return;
    };
    let Some(at) = units.iter().position(|(u, _)| u == unit) else {
        return;
    };
    let (_, own) = units.remove(at);
    let batch = deletions(&own, units.iter().map(|(_, text)| text.as_str()));
    if batch.is_empty() {
        return;
    }
    if let Err(e) = run_batch(host, store, unit, "release", &batch) {
        tracing::error!("{unit}: its connections stay locked until the restores end: {e}");
    }
}

/// Once the restores are over: the merged table goes, with the
/// connections of units that were not restored.
pub fn end_on_resume(host: &dyn UnitHost, store: &Store) {
    let mut waiting = on_resume();
    if waiting
        .as_ref()
        .is_some_and(|(root, _)| *root == store.root)
    {
        *waiting = None;
        drop(waiting);
        drop_merged(host);
    }
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

    /// In the new kernel: one table with every unit's connections and an
    /// empty table under each CRIU name; each restore lets its own
    /// connections through, a loopback one only once both ends are back.
    #[test]
    fn the_new_kernel_gets_one_table_and_each_restore_releases_its_own() {
        let dir = std::env::temp_dir().join(format!("relive-lock-resume-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lock")).unwrap();
        let store = Store::at(&dir);
        std::fs::write(store.lock_file("redis.service"), LISTED).unwrap();
        let client = "table inet CRIU-900 {\n\tset conns4 {\n\t\telements = { 127.0.0.1 . 43210 . 127.0.0.1 . 6379, 127.0.0.1 . 6379 . 127.0.0.1 . 43210, 10.0.2.15 . 22 . 10.0.2.2 . 5555 }\n\t}\n}\n";
        std::fs::write(store.lock_file("client.service"), client).unwrap();
        let locked = [
            ("redis.service".to_owned(), "CRIU-812".to_owned()),
            ("client.service".to_owned(), "CRIU-900".to_owned()),
        ];
        let ruleset = resume_ruleset(&store, &locked).unwrap();
        assert!(
            ruleset.starts_with("table inet relive-locks {"),
            "{ruleset}"
        );
        assert!(!ruleset.contains("table inet CRIU-812 {"), "{ruleset}");
        assert!(ruleset.contains("add table inet CRIU-812\n"), "{ruleset}");
        assert!(ruleset.contains("add table inet CRIU-900\n"), "{ruleset}");
        assert!(ruleset.contains(
            "add element inet relive-locks conns4 { 127.0.0.1 . 43210 . 127.0.0.1 . 6379, 127.0.0.1 . 6379 . 127.0.0.1 . 43210, 10.0.2.15 . 22 . 10.0.2.2 . 5555 }\n"
        ), "{ruleset}");
        let host = relive_host::fake::FakeHost::new(relive_api::plan::Plan::default());
        let runs = || {
            host.calls()
                .into_iter()
                .filter(|c| matches!(c, relive_host::fake::HostCall::Helper(_)))
                .count()
        };
        // Not merged (each unit's own table loaded): CRIU unlocks.
        release_on_resume(&host, &store, "redis.service");
        assert_eq!(runs(), 0);
        merged_on_resume(&store, locked.iter().map(|(u, _)| u.clone()).collect());
        // redis's connections are all the client's too: nothing goes yet.
        release_on_resume(&host, &store, "redis.service");
        assert_eq!(runs(), 0);
        release_on_resume(&host, &store, "client.service");
        assert_eq!(runs(), 1);
        let released =
            std::fs::read_to_string(dir.join("lock/client.service.release.nft")).unwrap();
        assert_eq!(released, "delete element inet relive-locks conns4 { 127.0.0.1 . 43210 . 127.0.0.1 . 6379, 127.0.0.1 . 6379 . 127.0.0.1 . 43210, 10.0.2.15 . 22 . 10.0.2.2 . 5555 }\n");
        // Released once only; the table goes at the end.
        release_on_resume(&host, &store, "client.service");
        assert_eq!(runs(), 1);
        end_on_resume(&host, &store);
        assert_eq!(runs(), 2);
        end_on_resume(&host, &store);
        assert_eq!(runs(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A unit without connections saved an empty table: the definition
    /// comes from one with sets, and the empty one is only a name.
    #[test]
    fn an_empty_table_gives_a_name_not_the_definition() {
        let dir = std::env::temp_dir().join(format!("relive-lock-empty-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lock")).unwrap();
        let store = Store::at(&dir);
        crate::netlock::save_empty(&store, "idle.service", "CRIU-700").unwrap();
        std::fs::write(store.lock_file("redis.service"), LISTED).unwrap();
        let only_empty = [("idle.service".to_owned(), "CRIU-700".to_owned())];
        assert_eq!(
            resume_ruleset(&store, &only_empty).unwrap(),
            "table inet relive-locks {\n}\nadd table inet CRIU-700\n"
        );
        let both = [
            only_empty[0].clone(),
            ("redis.service".to_owned(), "CRIU-812".to_owned()),
        ];
        let ruleset = resume_ruleset(&store, &both).unwrap();
        assert!(
            ruleset.starts_with("table inet relive-locks {\n\tset conns4 {"),
            "{ruleset}"
        );
        assert!(
            ruleset.contains("add table inet CRIU-700\nadd element"),
            "{ruleset}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
