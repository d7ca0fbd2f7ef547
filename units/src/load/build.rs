//! Turns parsed files (fragment, then drop-ins, in order) into the typed
//! [`Unit`]: one directive at a time, like systemd's `config_parse()` with
//! the `load-fragment-gperf` table, then defaults and checks.
//!
//! Policy: a directive relive supports must have a valid value (else
//! `LoadError::Invalid`; systemd often only warns). Directives relive does
//! not implement, and unknown sections, are one `Warning` each. Keys and
//! sections starting with `X-` are ignored silently, as in systemd.

use super::mount::{AutomountBuilder, MountBuilder, SwapBuilder};
use super::path::PathBuilder;
use super::scope;
use super::service::ServiceBuilder;
use super::socket::SocketBuilder;
use super::timer::TimerBuilder;
use super::values::{parse_bool, parse_timespan};
use crate::error::LoadError;
use crate::exec::split_words;
use crate::model::*;
use crate::parse::{RawSection, RawUnit};
use crate::scope::{ScopeSection, SliceSection};
use crate::specifier::Specifiers;
use crate::unit_name::{self, NameKind, UnitName};

/// What every directive handler needs: specifier resolution and a place
/// for warnings.
pub(crate) struct Ctx<'a> {
    pub spec: Specifiers<'a>,
    pub warnings: Vec<Warning>,
    pub unenforced: Vec<Unenforced>,
}

impl Ctx<'_> {
    pub fn warn(&mut self, location: &Location, message: impl Into<String>) {
        self.warnings.push(Warning {
            location: location.clone(),
            message: message.into(),
        });
    }

    /// `invalid Key= value "v"`, the message every bad value gets.
    pub fn bad(&self, key: &str, value: &str, loc: &Location) -> LoadError {
        LoadError::invalid(loc, format!("invalid {key}= value \"{value}\""))
    }

    pub fn bad_because(&self, key: &str, value: &str, loc: &Location, why: &str) -> LoadError {
        LoadError::invalid(loc, format!("invalid {key}= value \"{value}\": {why}"))
    }

    pub fn resolve(&self, key: &str, value: &str, loc: &Location) -> Result<String, LoadError> {
        self.spec
            .resolve(value)
            .map_err(|e| self.bad_because(key, value, loc, &e.to_string()))
    }

    /// `resolve` for a setting an empty assignment resets: None then.
    pub fn resolve_optional(
        &self,
        key: &str,
        value: &str,
        loc: &Location,
    ) -> Result<Option<String>, LoadError> {
        let v = self.resolve(key, value, loc)?;
        Ok((!v.is_empty()).then_some(v))
    }

    /// Splits a list value (systemd quoting) and resolves specifiers in
    /// each word, which is the order systemd does it in.
    pub fn words(&self, key: &str, value: &str, loc: &Location) -> Result<Vec<String>, LoadError> {
        split_words(value)
            .map_err(|e| self.bad_because(key, value, loc, &e))?
            .iter()
            .map(|w| self.resolve(key, w, loc))
            .collect()
    }

    /// A list of unit names: as [`Ctx::words`], but backslashes stay
    /// (they are part of the names).
    pub fn unit_names(
        &self,
        key: &str,
        value: &str,
        loc: &Location,
    ) -> Result<Vec<String>, LoadError> {
        crate::exec::split_unit_names(value)
            .map_err(|e| self.bad_because(key, value, loc, &e))?
            .iter()
            .map(|w| self.resolve(key, w, loc))
            .collect()
    }

    /// Unit= of a timer or path unit (`own` its own type): a unit it may
    /// start, not a template and not one of its own kind.
    pub fn triggered_unit(
        &self,
        key: &str,
        value: &str,
        loc: &Location,
        own: &str,
    ) -> Result<String, LoadError> {
        let name = self.resolve(key, value, loc)?;
        let ok = UnitName::parse(&name).is_some_and(|n| n.suffix != own && n.instance != Some(""));
        if !ok {
            return Err(self.bad_because(
                key,
                value,
                loc,
                &format!("not a unit a {own} can start"),
            ));
        }
        Ok(name)
    }

    /// A directive relive does not implement. A protection or limit is
    /// recorded ([`crate::enforcement`]); the others are a warning.
    pub fn unsupported(&mut self, key: &str, value: &str, loc: &Location) {
        use crate::enforcement::{asks_for_something, policy, Policy};
        if key.starts_with("X-") {
            return;
        }
        let message = match policy(key) {
            Some(p) if asks_for_something(key, value) => {
                let best_effort = matches!(p, Policy::BestEffort(_));
                self.unenforced.retain(|u| u.directive != key);
                self.unenforced.push(Unenforced {
                    directive: key.to_string(),
                    location: loc.clone(),
                    best_effort,
                });
                match p {
                    Policy::BestEffort(why) => {
                        format!("{key}= is not applied (best effort: {why})")
                    }
                    Policy::Refuse => {
                        format!("{key}= is not implemented by relive: the unit will not start")
                    }
                }
            }
            Some(_) => {
                // An empty or "no" value takes an earlier one back.
                self.unenforced.retain(|u| u.directive != key);
                return;
            }
            None => format!("unsupported directive {key}= ignored (relive does not implement it)"),
        };
        self.warn(loc, message);
    }
}

