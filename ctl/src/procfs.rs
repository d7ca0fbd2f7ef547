//! What `status` shows about a process, read from /proc on the caller's
//! side: the server only sends PIDs.

use std::fs;

/// Where process names come from; a trait so that tests need no /proc.
pub trait ProcInfo {
    /// The arguments, or None if the process is gone or unreadable.
    fn cmdline(&self, pid: u32) -> Option<Vec<String>>;
    /// The kernel's short name of the process.
    fn comm(&self, pid: u32) -> Option<String>;
}

/// The real /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct Proc;

impl ProcInfo for Proc {
    fn cmdline(&self, pid: u32) -> Option<Vec<String>> {
        fs::read(format!("/proc/{pid}/cmdline"))
            .ok()
            .map(|raw| split_cmdline(&raw))
    }

    fn comm(&self, pid: u32) -> Option<String> {
        let comm = fs::read(format!("/proc/{pid}/comm")).ok()?;
        let comm = String::from_utf8_lossy(&comm)
            .trim_end_matches('\n')
            .to_owned();
        (!comm.is_empty()).then_some(comm)
    }
}

/// /proc/PID/cmdline holds NUL-terminated arguments.
pub fn split_cmdline(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// One line for a process: its arguments, quoted where a reader could not
/// tell where one ends; `(comm)` for a process without arguments (a zombie
/// or a kernel thread); nothing if it is gone.
pub fn describe(procs: &dyn ProcInfo, pid: u32) -> String {
    match procs.cmdline(pid) {
        Some(args) if !args.is_empty() => join_args(&args),
        _ => procs
            .comm(pid)
            .map(|c| format!("({c})"))
            .unwrap_or_default(),
    }
}

/// Joins arguments with spaces, double-quoting those that hold spaces,
/// quotes or control characters, or are empty.
pub fn join_args(args: &[String]) -> String {
    args.iter()
        .map(|a| quote_arg(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote_arg(arg: &str) -> String {
    let plain = !arg.is_empty()
        && !arg
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\');
    if plain {
        return arg.to_owned();
    }
    let mut q = String::with_capacity(arg.len() + 2);
    q.push('"');
    for c in arg.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c if c.is_control() => q.push_str(&c.escape_unicode().to_string()),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl ProcInfo for Fake {
        fn cmdline(&self, pid: u32) -> Option<Vec<String>> {
            match pid {
                1 => Some(vec!["/sbin/relive".into()]),
                2 => Some(vec![]),
                _ => None,
            }
        }
        fn comm(&self, pid: u32) -> Option<String> {
            (pid == 2).then(|| "kthreadd".into())
        }
    }

    #[test]
    fn cmdline_is_split_on_nul() {
        assert_eq!(
            split_cmdline(b"/usr/sbin/sshd\0-D\0"),
            ["/usr/sbin/sshd", "-D"]
        );
        assert_eq!(split_cmdline(b"a\0\0b\0"), ["a", "", "b"]);
        assert_eq!(
            split_cmdline(b"sshd: listener [0 of 10]"),
            ["sshd: listener [0 of 10]"]
        );
        assert!(split_cmdline(b"").is_empty());
    }

    #[test]
    fn arguments_are_quoted_only_when_needed() {
        let args: Vec<String> = ["sh", "-c", "echo \"hi\"", "", "a\\b\n"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(join_args(&args), r#"sh -c "echo \"hi\"" "" "a\\b\n""#);
    }

    #[test]
    fn processes_without_arguments_show_their_name() {
        assert_eq!(describe(&Fake, 1), "/sbin/relive");
        assert_eq!(describe(&Fake, 2), "(kthreadd)");
        assert_eq!(describe(&Fake, 3), "");
    }

    #[test]
    fn our_own_process_is_readable() {
        let me = std::process::id();
        assert!(!describe(&Proc, me).is_empty());
        assert!(Proc.comm(me).is_some());
    }
}
