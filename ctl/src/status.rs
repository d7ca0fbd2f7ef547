//! The `status` block, laid out like systemctl's so that eyes trained on it
//! find things where they expect them.

use std::path::Path;

use relive_api::units::UnitStatus;

use crate::procfs::{self, ProcInfo};
use crate::time;

/// Labels are right-aligned to this width, as systemctl does.
const LABEL: usize = 12;

/// What the block needs besides the unit: the clock, /proc, and how to
/// print an absolute time (all fixed in tests).
pub struct Ctx<'a> {
    pub now_usec: u64,
    pub procs: &'a dyn ProcInfo,
    pub timestamp: &'a dyn Fn(u64) -> String,
    /// Show at most this many output lines; None shows what the server sent.
    pub lines: Option<usize>,
}

/// The block for one unit, ending with a newline.
pub fn render(st: &UnitStatus, ctx: &Ctx<'_>) -> String {
    let mut b = Block::default();
    b.raw(&headline(st));
    b.field("Loaded", &loaded(st));
    drop_ins(&mut b, &st.dropins);
    b.field("Active", &active(st, ctx));
    if st.main_pid != 0 {
        b.field("Main PID", &main_pid(st.main_pid, ctx.procs));
    }
    if !st.status_text.is_empty() {
        b.field("Status", &format!("\"{}\"", st.status_text));
    }
    // Only services restart; a target's count would always read 0.
    if st.name.ends_with(".service") && st.load_state == "loaded" {
        b.field("Restarts", &st.restarts.to_string());
    }
    if !st.upgrade_mode.is_empty() {
        let upgrade = format!("{}, priority {}", st.upgrade_mode, st.upgrade_priority);
        b.field("Upgrade", &upgrade);
    }
    for w in &st.warnings {
        b.field("Warning", w);
    }
    if !st.cgroup.is_empty() {
        b.field("CGroup", &st.cgroup);
        b.tree(&process_lines(&st.pids, ctx.procs));
    }
    let shown = ctx.lines.unwrap_or(st.output.len()).min(st.output.len());
    if shown > 0 {
        b.raw("");
        for line in &st.output[st.output.len() - shown..] {
            b.raw(line);
        }
    }
    b.0
}

/// Lines with right-aligned labels, like `     Active: ...`.
#[derive(Debug, Default)]
struct Block(String);

impl Block {
    fn raw(&mut self, line: &str) {
        self.0.push_str(line);
        self.0.push('\n');
    }

    fn field(&mut self, label: &str, value: &str) {
        let label = format!("{label}:");
        self.raw(&format!("{label:>LABEL$} {value}"));
    }

    /// Continuation lines under a field, drawn as a tree.
    fn tree(&mut self, items: &[String]) {
        for (i, item) in items.iter().enumerate() {
            let branch = if i + 1 == items.len() {
                "└─"
            } else {
                "├─"
            };
            self.raw(&format!("{:LABEL$} {branch}{item}", ""));
        }
    }

    fn continuation(&mut self, value: &str) {
        self.raw(&format!("{:LABEL$} {value}", ""));
    }
}

fn headline(st: &UnitStatus) -> String {
    if st.description.is_empty() {
        format!("● {}", st.name)
    } else {
        format!("● {} - {}", st.name, st.description)
    }
}

/// `loaded (/etc/systemd/system/foo.service)`, or the reason it is not.
fn loaded(st: &UnitStatus) -> String {
    let mut why = Vec::new();
    if !st.fragment.is_empty() {
        why.push(st.fragment.clone());
    }
    if !st.load_error.is_empty() {
        why.push(format!("Reason: {}", st.load_error));
    } else if st.load_state == "not-found" {
        why.push(format!("Reason: Unit {} not found.", st.name));
    }
    if why.is_empty() {
        st.load_state.clone()
    } else {
        format!("{} ({})", st.load_state, why.join("; "))
    }
}