/// The type-specific section of unit types relive does not run.
fn type_section(suffix: &str) -> Option<&'static str> {
    Some(match suffix {
        "socket" => "Socket",
        "mount" => "Mount",
        "automount" => "Automount",
        "swap" => "Swap",
        "timer" => "Timer",
        "path" => "Path",
        "slice" => "Slice",
        "scope" => "Scope",
        _ => return None,
    })
}

pub(crate) struct Builder<'a> {
    pub name: String,
    pub kind: UnitKind,
    pub ctx: Ctx<'a>,
    pub unit: UnitSection,
    pub install: InstallSection,
    pub service: Option<ServiceBuilder>,
    pub socket: Option<SocketBuilder>,
    pub timer: Option<TimerBuilder>,
    pub mount: Option<MountBuilder>,
    pub swap: Option<SwapBuilder>,
    pub automount: Option<AutomountBuilder>,
    pub path: Option<PathBuilder>,
    pub scope: Option<ScopeSection>,
    pub slice_section: Option<SliceSection>,
    /// Slice=, from whichever section carries it.
    pub slice: Option<String>,
    pub(super) mode: Option<UpgradeMode>,
    pub(super) priority: Option<u16>,
    pub(super) pre_dump: Option<bool>,
    pub(super) pre_dump_max_rounds: Option<u32>,
    pub(super) rollback: Option<bool>,
    /// SuccessAction= set to something other than `none`: systemd then
    /// accepts a service without any command (e.g. systemd-poweroff).
    success_action: bool,
    /// Loading `foo@.service` itself (empty instance).
    is_template: bool,
}

impl<'a> Builder<'a> {
    pub fn new(name: &str, kind: UnitKind, spec: Specifiers<'a>) -> Self {
        Builder {
            name: name.to_string(),
            kind,
            ctx: Ctx {
                spec,
                warnings: Vec::new(),
                unenforced: Vec::new(),
            },
            unit: UnitSection {
                default_dependencies: true,
                ..UnitSection::default()
            },
            install: InstallSection::default(),
            service: (kind == UnitKind::Service).then(ServiceBuilder::default),
            socket: None,
            timer: (kind == UnitKind::Timer).then(TimerBuilder::default),
            mount: (kind == UnitKind::Mount).then(MountBuilder::default),
            swap: (kind == UnitKind::Swap).then(SwapBuilder::default),
            automount: (kind == UnitKind::Automount).then(AutomountBuilder::default),
            path: (kind == UnitKind::Path).then(PathBuilder::default),
            scope: (kind == UnitKind::Scope).then(ScopeSection::default),
            slice_section: (kind == UnitKind::Slice).then(SliceSection::default),
            slice: None,
            mode: None,
            priority: None,
            pre_dump: None,
            pre_dump_max_rounds: None,
            rollback: None,
            success_action: false,
            is_template: UnitName::parse(name).is_some_and(|n| n.kind() == NameKind::Template),
        }
        .with_socket()
    }

