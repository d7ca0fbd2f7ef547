//! A unit's processes as CRIU checkpoints them: one process tree, rooted
//! at the unit's topmost process. That is the main process as a rule; a
//! supervisor whose PID file names its child (Type=forking) has its main
//! process below the root, and CRIU dumps from the root, which crosses the
//! kexec with it.

/// The topmost of `pids` above `main_pid`: its parent, the parent's
/// parent and so on while they belong to the unit (`pids`).
pub fn root(main_pid: u32, pids: &[u32]) -> u32 {
    let mut root = main_pid;
    // A bound, for a parent chain that loops while processes come and go.
    for _ in 0..pids.len() {
        match parent(root) {
            Some(parent) if parent != root && pids.contains(&parent) => root = parent,
            _ => break,
        }
    }
    root
}

/// The process CRIU dumps the unit from ([`root`]), and whether as a
/// shell job (it leads no session: [`leads_its_session`]).
pub fn dump_root(main_pid: u32, pids: &[u32]) -> (u32, bool) {
    let root = root(main_pid, pids);
    (root, !leads_its_session(root))
}

/// `root` and every process below it, from /proc's children files.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let pid = tree[i];
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten();
        for task in tasks {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            tree.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        i += 1;
    }
    tree
}

/// Whether `pid` leads its session. CRIU dumps a root that does not only
/// as a shell job: the session (and process group) it belongs to is then
/// outside the tree, and the restore gives it CRIU's own.
pub fn leads_its_session(pid: u32) -> bool {
    procfs::process::Process::new(pid as i32)
        .and_then(|p| p.stat())
        .is_ok_and(|stat| u32::try_from(stat.session).is_ok_and(|sid| sid == pid))
}

fn parent(pid: u32) -> Option<u32> {
    let stat = procfs::process::Process::new(pid as i32)
        .ok()?
        .stat()
        .ok()?;
    u32::try_from(stat.ppid).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_topmost_process_of_the_unit() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let child_pid = child.id();
        // The child alone: its own root. With its parent in the unit: the
        // parent, whose tree holds both.
        assert_eq!(root(child_pid, &[child_pid]), child_pid);
        assert_eq!(root(child_pid, &[child_pid, me]), me);
        assert!(descendants(me).contains(&child_pid));
        // The child of a process that is not a session leader leads none.
        assert!(!leads_its_session(child_pid));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
