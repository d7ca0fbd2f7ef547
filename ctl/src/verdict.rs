//! `relivectl live-upgrade --check`: whether a live upgrade to a kernel
//! is possible and, if not, why; what the kernel package's hook and an
//! administrator ask before they choose between it and a reboot.

use relive_api::plan::Plan;
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The preflight's answer, in a few lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub possible: bool,
    /// The release the kernel's image announces, when it names one.
    pub release: Option<String>,
    pub kernel: Option<PathBuf>,
    /// The failed checks as `name: detail` (empty when possible).
    pub reasons: Vec<String>,
    pub preserved: Vec<String>,
    pub restarted: Vec<String>,
}

impl Verdict {
    pub fn of(plan: &Plan, kernel: Option<&Path>) -> Verdict {
        Verdict {
            possible: plan.passed(),
            release: plan.next_release.clone(),
            kernel: kernel.map(Path::to_owned),
            reasons: plan.failures(),
            preserved: plan.preserved.iter().map(|u| u.name.clone()).collect(),
            restarted: plan.restarted.clone(),
        }
    }

    pub fn render(&self) -> String {
        // /boot/vmlinuz-RELEASE whose image announces another release (a
        // renamed or broken file) is named by both.
        let file_release = self.kernel.as_ref().and_then(|k| {
            k.file_name()?
                .to_str()?
                .strip_prefix("vmlinuz-")
                .map(str::to_owned)
        });
        let target = match (&self.release, &self.kernel, file_release) {
            (Some(release), _, Some(file)) if file != *release => {
                format!("{file} (its image says {release})")
            }
            (Some(release), _, _) => release.clone(),
            (None, Some(kernel), _) => kernel.display().to_string(),
            (None, None, _) => "the kernel".to_owned(),
        };
        let mut out = String::new();
        if self.possible {
            let _ = writeln!(
                out,
                "A live upgrade to {target} is possible: {} preserved, {} restarted.",
                count(self.preserved.len(), "service"),
                count(self.restarted.len(), "unit"),
            );
            if !self.restarted.is_empty() {
                let _ = writeln!(out, "Restarted: {}", self.restarted.join(" "));
            }
            let _ = writeln!(out, "`relivectl live-upgrade --dry-run` shows the plan.");
        } else {
            let _ = writeln!(out, "A live upgrade to {target} is not possible:");
            for reason in &self.reasons {
                let _ = writeln!(out, "  {reason}");
            }
        }
        out
    }
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relive_api::plan::{Check, PlannedUnit};

    fn plan(checks: &[(&str, bool, &str)]) -> Plan {
        Plan {
            preserved: vec![PlannedUnit {
                name: "redis-server.service".into(),
                priority: 100,
                main_pid: 2000,
                pids: vec![2000],
                estimated_bytes: 1 << 20,
                pre_dump: true,
                pre_dump_max_rounds: None,
                rollback: false,
            }],
            restarted: vec!["systemd-udevd.service".into()],
            next_release: Some("6.19.14+deb13-amd64".into()),
            checks: checks
                .iter()
                .map(|(name, ok, detail)| Check {
                    name: (*name).into(),
                    ok: *ok,
                    detail: (*detail).into(),
                })
                .collect(),
            ..Plan::default()
        }
    }

    #[test]
    fn a_passed_preflight_is_possible() {
        let v = Verdict::of(&plan(&[("kernel", true, "ok")]), None);
        assert!(v.possible);
        assert_eq!(
            v.render(),
            "A live upgrade to 6.19.14+deb13-amd64 is possible: 1 service preserved, 1 unit restarted.\n\
             Restarted: systemd-udevd.service\n\
             `relivectl live-upgrade --dry-run` shows the plan.\n"
        );
    }

    #[test]
    fn a_file_that_announces_another_release_is_named_by_both() {
        let v = Verdict::of(
            &plan(&[("kernel", false, "truncated")]),
            Some(Path::new("/boot/vmlinuz-0.0.1-test")),
        );
        assert!(
            v.render()
                .starts_with("A live upgrade to 0.0.1-test (its image says 6.19.14+deb13-amd64) is not possible:"),
            "{}",
            v.render()
        );
    }

    #[test]
    fn a_failed_check_is_the_reason() {
        let v = Verdict::of(
            &plan(&[
                ("kernel", true, "ok"),
                (
                    "criu on the kernels",
                    false,
                    "CRIU 3.17.1 cannot restore on kernel 6.19",
                ),
            ]),
            Some(Path::new("/boot/vmlinuz-6.19.14+deb13-amd64")),
        );
        assert!(!v.possible);
        assert_eq!(
            v.render(),
            "A live upgrade to 6.19.14+deb13-amd64 is not possible:\n  \
             criu on the kernels: CRIU 3.17.1 cannot restore on kernel 6.19\n"
        );
    }
}