    fn with_socket(mut self) -> Self {
        if self.kind == UnitKind::Socket {
            self.socket = Some(SocketBuilder::new(self.is_template));
        }
        self
    }

    /// Applies one file's directives (the fragment or a drop-in).
    pub fn apply(&mut self, raw: &RawUnit) -> Result<(), LoadError> {
        for section in &raw.sections {
            self.section(section)?;
        }
        Ok(())
    }

    fn section(&mut self, section: &RawSection) -> Result<(), LoadError> {
        let suffix = unit_name::suffix(&self.name).unwrap_or("");
        match section.name.as_str() {
            "Unit" => self.each(section, Self::unit_directive),
            "Install" => self.each(section, Self::install_directive),
            "X-LiveUpgrade" => self.each(section, Self::live_directive),
            "Service" if self.service.is_some() => self.each(section, |b, k, v, l| {
                if k.starts_with("StartLimit") {
                    return b.unit_directive(k, v, l);
                }
                if k == "Slice" {
                    b.slice = scope::slice_name(&b.ctx, k, v, l)?;
                    return Ok(());
                }
                let ctx = &mut b.ctx;
                b.service
                    .as_mut()
                    .map_or(Ok(()), |s| s.directive(ctx, k, v, l))
            }),
            "Socket" if self.socket.is_some() => self.each(section, |b, k, v, l| {
                let ctx = &mut b.ctx;
                b.socket
                    .as_mut()
                    .map_or(Ok(()), |s| s.directive(ctx, k, v, l))
            }),
            "Timer" if self.timer.is_some() => self.each(section, |b, k, v, l| {
                let ctx = &mut b.ctx;
                b.timer
                    .as_mut()
                    .map_or(Ok(()), |t| t.directive(ctx, k, v, l))
            }),
            "Mount" if self.mount.is_some() => self.each(section, |b, k, v, l| {
                let ctx = &mut b.ctx;
                b.mount
                    .as_mut()
                    .map_or(Ok(()), |m| m.directive(ctx, k, v, l))
            }),
            "Path" if self.path.is_some() => self.each(section, |b, k, v, l| {
                let ctx = &mut b.ctx;
                b.path
                    .as_mut()
                    .map_or(Ok(()), |p| p.directive(ctx, k, v, l))
            }),
            "Swap" if self.swap.is_some() => self.each(section, |b, k, v, l| {
                let ctx = &mut b.ctx;
                b.swap
                    .as_mut()
                    .map_or(Ok(()), |m| m.directive(ctx, k, v, l))
            }),
            "Automount" if self.automount.is_some() => self.each(section, |b, k, v, l| {
                let ctx = &mut b.ctx;
                b.automount
                    .as_mut()
                    .map_or(Ok(()), |a| a.directive(ctx, k, v, l))
            }),
            "Scope" if self.scope.is_some() => self.each(section, |b, k, v, l| {
                if k == "Slice" {
                    b.slice = scope::slice_name(&b.ctx, k, v, l)?;
                    return Ok(());
                }
                let ctx = &mut b.ctx;
                b.scope
                    .as_mut()
                    .map_or(Ok(()), |s| scope::scope_directive(s, ctx, k, v, l))
            }),
            "Slice" if self.slice_section.is_some() => self.each(section, |b, k, v, l| {
                let ctx = &mut b.ctx;
                b.slice_section
                    .as_mut()
                    .map_or(Ok(()), |s| scope::slice_directive(s, ctx, k, v, l))
            }),
            name if name.starts_with("X-") => Ok(()),
            name if Some(name) == type_section(suffix) => {
                self.ctx.warn(
                    &section.location,
                    format!("relive does not run .{suffix} units"),
                );
                Ok(())
            }
            name => {
                self.ctx.warn(
                    &section.location,
                    format!("unknown section [{name}] ignored"),
                );
                Ok(())
            }
        }
    }

