//! The [Scope] and [Slice] sections, and Slice= wherever it is allowed.

use super::build::Ctx;
use super::values::{empty_or, parse_bool, parse_kill_mode, parse_signal, timeout};
use crate::error::LoadError;
use crate::model::{Location, Timeout};
use crate::scope::{ScopeSection, SliceSection};
use crate::unit_name::UnitName;

/// Slice=: a slice's name, or None (empty: back to the default).
pub(crate) fn slice_name(
    ctx: &Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Result<Option<String>, LoadError> {
    let name = ctx.resolve(key, value, loc)?;
    if name.is_empty() {
        return Ok(None);
    }
    let valid = UnitName::parse(&name).is_some_and(|n| n.suffix == "slice" && n.instance.is_none());
    if !valid {
        return Err(ctx.bad_because(key, value, loc, "not the name of a slice"));
    }
    Ok(Some(name))
}

/// One [Scope] directive. Those that are not the scope's own are for the
/// caller (Slice=) or unsupported.
pub(crate) fn scope_directive(
    s: &mut ScopeSection,
    ctx: &mut Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Result<(), LoadError> {
    let bad = |ctx: &Ctx<'_>| ctx.bad(key, value, loc);
    match key {
        "KillMode" => s.kill_mode = parse_kill_mode(value).ok_or_else(|| bad(ctx))?,
        "KillSignal" => {
            s.kill_signal = empty_or(value, 15, parse_signal).ok_or_else(|| bad(ctx))?
        }
        "SendSIGHUP" => {
            s.send_sighup = empty_or(value, false, parse_bool).ok_or_else(|| bad(ctx))?
        }
        "SendSIGKILL" => {
            s.send_sigkill = empty_or(value, true, parse_bool).ok_or_else(|| bad(ctx))?
        }
        "TimeoutStopSec" => {
            s.timeout_stop = if value.is_empty() {
                Timeout::Default
            } else {
                timeout(value).ok_or_else(|| bad(ctx))?
            }
        }
        // What relive does when the kernel's OOM killer ends one of a
        // scope's processes: nothing (the others go on), which is
        // OOMPolicy=continue, logind's choice for its session scopes.
        "OOMPolicy" if matches!(value, "" | "continue") => {}
        _ => match super::resources::directive(&mut s.resources, ctx, key, value, loc) {
            Some(result) => result?,
            None => ctx.unsupported(key, value, loc),
        },
    }
    Ok(())
}

/// One [Slice] directive: resource control only.
pub(crate) fn slice_directive(
    s: &mut SliceSection,
    ctx: &mut Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Result<(), LoadError> {
    match super::resources::directive(&mut s.resources, ctx, key, value, loc) {
        Some(result) => result,
        None => {
            ctx.unsupported(key, value, loc);
            Ok(())
        }
    }
}
