//! The network lock CRIU leaves for a unit's TCP connections: an nftables
//! table that drops their packets while the unit is checkpointed, `inet
//! CRIU-<main pid>` from CRIU 3.x, `inet CRIU-<run id>` (a UUID of the
//! dump, kept in its images) from CRIU 4.x. The table vanishes with the old kernel: the new one must
//! have it before its network comes up, or it answers the peers with RST.
//! CRIU removes it after a successful restore.

use relive_host::{run_ok, HostError, UnitHost};
use relive_store::Store;
use std::path::PathBuf;

pub(crate) const NFT: &str = "/usr/sbin/nft";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// CRIU 3's name for the lock table of a dump rooted at `root_pid`.
pub fn table(root_pid: i32) -> String {
    format!("CRIU-{root_pid}")
}

/// CRIU's lock tables there are now (`inet CRIU-...`), to tell after a
/// dump which one is new: CRIU 4 names them by a run id.
pub fn tables(host: &dyn UnitHost) -> Vec<String> {
    let Ok(out) = host.run_helper(&[NFT, "list", "tables", "inet"]) else {
        return Vec::new();
    };
    out.stdout
        .lines()
        .filter_map(|line| line.trim().strip_prefix("table inet "))
        .filter(|name| name.starts_with("CRIU-"))
        .map(str::to_owned)
        .collect()
}

