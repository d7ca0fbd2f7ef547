//! Which store carries the images: the preflight's choice in dry runs,
//! and the fallback to the disk store when the next kernel's command line
//! does not reserve the memory store's region.

use super::watch::Watch;
use super::{Run, Verdicts};
use crate::output;
use crate::scenarios::upgrade;
use crate::vm::boot::Booted;
use anyhow::Result;
use relive_api::plan::{Plan, StoreKind};
use relive_api::report::{Outcome, UnitMode};

impl Run<'_> {
    /// The store the preflight picks (dry runs): memory with the same
    /// reservation on the next command line; with a command line that
    /// lacks it, `auto` falls back to disk and `--store memory` is refused.
    pub(super) fn store_decisions(&self, booted: &Booted, v: &mut Verdicts) -> Result<()> {
        let step = output::step("dry runs: the store the preflight picks");
        let failed_before = v.failed();
        let plan = |flags: &str| {
            self.interrupt.check()?;
            upgrade::dry_run(self.paths, booted.guest.ssh_port, self.to_release, flags)
        };
        let store = |plan: &Plan| {
            plan.store.as_ref().map_or("no store".into(), |s| {
                format!("{} ({})", format!("{:?}", s.kind).to_lowercase(), s.note)
            })
        };
        let kind = |plan: &Plan| plan.store.as_ref().map(|s| s.kind);
        let (ok, same) = plan("")?;
        v.record(
            "store: memory when the next kernel reserves the same region",
            ok && kind(&same) == Some(StoreKind::Memory),
            store(&same),
        );
        let append = format!("--append '{}'", upgrade::CMDLINE_WITHOUT_STORE);
        let (ok, other) = plan(&append)?;
        v.record(
            "store: disk when the next kernel does not reserve it (auto)",
            ok && kind(&other) == Some(StoreKind::Disk),
            store(&other),
        );
        let (ok, refused) = plan(&format!("{append} --store memory"))?;
        v.record(
            "store: --store memory refused without the reservation",
            !ok && refused.checks.iter().any(|c| c.name == "store" && !c.ok),
            refused.failures().join("; "),
        );
        step.finish(v.failed() == failed_before);
        Ok(())
    }

    /// After the upgrade, back to the first kernel with a command line
    /// that does not reserve the region: the handover must fall back to
    /// the disk store on its own, and everything come back.
    pub(super) fn fallback(
        &self,
        booted: &mut Booted,
        v: &mut Verdicts,
        watch: &mut Watch,
    ) -> Result<()> {
        let port = booted.guest.ssh_port;
        let counter = upgrade::counter(self.paths, port)?;
        let flags = format!("--append '{}'", upgrade::CMDLINE_WITHOUT_STORE);
        let (_, took) = upgrade::run_detached_with(
            booted,
            self.paths,
            self.from_release,
            &flags,
            self.interrupt,
        )?;
        v.record(
            "fallback: complete, ssh answers",
            true,
            format!("{:.1} s after the request", took.as_secs_f64()),
        );
        self.common_checks(booted, v, watch, &counter, "fallback")?;
        let report = upgrade::report(self.paths, port)?;
        let preserved = || report.units.iter().filter(|u| u.mode == UnitMode::Preserve);
        let restored = preserved().all(|u| u.outcome == Some(Outcome::Restored));
        // The report names its store only in words (`UpgradeReport::store`).
        v.record(
            "fallback: disk store used, every preserved unit restored",
            report.kernel_to == self.from_release
                && report
                    .store
                    .starts_with("disk store (memory store unusable")
                && restored,
            format!(
                "{} -> {}; {}; {}",
                report.kernel_from,
                report.kernel_to,
                report.store,
                preserved()
                    .map(|u| format!("{} {}", u.name, upgrade::outcome_text(u)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        Ok(())
    }
}
