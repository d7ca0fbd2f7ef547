//! `relivectl metrics`: the running kernel and the last live upgrade in
//! the Prometheus text format, for node_exporter's textfile collector (the
//! convention kured's users already scrape).

use prometheus::{Encoder, GaugeVec, Opts, Registry, TextEncoder};
use relive_api::report::{Outcome, UpgradeReport};

/// How the last upgrade ended, as the `result` label says it.
fn result_of(r: &UpgradeReport) -> &'static str {
    if r.aborted.is_some() {
        "undone"
    } else if r.rolled_back.is_some() {
        "rolled-back"
    } else {
        "completed"
    }
}

/// A completed upgrade that lost no unit's state.
fn succeeded(r: &UpgradeReport) -> bool {
    result_of(r) == "completed" && r.lost().next().is_none()
}

fn seconds(from_usec: u64, to_usec: u64) -> Option<f64> {
    (from_usec > 0 && to_usec >= from_usec).then(|| (to_usec - from_usec) as f64 / 1e6)
}

/// The metrics text: `kernel` is the running kernel's release, `report`
/// the last upgrade's (None before the first one).
pub fn render(kernel: &str, report: Option<&UpgradeReport>) -> String {
    let registry = Registry::new();
    let gauge = |name: &str, help: &str, labels: &[&str]| -> GaugeVec {
        let g = GaugeVec::new(Opts::new(name, help), labels).expect("a valid metric name");
        registry
            .register(Box::new(g.clone()))
            .expect("each metric registered once");
        g
    };
    gauge("relive_kernel_info", "The running kernel.", &["release"])
        .with_label_values(&[kernel])
        .set(1.0);
    if let Some(r) = report {
        fill(r, &gauge);
    }
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("text encoding to memory");
    String::from_utf8(out).expect("the text format is UTF-8")
}

fn fill(r: &UpgradeReport, gauge: &dyn Fn(&str, &str, &[&str]) -> GaugeVec) {
    gauge(
        "relive_last_upgrade_info",
        "The last live upgrade: its kernels and how it ended (completed, undone, rolled-back).",
        &["from", "to", "result"],
    )
    .with_label_values(&[&r.kernel_from, &r.kernel_to, result_of(r)])
    .set(1.0);
    let scalar = |name: &str, help: &str, value: f64| {
        gauge(name, help, &[])
            .with_label_values::<&str>(&[])
            .set(value)
    };
    scalar(
        "relive_last_upgrade_success",
        "1 if the last live upgrade completed and no unit lost its state.",
        if succeeded(r) { 1.0 } else { 0.0 },
    );
    let ended = r.finished_usec.max(r.started_usec);
    scalar(
        "relive_last_upgrade_timestamp_seconds",
        "When the last live upgrade ended, seconds since the epoch.",
        ended as f64 / 1e6,
    );
    if let Some(s) = seconds(r.started_usec, r.finished_usec) {
        scalar(
            "relive_last_upgrade_duration_seconds",
            "From the request to the report, across the kexec.",
            s,
        );
    }
    scalar(
        "relive_last_upgrade_units_lost",
        "Units whose state the last live upgrade could not carry (started afresh).",
        r.lost().count() as f64,
    );
    scalar(
        "relive_last_upgrade_image_bytes",
        "Bytes of checkpoint images the last live upgrade wrote.",
        r.total_image_bytes as f64,
    );
    scalar(
        "relive_last_upgrade_longest_stoppage_seconds",
        "The longest time any preserved unit was stopped.",
        r.longest_stoppage_ms / 1e3,
    );
    let phases = gauge(
        "relive_last_upgrade_phase_seconds",
        "The last live upgrade's phases: pre-dump (phase 1), freeze (to the kexec), boot (kexec to relive), restore.",
        &["phase"],
    );
    for (phase, span) in [
        (
            "pre-dump",
            seconds(r.phase1_started_usec, r.phase1_ended_usec),
        ),
        (
            "freeze",
            seconds(r.phase1_ended_usec.max(r.started_usec), r.kexec_usec),
        ),
        ("boot", seconds(r.kexec_usec, r.resumed_usec)),
        ("restore", seconds(r.restores_started_usec, r.finished_usec)),
    ] {
        if let Some(s) = span {
            phases.with_label_values(&[phase]).set(s);
        }
    }
    let stoppage = gauge(
        "relive_last_upgrade_unit_stoppage_seconds",
        "Each preserved unit's stoppage: frozen until running again.",
        &["unit", "mode", "outcome"],
    );
    for u in &r.units {
        let Some(ms) = u.stoppage_ms() else { continue };
        let outcome = match &u.outcome {
            Some(Outcome::Lost { .. }) => "lost",
            Some(Outcome::Restored) => "restored",
            Some(Outcome::Restarted) => "restarted",
            Some(Outcome::Rerun) => "rerun",
            None => "",
        };
        stoppage
            .with_label_values(&[u.name.as_str(), u.mode.as_str(), outcome])
            .set(ms / 1e3);
    }
}