    fn each(
        &mut self,
        section: &RawSection,
        mut f: impl FnMut(&mut Self, &str, &str, &Location) -> Result<(), LoadError>,
    ) -> Result<(), LoadError> {
        for e in &section.entries {
            f(self, &e.key, &e.value, &e.location)?;
        }
        Ok(())
    }

    fn unit_directive(&mut self, key: &str, value: &str, loc: &Location) -> Result<(), LoadError> {
        match key {
            "Description" => self.unit.description = self.ctx.resolve_optional(key, value, loc)?,
            "Documentation" if value.is_empty() => self.unit.documentation.clear(),
            "Documentation" => {
                let words = self.ctx.words(key, value, loc)?;
                self.unit.documentation.extend(words);
            }
            "After" | "Before" | "Requires" | "Wants" | "BindsTo" | "Conflicts" => {
                // An empty value is a no-op: systemd cannot reset dependencies.
                let names = self.dependency_names(key, value, loc)?;
                let u = &mut self.unit;
                let list = match key {
                    "After" => &mut u.after,
                    "Before" => &mut u.before,
                    "Requires" => &mut u.requires,
                    "Wants" => &mut u.wants,
                    "BindsTo" => &mut u.binds_to,
                    _ => &mut u.conflicts,
                };
                list.extend(names);
            }
            "StartLimitIntervalSec" | "StartLimitInterval" if value.is_empty() => {
                self.unit.start_limit_interval = None;
            }
            "StartLimitIntervalSec" | "StartLimitInterval" => {
                let span = parse_timespan(value).ok_or_else(|| self.ctx.bad(key, value, loc))?;
                self.unit.start_limit_interval = Some(span.saturating());
            }
            "StartLimitBurst" if value.is_empty() => self.unit.start_limit_burst = None,
            "StartLimitBurst" => {
                let n = value.parse().map_err(|_| self.ctx.bad(key, value, loc))?;
                self.unit.start_limit_burst = Some(n);
            }
            "DefaultDependencies" if value.is_empty() => self.unit.default_dependencies = true,
            "DefaultDependencies" => {
                let v = parse_bool(value).ok_or_else(|| self.ctx.bad(key, value, loc))?;
                self.unit.default_dependencies = v;
            }
            _ if condition_kind(key).is_some() => self.condition(key, value, loc)?,
            "RequiresMountsFor" if value.is_empty() => self.unit.requires_mounts_for.clear(),
            "RequiresMountsFor" => {
                for path in self.ctx.words(key, value, loc)? {
                    if !path.starts_with('/') {
                        return Err(self
                            .ctx
                            .bad_because(key, value, loc, "not an absolute path"));
                    }
                    self.unit.requires_mounts_for.push(path);
                }
            }
            "SuccessAction" => {
                self.success_action = !value.is_empty() && value != "none";
                self.ctx.unsupported(key, value, loc);
            }
            _ => self.ctx.unsupported(key, value, loc),
        }
        Ok(())
    }

