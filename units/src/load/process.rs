//! Limit*= (but LimitNOFILE=), Nice=, OOMScoreAdjust=, IOScheduling*=,
//! CPUScheduling*=, NoNewPrivileges= and SecureBits=: the process attributes of any
//! unit that runs processes.

use super::build::Ctx;
use super::values::parse_bool;
use crate::error::LoadError;
use crate::model::Location;
use crate::process::{parse_secure_bits, CpuPolicy, IoClass, ProcessAttributes, Rlimit};

/// Applies `key` if it is one of this module's: None when it is not.
pub(crate) fn directive(
    p: &mut ProcessAttributes,
    ctx: &mut Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Option<Result<(), LoadError>> {
    let handled = apply(p, key, value)?;
    Some(if handled {
        Ok(())
    } else {
        Err(ctx.bad(key, value, loc))
    })
}

/// None: not this module's key; Some(false): a bad value.
fn apply(p: &mut ProcessAttributes, key: &str, value: &str) -> Option<bool> {
    // An empty value resets to the default (None).
    fn optional<T>(value: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Option<T>> {
        if value.is_empty() {
            Some(None)
        } else {
            parse(value).map(Some)
        }
    }
    let int_in = |range: std::ops::RangeInclusive<i32>| {
        move |v: &str| v.parse::<i32>().ok().filter(|n| range.contains(n))
    };
    let flag = |v: &str| {
        if v.is_empty() {
            Some(false)
        } else {
            parse_bool(v)
        }
    };
    let ok = |set: Option<()>| Some(set.is_some());
    if let Some(limit) = Rlimit::from_directive(key) {
        let parsed = optional(value, |v| limit.parse(v));
        return ok(parsed.map(|parsed| {
            p.limits.retain(|(r, _, _)| *r != limit);
            if let Some((soft, hard)) = parsed {
                p.limits.push((limit, soft, hard));
            }
        }));
    }
    match key {
        "Nice" => ok(optional(value, int_in(-20..=19)).map(|n| p.nice = n)),
        "OOMScoreAdjust" => {
            ok(optional(value, int_in(-1000..=1000)).map(|n| p.oom_score_adjust = n))
        }
        "IOSchedulingClass" if matches!(value, "none" | "0") => {
            // The kernel's "no class": keep PID 1's.
            p.io_class = None;
            Some(true)
        }
        "IOSchedulingClass" => ok(optional(value, IoClass::parse).map(|c| p.io_class = c)),
        "IOSchedulingPriority" => {
            let level = optional(value, int_in(0..=7));
            ok(level.map(|n| p.io_priority = n.map(|n| n as u8)))
        }
        "CPUSchedulingPolicy" => ok(optional(value, CpuPolicy::parse).map(|c| p.cpu_policy = c)),
        "CPUSchedulingPriority" => ok(optional(value, int_in(0..=99)).map(|n| p.cpu_priority = n)),
        "CPUSchedulingResetOnFork" => ok(flag(value).map(|on| p.cpu_reset_on_fork = on)),
        "NoNewPrivileges" => ok(flag(value).map(|on| p.no_new_privileges = on)),
        // Repeated: ORed; empty: none.
        "SecureBits" if value.is_empty() => {
            p.secure_bits = 0;
            Some(true)
        }
        "SecureBits" => ok(parse_secure_bits(value).map(|bits| p.secure_bits |= bits)),
        _ => None,
    }
}
