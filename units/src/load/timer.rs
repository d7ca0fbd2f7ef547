//! The [Timer] section: directives, then systemd's defaults and checks
//! (`timer_add_extras()`, `timer_verify()`), in systemd's words.

use super::build::Ctx;
use super::values::{parse_bool, parse_timespan};
use crate::calendar::CalendarSpec;
use crate::error::LoadError;
use crate::model::Location;
use crate::timer::*;
use crate::unit_name;

#[derive(Debug, Default)]
pub(crate) struct TimerBuilder {
    t: TimerSection,
}

impl TimerBuilder {
    pub fn directive(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &str,
        value: &str,
        loc: &Location,
    ) -> Result<(), LoadError> {
        let t = &mut self.t;
        let bad = |ctx: &Ctx<'_>| ctx.bad(key, value, loc);
        let base = match key {
            "OnActiveSec" => Some(TimerBase::Active),
            "OnBootSec" => Some(TimerBase::Boot),
            "OnStartupSec" => Some(TimerBase::Startup),
            "OnUnitActiveSec" => Some(TimerBase::UnitActive),
            "OnUnitInactiveSec" => Some(TimerBase::UnitInactive),
            _ => None,
        };
        match key {
            // An empty value resets every timer, monotonic and calendar.
            _ if (base.is_some() || key == "OnCalendar") && value.is_empty() => {
                t.monotonic.clear();
                t.calendar.clear();
            }
            _ if base.is_some() => {
                let span = parse_timespan(value).ok_or_else(|| bad(ctx))?;
                t.monotonic
                    .push((base.expect("checked"), span.saturating()));
            }
            "OnCalendar" => {
                let text = ctx.resolve(key, value, loc)?;
                let spec = CalendarSpec::parse(&text)
                    .map_err(|e| ctx.bad_because(key, value, loc, &e.to_string()))?;
                t.calendar.push(CalendarTimer { text, spec });
            }
            "AccuracySec" | "RandomizedDelaySec" => {
                let span = if value.is_empty() {
                    None
                } else {
                    Some(parse_timespan(value).ok_or_else(|| bad(ctx))?.saturating())
                };
                if key == "AccuracySec" {
                    t.accuracy = span.unwrap_or(TimerSection::default().accuracy);
                } else {
                    t.randomized_delay = span.unwrap_or_default();
                }
            }
            "Persistent" | "RemainAfterElapse" => {
                let default = key == "RemainAfterElapse";
                let v = if value.is_empty() {
                    default
                } else {
                    parse_bool(value).ok_or_else(|| bad(ctx))?
                };
                if key == "Persistent" {
                    t.persistent = v;
                } else {
                    t.remain_after_elapse = v;
                }
            }
            "Unit" if value.is_empty() => t.unit = None,
            "Unit" => t.unit = Some(ctx.triggered_unit(key, value, loc, "timer")?),
            _ => ctx.unsupported(key, value, loc),
        }
        Ok(())
    }

    /// systemd's default Unit= and its refusal of a timer without one.
    pub fn finish(self, name: &str, fragment: &Location) -> Result<TimerSection, LoadError> {
        let mut t = self.t;
        if t.monotonic.is_empty() && t.calendar.is_empty() {
            return Err(LoadError::invalid(
                fragment,
                "Timer unit lacks value setting. Refusing.",
            ));
        }
        if t.unit.is_none() {
            t.unit = unit_name::same_name_service(name);
        }
        Ok(t)
    }
}
