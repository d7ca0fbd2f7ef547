//! Unit file states, as `systemctl is-enabled` and `list-unit-files`
//! name them (systemd's `unit_file_lookup_state()`), and presets
//! (systemd.preset(5)).

use super::index::{Entry, Index};
use crate::model::InstallSection;
use crate::unit_name::UnitName;
use std::fs;
use std::path::{Path, PathBuf};

/// systemd's UnitFileState, the values of `systemctl is-enabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitFileState {
    Enabled,
    EnabledRuntime,
    Linked,
    LinkedRuntime,
    Alias,
    Masked,
    MaskedRuntime,
    Static,
    Disabled,
    Indirect,
    Generated,
    Transient,
}

impl UnitFileState {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitFileState::Enabled => "enabled",
            UnitFileState::EnabledRuntime => "enabled-runtime",
            UnitFileState::Linked => "linked",
            UnitFileState::LinkedRuntime => "linked-runtime",
            UnitFileState::Alias => "alias",
            UnitFileState::Masked => "masked",
            UnitFileState::MaskedRuntime => "masked-runtime",
            UnitFileState::Static => "static",
            UnitFileState::Disabled => "disabled",
            UnitFileState::Indirect => "indirect",
            UnitFileState::Generated => "generated",
            UnitFileState::Transient => "transient",
        }
    }

    /// What `systemctl is-enabled` exits 0 for.
    pub fn counts_as_enabled(self) -> bool {
        matches!(
            self,
            UnitFileState::Enabled
                | UnitFileState::EnabledRuntime
                | UnitFileState::Static
                | UnitFileState::Alias
                | UnitFileState::Indirect
                | UnitFileState::Generated
        )
    }
}

fn runtime(path: &Path) -> bool {
    path.starts_with("/run")
}

impl Index {
    /// The search dir that holds an entry named `name`, first wins.
    fn dir_holding(&self, name: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .map(|d| d.path.as_path())
            .find(|d| fs::symlink_metadata(d.join(name)).is_ok())
    }

    /// The state of unit file `name`; None if there is no such file.
    /// `install` is its [Install] section, when it could be loaded.
    pub fn unit_file_state(
        &self,
        name: &str,
        install: Option<&InstallSection>,
    ) -> Option<UnitFileState> {
        let entry = self.map.get(name).or_else(|| {
            let template = UnitName::parse(name)?.template()?;
            self.map.get(&template)
        })?;
        let dir = self.dir_holding(name).map(Path::to_path_buf);
        let path = match entry {
            Entry::Alias(_) => return Some(UnitFileState::Alias),
            Entry::File(p) => p,
        };
        if path == Path::new("/dev/null") || is_null_link(path) {
            return Some(if dir.as_deref().is_some_and(runtime) {
                UnitFileState::MaskedRuntime
            } else {
                UnitFileState::Masked
            });
        }
        let dir = dir.unwrap_or_default();
        let dir_text = dir.to_string_lossy();
        if dir_text.contains("/systemd/generator") {
            return Some(UnitFileState::Generated);
        }
        if dir.starts_with("/run/systemd/transient") {
            return Some(UnitFileState::Transient);
        }
        if let Some(state) = self.enabled_in(name, install) {
            return Some(state);
        }
        let linked = fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.is_symlink());
        if linked {
            return Some(if runtime(&dir) {
                UnitFileState::LinkedRuntime
            } else {
                UnitFileState::Linked
            });
        }
        let install = install.cloned().unwrap_or_default();
        let installable = !install.wanted_by.is_empty()
            || !install.required_by.is_empty()
            || !install.alias.is_empty()
            || install.default_instance.is_some();
        Some(if installable {
            UnitFileState::Disabled
        } else if !install.also.is_empty() {
            UnitFileState::Indirect
        } else {
            UnitFileState::Static
        })
    }

    /// Whether `name` (or, for a template, one of its instances) is
    /// enabled: linked from a `.wants`/`.requires` directory or through
    /// one of its Alias= names in the configuration directory (Enabled)
    /// or below /run (EnabledRuntime). Links in the vendor directories
    /// (/lib/systemd/system/*.wants) enable nothing, except that an
    /// instance linked there is Static — systemd's find_symlinks_in_scope().
    fn enabled_in(&self, name: &str, install: Option<&InstallSection>) -> Option<UnitFileState> {
        let template_prefix = name
            .strip_suffix(name.rsplit_once('.').map_or("", |(_, s)| s))
            .filter(|p| p.ends_with("@."))
            .map(|p| p.trim_end_matches('.').to_owned());
        let config = config_dir(&self.search_dirs(), false);
        let (mut in_runtime, mut in_vendor) = (false, false);
        let mut note = |dir: &Path| -> bool {
            if dir == config {
                return true;
            }
            if runtime(dir) {
                in_runtime = true;
            } else {
                in_vendor = true;
            }
            false
        };
        for dir in &self.dirs {
            for sub in &dir.subdirs {
                let wanted = [".wants", ".requires"].iter().any(|s| sub.ends_with(s));
                if !wanted {
                    continue;
                }
                let path = dir.path.join(sub);
                let hit = match &template_prefix {
                    Some(prefix) => fs::read_dir(&path).is_ok_and(|entries| {
                        entries.flatten().any(|e| {
                            e.file_name()
                                .to_str()
                                .is_some_and(|n| n.starts_with(prefix.as_str()))
                        })
                    }),
                    None => fs::symlink_metadata(path.join(name)).is_ok(),
                };
                if hit && note(&dir.path) {
                    return Some(UnitFileState::Enabled);
                }
            }
        }
        for alias in install.map(|i| i.alias.as_slice()).unwrap_or_default() {
            if let Some(Entry::Alias(target)) = self.map.get(alias) {
                if target == name {
                    if let Some(dir) = self.dir_holding(alias) {
                        if note(dir) {
                            return Some(UnitFileState::Enabled);
                        }
                    }
                }
            }
        }
        let instance =
            UnitName::parse(name).is_some_and(|n| n.kind() == crate::unit_name::NameKind::Instance);
        if in_runtime {
            Some(UnitFileState::EnabledRuntime)
        } else if in_vendor && instance {
            Some(UnitFileState::Static)
        } else {
            None
        }
    }

    fn search_dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }
}