/// Writes `text` to `path` as the textfile collector wants it: whole or
/// not at all (a temporary file renamed over it), readable by node_exporter.
pub fn write_textfile(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use relive_api::report::{UnitMode, UnitRecord};

    #[test]
    fn a_completed_upgrade_gives_its_kernels_phases_and_stoppages() {
        let report = UpgradeReport {
            kernel_from: "6.1.0-47-amd64".into(),
            kernel_to: "6.12.117+deb12-amd64".into(),
            started_usec: 1_000_000_000,
            phase1_started_usec: 1_000_000_000,
            phase1_ended_usec: 1_010_000_000,
            kexec_usec: 1_015_000_000,
            resumed_usec: 1_028_000_000,
            restores_started_usec: 1_030_000_000,
            finished_usec: 1_040_000_000,
            longest_stoppage_ms: 23_500.0,
            units: vec![UnitRecord {
                name: "redis-server.service".into(),
                mode: UnitMode::Preserve,
                frozen_usec: 1_012_000_000,
                running_usec: Some(1_035_500_000),
                outcome: Some(Outcome::Restored),
                ..UnitRecord::default()
            }],
            ..UpgradeReport::default()
        };
        let text = render("6.12.117+deb12-amd64", Some(&report));
        for line in [
            "relive_kernel_info{release=\"6.12.117+deb12-amd64\"} 1",
            "relive_last_upgrade_info{from=\"6.1.0-47-amd64\",result=\"completed\",to=\"6.12.117+deb12-amd64\"} 1",
            "relive_last_upgrade_success 1",
            "relive_last_upgrade_duration_seconds 40",
            "relive_last_upgrade_units_lost 0",
            "relive_last_upgrade_phase_seconds{phase=\"boot\"} 13",
            "relive_last_upgrade_unit_stoppage_seconds{mode=\"preserve\",outcome=\"restored\",unit=\"redis-server.service\"} 23.5",
            "# TYPE relive_last_upgrade_success gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    /// Prometheus's own linter, as node_exporter's users run it on a
    /// textfile (scripts/test installs it).
    #[test]
    fn promtool_accepts_the_file() {
        let report = UpgradeReport {
            kernel_from: "6.1.0-47-amd64".into(),
            kernel_to: "6.12.117+deb12-amd64".into(),
            started_usec: 1_000_000_000,
            finished_usec: 1_040_000_000,
            units: vec![UnitRecord {
                name: "ssh.service".into(),
                frozen_usec: 1_012_000_000,
                running_usec: Some(1_030_000_000),
                outcome: Some(Outcome::Lost {
                    reason: "images refused".into(),
                }),
                ..UnitRecord::default()
            }],
            ..UpgradeReport::default()
        };
        let text = render("6.12.117+deb12-amd64", Some(&report));
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool (Debian's prometheus package) is installed");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn before_any_upgrade_only_the_kernel_is_shown_and_an_undone_one_failed() {
        let text = render("6.1.0-47-amd64", None);
        assert!(!text.contains("relive_last_upgrade"), "{text}");
        let undone = UpgradeReport {
            aborted: Some("ssh.service: CRIU dump failed".into()),
            started_usec: 5_000_000,
            ..UpgradeReport::default()
        };
        let text = render("6.1.0-47-amd64", Some(&undone));
        assert!(text.contains("result=\"undone\""), "{text}");
        assert!(
            text.lines().any(|l| l == "relive_last_upgrade_success 0"),
            "{text}"
        );
    }
}
