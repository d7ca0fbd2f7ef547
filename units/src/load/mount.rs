//! The [Mount] and [Swap] sections: directives, then systemd's checks
//! (`mount_verify()`, `swap_verify()`), in systemd's words.

use super::build::Ctx;
use super::values::{parse_bool, parse_mode, parse_timespan, TimeSpan};
use crate::error::LoadError;
use crate::model::{Location, Timeout};
use crate::mount::{AutomountSection, MountSection, SwapSection};
use crate::unit_name;
use std::path::PathBuf;

#[derive(Debug, Default)]
pub(crate) struct MountBuilder {
    what: Option<String>,
    where_: Option<String>,
    fs_type: Option<String>,
    options: Option<String>,
    sloppy: bool,
    lazy: bool,
    force: bool,
    directory_mode: Option<u32>,
    timeout: Option<Timeout>,
}

fn timeout(value: &str) -> Option<Timeout> {
    if value.is_empty() {
        return Some(Timeout::Default);
    }
    Some(match parse_timespan(value)? {
        TimeSpan::Infinity => Timeout::Infinity,
        TimeSpan::Finite(d) if d.is_zero() => Timeout::Infinity,
        TimeSpan::Finite(d) => Timeout::After(d),
    })
}

fn flag(ctx: &Ctx<'_>, key: &str, value: &str, loc: &Location) -> Result<bool, LoadError> {
    if value.is_empty() {
        return Ok(false);
    }
    parse_bool(value).ok_or_else(|| ctx.bad(key, value, loc))
}

impl MountBuilder {
    pub fn directive(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &str,
        value: &str,
        loc: &Location,
    ) -> Result<(), LoadError> {
        match key {
            "What" => self.what = ctx.resolve_optional(key, value, loc)?,
            "Where" => self.where_ = ctx.resolve_optional(key, value, loc)?,
            "Type" => self.fs_type = ctx.resolve_optional(key, value, loc)?,
            "Options" => self.options = ctx.resolve_optional(key, value, loc)?,
            "SloppyOptions" => self.sloppy = flag(ctx, key, value, loc)?,
            "LazyUnmount" => self.lazy = flag(ctx, key, value, loc)?,
            "ForceUnmount" => self.force = flag(ctx, key, value, loc)?,
            "DirectoryMode" => {
                self.directory_mode =
                    Some(parse_mode(value).ok_or_else(|| ctx.bad(key, value, loc))?)
            }
            "TimeoutSec" => {
                self.timeout = Some(timeout(value).ok_or_else(|| ctx.bad(key, value, loc))?)
            }
            _ => ctx.unsupported(key, value, loc),
        }
        Ok(())
    }

    pub fn finish(self, name: &str, fragment: &Location) -> Result<MountSection, LoadError> {
        let refuse = |m: &str| Err(LoadError::invalid(fragment, m));
        let from_name = unit_name::to_path(name).unwrap_or_default();
        if let Some(w) = &self.where_ {
            if unit_name::from_path(w, "mount") != name {
                return refuse("Where= setting doesn't match unit name. Refusing.");
            }
        }
        let Some(what) = self.what else {
            return refuse("What= setting is missing. Refusing.");
        };
        Ok(MountSection {
            what,
            where_: PathBuf::from(self.where_.unwrap_or(from_name)),
            fs_type: self.fs_type,
            options: self.options,
            sloppy: self.sloppy,
            lazy_unmount: self.lazy,
            force_unmount: self.force,
            directory_mode: self.directory_mode.unwrap_or(0o755),
            timeout: self.timeout.unwrap_or(Timeout::Default),
        })
    }
}

#[derive(Debug, Default)]
pub(crate) struct SwapBuilder {
    what: Option<String>,
    priority: Option<i32>,
    options: Option<String>,
    timeout: Option<Timeout>,
}

impl SwapBuilder {
    pub fn directive(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &str,
        value: &str,
        loc: &Location,
    ) -> Result<(), LoadError> {
        match key {
            "What" => self.what = ctx.resolve_optional(key, value, loc)?,
            "Priority" if value.is_empty() => self.priority = None,
            "Priority" => {
                let p: i32 = value.parse().map_err(|_| ctx.bad(key, value, loc))?;
                if !(-1..=32767).contains(&p) {
                    return Err(ctx.bad_because(key, value, loc, "not in -1..32767"));
                }
                self.priority = Some(p);
            }
            "Options" => self.options = ctx.resolve_optional(key, value, loc)?,
            "TimeoutSec" => {
                self.timeout = Some(timeout(value).ok_or_else(|| ctx.bad(key, value, loc))?)
            }
            _ => ctx.unsupported(key, value, loc),
        }
        Ok(())
    }

    pub fn finish(self, name: &str, fragment: &Location) -> Result<SwapSection, LoadError> {
        let what = set_or_from_name(
            self.what,
            name,
            fragment,
            "What= setting is missing. Refusing.",
        )?;
        if unit_name::from_path(&what, "swap") != name && !what.starts_with("/dev/") {
            return Err(LoadError::invalid(
                fragment,
                "Value of What= and unit name do not match, not loading.",
            ));
        }
        Ok(SwapSection {
            what: PathBuf::from(what),
            priority: self.priority,
            options: self.options,
            timeout: self.timeout.unwrap_or(Timeout::Default),
        })
    }
}

#[derive(Debug, Default)]
pub(crate) struct AutomountBuilder {
    where_: Option<String>,
    directory_mode: Option<u32>,
    timeout_idle: Option<std::time::Duration>,
}

impl AutomountBuilder {
    pub fn directive(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &str,
        value: &str,
        loc: &Location,
    ) -> Result<(), LoadError> {
        match key {
            "Where" => self.where_ = ctx.resolve_optional(key, value, loc)?,
            "DirectoryMode" => {
                self.directory_mode =
                    Some(parse_mode(value).ok_or_else(|| ctx.bad(key, value, loc))?)
            }
            "TimeoutIdleSec" => {
                self.timeout_idle = Some(match parse_timespan(value) {
                    Some(TimeSpan::Finite(d)) => d,
                    Some(TimeSpan::Infinity) => std::time::Duration::ZERO,
                    None => return Err(ctx.bad(key, value, loc)),
                })
            }
            _ => ctx.unsupported(key, value, loc),
        }
        Ok(())
    }

    /// automount_verify(), in systemd's words.
    pub fn finish(self, name: &str, fragment: &Location) -> Result<AutomountSection, LoadError> {
        let where_ = set_or_from_name(
            self.where_,
            name,
            fragment,
            "Cannot generate mount name from path. Refusing.",
        )?;
        if unit_name::from_path(&where_, "automount") != name {
            return Err(LoadError::invalid(
                fragment,
                "Where= setting doesn't match unit name. Refusing.",
            ));
        }
        Ok(AutomountSection {
            where_: PathBuf::from(where_),
            directory_mode: self.directory_mode.unwrap_or(0o755),
            timeout_idle: self.timeout_idle.unwrap_or_default(),
        })
    }
}

/// A path setting, or the unit's name as a path when it is not set;
/// `missing` when the name is no path either.
fn set_or_from_name(
    value: Option<String>,
    name: &str,
    fragment: &Location,
    missing: &str,
) -> Result<String, LoadError> {
    match value {
        Some(v) => Ok(v),
        None => unit_name::to_path(name).ok_or_else(|| LoadError::invalid(fragment, missing)),
    }
}
