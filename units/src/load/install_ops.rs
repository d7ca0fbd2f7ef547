//! `systemctl enable`, `disable`, `reenable`, `mask`, `unmask`, `link`,
//! `preset` and `set-default`: a unit's [Install] section turned into
//! symlinks in the configuration directory, as systemd's install logic
//! makes them, with the list of changes systemctl prints.

use super::unit_files::Presets;
use super::Loader;
use crate::model::InstallSection;
use crate::unit_name::{self, NameKind, UnitName};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// One change made, as systemd reports it over D-Bus (type, file, source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `path` now links to `target`.
    Symlink { path: PathBuf, target: PathBuf },
    /// `path` was removed.
    Unlink { path: PathBuf },
}

impl Change {
    /// (type, file name, source) for the D-Bus reply.
    pub fn triple(&self) -> (String, String, String) {
        match self {
            Change::Symlink { path, target } => (
                "symlink".into(),
                path.display().to_string(),
                target.display().to_string(),
            ),
            Change::Unlink { path } => ("unlink".into(), path.display().to_string(), String::new()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("Unit file {0} does not exist.")]
    NotFound(String),
    #[error("Unit file {0} is masked.")]
    Masked(String),
    #[error("Unit name {0} is not valid.")]
    BadName(String),
    #[error("File {} already exists and is a symlink to {}.", path.display(), existing.display())]
    LinkExists { path: PathBuf, existing: PathBuf },
    #[error("File {} already exists.", .0.display())]
    FileExists(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// PresetUnitFilesWithMode's modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresetMode {
    Full,
    EnableOnly,
    DisableOnly,
}

impl PresetMode {
    pub fn parse(text: &str) -> Option<PresetMode> {
        match text {
            "" | "full" => Some(PresetMode::Full),
            "enable-only" => Some(PresetMode::EnableOnly),
            "disable-only" => Some(PresetMode::DisableOnly),
            _ => None,
        }
    }
}

/// Makes and removes the symlinks in one configuration directory.
#[derive(Debug)]
pub struct Installer<'a> {
    loader: &'a Loader,
    /// Where links go: /etc/systemd/system, or /run/systemd/system for
    /// `--runtime`.
    config: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_owned(),
        source,
    }
}

impl<'a> Installer<'a> {
    /// Links go to the configuration directory of `loader`'s search path
    /// ([`super::unit_files::config_dir`]).
    pub fn new(loader: &'a Loader, runtime: bool) -> Installer<'a> {
        let config = super::unit_files::config_dir(&loader.search_dirs(), runtime);
        Installer { loader, config }
    }

    /// The unit file of `name` and its [Install] section.
    fn unit_file(&self, name: &str) -> Result<(PathBuf, InstallSection), InstallError> {
        if !unit_name::is_valid(name) {
            return Err(InstallError::BadName(name.to_owned()));
        }
        let parsed = UnitName::parse(name).ok_or_else(|| InstallError::BadName(name.into()))?;
        let path = self
            .loader
            .index
            .find_fragment(&parsed, name)
            .ok()
            .flatten()
            .ok_or_else(|| InstallError::NotFound(name.to_owned()))?;
        let meta = fs::metadata(&path).map_err(io(&path))?;
        if meta.file_type().is_char_device_like() || (meta.is_file() && meta.len() == 0) {
            return Err(InstallError::Masked(name.to_owned()));
        }
        let install = match self.loader.load(name) {
            Ok(unit) => unit.install,
            Err(crate::LoadError::Masked { .. }) => {
                return Err(InstallError::Masked(name.to_owned()))
            }
            // A unit that does not load (a bad line) has nothing to install.
            Err(_) => InstallSection::default(),
        };
        Ok((path, install))
    }

    /// `path` → `target`; an existing link elsewhere is replaced only with
    /// `force`.
    fn symlink(
        &self,
        path: PathBuf,
        target: &Path,
        force: bool,
        changes: &mut Vec<Change>,
    ) -> Result<(), InstallError> {
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let existing = fs::read_link(&path).map_err(io(&path))?;
                if existing == target {
                    return Ok(());
                }
                if !force {
                    return Err(InstallError::LinkExists { path, existing });
                }
                fs::remove_file(&path).map_err(io(&path))?;
                changes.push(Change::Unlink { path: path.clone() });
            }
            Ok(_) => return Err(InstallError::FileExists(path)),
            Err(_) => {}
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::os::unix::fs::symlink(target, &path).map_err(io(&path))?;
        changes.push(Change::Symlink {
            path,
            target: target.to_owned(),
        });
        Ok(())
    }