/// Drop-ins grouped by directory, as systemctl shows them:
/// `Drop-In: /etc/systemd/system/foo.service.d` then `└─a.conf, b.conf`.
fn drop_ins(b: &mut Block, dropins: &[String]) {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for d in dropins {
        let p = Path::new(d);
        let dir = p
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let file = p
            .file_name()
            .map_or_else(|| d.clone(), |f| f.to_string_lossy().into_owned());
        match groups.iter_mut().find(|(g, _)| *g == dir) {
            Some((_, files)) => files.push(file),
            None => groups.push((dir, vec![file])),
        }
    }
    for (i, (dir, files)) in groups.iter().enumerate() {
        if i == 0 {
            b.field("Drop-In", dir);
        } else {
            b.continuation(dir);
        }
        b.continuation(&format!("└─{}", files.join(", ")));
    }
}

/// `active (running) since <time>; 2h ago`, or `failed (Result: exit-code) ...`.
fn active(st: &UnitStatus, ctx: &Ctx<'_>) -> String {
    let mut s = if st.active_state == "failed" && !st.result.is_empty() {
        format!("failed (Result: {})", st.result)
    } else if st.sub_state.is_empty() || st.sub_state == st.active_state {
        // "active (active)" says nothing twice; systemctl prints it once.
        st.active_state.clone()
    } else {
        format!("{} ({})", st.active_state, st.sub_state)
    };
    // Zero means the unit never changed state since relive started.
    if st.state_change_usec != 0 {
        s.push_str(&format!(
            " since {}; {}",
            (ctx.timestamp)(st.state_change_usec),
            time::format_relative(ctx.now_usec, st.state_change_usec)
        ));
    }
    s
}

fn main_pid(pid: u32, procs: &dyn ProcInfo) -> String {
    match procs.comm(pid) {
        Some(comm) => format!("{pid} ({comm})"),
        None => pid.to_string(),
    }
}

fn process_lines(pids: &[u32], procs: &dyn ProcInfo) -> Vec<String> {
    pids.iter()
        .map(|&pid| {
            let what = procfs::describe(procs, pid);
            if what.is_empty() {
                pid.to_string()
            } else {
                format!("{pid} {what}")
            }
        })
        .collect()
}