/// Where `systemctl enable` makes its links for a search path: systemd's
/// own configuration directory (/etc/systemd/system, or /run/systemd/system
/// for `--runtime`) when the search path has it, else the first directory
/// generators do not own (a test's own search path).
pub fn config_dir(dirs: &[PathBuf], runtime: bool) -> PathBuf {
    let wanted = if runtime {
        "/run/systemd/system"
    } else {
        "/etc/systemd/system"
    };
    dirs.iter()
        .find(|d| d.as_path() == Path::new(wanted))
        .or_else(|| {
            dirs.iter()
                .find(|d| !d.to_string_lossy().contains("/systemd/generator"))
        })
        .cloned()
        .unwrap_or_else(|| PathBuf::from(wanted))
}

fn is_null_link(path: &Path) -> bool {
    fs::read_link(path).is_ok_and(|t| t == Path::new("/dev/null"))
}

/// Where preset files live, highest priority first (systemd.preset(5)).
pub const PRESET_DIRS: &[&str] = &[
    "/etc/systemd/system-preset",
    "/run/systemd/system-preset",
    "/usr/local/lib/systemd/system-preset",
    "/usr/lib/systemd/system-preset",
    "/lib/systemd/system-preset",
];

/// The preset rules of a system, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct Presets {
    /// (enable, pattern); the first rule whose pattern matches decides.
    rules: Vec<(bool, glob::Pattern)>,
}

impl Presets {
    /// Reads every `*.preset` file: a file name in an earlier dir hides
    /// the same name in later ones; the files are read in name order.
    /// Lines that are neither `enable PATTERN` nor `disable PATTERN` are
    /// skipped, as systemd skips them (with a warning it logs).
    pub fn read(dirs: &[PathBuf]) -> Presets {
        let mut files: std::collections::BTreeMap<String, PathBuf> = Default::default();
        for dir in dirs {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                if name.ends_with(".preset") {
                    files.entry(name).or_insert_with(|| e.path());
                }
            }
        }
        let mut rules = Vec::new();
        for path in files.values() {
            let text = fs::read_to_string(path).unwrap_or_default();
            for line in text.lines() {
                let mut words = line.split_whitespace();
                let enable = match words.next() {
                    Some("enable") => true,
                    Some("disable") => false,
                    _ => continue,
                };
                if let Some(pattern) = words.next().and_then(|p| glob::Pattern::new(p).ok()) {
                    rules.push((enable, pattern));
                }
            }
        }
        Presets { rules }
    }

    /// Whether `name` is enabled by preset; with no rule matching, it is
    /// (systemd's default).
    pub fn enables(&self, name: &str) -> bool {
        self.rules
            .iter()
            .find(|(_, p)| p.matches(name))
            .is_none_or(|(enable, _)| *enable)
    }
}