    /// `systemctl enable`: whether the units carry install information,
    /// and the changes.
    pub fn enable(
        &self,
        names: &[String],
        force: bool,
    ) -> Result<(bool, Vec<Change>), InstallError> {
        let mut changes = Vec::new();
        let mut carries = false;
        let mut seen = BTreeSet::new();
        let mut queue: Vec<String> = Vec::new();
        for name in names {
            queue.push(self.link_if_path(name, force, &mut changes)?);
        }
        while let Some(name) = queue.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let (file, install) = self.unit_file(&name)?;
            carries |= install.carries_install_info();
            let instance = match UnitName::parse(&name).map(|n| n.kind()) {
                Some(NameKind::Template) => install
                    .default_instance
                    .as_deref()
                    .and_then(|i| unit_name::with_instance(&name, i)),
                _ => Some(name.clone()),
            };
            if let Some(instance) = &instance {
                for (targets, dir) in [
                    (&install.wanted_by, "wants"),
                    (&install.required_by, "requires"),
                ] {
                    for target in targets {
                        let link = self.config.join(format!("{target}.{dir}")).join(instance);
                        self.symlink(link, &file, force, &mut changes)?;
                    }
                }
            }
            for alias in &install.alias {
                self.symlink(self.config.join(alias), &file, force, &mut changes)?;
            }
            queue.extend(install.also.iter().cloned());
        }
        Ok((carries, changes))
    }

