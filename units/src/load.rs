//! Finding and loading units the way systemd's manager does
//! (`unit_load_fragment()`, `unit_load_dropin()`, `src/shared/install.c`):
//!
//! - the search path, first dir first; a name found in an earlier dir hides
//!   the same name in later ones; a dir that is a symlink to an earlier one
//!   (usr-merge: /lib → /usr/lib) is read once;
//! - a symlink to another unit file inside the search path is an alias: the
//!   unit's canonical name is the target's name; a symlink to /dev/null, or
//!   an empty file, masks the unit;
//! - `foo@bar.service` uses `foo@.service` unless `foo@bar.service` exists;
//! - drop-ins `*.conf` from `NAME.d/` in every search dir, for the unit's
//!   names, template, dash prefixes (`foo-.service.d/`) and type
//!   (`service.d/`), sorted by file name, a file hiding same-named ones in
//!   later dirs; applied after the fragment, in that order;
//! - `NAME.wants/` and `NAME.requires/` entries (symlinks, named after the
//!   unit they add) for the same set of names.
//!
//! Where relive differs from systemd, on purpose:
//! - specifiers use the canonical name, whichever name was asked for;
//! - loading a template (`foo@.service`) works, with an empty instance, so
//!   templates can be checked; PID 1 starts only instances;
//! - default dependencies are ordering only (no Requires=sysinit.target),
//!   and none are added for unit types relive does not run.

mod build;
mod credentials;
mod directories;
mod index;
mod install;
pub mod install_ops;
mod mount;
mod path;
mod process;
mod resources;
mod sandbox;
mod scope;
mod service;
mod socket;
mod timer;
pub mod unit_files;
pub(crate) mod values;

