//! `relivectl live-upgrade`: the plan, for people.

use relive::upgrade::plan::Plan;
use relive::upgrade::preflight::human;
use std::fmt::Write;

/// The plan as text: what happens to each unit, in which order, what it
/// costs, what will not survive, and how the preflight went.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Preserved (frozen in this order, restored in reverse):"
    );
    if plan.preserved.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for u in &plan.preserved {
        let pids: Vec<String> = u.pids.iter().map(u32::to_string).collect();
        let _ = writeln!(
            out,
            "  {:<32} priority {:>4}  ~{:>10}  PIDs {}",
            u.name,
            u.priority,
            human(u.estimated_bytes),
            pids.join(" ")
        );
    }
    let list = |names: &[String]| {
        if names.is_empty() {
            "(none)".to_owned()
        } else {
            names.join(" ")
        }
    };
    let _ = writeln!(out, "Restarted: {}", list(&plan.restarted));
    let _ = writeln!(out, "Rerun:     {}", list(&plan.rerun));
    let _ = writeln!(
        out,
        "Estimated image size: {}",
        human(plan.estimated_image_bytes)
    );
    if plan.doomed_connections.is_empty() {
        let _ = writeln!(out, "Connections that cannot survive: none");
    } else {
        let _ = writeln!(out, "Connections that cannot survive:");
        for c in &plan.doomed_connections {
            let _ = writeln!(
                out,
                "  {} (PID {}) {} -> {}: {}",
                c.unit, c.pid, c.local, c.remote, c.reason
            );
        }
    }
    let _ = writeln!(out, "Preflight:");
    for c in &plan.checks {
        let _ = writeln!(
            out,
            "  {} {:<8} {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use relive::upgrade::plan::{Check, DoomedConnection, PlannedUnit};

    #[test]
    fn the_plan_reads_in_order() {
        let plan = Plan {
            preserved: vec![
                PlannedUnit {
                    name: "counter.service".into(),
                    priority: 500,
                    pids: vec![20001],
                    estimated_bytes: 16 << 20,
                },
                PlannedUnit {
                    name: "echo.service".into(),
                    priority: 900,
                    pids: vec![20002, 20003],
                    estimated_bytes: 1 << 20,
                },
            ],
            restarted: vec!["web.service".into()],
            rerun: vec![],
            estimated_image_bytes: 17 << 20,
            doomed_connections: vec![DoomedConnection {
                unit: "echo.service".into(),
                pid: 20002,
                local: "127.0.0.1:7000".into(),
                remote: "127.0.0.1:40000".into(),
                reason:
                    "its local peer is web.service (not preserved): the connection will be reset"
                        .into(),
            }],
            checks: vec![Check {
                name: "kexec".into(),
                ok: false,
                detail: "skipped".into(),
            }],
        };
        let text = render(&plan);
        let counter = text.find("counter.service").unwrap();
        let echo = text.find("echo.service").unwrap();
        assert!(counter < echo, "{text}");
        assert!(text.contains("Restarted: web.service"), "{text}");
        assert!(text.contains("Rerun:     (none)"), "{text}");
        assert!(text.contains("Estimated image size: 17.0 MiB"), "{text}");
        assert!(text.contains("FAIL kexec"), "{text}");
        assert!(text.contains("will be reset"), "{text}");
    }
}
