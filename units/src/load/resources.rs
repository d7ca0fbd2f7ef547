//! MemoryMax= and the other resource directives of
//! [`crate::resources::Resources`].

use super::build::Ctx;
use super::values::parse_size;
use crate::devices::{DeviceAllow, DevicePolicy};
use crate::error::LoadError;
use crate::model::Location;
use crate::resources::{parse_delegate, Limit, Resources};

/// Applies `key` if it is one of this module's: None when it is not.
pub(crate) fn directive(
    r: &mut Resources,
    ctx: &mut Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Option<Result<(), LoadError>> {
    let parsed = match key {
        "MemoryMin" | "MemoryLow" | "MemoryHigh" | "MemoryMax" | "MemorySwapMax" => {
            let field = match key {
                "MemoryMin" => &mut r.memory_min,
                "MemoryLow" => &mut r.memory_low,
                "MemoryHigh" => &mut r.memory_high,
                "MemoryMax" => &mut r.memory_max,
                _ => &mut r.memory_swap_max,
            };
            optional(value, |v| limit(v, parse_size)).map(|l| *field = l)
        }
        "TasksMax" => optional(value, |v| limit(v, |n| n.parse().ok())).map(|l| r.tasks_max = l),
        "Delegate" => parse_delegate(r.delegate.as_deref(), value).map(|d| r.delegate = d),
        "DelegateSubgroup" if value.is_empty() => {
            r.delegate_subgroup = None;
            Some(())
        }
        // A cgroup's name: init.scope for user@.service, udev for udevd.
        "DelegateSubgroup" => (!value.contains('/') && value != "." && value != "..")
            .then(|| r.delegate_subgroup = Some(value.to_owned())),
        "DevicePolicy" => DevicePolicy::parse(value).map(|p| r.devices.policy = p),
        // An empty value empties the list, as in systemd.
        "DeviceAllow" if value.is_empty() => {
            r.devices.allow.clear();
            Some(())
        }
        "DeviceAllow" => DeviceAllow::parse(value).map(|a| r.devices.allow.push(a)),
        "CPUWeight" => optional(value, |v| match v {
            "idle" => Some(0),
            n => n.parse().ok().filter(|w| (1..=10_000).contains(w)),
        })
        .map(|w| r.cpu_weight = w),
        "IOWeight" => optional(value, |v| {
            v.parse().ok().filter(|w| (1..=10_000).contains(w))
        })
        .map(|w| r.io_weight = w),
        "CPUQuota" => optional(value, |v| {
            let permyriad = percent(v)?;
            (permyriad > 0).then_some(permyriad as u64)
        })
        .map(|q| r.cpu_quota = q),
        _ => return None,
    };
    Some(parsed.ok_or_else(|| ctx.bad(key, value, loc)))
}

/// An empty value resets (Some(None)); a bad one is None.
fn optional<T>(value: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Option<T>> {
    if value.is_empty() {
        Some(None)
    } else {
        parse(value).map(Some)
    }
}

/// `infinity`, `N%` (up to two decimals) or an absolute value.
fn limit(v: &str, absolute: impl Fn(&str) -> Option<u64>) -> Option<Limit> {
    if v == "infinity" {
        return Some(Limit::Infinity);
    }
    if v.ends_with('%') {
        return percent(v).filter(|p| *p <= 10_000).map(Limit::Permyriad);
    }
    absolute(v).map(Limit::Absolute)
}

/// `12.5%` as per ten thousand (1250).
fn percent(v: &str) -> Option<u32> {
    let number = v.strip_suffix('%')?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.len() > 2 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let fraction: u32 = format!("{fraction:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(fraction)
}