    /// Unit names in a dependency directive. A template loaded on its own
    /// (empty instance, for checking) drops names that need the instance,
    /// like `foo@%i.service`, with a warning instead of failing.
    fn dependency_names(
        &mut self,
        key: &str,
        value: &str,
        loc: &Location,
    ) -> Result<Vec<String>, LoadError> {
        let mut names = self.ctx.unit_names(key, value, loc)?;
        let mut dropped = Vec::new();
        for n in &names {
            match UnitName::parse(n).map(|u| u.kind()) {
                Some(NameKind::Plain | NameKind::Instance) => {}
                _ if self.is_template => dropped.push((
                    n.clone(),
                    "needs an instance, dropped while loading the template",
                )),
                // systemd cannot depend on a template either (Debian 13's
                // sshd-keygen.service orders itself Before=sshd@.service):
                // it warns and goes on without it.
                Some(NameKind::Template) => dropped.push((
                    n.clone(),
                    "is a template, not a unit: ignored, as systemd does",
                )),
                None => {
                    return Err(self.ctx.bad_because(
                        key,
                        value,
                        loc,
                        &format!("'{n}' is not a unit name"),
                    ))
                }
            }
        }
        for (n, why) in dropped {
            names.retain(|m| *m != n);
            self.ctx.warn(loc, format!("{key}=: '{n}' {why}"));
        }
        Ok(names)
    }

    fn condition(&mut self, key: &str, value: &str, loc: &Location) -> Result<(), LoadError> {
        let Some((kind, assert)) = condition_kind(key) else {
            return Ok(());
        };
        if value.is_empty() {
            // As systemd: an empty Condition*= resets all conditions (an
            // empty Assert*= all assertions).
            self.unit.conditions.retain(|c| c.assert != assert);
            return Ok(());
        }
        let blanks: &[char] = &[' ', '\t', '\n', '\r'];
        let mut rest = value;
        let trigger = rest.starts_with('|');
        if trigger {
            rest = rest[1..].trim_start_matches(blanks);
        }
        let negate = rest.starts_with('!');
        if negate {
            rest = rest[1..].trim_start_matches(blanks);
        }
        let resolved = self.ctx.resolve(key, rest, loc)?;
        if kind.takes_path() && !resolved.starts_with('/') {
            return Err(self
                .ctx
                .bad_because(key, value, loc, "path is not absolute"));
        }
        if resolved.is_empty() {
            return Err(self.ctx.bad(key, value, loc));
        }
        self.unit.conditions.push(Condition {
            kind,
            negate,
            trigger,
            assert,
            value: resolved,
            location: loc.clone(),
        });
        Ok(())
    }

