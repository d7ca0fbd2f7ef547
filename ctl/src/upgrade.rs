//! `relivectl live-upgrade`: the plan, for people.

use relive_api::human;
use relive_api::plan::Plan;
use relive_api::report::{FinalDump, Outcome, TiePeer, UnitMode, UpgradeReport};
use relive_api::warm::Warm;
use std::fmt::Write;

/// The plan as text: what happens to each unit, in which order, what it
/// costs, what will not survive, and how the preflight went.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    if let Some(release) = &plan.next_release {
        let _ = writeln!(out, "Next kernel: {release}");
    }
    let _ = writeln!(
        out,
        "Preserved (frozen in this order, restored in reverse):"
    );
    if plan.preserved.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for u in &plan.preserved {
        let pids: Vec<String> = u.pids.iter().map(u32::to_string).collect();
        let pre_dump = match (u.pre_dump, u.pre_dump_max_rounds) {
            (false, _) => "no pre-dump".to_owned(),
            (true, Some(n)) => format!("pre-dump <= {n} rounds"),
            (true, None) => "pre-dump".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {:<32} priority {:>4}  ~{:>10}  {:<22} PIDs {}",
            u.name,
            u.priority,
            human(u.estimated_bytes),
            pre_dump,
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
    for group in plan.groups() {
        let _ = writeln!(
            out,
            "  group (frozen and restored together): {}",
            group.join(" ")
        );
    }
    for link in &plan.unix_links {
        let name = match link.name.as_str() {
            "" => String::new(),
            name => format!(" ({name})"),
        };
        let _ = writeln!(
            out,
            "    {} <-> {}: unix {} socket{name}, kept",
            link.a,
            link.b,
            link.kind.name()
        );
    }
    for link in &plan.pipe_links {
        let _ = writeln!(out, "    {} <-> {}: {}, kept", link.a, link.b, link.name);
    }
    let _ = writeln!(out, "Restarted: {}", list(&plan.restarted));
    for (unit, paths) in &plan.carried_on_restart {
        let paths: Vec<String> = paths.iter().map(|p| format!("/run/{p}")).collect();
        let _ = writeln!(out, "  {unit} finds again: {}", paths.join(" "));
    }
    let _ = writeln!(out, "Rerun:     {}", list(&plan.rerun));
    if !plan.why.is_empty() {
        let _ = writeln!(out, "Why:");
        let width = plan.why.iter().map(|(u, _)| u.len()).max().unwrap_or(0);
        for (unit, why) in &plan.why {
            let _ = writeln!(out, "  {unit:<width$}  {why}");
        }
    }
    let _ = writeln!(
        out,
        "Estimated image size: {}",
        human(plan.estimated_image_bytes)
    );
    if let Some(store) = &plan.store {
        let _ = writeln!(out, "Store: {} ({})", store.note, store.dir.display());
    }
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

/// A warm snapshot, for people: per unit, its rounds so far.
pub fn render_warm(warm: &Warm) -> String {
    let mut out = format!(
        "Warm snapshot of {} units; the next live upgrade tops it up (`--discard` wipes it).\n",
        warm.units.len()
    );
    for (name, unit) in &warm.units {
        let bytes: u64 = unit.chain.rounds.iter().map(|r| r.bytes).sum();
        let _ = writeln!(
            out,
            "  {name:<32} main PID {:<7} {} rounds, {}: {}",
            unit.main_pid,
            unit.chain.rounds.len(),
            human(bytes),
            unit.chain.convergence
        );
    }
    out
}

/// The report of the last upgrade: per unit, then the totals.
pub fn render_report(r: &UpgradeReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Kernel: {} -> {}", r.kernel_from, r.kernel_to);
    let ms = |a: u64, b: u64| {
        if a > 0 && b >= a {
            format!("{:.1} s", (b - a) as f64 / 1e6)
        } else {
            "-".into()
        }
    };
    let _ = writeln!(
        out,
        "Upgrade: {} from start to kexec, {} from kexec to relive running again, {} to the first restore (network locks, rerun units), {} in all",
        ms(r.started_usec, r.kexec_usec),
        ms(r.kexec_usec, r.resumed_usec),
        ms(r.resumed_usec, r.restores_started_usec),
        ms(r.started_usec, r.finished_usec)
    );
    if let Some(boot) = &r.new_kernel_boot {
        let _ = writeln!(out, "The new kernel's boot: {boot}");
    }
    if !r.before_restores.is_empty() {
        // Each with when it was done after relive started in the new kernel.
        let steps: Vec<String> = r.before_restores.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "Before the first restore: {}", steps.join(", "));
    }
    if !r.store.is_empty() {
        let _ = writeln!(out, "Store: {}", r.store);
    }
    if let Some(mode) = r.mode {
        let _ = writeln!(
            out,
            "Mode: {mode}; phase 1 (background pre-dumps) {}",
            ms(r.phase1_started_usec, r.phase1_ended_usec)
        );
    }
    if let Some(cost) = &r.phase1_cpu {
        let _ = writeln!(out, "Phase 1's cost: {}", cost.summary());
    }
    let width = r
        .units
        .iter()
        .map(|u| u.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let _ = writeln!(
        out,
        "{:<width$} {:<8} {:>4} {:>10} {:>6} {:<11} {:>10} {:>9} {:>10} {:>10} {:>10}  OUTCOME / PIDS",
        "UNIT",
        "MODE",
        "PRIO",
        "IMAGE",
        "ROUNDS",
        "FINAL DUMP",
        "IN STOP",
        "DUMP",
        "CHECK",
        "RESTORE",
        "STOPPAGE"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} ms"));
    for u in &r.units {
        let pids: Vec<String> = u.pids.iter().map(u32::to_string).collect();
        let image = if u.image_bytes > 0 {
            human(u.image_bytes)
        } else {
            "-".into()
        };
        let dump = if u.dump_ms > 0.0 {
            format!("{:.0} ms", u.dump_ms)
        } else {
            "-".into()
        };
        let in_stoppage = if u.mode == UnitMode::Preserve {
            human(u.stoppage_bytes)
        } else {
            "-".into()
        };
        let _ =
            writeln!(
            out,
            "{:<width$} {:<8} {:>4} {:>10} {:>6} {:<11} {:>10} {:>9} {:>10} {:>10} {:>10}  {} {}",
            u.name,
            u.mode,
            u.priority,
            image,
            u.pre_dumps.len(),
            u.final_dump.map_or("-", FinalDump::as_str),
            in_stoppage,
            dump,
            opt(u.verify_ms),
            opt(u.restore_ms),
            opt(u.stoppage_ms()),
            u.outcome.as_ref().map_or("-".to_owned(), Outcome::to_string),
            match u.new_main_pid {
                // Its old PIDs mean nothing now: show where it runs.
                Some(pid) => format!("now PID {pid}"),
                None => pids.join(" "),
            }
        );
    }
    for u in &r.units {
        let carried: Vec<String> = (u.runtime_dirs.iter().map(|f| format!("/run/{f}")))
            .chain(u.shm_files.iter().map(|f| format!("/dev/shm/{f}")))
            .collect();
        if !carried.is_empty() {
            let _ = writeln!(out, "{}: carried {}", u.name, carried.join(" "));
        }
    }
    for u in &r.units {
        if !u.listeners.is_empty() {
            let sockets: Vec<String> = u
                .listeners
                .iter()
                .map(|l| format!("{} #{} (fd {})", l.socket_unit, l.index, l.fd))
                .collect();
            let _ = writeln!(
                out,
                "{}: listening sockets carried, PID 1 listens on them again: {}",
                u.name,
                sockets.join(", ")
            );
        }
        if !u.hold_table.is_empty() || u.unaccepted_reset > 0 {
            let _ = writeln!(
                out,
                "{}: new TCP connections held until its restore; {} it had not accepted reset",
                u.name, u.unaccepted_reset
            );
        }
    }
    for u in &r.units {
        for tie in &u.unix_ties {
            let name = match tie.name.as_str() {
                "" => String::new(),
                name => format!(" {name}"),
            };
            let fate = match &tie.peer {
                TiePeer::Unit { unit, .. } => format!("to {unit}, kept (its group)"),
                TiePeer::Reset { why } => format!("to {why}, reset"),
            };
            let _ = writeln!(
                out,
                "{}: unix {} socket{name} {fate}; {} queued bytes carried",
                u.name,
                tie.kind.name(),
                tie.queued
            );
        }
        for tie in &u.pipe_ties {
            let what = tie.fifo.as_ref().map_or_else(
                || format!("pipe:[{}]", tie.inode),
                |path| format!("FIFO {path}"),
            );
            let _ = writeln!(
                out,
                "{}: {what} shared with {}, kept (its group); {} waiting bytes carried",
                u.name,
                tie.units.join(" "),
                tie.queued
            );
        }
    }
    for u in r.units.iter().filter(|u| !u.why.is_empty()) {
        let _ = writeln!(out, "{}: {} ({})", u.name, u.mode, u.why);
    }
    for u in r.units.iter().filter(|u| !u.convergence.is_empty()) {
        let _ = writeln!(out, "{}: {}", u.name, u.convergence);
        for round in &u.pre_dumps {
            let _ = writeln!(
                out,
                "  round {}: {} pages ({}) in {:.0} ms, frozen {}{}",
                round.round,
                round.pages_written,
                human(round.bytes),
                round.duration_ms,
                round
                    .frozen_ms
                    .map_or("?".to_owned(), |f| format!("{f:.1} ms")),
                if round.ran {
                    ""
                } else {
                    ", tasks idle since the previous round"
                }
            );
        }
    }
    let _ = writeln!(
        out,
        "Total image size: {}; longest stoppage: {:.0} ms",
        human(r.total_image_bytes),
        r.longest_stoppage_ms
    );
    if let Some(why) = &r.rolled_back {
        let _ = writeln!(out, "Rolled back: {why}");
    }
    if let Some(why) = &r.aborted {
        let _ = writeln!(
            out,
            "Aborted (the machine runs {} still): {why}",
            r.kernel_from
        );
    }
    for note in &r.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    let _ = writeln!(out, "Clock: {}", r.clock);
    match &r.clock_offsets {
        Some(o) => {
            let _ = writeln!(
                out,
                "Services' clock: one time namespace, CLOCK_MONOTONIC {:+.3} s and CLOCK_BOOTTIME {:+.3} s from the kernel's",
                o.monotonic_ns as f64 / 1e9,
                o.boottime_ns as f64 / 1e9
            );
        }
        None if r.aborted.is_none() => {
            let _ = writeln!(
                out,
                "Services' clock: no shared time namespace; each restored unit has CRIU's offsets"
            );
        }
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use relive_api::plan::{Check, DoomedConnection, PlannedUnit};
    use relive_api::report::{EarlyStep, EarlyWork};

    #[test]
    fn the_plan_reads_in_order() {
        let plan = Plan {
            preserved: vec![
                PlannedUnit {
                    name: "counter.service".into(),
                    main_pid: 20001,
                    priority: 500,
                    pids: vec![20001],
                    estimated_bytes: 16 << 20,
                    pre_dump: true,
                    pre_dump_max_rounds: Some(3),
                    rollback: false,
                },
                PlannedUnit {
                    name: "echo.service".into(),
                    main_pid: 20002,
                    priority: 900,
                    pids: vec![20002, 20003],
                    estimated_bytes: 1 << 20,
                    pre_dump: false,
                    pre_dump_max_rounds: None,
                    rollback: false,
                },
            ],
            restarted: vec!["web.service".into()],
            carried_on_restart: vec![("web.service".into(), vec!["web/sessions".into()])],
            why: vec![(
                "web.service".into(),
                "PrivateUsers=yes: CRIU cannot restore ...".into(),
            )],
            rerun: vec![],
            rerun_beside_restores: vec![],
            rerun_firewall: vec![],
            rerun_network: vec![],
            mounts: vec![],
            estimated_image_bytes: 17 << 20,
            unix_links: vec![relive_api::plan::UnixLink {
                a: "echo.service".into(),
                b: "counter.service".into(),
                kind: relive_api::report::UnixKind::Stream,
                name: "/run/echo.sock".into(),
            }],
            pipe_links: vec![relive_api::plan::PipeLink {
                a: "counter.service".into(),
                b: "echo.service".into(),
                name: "/run/feed".into(),
            }],
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
            store: None,
            next_release: Some("6.12.117+deb12-amd64".into()),
            unit_files: Vec::new(),
        };
        let text = render(&plan);
        assert!(
            text.starts_with("Next kernel: 6.12.117+deb12-amd64\n"),
            "{text}"
        );
        let counter = text.find("counter.service").unwrap();
        let echo = text.find("echo.service").unwrap();
        assert!(counter < echo, "{text}");
        assert!(
            text.contains("Restarted: web.service\n  web.service finds again: /run/web/sessions\n"),
            "{text}"
        );
        assert!(
            text.contains("Why:\n  web.service  PrivateUsers=yes: CRIU"),
            "{text}"
        );
        assert!(text.contains("Rerun:     (none)"), "{text}");
        assert!(
            text.contains(
                "  group (frozen and restored together): counter.service echo.service\n    echo.service <-> counter.service: unix stream socket (/run/echo.sock), kept\n    counter.service <-> echo.service: /run/feed, kept\n"
            ),
            "{text}"
        );
        assert!(text.contains("Estimated image size: 17.0 MiB"), "{text}");
        assert!(text.contains("FAIL kexec"), "{text}");
        assert!(text.contains("will be reset"), "{text}");
        assert!(text.contains("pre-dump <= 3 rounds"), "{text}");
        assert!(text.contains("no pre-dump"), "{text}");
    }

    #[test]
    fn the_report_shows_rounds_and_the_final_dump() {
        use relive_api::report::{PreDumpRound, UnitRecord};
        let report = UpgradeReport {
            mode: Some(relive_api::report::UpgradeMode::TwoPhase),
            phase1_started_usec: 1_000_000,
            phase1_ended_usec: 3_500_000,
            units: vec![UnitRecord {
                name: "idle.service".into(),
                mode: UnitMode::Preserve,
                final_dump: Some(FinalDump::CleanSkip),
                stoppage_bytes: 8192,
                verify_ms: Some(1234.4),
                restore_ms: Some(567.0),
                convergence: "converged: round 2 wrote 0 pages (< 64)".into(),
                pre_dumps: vec![
                    PreDumpRound {
                        round: 1,
                        pages_written: 8192,
                        bytes: 32 << 20,
                        duration_ms: 900.0,
                        frozen_ms: Some(12.0),
                        ran: true,
                        ..PreDumpRound::default()
                    },
                    PreDumpRound {
                        round: 2,
                        frozen_ms: None,
                        ..PreDumpRound::default()
                    },
                ],
                runtime_dirs: vec!["idle".into(), "idle.pid".into()],
                shm_files: vec!["sem.idle".into()],
                listeners: vec![relive_api::report::CarriedListener {
                    socket_unit: "idle.socket".into(),
                    index: 0,
                    fd: 3,
                }],
                hold_table: "relive-hold".into(),
                hold_ports: vec![7002],
                pipe_ties: vec![relive_api::report::PipeTie {
                    inode: 77,
                    fifo: Some("/run/feed".into()),
                    units: vec!["log.service".into()],
                    capacity: 65536,
                    queued: 12,
                }],
                unix_ties: vec![relive_api::report::UnixTie {
                    inode: 42,
                    kind: relive_api::report::UnixKind::Stream,
                    name: "/run/app.sock".into(),
                    nonblocking: true,
                    peer: TiePeer::Unit {
                        unit: "app.service".into(),
                        inode: 43,
                    },
                    queued: 10,
                }],
                ..UnitRecord::default()
            }],
            clock_offsets: Some(relive_api::report::ClockOffsets {
                monotonic_ns: 100_500_000_000,
                boottime_ns: 112_000_000_000,
            }),
            before_restores: vec![
                EarlyStep {
                    work: EarlyWork::NetworkLocks,
                    done_ms: 120.0,
                    ok: true,
                },
                EarlyStep {
                    work: EarlyWork::Unit("systemd-udev-trigger.service".into()),
                    done_ms: 3_060.0,
                    ok: false,
                },
                EarlyStep {
                    work: EarlyWork::CriuProbe,
                    done_ms: 4_740.0,
                    ok: true,
                },
            ],
            new_kernel_boot: Some(relive_api::report::KernelBoot {
                initramfs_unpacked_ms: Some(2_050.0),
                init_started_ms: Some(2_400.0),
                root_mounted_ms: None,
                relive_started_ms: 8_240.0,
            }),
            phase1_cpu: Some(relive_api::report::Phase1Cpu {
                wall_ms: 2_500.0,
                criu_cpu_ms: Some(400.0),
                services_cpu_wait_ms: Some(250.0),
                services_cpu_wait_before_percent: Some(9.5),
            }),
            ..UpgradeReport::default()
        };
        let text = render_report(&report);
        assert!(
            text.contains(
                "Phase 1's cost: phase 1 took 2.5 s, CRIU used 0.4 s of CPU; \
                 the services waited for a CPU 10.0 % of the time (9.5 % in the 10 s before)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "Before the first restore: network locks +0.1 s, \
                 systemd-udev-trigger.service +3.1 s (failed), CRIU's probe +4.7 s\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "The new kernel's boot: initramfs unpacked at 2.05 s, /init at 2.40 s, \
                 relive at 8.24 s of the new kernel's clock\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Mode: two-phase; phase 1 (background pre-dumps) 2.5 s"),
            "{text}"
        );
        assert!(
            text.contains("idle.service: listening sockets carried, PID 1 listens on them again: idle.socket #0 (fd 3)\n"),
            "{text}"
        );
        assert!(
            text.contains("idle.service: new TCP connections held until its restore; 0 it had not accepted reset\n"),
            "{text}"
        );
        assert!(
            text.contains("idle.service: carried /run/idle /run/idle.pid /dev/shm/sem.idle\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "idle.service: unix stream socket /run/app.sock to app.service, kept (its group); 10 queued bytes carried\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "idle.service: FIFO /run/feed shared with log.service, kept (its group); 12 waiting bytes carried\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("CLOCK_MONOTONIC +100.500 s and CLOCK_BOOTTIME +112.000 s"),
            "{text}"
        );
        assert!(text.contains("clean-skip"), "{text}");
        assert!(text.contains("CHECK"), "{text}");
        assert!(text.contains("1234 ms     567 ms"), "{text}");
        assert!(
            text.contains("round 1: 8192 pages (32.0 MiB) in 900 ms, frozen 12.0 ms\n"),
            "{text}"
        );
        assert!(text.contains("round 2: 0 pages"), "{text}");
        assert!(
            text.contains("tasks idle since the previous round"),
            "{text}"
        );
    }
}