    /// A unit given by path is linked into the configuration first
    /// (`systemctl enable /opt/x.service`); its name is returned.
    fn link_if_path(
        &self,
        name: &str,
        force: bool,
        changes: &mut Vec<Change>,
    ) -> Result<String, InstallError> {
        if !name.contains('/') {
            return Ok(name.to_owned());
        }
        let path = PathBuf::from(name);
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| unit_name::is_valid(n))
            .ok_or_else(|| InstallError::BadName(name.to_owned()))?
            .to_owned();
        if !path.is_file() {
            return Err(InstallError::NotFound(name.to_owned()));
        }
        self.symlink(self.config.join(&base), &path, force, changes)?;
        Ok(base)
    }

    /// `systemctl link PATH`.
    pub fn link(&self, paths: &[String], force: bool) -> Result<Vec<Change>, InstallError> {
        let mut changes = Vec::new();
        for p in paths {
            if !p.starts_with('/') {
                return Err(InstallError::BadName(p.clone()));
            }
            self.link_if_path(p, force, &mut changes)?;
        }
        Ok(changes)
    }

    /// `systemctl disable`: every link in the configuration directory
    /// that enables the units (in a .wants/.requires/.upholds directory,
    /// or an Alias=), and their Also= units'. Masks stay.
    pub fn disable(&self, names: &[String]) -> Result<Vec<Change>, InstallError> {
        let mut changes = Vec::new();
        for path in self.enabling_links(names) {
            self.unlink(path, &mut changes)?;
        }
        changes.sort_by_key(Change::triple);
        Ok(changes)
    }

    /// The links in the configuration directory that enable `name`
    /// (`systemctl is-enabled --full` lists them): what `disable` removes.
    pub fn links(&self, name: &str) -> Vec<PathBuf> {
        let mut links = self.enabling_links(std::slice::from_ref(&name.to_owned()));
        links.sort();
        links
    }

    /// The links that enable `names` and their Also= units.
    fn enabling_links(&self, names: &[String]) -> Vec<PathBuf> {
        let mut remove: BTreeSet<String> = BTreeSet::new();
        let mut aliases: BTreeSet<String> = BTreeSet::new();
        let mut queue: Vec<String> = names
            .iter()
            .map(|n| n.rsplit('/').next().unwrap_or(n).to_owned())
            .collect();
        while let Some(name) = queue.pop() {
            if !remove.insert(name.clone()) {
                continue;
            }
            if let Ok((_, install)) = self.unit_file(&name) {
                aliases.extend(install.alias.iter().cloned());
                queue.extend(install.also.iter().cloned());
            }
        }
        let mut found = Vec::new();
        let is_link = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
        let entries = fs::read_dir(&self.config).into_iter().flatten().flatten();
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let is_dep_dir = [".wants", ".requires", ".upholds"]
                .iter()
                .any(|s| name.ends_with(s))
                && path.is_dir();
            if is_dep_dir {
                for link in fs::read_dir(&path).into_iter().flatten().flatten() {
                    let link_name = link.file_name().to_string_lossy().into_owned();
                    if remove.iter().any(|n| enables(n, &link_name)) && is_link(&link.path()) {
                        found.push(link.path());
                    }
                }
            } else if aliases.contains(&name) && !is_null_link(&path) && is_link(&path) {
                found.push(path);
            }
        }
        found
    }

    fn unlink(&self, path: PathBuf, changes: &mut Vec<Change>) -> Result<(), InstallError> {
        let is_link = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            fs::remove_file(&path).map_err(io(&path))?;
            changes.push(Change::Unlink { path });
        }
        Ok(())
    }

    /// `systemctl mask`: a link to /dev/null in the configuration.
    pub fn mask(&self, names: &[String], force: bool) -> Result<Vec<Change>, InstallError> {
        let mut changes = Vec::new();
        for name in names {
            if !unit_name::is_valid(name) {
                return Err(InstallError::BadName(name.clone()));
            }
            self.symlink(
                self.config.join(name),
                Path::new("/dev/null"),
                force,
                &mut changes,
            )?;
        }
        Ok(changes)
    }

    /// `systemctl unmask`.
    pub fn unmask(&self, names: &[String]) -> Result<Vec<Change>, InstallError> {
        let mut changes = Vec::new();
        for name in names {
            let path = self.config.join(name);
            if is_null_link(&path) {
                self.unlink(path, &mut changes)?;
            }
        }
        Ok(changes)
    }

    /// `systemctl preset`: enabled or disabled as the preset files say.
    pub fn preset(
        &self,
        names: &[String],
        mode: PresetMode,
        presets: &Presets,
        force: bool,
    ) -> Result<(bool, Vec<Change>), InstallError> {
        let mut changes = Vec::new();
        let mut carries = false;
        for name in names {
            if presets.enables(name) {
                if mode != PresetMode::DisableOnly {
                    let (c, more) = self.enable(std::slice::from_ref(name), force)?;
                    carries |= c;
                    changes.extend(more);
                }
            } else if mode != PresetMode::EnableOnly {
                changes.extend(self.disable(std::slice::from_ref(name))?);
            }
        }
        Ok((carries, changes))
    }

    /// `systemctl set-default`: default.target links to `target`'s file.
    pub fn set_default(&self, target: &str) -> Result<Vec<Change>, InstallError> {
        if unit_name::suffix(target) != Some("target") {
            return Err(InstallError::BadName(target.to_owned()));
        }
        let (file, _) = self.unit_file(target)?;
        let mut changes = Vec::new();
        self.symlink(
            self.config.join("default.target"),
            &file,
            true,
            &mut changes,
        )?;
        Ok(changes)
    }
}

/// Whether a link named `link` in a .wants/ directory enables `unit`
/// (itself, or for a template, any of its instances).
fn enables(unit: &str, link: &str) -> bool {
    if unit == link {
        return true;
    }
    match unit.split_once("@.") {
        Some((prefix, suffix)) => {
            link.starts_with(&format!("{prefix}@")) && link.ends_with(&format!(".{suffix}"))
        }
        None => false,
    }
}

