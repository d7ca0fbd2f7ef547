//! The [Install] section (kept for `relivectl enable`-like tools and for
//! Alias=) and relive's own [X-LiveUpgrade] section.

use super::build::Builder;
use crate::error::LoadError;
use crate::model::{Location, UpgradeMode};
use crate::unit_name;

impl Builder<'_> {
    pub(super) fn install_directive(
        &mut self,
        key: &str,
        value: &str,
        loc: &Location,
    ) -> Result<(), LoadError> {
        let list = match key {
            "WantedBy" => &mut self.install.wanted_by,
            "RequiredBy" => &mut self.install.required_by,
            "Alias" => &mut self.install.alias,
            "Also" => &mut self.install.also,
            "DefaultInstance" => {
                self.install.default_instance = (!value.is_empty()).then(|| value.to_owned());
                return Ok(());
            }
            _ => {
                self.ctx.unsupported(key, value, loc);
                return Ok(());
            }
        };
        if value.is_empty() {
            list.clear();
            return Ok(());
        }
        let names = self.ctx.unit_names(key, value, loc)?;
        if let Some(bad) = names.iter().find(|n| !unit_name::is_valid(n)) {
            return Err(self.ctx.bad_because(
                key,
                value,
                loc,
                &format!("'{bad}' is not a unit name"),
            ));
        }
        let list = match key {
            "WantedBy" => &mut self.install.wanted_by,
            "RequiredBy" => &mut self.install.required_by,
            "Alias" => &mut self.install.alias,
            _ => &mut self.install.also,
        };
        list.extend(names);
        Ok(())
    }

    pub(super) fn live_directive(
        &mut self,
        key: &str,
        value: &str,
        loc: &Location,
    ) -> Result<(), LoadError> {
        match key {
            "Mode" => {
                self.mode = match value {
                    "" => None,
                    "preserve" => Some(UpgradeMode::Preserve),
                    "restart" => Some(UpgradeMode::Restart),
                    "rerun" => Some(UpgradeMode::Rerun),
                    _ => return Err(self.ctx.bad(key, value, loc)),
                }
            }
            "Priority" if value.is_empty() => self.priority = None,
            "Priority" => match value.parse::<u16>() {
                Ok(p) if p <= 1000 => self.priority = Some(p),
                _ => {
                    return Err(self.ctx.bad_because(
                        key,
                        value,
                        loc,
                        "expected a number from 0 to 1000",
                    ))
                }
            },
            "PreDump" if value.is_empty() => self.pre_dump = None,
            "PreDump" => match super::values::parse_bool(value) {
                Some(b) => self.pre_dump = Some(b),
                None => return Err(self.ctx.bad_because(key, value, loc, "expected yes or no")),
            },
            "OnRestoreFailure" => match value {
                "" | "restart" => self.rollback = Some(false),
                "rollback" => self.rollback = Some(true),
                _ => {
                    return Err(self.ctx.bad_because(key, value, loc, "expected restart or rollback"))
                }
            },
            "PreDumpMaxRounds" if value.is_empty() => self.pre_dump_max_rounds = None,
            "PreDumpMaxRounds" => match value.parse::<u32>() {
                Ok(n) if (1..=64).contains(&n) => self.pre_dump_max_rounds = Some(n),
                _ => {
                    return Err(self.ctx.bad_because(
                        key,
                        value,
                        loc,
                        "expected a number of rounds from 1 to 64 (PreDump=no turns pre-dumps off)",
                    ))
                }
            },
            _ => {
                return Err(LoadError::invalid(
                    loc,
                    format!(
                        "unknown directive {key}= in [X-LiveUpgrade] (expected Mode=, Priority=, PreDump=, PreDumpMaxRounds= or OnRestoreFailure=)"
                    ),
                ))
            }
        }
        Ok(())
    }
}
