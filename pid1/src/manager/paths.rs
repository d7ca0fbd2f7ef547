//! `.path` units (systemd.path(5)): inotify watches on the paths and on
//! their nearest existing parent (so that a path's appearance is seen),
//! one inotify descriptor for all, polled by the loop. A state condition
//! (PathExists=, PathExistsGlob=, DirectoryNotEmpty=) starts the unit
//! while it holds, again each time the unit goes down; an event condition
//! (PathChanged=, PathModified=) starts it on each event.

use super::state::{ActiveState, JobKind, SubState, UnitResult};
use super::Manager;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use relive_units::path::{PathCondition, PathSection, PathSpec};
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// The watches of the active path units.
#[derive(Debug, Default)]
pub struct PathWatches {
    inotify: Option<Inotify>,
    /// Watch → the units and specs' paths it serves (the kernel gives two
    /// watches of one directory the same descriptor).
    watches: HashMap<WatchDescriptor, Vec<(String, PathBuf)>>,
}

impl PathWatches {
    /// The descriptor to poll, while anything is watched.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.inotify
            .as_ref()
            .filter(|_| !self.watches.is_empty())
            .map(|i| i.as_fd())
    }
}

fn holds(spec: &PathSpec) -> bool {
    match spec.condition {
        PathCondition::Exists => spec.path.exists(),
        PathCondition::ExistsGlob => super::conditions::glob_exists(&spec.path.to_string_lossy()),
        PathCondition::DirectoryNotEmpty => {
            std::fs::read_dir(&spec.path).is_ok_and(|mut d| d.next().is_some())
        }
        PathCondition::Changed | PathCondition::Modified => false,
    }
}

/// The directory to watch for a path's appearance: its nearest existing
/// ancestor (a glob's directory for a glob).
fn watched_parent(path: &Path) -> Option<PathBuf> {
    let mut dir = path.parent()?;
    loop {
        if dir.is_dir() && !dir.to_string_lossy().contains(['*', '?', '[']) {
            return Some(dir.to_path_buf());
        }
        dir = dir.parent()?;
    }
}

impl Manager {
    fn path_config(&self, name: &str) -> Option<PathSection> {
        self.state.units.get(name)?.config.as_ref()?.path.clone()
    }

    pub(super) fn start_path(&mut self, name: &str) {
        let Some(cfg) = self.start_config(name) else {
            return;
        };
        let Some(path) = cfg.path.clone() else {
            return;
        };
        if path.make_directory {
            for spec in &path.specs {
                if spec.condition == PathCondition::DirectoryNotEmpty {
                    use std::os::unix::fs::DirBuilderExt;
                    let _ = std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(path.directory_mode)
                        .create(&spec.path);
                }
            }
        }
        self.state.units.get_mut(name).expect("unit exists").result = UnitResult::Success;
        self.set_state(name, ActiveState::Active, SubState::Waiting);
        self.path_check(name, false);
    }

    pub(super) fn stop_path(&mut self, name: &str) {
        self.unwatch(name);
        self.set_state(name, ActiveState::Inactive, SubState::Dead);
    }

    fn unwatch(&mut self, name: &str) {
        let w = &mut self.rt.path_watches;
        let mut unused = Vec::new();
        for (wd, users) in w.watches.iter_mut() {
            users.retain(|(u, _)| u != name);
            if users.is_empty() {
                unused.push(*wd);
            }
        }
        for wd in unused {
            w.watches.remove(&wd);
            if let Some(i) = &w.inotify {
                let _ = i.rm_watch(wd);
            }
        }
    }