    /// Defaults, checks and implicit dependencies once every file is applied.
    /// `fragment` locates unit-wide errors. Target ordering on wanted units
    /// needs the other units, so `load` adds it.
    pub fn finish(mut self, fragment: &Location) -> Result<Built, LoadError> {
        let mut service = match self.service.take() {
            Some(s) => Some(s.finish(fragment, self.success_action)?),
            None => None,
        };
        let socket = match self.socket.take() {
            Some(s) => Some(s.finish(&self.name, fragment)?),
            None => None,
        };
        let timer = match self.timer.take() {
            Some(t) => Some(t.finish(&self.name, fragment)?),
            None => None,
        };
        let mount = match self.mount.take() {
            Some(m) => Some(m.finish(&self.name, fragment)?),
            None => None,
        };
        let swap = match self.swap.take() {
            Some(s) => Some(s.finish(&self.name, fragment)?),
            None => None,
        };
        let path = match self.path.take() {
            Some(p) => Some(p.finish(&self.name, fragment)?),
            None => None,
        };
        let automount = match self.automount.take() {
            Some(a) => Some(a.finish(&self.name, fragment)?),
            None => None,
        };
        let u = &mut self.unit;
        if let Some(unit) = path.as_ref().and_then(|p| p.unit.clone()) {
            // path_add_trigger_dependencies().
            u.before.push(unit);
        }
        // mount_add_device_dependencies(), swap_add_device_dependencies():
        // a device needs its node.
        let device = mount
            .as_ref()
            .map(|m| m.what.clone())
            .or_else(|| swap.as_ref().map(|s| s.what.to_string_lossy().into_owned()))
            .filter(|what| what.starts_with("/dev/"));
        if let Some(what) = device {
            let dev = unit_name::from_path(&what, "device");
            u.requires.push(dev.clone());
            u.after.push(dev);
        }
        if automount.is_some() {
            // automount_add_trigger_dependencies(): set up before the
            // mount it triggers.
            u.before.extend(unit_name::same_name(&self.name, "mount"));
        }
        if let Some(unit) = timer.as_ref().and_then(|t| t.unit.clone()) {
            // timer_add_trigger_dependencies(): set up before what it starts.
            u.before.push(unit);
        }
        if let Some(svc) = &service {
            // Sockets=: pulled in and set up first (config_parse_service_sockets()).
            u.wants.extend(svc.sockets.iter().cloned());
            u.after.extend(svc.sockets.iter().cloned());
            // service_setup_bus_name(): a Type=dbus service needs the
            // bus's socket and comes after it. Other services with a
            // BusName= get nothing: timesyncd's (DefaultDependencies=no,
            // before sysinit.target) would make an ordering cycle.
            if svc.service_type == ServiceType::Dbus {
                u.requires.push(DBUS_SOCKET.into());
                u.after.push(DBUS_SOCKET.into());
            }
        }
        if let Some(service) = socket
            .as_ref()
            .filter(|s| !s.accept)
            .and_then(|s| s.service.clone())
        {
            // socket_add_extras(): the socket is set up before the service
            // it starts.
            u.before.push(service);
        }
        // unit_set_slice() and slice_add_parent_slice(): a unit needs its
        // slice, a slice its parent. system.slice and the root slice are
        // always there (relive starts them first), so the default adds
        // nothing.
        let slice = match self.kind {
            UnitKind::Slice => crate::scope::parent_slice(&self.name),
            _ => self.slice.clone(),
        };
        if let Some(slice) = slice.filter(|s| s != SYSTEM_SLICE && s != crate::scope::ROOT_SLICE) {
            u.requires.push(slice.clone());
            u.after.push(slice);
        }
        if u.default_dependencies {
            match self.kind {
                // systemd also adds Requires=sysinit.target to services;
                // relive orders only, so that a failed sysinit.target does
                // not take every service down with it.
                UnitKind::Service => {
                    u.after
                        .extend(["sysinit.target".into(), "basic.target".into()]);
                    u.before.push("shutdown.target".into());
                    u.conflicts.push("shutdown.target".into());
                }
                // socket_add_default_dependencies(); as for services,
                // relive orders after sysinit.target without requiring it.
                UnitKind::Socket => {
                    u.after.push("sysinit.target".into());
                    u.before
                        .extend(["sockets.target".into(), "shutdown.target".into()]);
                    u.conflicts.push("shutdown.target".into());
                }
                // timer_add_default_dependencies(); calendar timers wait for
                // the clock to be set.
                UnitKind::Timer => {
                    u.after.push("sysinit.target".into());
                    if timer.as_ref().is_some_and(|t| !t.calendar.is_empty()) {
                        u.after
                            .extend(["time-set.target".into(), "time-sync.target".into()]);
                    }
                    u.before
                        .extend(["timers.target".into(), "shutdown.target".into()]);
                    u.conflicts.push("shutdown.target".into());
                }
                // mount_add_default_dependencies(): local or network
                // file systems; a nofail mount is not waited for.
                UnitKind::Mount => {
                    let m = mount.as_ref().expect("a mount unit has its section");
                    let nofail = m.has_option("nofail");
                    if m.is_network() {
                        u.after.extend([
                            "remote-fs-pre.target".into(),
                            "network.target".into(),
                            "network-online.target".into(),
                        ]);
                        u.wants.push("network-online.target".into());
                        if !nofail {
                            u.before.push("remote-fs.target".into());
                        }
                    } else {
                        u.after.push("local-fs-pre.target".into());
                        if !nofail {
                            u.before.push("local-fs.target".into());
                        }
                    }
                    u.before.push("umount.target".into());
                    u.conflicts.push("umount.target".into());
                }
                UnitKind::Path => {
                    u.after.push("sysinit.target".into());
                    u.before
                        .extend(["paths.target".into(), "shutdown.target".into()]);
                    u.conflicts.push("shutdown.target".into());
                }
                // automount_add_default_dependencies().
                UnitKind::Automount => {
                    u.before
                        .extend(["local-fs.target".into(), "umount.target".into()]);
                    u.after.push("local-fs-pre.target".into());
                    u.conflicts.push("umount.target".into());
                }
                UnitKind::Swap => {
                    let nofail = swap
                        .as_ref()
                        .and_then(|s| s.options.as_deref())
                        .is_some_and(|o| o.split(',').any(|o| o == "nofail"));
                    if !nofail {
                        u.before.push("swap.target".into());
                    }
                    u.before.push("umount.target".into());
                    u.conflicts.push("umount.target".into());
                }
                // slice_add_default_dependencies(),
                // scope_add_default_dependencies().
                UnitKind::Slice | UnitKind::Scope => {
                    u.before.push("shutdown.target".into());
                    u.conflicts.push("shutdown.target".into());
                }
                UnitKind::Target if self.name != "shutdown.target" => {
                    u.before.push("shutdown.target".into());
                    u.conflicts.push("shutdown.target".into());
                }
                _ => {}
            }
        }
        for list in [
            &mut u.after,
            &mut u.before,
            &mut u.requires,
            &mut u.wants,
            &mut u.binds_to,
            &mut u.conflicts,
        ] {
            dedup(list);
        }
        let built_in = crate::upgrade_policy::built_in(&self.name).map(|(mode, _)| mode);
        let mode = self.mode.or(built_in).unwrap_or(match &service {
            Some(s) if s.service_type == ServiceType::Oneshot => UpgradeMode::Rerun,
            Some(_) => UpgradeMode::Preserve,
            None => UpgradeMode::Restart,
        });
        if let Some(s) = service.as_mut().filter(|_| mode == UpgradeMode::Preserve) {
            s.sandbox.private_ipc |= crate::upgrade_policy::own_ipc_namespace(&self.name).is_some();
        }
        let live = LiveUpgrade {
            mode,
            priority: self.priority.unwrap_or(500),
            mode_explicit: self.mode.is_some(),
            pre_dump: self.pre_dump.unwrap_or(true),
            pre_dump_max_rounds: self.pre_dump_max_rounds,
            rollback_on_restore_failure: self.rollback.unwrap_or(false),
        };
        Ok(Built {
            unit: self.unit,
            service,
            socket,
            timer,
            mount,
            swap,
            automount,
            path,
            scope: self.scope,
            slice_section: self.slice_section,
            slice: self.slice,
            install: self.install,
            live_upgrade: live,
            warnings: self.ctx.warnings,
            unenforced: self.ctx.unenforced,
        })
    }
}