use crate::error::LoadError;
use crate::model::{Location, Unit, UnitKind, Warning};
use crate::parse::parse_bytes;
use crate::specifier::{SpecifierContext, Specifiers};
use crate::unit_name::{self, NameKind, UnitName};
use build::{dedup, Builder};
use index::{list_files, Index};
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// systemd's system unit search path (highest priority first).
pub const SYSTEM_UNIT_PATH: &[&str] = &[
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/usr/local/lib/systemd/system",
    // Debian's systemd searches /lib before /usr/lib (they are one
    // directory on a merged /usr): unit paths are shown as /lib/...,
    // as `systemctl status` shows them there.
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// The search path with generators' output in it, in systemd's order
/// (systemd.unit(5), "UNIT FILE LOAD PATH"): `generator.early` before
/// /etc, `generator` after /run, `generator.late` last. `generated` is
/// the directory holding the three (/run/systemd). A custom `base` (as
/// `relive --units-dir` gives) gets early first, the others last.
pub fn search_path(base: &[PathBuf], generated: Option<&Path>) -> Vec<PathBuf> {
    let Some(dir) = generated else {
        return base.to_vec();
    };
    let [normal, early, late] = generator_dirs(dir);
    let mut path = Vec::with_capacity(base.len() + 3);
    let standard = base.iter().any(|d| d == Path::new("/etc/systemd/system"));
    if standard {
        for d in base {
            if d == Path::new("/etc/systemd/system") {
                path.push(early.clone());
            }
            path.push(d.clone());
            if d == Path::new("/run/systemd/system.attached") {
                path.push(normal.clone());
            }
        }
        if !path.contains(&normal) {
            path.push(normal);
        }
    } else {
        path.push(early);
        path.extend(base.iter().cloned());
        path.push(normal);
    }
    path.push(late);
    path
}

/// Generators' three output directories under `dir`: normal, early, late
/// (the order of their arguments).
pub fn generator_dirs(dir: &Path) -> [PathBuf; 3] {
    [
        dir.join("generator"),
        dir.join("generator.early"),
        dir.join("generator.late"),
    ]
}

/// The unit of a device (`dev-ttyS0.device` for /dev/ttyS0), which has no
/// file: its path comes from its name.
fn device_unit(name: &str) -> Result<Unit, LoadError> {
    let invalid = || LoadError::InvalidName {
        name: name.to_string(),
    };
    let stem = UnitName::parse(name).ok_or_else(invalid)?.stem();
    let path = format!("/{}", unit_name::unescape(&stem).map_err(|_| invalid())?);
    Ok(Unit::synthetic(name, UnitKind::Device, &path))
}

/// Loads units from a search path. Construction lists the search dirs
/// once; each `load` then reads only the files of that unit.
#[derive(Debug)]
pub struct Loader {
    pub(crate) index: Index,
    ctx: SpecifierContext,
}

impl Loader {
    /// Indexes `dirs` (first = highest priority) with host facts for
    /// specifiers read from this machine. Missing dirs are skipped.
    pub fn new<I, P>(dirs: I) -> Loader
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        Self::with_context(dirs, SpecifierContext::from_host())
    }

    /// Like [`Loader::new`] with given host facts (for tests).
    pub fn with_context<I, P>(dirs: I, ctx: SpecifierContext) -> Loader
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        let dirs: Vec<PathBuf> = dirs.into_iter().map(|p| p.as_ref().to_path_buf()).collect();
        Loader {
            index: Index::build(&dirs),
            ctx,
        }
    }

    /// The search dirs actually used, after skipping missing and duplicate ones.
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        self.index.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// Every unit name present in the search path (files, aliases, masks),
    /// sorted.
    pub fn unit_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.index.map.keys().cloned().collect();
        names.sort();
        names
    }

    /// `systemctl is-enabled`'s answer for unit file `name`; None when
    /// there is no such file.
    pub fn unit_file_state(&self, name: &str) -> Option<unit_files::UnitFileState> {
        let install = self.load(name).ok().map(|u| u.install);
        self.index.unit_file_state(name, install.as_ref())
    }

    /// Every unit file in the search path with its state, sorted by name:
    /// `systemctl list-unit-files`.
    pub fn unit_files(&self) -> Vec<(PathBuf, unit_files::UnitFileState)> {
        self.unit_names()
            .into_iter()
            .filter_map(|name| {
                let path = self
                    .index
                    .dirs
                    .iter()
                    .map(|d| d.path.join(&name))
                    .find(|p| std::fs::symlink_metadata(p).is_ok())?;
                Some((path, self.unit_file_state(&name)?))
            })
            .collect()
    }

    /// The canonical name default.target resolves to, or multi-user.target.
    pub fn default_target(&self) -> String {
        match self.index.resolve("default.target") {
            Ok(Some(path)) if !is_masked(&path) => path
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| unit_name::suffix(n) == Some("target"))
                .map_or_else(|| "multi-user.target".to_string(), str::to_string),
            _ => "multi-user.target".to_string(),
        }
    }

    /// Loads a unit by any of its names.
    pub fn load(&self, name: &str) -> Result<Unit, LoadError> {
        let mut unit = match self.load_one(name) {
            // systemd makes device units from udev, not from files.
            Err(LoadError::NotFound { .. }) if unit_name::suffix(name) == Some("device") => {
                return device_unit(name);
            }
            Err(LoadError::NotFound { .. }) if unit_name::suffix(name) == Some("slice") => {
                return self.implicit_slice(name);
            }
            other => other?,
        };
        if unit.kind == UnitKind::Target && unit.unit.default_dependencies {
            self.add_target_ordering(&mut unit);
        }
        Ok(unit)
    }

    fn load_one(&self, name: &str) -> Result<Unit, LoadError> {
        let not_found = || LoadError::NotFound {
            name: name.to_string(),
        };
        let parsed = UnitName::parse(name).ok_or_else(|| LoadError::InvalidName {
            name: name.to_string(),
        })?;
        let fragment = self
            .index
            .find_fragment(&parsed, name)?
            .ok_or_else(not_found)?;
        let base = fragment
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(name);
        let instance = parsed.instance.filter(|i| !i.is_empty());
        let canonical = match (UnitName::parse(base).map(|n| n.kind()), instance) {
            (Some(NameKind::Template), Some(i)) => {
                unit_name::with_instance(base, i).unwrap_or_else(|| name.to_string())
            }
            (Some(_), _) => base.to_string(),
            (None, _) => name.to_string(),
        };
        let meta = fs::metadata(&fragment).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => not_found(),
            _ => LoadError::Io {
                path: fragment.clone(),
                source: e,
            },
        })?;
        if meta.file_type().is_char_device() || (meta.is_file() && meta.len() == 0) {
            // The same test as is_masked(), on metadata we already have.
            return Err(LoadError::Masked {
                name: name.to_string(),
                path: fragment,
            });
        }
        let data =
            crate::read::read_regular(&fragment, crate::read::MAX_UNIT_FILE).map_err(|e| {
                LoadError::Io {
                    path: fragment.clone(),
                    source: e,
                }
            })?;

        let kind = match unit_name::suffix(&canonical) {
            Some("service") => UnitKind::Service,
            Some("target") => UnitKind::Target,
            Some("socket") => UnitKind::Socket,
            Some("timer") => UnitKind::Timer,
            Some("mount") => UnitKind::Mount,
            Some("swap") => UnitKind::Swap,
            Some("automount") => UnitKind::Automount,
            Some("path") => UnitKind::Path,
            Some("slice") => UnitKind::Slice,
            Some("scope") => UnitKind::Scope,
            _ => UnitKind::Unsupported,
        };
        // Other names: alias symlinks to the same file (with our instance).
        let mut aliases: Vec<String> = self
            .index
            .aliases_of(&fragment)
            .into_iter()
            .filter_map(|a| {
                let alias = UnitName::parse(&a)?;
                match (alias.kind(), instance) {
                    (NameKind::Template, Some(i)) => unit_name::with_instance(&a, i),
                    // An alias of one instance belongs to that instance only.
                    (NameKind::Instance, _) => (alias.instance == instance).then_some(a),
                    _ => Some(a),
                }
            })
            .filter(|a| *a != canonical)
            .collect();
        if name != canonical {
            aliases.push(name.to_string());
        }
        dedup(&mut aliases);

        let spec = Specifiers::new(&canonical, Some(&fragment), &self.ctx);
        let mut builder = Builder::new(&canonical, kind, spec);
        builder.apply(&parse_bytes(&data, &fragment)?)?;

        let mut names = vec![canonical.clone()];
        names.extend(aliases.iter().cloned());
        let dropins = self.apply_dropins(&mut builder, &names, instance)?;
        let built = builder.finish(&whole_file(&fragment))?;
        Ok(unit_from(
            canonical, kind, aliases, fragment, dropins, built,
        ))
    }

    /// A slice with no file of its own (`user-1000.slice`: systemd makes
    /// every slice on demand), with the drop-ins that apply to it
    /// (`user-.slice.d/`).
    fn implicit_slice(&self, name: &str) -> Result<Unit, LoadError> {
        let spec = Specifiers::new(name, None, &self.ctx);
        let mut builder = Builder::new(name, UnitKind::Slice, spec);
        // systemd's built-in slices: there from boot to the end.
        let builtin = match name {
            crate::scope::ROOT_SLICE => Some("Root Slice"),
            crate::model::SYSTEM_SLICE => Some("System Slice"),
            _ => None,
        };
        if let Some(description) = builtin {
            builder.unit.description = Some(description.to_string());
            builder.unit.default_dependencies = false;
        }
        let names = [name.to_string()];
        let dropins = self.apply_dropins(&mut builder, &names, None)?;
        let built = builder.finish(&Location {
            file: PathBuf::new(),
            line: 0,
        })?;
        let (kind, fragment) = (UnitKind::Slice, PathBuf::new());
        Ok(unit_from(
            name.into(),
            kind,
            Vec::new(),
            fragment,
            dropins,
            built,
        ))
    }

    /// Applies the drop-ins and .wants/.requires links of a unit known by
    /// `names`; returns the drop-in files applied.
    fn apply_dropins(
        &self,
        builder: &mut Builder<'_>,
        names: &[String],
        instance: Option<&str>,
    ) -> Result<Vec<PathBuf>, LoadError> {
        let mut dropins = Vec::new();
        for path in list_files(&self.index.dropin_dirs(names, ".d"), Some(".conf")) {
            match crate::read::read_regular(&path, crate::read::MAX_UNIT_FILE) {
                Ok(data) => {
                    builder.apply(&parse_bytes(&data, &path)?)?;
                    dropins.push(path);
                }
                Err(e) => builder
                    .ctx
                    .warn(&whole_file(&path), format!("drop-in not read: {e}")),
            }
        }
        for (suffix, requires) in [(".wants", false), (".requires", true)] {
            for path in list_files(&self.index.dropin_dirs(names, suffix), None) {
                if let Some(dep) = dependency_link(&path, instance, &mut builder.ctx.warnings) {
                    let list = if requires {
                        &mut builder.unit.requires
                    } else {
                        &mut builder.unit.wants
                    };
                    list.push(dep);
                }
            }
        }
        Ok(dropins)
    }

    /// systemd's `target_add_default_dependencies()`: a target is ordered
    /// after the units it pulls in (Wants=, Requires=, BindsTo=), unless
    /// such a unit could not be loaded, has DefaultDependencies=no, or is
    /// already ordered after the target (which would make a cycle).
    fn add_target_ordering(&self, target: &mut Unit) {
        let mut target_names = vec![target.name.clone()];
        target_names.extend(target.aliases.iter().cloned());
        let pulled: Vec<String> = target
            .unit
            .wants
            .iter()
            .chain(&target.unit.requires)
            .chain(&target.unit.binds_to)
            .cloned()
            .collect();
        for other in pulled {
            if target.unit.before.contains(&other) {
                continue;
            }
            let Ok(unit) = self.load_one(&other) else {
                continue;
            };
            let after_target = unit.unit.after.iter().any(|a| target_names.contains(a));
            let target_before = unit
                .aliases
                .iter()
                .chain([&unit.name])
                .any(|n| target.unit.before.contains(n));
            if unit.unit.default_dependencies && !after_target && !target_before {
                target.unit.after.push(other);
            }
        }
        dedup(&mut target.unit.after);
    }
}