/// The lock table of the unit just dumped: CRIU 3's name for its root
/// PID, else the one CRIU table that was not there before the dump.
fn dumped_table(host: &dyn UnitHost, root_pid: i32, before: &[String]) -> Option<String> {
    let now = tables(host);
    let by_pid = table(root_pid);
    if now.contains(&by_pid) {
        return Some(by_pid);
    }
    let new: Vec<String> = now.into_iter().filter(|t| !before.contains(t)).collect();
    match new.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Saves the unit's lock table into the store; `before` are the tables
/// there were before its dump. None: there is none (the unit has no TCP
/// connections); else the table's name and text.
pub fn save(
    host: &dyn UnitHost,
    store: &Store,
    unit: &str,
    root_pid: i32,
    before: &[String],
) -> Result<Option<(String, String)>, LockError> {
    let Some(table) = dumped_table(host, root_pid, before) else {
        tracing::debug!("{unit}: no new network lock table");
        return Ok(None);
    };
    Ok(save_named(host, store, unit, &table)?.map(|text| (table, text)))
}

/// Saves the table `table` (CRIU 3's name, known without listing every
/// table) as `unit`'s. Returns its text, or None when there is none.
pub fn save_named(
    host: &dyn UnitHost,
    store: &Store,
    unit: &str,
    table: &str,
) -> Result<Option<String>, LockError> {
    let out = host.run_helper(&[NFT, "list", "table", "inet", table])?;
    if !out.status.success() || !out.stdout.contains("table inet") {
        tracing::debug!(
            "{unit}: no network lock table {table}: {}",
            out.stderr.trim()
        );
        return Ok(None);
    }
    write(store, unit, &out.stdout)?;
    Ok(Some(out.stdout))
}

/// Saves an empty table named `table` as `unit`'s: a unit without TCP
/// connections, whose CRIU table holds none (not listed: its name is
/// known). Its restore deletes the table by that name.
pub fn save_empty(store: &Store, unit: &str, table: &str) -> Result<(), LockError> {
    write(store, unit, &format!("table inet {table} {{\n}}\n"))
}

/// Deletes `tables` with one nft run.
pub fn delete_tables(host: &dyn UnitHost, tables: &[String]) -> Result<(), HostError> {
    let commands: Vec<Vec<String>> = tables
        .iter()
        .map(|t| ["delete", "table", "inet", t].map(str::to_owned).to_vec())
        .collect();
    run_commands(host, &commands)
}

/// Runs `commands` (each its words) in one nft run, one transaction:
/// if one fails, none is applied. Nothing to run: nothing done.
pub fn run_commands(host: &dyn UnitHost, commands: &[Vec<String>]) -> Result<(), HostError> {
    if commands.is_empty() {
        return Ok(());
    }
    let mut argv = vec![NFT];
    for (i, command) in commands.iter().enumerate() {
        if i > 0 {
            argv.push(";");
        }
        argv.extend(command.iter().map(String::as_str));
    }
    run_ok(host, &argv).map(drop)
}

fn write(store: &Store, unit: &str, text: &str) -> Result<(), LockError> {
    let path = store.lock_file(unit);
    std::fs::write(&path, text).map_err(|source| LockError::Io { path, source })
}

/// Puts the unit's saved lock table in place again.
pub fn load(host: &dyn UnitHost, store: &Store, unit: &str) -> Result<(), HostError> {
    let file = store.lock_file(unit).display().to_string();
    run_ok(host, &[NFT, "-f", &file]).map(drop)
}

/// Loads the network locks of `locked` (unit, its CRIU table's name) and
/// the holds of `held` (`syn_hold`) with one `nft` run (each run took
/// most of a second under emulation, in front of every restore), through
/// a file that includes theirs. The locks are one table
/// (`lock_merge::resume_ruleset`); when that fails (nft loads a file
/// whole or not at all), each unit's own table, file by file, so that one
/// bad table keeps no other out. Returns the units whose lock or hold
/// could not be loaded, with why.
pub fn load_all(
    host: &dyn UnitHost,
    store: &Store,
    locked: &[(String, String)],
    held: &[String],
) -> Vec<(String, HostError)> {
    // The holds' own table first (when saved: an older relive's holds
    // were tables of their own), then the units' ports into it.
    let hold_table = crate::syn_hold::table_file(store);
    let table_unit = crate::syn_hold::TABLE.to_owned();
    let holds: Vec<(&String, PathBuf)> = (!held.is_empty() && hold_table.exists())
        .then_some((&table_unit, hold_table.clone()))
        .into_iter()
        .chain(
            held.iter()
                .map(|unit| (unit, crate::syn_hold::file(store, unit))),
        )
        .collect();
    let load = |path: &PathBuf| run_ok(host, &[NFT, "-f", &path.display().to_string()]).map(drop);
    let together = |files: &[(&String, PathBuf)]| {
        let includes: String = files
            .iter()
            .map(|(_, path)| format!("include \"{}\"\n", path.display()))
            .collect();
        let file = store.root.join("lock").join("all.nft");
        std::fs::write(&file, includes).is_ok() && load(&file).is_ok()
    };
    let merged_unit = crate::lock_merge::MERGED.to_owned();
    let merged_file = store.root.join("lock").join("resume.nft");
    let merged = crate::lock_merge::resume_ruleset(store, locked)
        .filter(|ruleset| std::fs::write(&merged_file, ruleset).is_ok());
    if merged.is_some() {
        let files: Vec<(&String, PathBuf)> = std::iter::once((&merged_unit, merged_file))
            .chain(holds.iter().cloned())
            .collect();
        if together(&files) {
            crate::lock_merge::merged_on_resume(
                store,
                locked.iter().map(|(u, _)| u.clone()).collect(),
            );
            return Vec::new();
        }
        tracing::warn!("the merged network lock table did not load: each unit's own instead");
    }
    let files: Vec<(&String, PathBuf)> = locked
        .iter()
        .map(|(unit, _)| (unit, store.lock_file(unit)))
        .chain(holds)
        .collect();
    match files.as_slice() {
        [] => Vec::new(),
        [_, _, ..] if together(&files) => Vec::new(),
        _ => files
            .iter()
            .filter_map(|(unit, path)| load(path).err().map(|e| ((*unit).clone(), e)))
            .collect(),
    }
}

/// The name of `record`'s CRIU lock table.
pub fn table_of(record: &relive_api::report::UnitRecord) -> String {
    if record.lock_table.is_empty() {
        table(record.dumped_root())
    } else {
        record.lock_table.clone()
    }
}

/// Removes the lock table of a unit whose connections are gone (it was
/// not restored), or that runs again without CRIU having removed it.
pub fn remove(
    host: &dyn UnitHost,
    record: &relive_api::report::UnitRecord,
) -> Result<(), HostError> {
    run_ok(host, &[NFT, "delete", "table", "inet", &table_of(record)]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use relive_host::fake::FakeHost;

    fn host_with_tables(tables: &str) -> FakeHost {
        let host = FakeHost::new(relive_api::plan::Plan::default());
        host.with(|s| {
            s.helper_stdout
                .insert(format!("{NFT} list tables inet"), tables.to_owned())
        });
        host
    }

    #[test]
    fn holds_are_loaded_with_the_locks_in_one_nft_run() {
        let dir = std::env::temp_dir().join(format!("relive-netlock-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lock")).unwrap();
        let store = Store::at(&dir);
        std::fs::write(
            crate::syn_hold::table_file(&store),
            crate::syn_hold::table_ruleset(),
        )
        .unwrap();
        let host = FakeHost::new(relive_api::plan::Plan::default());
        let failed = load_all(
            &host,
            &store,
            &[("echo.service".into(), "CRIU-812".into())],
            &["greet.service".into()],
        );
        assert!(failed.is_empty(), "{failed:?}");
        let all = std::fs::read_to_string(dir.join("lock/all.nft")).unwrap();
        assert_eq!(
            all,
            format!(
                "include \"{0}/lock/echo.service.nft\"\ninclude \"{0}/lock/relive-hold.nft\"\ninclude \"{0}/lock/greet.service.hold.nft\"\n",
                dir.display()
            )
        );
        let runs: Vec<_> = host
            .calls()
            .into_iter()
            .filter(|c| matches!(c, relive_host::fake::HostCall::Helper(_)))
            .collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_new_table_is_the_unit_s() {
        // CRIU 4: named by the dump's run id, new since the dump began.
        let host = host_with_tables(
            "table inet CRIU-1c2d\ntable inet filter\ntable inet CRIU-9f3e-41aa\n",
        );
        assert_eq!(tables(&host), ["CRIU-1c2d", "CRIU-9f3e-41aa"]);
        assert_eq!(
            dumped_table(&host, 812, &["CRIU-1c2d".to_owned()]).as_deref(),
            Some("CRIU-9f3e-41aa")
        );
        // Nothing new: the unit had no TCP connection to lock.
        let all = tables(&host);
        assert_eq!(dumped_table(&host, 812, &all), None);
        // CRIU 3: named by the main PID, whatever else is there.
        let host = host_with_tables("table inet CRIU-812\ntable inet CRIU-9f3e\n");
        assert_eq!(dumped_table(&host, 812, &[]).as_deref(), Some("CRIU-812"));
    }

    #[test]
    fn empty_tables_are_deleted_in_one_run() {
        let host = FakeHost::new(relive_api::plan::Plan::default());
        delete_tables(&host, &[]).unwrap();
        delete_tables(&host, &["CRIU-7".into(), "CRIU-8".into()]).unwrap();
        let runs: Vec<_> = host
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                relive_host::fake::HostCall::Helper(argv) => Some(argv.join(" ")),
                _ => None,
            })
            .collect();
        assert_eq!(
            runs,
            [format!(
                "{NFT} delete table inet CRIU-7 ; delete table inet CRIU-8"
            )]
        );
    }
}
