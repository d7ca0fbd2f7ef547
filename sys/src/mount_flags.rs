//! The per-mount flags of a process's mounts (read-only, noexec, nosuid,
//! nodev): what a sandbox set on each mount of a service's namespace,
//! read before a checkpoint and compared after the restore, because CRIU
//! 3.17 does not carry them for the namespace's root and for the mounts
//! it binds from PID 1's (its "external" mounts).

use std::io;

/// The protective flags relive looks at, as mountinfo names them.
pub const FLAGS: [&str; 4] = ["ro", "noexec", "nosuid", "nodev"];

/// Each mount of `pid`'s namespace (in mountinfo's order, the last of
/// several at one point on top) with the flags of [`FLAGS`] it has.
pub fn of_process(pid: i32) -> io::Result<Vec<(String, Vec<&'static str>)>> {
    let info = procfs::process::Process::new(pid)
        .and_then(|p| p.mountinfo())
        .map_err(|e| io::Error::other(format!("mountinfo of PID {pid}: {e}")))?;
    Ok(info
        .into_iter()
        .map(|m| {
            let flags = FLAGS
                .into_iter()
                .filter(|f| m.mount_options.contains_key(*f))
                .collect();
            (m.mount_point.to_string_lossy().into_owned(), flags)
        })
        .collect())
}

/// The mounts whose flags differ between `wanted` and `now` (the topmost
/// mount at each point counts), with the mount(8) options that set
/// `wanted`'s again: `remount,bind,ro,noexec,nosuid,nodev`. Deepest
/// first, / last: mount(8) itself runs from the namespace, and must not
/// find its own file system noexec yet.
pub fn to_restore(
    wanted: &[(String, Vec<&str>)],
    now: &[(String, Vec<&str>)],
) -> Vec<(String, String)> {
    let top = |list: &[(String, Vec<&str>)], path: &str| -> Option<Vec<String>> {
        list.iter()
            .rev()
            .find(|(p, _)| p == path)
            .map(|(_, f)| f.iter().map(|s| s.to_string()).collect())
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for (path, _) in wanted {
        if out.iter().any(|(p, _)| p == path) {
            continue;
        }
        let (Some(want), Some(have)) = (top(wanted, path), top(now, path)) else {
            continue;
        };
        if want != have {
            let option = |flag: &str, off: &str| {
                if want.iter().any(|w| w == flag) {
                    flag.to_string()
                } else {
                    off.to_string()
                }
            };
            let options = [
                option("ro", "rw"),
                option("noexec", "exec"),
                option("nosuid", "suid"),
                option("nodev", "dev"),
            ];
            out.push((path.clone(), format!("remount,bind,{}", options.join(","))));
        }
    }
    out.sort_by_key(|(path, _)| std::cmp::Reverse(std::path::Path::new(path).components().count()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_mounts_that_lost_a_flag_are_remounted() {
        let wanted = vec![
            ("/".to_string(), vec!["ro", "noexec"]),
            ("/usr".to_string(), vec!["ro"]),
            ("/tmp".to_string(), vec!["nosuid", "nodev"]),
        ];
        let now = vec![
            ("/".to_string(), vec![]),
            ("/usr".to_string(), vec![]),
            // Stacked: the later one is on top and has the flag.
            ("/usr".to_string(), vec!["ro"]),
            ("/tmp".to_string(), vec!["nosuid", "nodev"]),
        ];
        assert_eq!(
            to_restore(&wanted, &now),
            [(
                "/".to_string(),
                "remount,bind,ro,noexec,suid,dev".to_string()
            )]
        );
        let lost_all = vec![("/".to_string(), vec![]), ("/home".to_string(), vec![])];
        let wanted = vec![
            ("/".to_string(), vec!["noexec"]),
            ("/home".to_string(), vec!["ro"]),
        ];
        let order: Vec<String> = to_restore(&wanted, &lost_all)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(order, ["/home", "/"], "/ last");
    }
}