/// The loaded unit from its names, files and built sections.
fn unit_from(
    canonical: String,
    kind: UnitKind,
    aliases: Vec<String>,
    fragment: PathBuf,
    dropins: Vec<PathBuf>,
    built: build::Built,
) -> Unit {
    let mut all_aliases = aliases;
    all_aliases.extend(
        built
            .install
            .alias
            .iter()
            .filter(|a| **a != canonical)
            .cloned(),
    );
    dedup(&mut all_aliases);
    Unit {
        name: canonical,
        kind,
        aliases: all_aliases,
        fragment,
        dropins,
        unit: built.unit,
        service: built.service,
        socket: built.socket,
        timer: built.timer,
        mount: built.mount,
        swap: built.swap,
        automount: built.automount,
        path: built.path,
        scope: built.scope,
        slice_section: built.slice_section,
        slice: built.slice,
        install: built.install,
        live_upgrade: built.live_upgrade,
        warnings: built.warnings,
        unenforced: built.unenforced,
    }
}

/// systemd's `null_or_empty()`: a character device (/dev/null) or an empty
/// file masks a unit.
fn is_masked(path: &Path) -> bool {
    fs::metadata(path)
        .is_ok_and(|m| m.file_type().is_char_device() || (m.is_file() && m.len() == 0))
}

fn whole_file(path: &Path) -> Location {
    Location {
        file: path.to_path_buf(),
        line: 0,
    }
}

/// One `.wants/`/`.requires/` entry: a symlink named after the unit to add.
/// Masked entries (to /dev/null) add nothing; a template entry gets the
/// loading unit's instance.
fn dependency_link(
    path: &Path,
    instance: Option<&str>,
    warnings: &mut Vec<Warning>,
) -> Option<String> {
    let entry = path.file_name()?.to_str()?;
    let mut warn = |message: String| {
        warnings.push(Warning {
            location: whole_file(path),
            message,
        });
        None
    };
    let Some(parsed) = UnitName::parse(entry) else {
        return warn(format!("'{entry}' is not a unit name, ignored"));
    };
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {}
        _ => return warn("dependency entry is not a symlink, ignored".to_string()),
    }
    if is_masked(path) {
        return None;
    }
    match (parsed.kind(), instance) {
        (NameKind::Template, Some(i)) => unit_name::with_instance(entry, i),
        (NameKind::Template, None) => {
            warn(format!("template '{entry}' needs an instance, ignored"))
        }
        _ => Some(entry.to_string()),
    }
}