/// A unit's sections once every file is applied.
pub(crate) struct Built {
    pub unit: UnitSection,
    pub service: Option<ServiceSection>,
    pub socket: Option<crate::socket::SocketSection>,
    pub timer: Option<crate::timer::TimerSection>,
    pub mount: Option<crate::mount::MountSection>,
    pub swap: Option<crate::mount::SwapSection>,
    pub automount: Option<crate::mount::AutomountSection>,
    pub path: Option<crate::path::PathSection>,
    pub scope: Option<ScopeSection>,
    pub slice_section: Option<SliceSection>,
    pub slice: Option<String>,
    pub install: InstallSection,
    pub live_upgrade: LiveUpgrade,
    pub warnings: Vec<Warning>,
    pub unenforced: Vec<Unenforced>,
}

/// Keeps the first occurrence of each name, in order.
pub(crate) fn dedup(list: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    list.retain(|n| seen.insert(n.clone()));
}

/// `ConditionPathExists` → (PathExists, false); `AssertPathExists` → (.., true).
fn condition_kind(key: &str) -> Option<(ConditionKind, bool)> {
    let (name, assert) = match key.strip_prefix("Condition") {
        Some(n) => (n, false),
        None => (key.strip_prefix("Assert")?, true),
    };
    ConditionKind::ALL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, kind)| (*kind, assert))
}