fn is_null_link(path: &Path) -> bool {
    fs::read_link(path).is_ok_and(|t| t == Path::new("/dev/null"))
}

/// A character device, as /dev/null is (a masked unit file).
trait CharDeviceLike {
    fn is_char_device_like(&self) -> bool;
}

impl CharDeviceLike for fs::FileType {
    fn is_char_device_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_char_device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "relive-install-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("etc")).unwrap();
        fs::create_dir_all(dir.join("lib")).unwrap();
        for (name, text) in files {
            fs::write(dir.join("lib").join(name), text).unwrap();
        }
        dir
    }

    fn loader(dir: &Path) -> Loader {
        Loader::new([dir.join("etc"), dir.join("lib")])
    }

    #[test]
    fn enable_disable_mask_and_unmask_make_systemds_links() {
        let dir = setup(&[
            ("a.service", "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=b.service\nAlso=c.socket\n"),
            ("c.socket", "[Socket]\nListenStream=/run/c\n[Install]\nWantedBy=sockets.target\n"),
            ("g@.service", "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n"),
            ("static.service", "[Service]\nExecStart=/bin/true\n"),
        ]);
        let etc = dir.join("etc");
        let lib = dir.join("lib");
        let l = loader(&dir);
        let installer = Installer::new(&l, false);
        let (carries, changes) = installer.enable(&["a.service".into()], false).unwrap();
        assert!(carries);
        let mut made: Vec<_> = changes.iter().map(Change::triple).collect();
        made.sort();
        assert_eq!(
            made,
            [
                (
                    "symlink".into(),
                    etc.join("b.service").display().to_string(),
                    lib.join("a.service").display().to_string()
                ),
                (
                    "symlink".into(),
                    etc.join("multi-user.target.wants/a.service")
                        .display()
                        .to_string(),
                    lib.join("a.service").display().to_string()
                ),
                (
                    "symlink".into(),
                    etc.join("sockets.target.wants/c.socket")
                        .display()
                        .to_string(),
                    lib.join("c.socket").display().to_string()
                ),
            ]
        );
        // Enabling again changes nothing.
        let l = loader(&dir);
        let installer = Installer::new(&l, false);
        assert!(installer
            .enable(&["a.service".into()], false)
            .unwrap()
            .1
            .is_empty());
        let (_, changes) = installer.enable(&["g@.service".into()], false).unwrap();
        assert_eq!(
            changes[0].triple().1,
            etc.join("getty.target.wants/g@tty1.service")
                .display()
                .to_string()
        );
        let (carries, changes) = installer.enable(&["static.service".into()], false).unwrap();
        assert!(!carries && changes.is_empty());
        // What disable would remove, Also= units included (systemd's
        // GetUnitFileLinks is a dry-run disable).
        assert_eq!(
            installer.links("a.service"),
            [
                etc.join("b.service"),
                etc.join("multi-user.target.wants/a.service"),
                etc.join("sockets.target.wants/c.socket")
            ]
        );
        let removed = installer.disable(&["a.service".into()]).unwrap();
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert!(!etc.join("multi-user.target.wants/a.service").exists());
        let removed = installer.disable(&["g@.service".into()]).unwrap();
        assert_eq!(removed.len(), 1);
        let masked = installer.mask(&["a.service".into()], false).unwrap();
        assert_eq!(masked[0].triple().2, "/dev/null");
        let l = loader(&dir);
        assert_eq!(
            l.unit_file_state("a.service").map(|s| s.as_str()),
            Some("masked")
        );
        let installer = Installer::new(&l, false);
        assert!(matches!(
            installer.enable(&["a.service".into()], false),
            Err(InstallError::Masked(_))
        ));
        assert_eq!(installer.unmask(&["a.service".into()]).unwrap().len(), 1);
        assert!(matches!(
            installer.enable(&["nope.service".into()], false),
            Err(InstallError::NotFound(_))
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