    /// Watches every spec's path and its nearest existing parent, afresh.
    fn watch(&mut self, name: &str, path: &PathSection) {
        self.unwatch(name);
        let w = &mut self.rt.path_watches;
        if w.inotify.is_none() {
            match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
                Ok(i) => w.inotify = Some(i),
                Err(e) => {
                    tracing::error!("{name}: cannot watch paths: {e}");
                    return;
                }
            }
        }
        let inotify = w.inotify.as_ref().expect("just made");
        let appear = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        for spec in &path.specs {
            let mut own = appear;
            if spec.condition == PathCondition::Modified {
                own |= AddWatchFlags::IN_MODIFY;
            }
            let mut targets: Vec<(PathBuf, AddWatchFlags)> = Vec::new();
            if spec.path.exists() && spec.condition != PathCondition::ExistsGlob {
                targets.push((spec.path.clone(), own));
            }
            if let Some(parent) = watched_parent(&spec.path) {
                targets.push((parent, appear));
            }
            for (target, mask) in targets {
                // IN_MASK_ADD: another unit may watch the same directory.
                let merge = AddWatchFlags::from_bits_retain(libc::IN_MASK_ADD);
                match inotify.add_watch(&target, mask | merge) {
                    Ok(wd) => {
                        w.watches
                            .entry(wd)
                            .or_default()
                            .push((name.to_owned(), spec.path.clone()));
                    }
                    Err(e) => tracing::warn!("{name}: cannot watch {}: {e}", target.display()),
                }
            }
        }
    }

    /// Reads the inotify events and acts on the units they concern.
    pub fn path_events(&mut self) {
        let Some(inotify) = &self.rt.path_watches.inotify else {
            return;
        };
        let events = inotify.read_events().unwrap_or_default();
        let mut touched: Vec<(String, PathBuf, Option<std::ffi::OsString>)> = Vec::new();
        for e in events {
            for (unit, spec_path) in self
                .rt
                .path_watches
                .watches
                .get(&e.wd)
                .into_iter()
                .flatten()
            {
                touched.push((unit.clone(), spec_path.clone(), e.name.clone()));
            }
        }
        let mut checked: Vec<String> = Vec::new();
        for (unit, spec_path, name) in touched {
            let Some(path) = self.path_config(&unit) else {
                continue;
            };
            // An event condition fires on an event about its own path: on
            // the file itself, or its name in the parent directory.
            let fired = path.specs.iter().any(|s| {
                matches!(
                    s.condition,
                    PathCondition::Changed | PathCondition::Modified
                ) && s.path == spec_path
                    && name
                        .as_ref()
                        .is_none_or(|n| Some(n.as_os_str()) == s.path.file_name())
            });
            // Each unit is looked at once, unless an event fires it.
            if fired || !checked.contains(&unit) {
                checked.push(unit.clone());
                self.path_check(&unit, fired);
            }
        }
    }

    /// Starts the unit if a state condition holds or an event fired, then
    /// watches again (paths may have come or gone).
    fn path_check(&mut self, name: &str, fired: bool) {
        let Some(path) = self.path_config(name) else {
            return;
        };
        if self.state.units[name].active != ActiveState::Active {
            return;
        }
        let trigger = fired || path.specs.iter().any(holds);
        let unit = path.unit.clone().unwrap_or_default();
        let busy = self
            .unit(&unit)
            .is_some_and(|u| u.is_up() || u.job.is_some());
        if trigger && !busy {
            tracing::info!("{name}: triggered, starting {unit}");
            if let Err(e) = self.enqueue(&unit, JobKind::Start) {
                tracing::error!("{name}: cannot start {unit}: {e}");
                self.unwatch(name);
                self.state.units.get_mut(name).expect("unit exists").result =
                    UnitResult::Resources(e.to_string());
                return self.set_state(name, ActiveState::Failed, SubState::Failed);
            }
            self.set_state(name, ActiveState::Active, SubState::Running);
        }
        self.watch(name, &path);
    }

    /// The unit a path unit starts changed state: once it is down, the
    /// path unit waits again, and a state that still holds starts it again.
    pub(super) fn path_trigger_notify(&mut self, unit: &str) {
        let down = self.unit(unit).is_none_or(|u| !u.is_up());
        if !down {
            return;
        }
        let paths: Vec<String> = self
            .state
            .units
            .values()
            .filter(|p| p.sub == SubState::Running)
            .filter(|p| {
                p.config
                    .as_ref()
                    .and_then(|c| c.path.as_ref())
                    .is_some_and(|c| c.unit.as_deref() == Some(unit))
            })
            .map(|p| p.name.clone())
            .collect();
        for p in paths {
            self.set_state(&p, ActiveState::Active, SubState::Waiting);
            self.path_check(&p, false);
        }
    }
}