/// Active as `status` and `is-active` count it: reloading keeps serving.
pub fn is_active(active_state: &str) -> bool {
    matches!(active_state, "active" | "reloading")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl ProcInfo for Fake {
        fn cmdline(&self, pid: u32) -> Option<Vec<String>> {
            match pid {
                100 => Some(vec![
                    "/usr/bin/food".into(),
                    "--config".into(),
                    "a b".into(),
                ]),
                101 => Some(vec![]),
                _ => None,
            }
        }
        fn comm(&self, pid: u32) -> Option<String> {
            match pid {
                100 => Some("food".into()),
                101 => Some("worker".into()),
                _ => None,
            }
        }
    }

    const NOW: u64 = 1_700_000_000_000_000;

    fn ctx(lines: Option<usize>) -> Ctx<'static> {
        Ctx {
            now_usec: NOW,
            procs: &Fake,
            timestamp: &|_| "Tue 2023-11-14 22:13:20 UTC".to_owned(),
            lines,
        }
    }

    fn running() -> UnitStatus {
        UnitStatus {
            name: "food.service".into(),
            description: "Food daemon".into(),
            load_state: "loaded".into(),
            load_error: String::new(),
            fragment: "/etc/systemd/system/food.service".into(),
            dropins: vec![
                "/etc/systemd/system/food.service.d/a.conf".into(),
                "/run/systemd/system/food.service.d/b.conf".into(),
                "/etc/systemd/system/food.service.d/c.conf".into(),
            ],
            active_state: "active".into(),
            sub_state: "running".into(),
            result: "success".into(),
            state_change_usec: NOW - (2 * 3600 + 180) * 1_000_000,
            main_pid: 100,
            cgroup: "/system.slice/food.service".into(),
            pids: vec![100, 101, 102],
            restarts: 2,
            status_text: "Serving 3 clients".into(),
            upgrade_mode: "preserve".into(),
            upgrade_priority: 500,
            warnings: vec!["food.service:7: unsupported directive PrivateTmp".into()],
            output: vec!["one".into(), "two".into(), "three".into()],
        }
    }

    #[test]
    fn running_service() {
        let want = "\
● food.service - Food daemon
     Loaded: loaded (/etc/systemd/system/food.service)
    Drop-In: /etc/systemd/system/food.service.d
             └─a.conf, c.conf
             /run/systemd/system/food.service.d
             └─b.conf
     Active: active (running) since Tue 2023-11-14 22:13:20 UTC; 2h 3min ago
   Main PID: 100 (food)
     Status: \"Serving 3 clients\"
   Restarts: 2
    Upgrade: preserve, priority 500
    Warning: food.service:7: unsupported directive PrivateTmp
     CGroup: /system.slice/food.service
             ├─100 /usr/bin/food --config \"a b\"
             ├─101 (worker)
             └─102

one
two
three
";
        assert_eq!(render(&running(), &ctx(None)), want);
    }

    #[test]
    fn output_lines_can_be_capped() {
        let got = render(&running(), &ctx(Some(1)));
        assert!(got.ends_with("└─102\n\nthree\n"), "{got}");
        let got = render(&running(), &ctx(Some(0)));
        assert!(got.ends_with("└─102\n"), "{got}");
        assert!(render(&running(), &ctx(Some(99))).ends_with("\none\ntwo\nthree\n"));
    }

    #[test]
    fn failed_service_shows_its_result() {
        let mut st = running();
        st.active_state = "failed".into();
        st.sub_state = "failed".into();
        st.result = "exit-code".into();
        st.main_pid = 0;
        st.pids.clear();
        st.dropins.clear();
        st.output.clear();
        st.warnings.clear();
        st.status_text.clear();
        let got = render(&st, &ctx(None));
        assert!(got.contains(
            "     Active: failed (Result: exit-code) since Tue 2023-11-14 22:13:20 UTC; 2h 3min ago\n"
        ));
        assert!(!got.contains("Main PID") && !got.contains("Drop-In") && !got.contains("Status"));
        assert!(
            got.ends_with("     CGroup: /system.slice/food.service\n"),
            "{got}"
        );
    }

    #[test]
    fn unit_that_failed_to_load() {
        let st = UnitStatus {
            name: "bad.service".into(),
            description: String::new(),
            load_state: "error".into(),
            load_error: "bad.service:3: ExecStart= is missing".into(),
            fragment: "/etc/systemd/system/bad.service".into(),
            dropins: vec![],
            active_state: "inactive".into(),
            sub_state: "dead".into(),
            result: String::new(),
            state_change_usec: 0,
            main_pid: 0,
            cgroup: String::new(),
            pids: vec![],
            restarts: 0,
            status_text: String::new(),
            upgrade_mode: String::new(),
            upgrade_priority: 0,
            warnings: vec![],
            output: vec![],
        };
        let want = "\
● bad.service
     Loaded: error (/etc/systemd/system/bad.service; Reason: bad.service:3: ExecStart= is missing)
     Active: inactive (dead)
";
        assert_eq!(render(&st, &ctx(None)), want);
        let nf = UnitStatus {
            load_state: "not-found".into(),
            load_error: String::new(),
            fragment: String::new(),
            ..st
        };
        assert!(render(&nf, &ctx(None))
            .contains("     Loaded: not-found (Reason: Unit bad.service not found.)\n"));
    }

    #[test]
    fn target_shows_no_restarts_nor_a_repeated_state() {
        let mut st = running();
        st.name = "multi-user.target".into();
        st.sub_state = "active".into();
        let got = render(&st, &ctx(None));
        assert!(got.contains("     Active: active since "), "{got}");
        assert!(!got.contains("Restarts"), "{got}");
    }

    #[test]
    fn activity() {
        assert!(is_active("active") && is_active("reloading"));
        assert!(!is_active("activating") && !is_active("failed") && !is_active("inactive"));
    }
}
