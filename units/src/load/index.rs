//! The search path, indexed once: which unit names exist where, which are
//! aliases, and which `.d`/`.wants`/`.requires` directories exist. This is
//! systemd's `unit_file_build_name_map()` plus its path cache.

use crate::error::LoadError;
use crate::unit_name::{self, NameKind, UnitName};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

#[derive(Debug)]
pub(crate) struct SearchDir {
    pub path: PathBuf,
    /// With symlinks resolved (/lib/systemd/system → /usr/lib/...).
    pub canonical: PathBuf,
    /// Entries that are directories: `x.service.d`, `x.target.wants`, ...
    pub subdirs: HashSet<String>,
}

/// What a unit name maps to in the highest-priority dir that has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A unit file, a symlink to one outside the search path (a "linked"
    /// unit), or a mask (/dev/null): the path to open.
    File(PathBuf),
    /// A symlink to another unit inside the search path: its name.
    Alias(String),
}

#[derive(Debug)]
pub(crate) struct Index {
    pub dirs: Vec<SearchDir>,
    pub map: HashMap<String, Entry>,
}

/// systemd follows at most this many aliases (FOLLOW_MAX).
const FOLLOW_MAX: usize = 32;

impl Index {
    /// Lists every search dir once. Dirs that do not exist or cannot be
    /// read are skipped; a dir that is the same as an earlier one after
    /// resolving symlinks (usr-merge) is skipped too, so no file is seen twice.
    pub fn build(dirs: &[PathBuf]) -> Index {
        let mut seen = HashSet::new();
        let mut listed = Vec::new();
        for path in dirs {
            let Ok(canonical) = fs::canonicalize(path) else {
                continue;
            };
            if !seen.insert(canonical.clone()) {
                continue;
            }
            let Ok(read) = fs::read_dir(path) else {
                continue;
            };
            let mut units = Vec::new();
            let mut subdirs = HashSet::new();
            for entry in read.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let Ok(ft) = entry.file_type() else { continue };
                let is_dir = ft.is_dir() || (ft.is_symlink() && entry.path().is_dir());
                if is_dir {
                    subdirs.insert(name);
                } else if (ft.is_file() || ft.is_symlink()) && unit_name::is_valid(&name) {
                    units.push((name, ft.is_symlink()));
                }
            }
            units.sort();
            listed.push((
                SearchDir {
                    path: path.clone(),
                    canonical,
                    subdirs,
                },
                units,
            ));
        }
        let mut index = Index {
            dirs: Vec::new(),
            map: HashMap::new(),
        };
        let units: Vec<_> = listed
            .into_iter()
            .map(|(dir, units)| {
                index.dirs.push(dir);
                units
            })
            .collect();
        for (dir_index, names) in units.iter().enumerate() {
            for (name, is_link) in names {
                if index.map.contains_key(name) {
                    continue;
                }
                let path = index.dirs[dir_index].path.join(name);
                let entry = if *is_link {
                    match index.classify_link(&index.dirs[dir_index].path, name) {
                        Some(e) => e,
                        None => continue,
                    }
                } else {
                    Entry::File(path)
                };
                index.map.insert(name.clone(), entry);
            }
        }
        index
    }

    /// systemd's `unit_file_resolve_symlink()`: a link to a file in a search
    /// dir is an alias (ignored if invalid or a self-alias, so a lower dir
    /// gets its turn); anything else is the unit file itself.
    fn classify_link(&self, dir: &Path, name: &str) -> Option<Entry> {
        let link = dir.join(name);
        let target = fs::read_link(&link).ok()?;
        let target = normalize(&dir.join(target));
        let Some(parent) = target.parent() else {
            return Some(Entry::File(link));
        };
        let parent_canonical = fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
        let in_search_path = self
            .dirs
            .iter()
            .any(|d| parent_canonical.starts_with(&d.canonical) || parent.starts_with(&d.path));
        if !in_search_path {
            return Some(Entry::File(link));
        }
        let target_name = target.file_name()?.to_str()?;
        if target_name == name || !alias_is_valid(name, target_name) {
            return None;
        }
        Some(Entry::Alias(target_name.to_string()))
    }

    /// systemd's `unit_ids_map_get()`: follows aliases to a file. An alias
    /// to an instance that has no file of its own uses the template.
    pub fn resolve(&self, name: &str) -> Result<Option<PathBuf>, LoadError> {
        let mut id = name.to_string();
        for hop in 0..FOLLOW_MAX {
            let entry = match self.map.get(&id) {
                Some(e) => e,
                None if hop == 0 => return Ok(None),
                None => {
                    let template = UnitName::parse(&id).and_then(|n| n.template());
                    match template.and_then(|t| self.map.get(&t)) {
                        Some(e) => e,
                        None => return Ok(None),
                    }
                }
            };
            match entry {
                Entry::File(p) => return Ok(Some(p.clone())),
                Entry::Alias(next) => id = next.clone(),
            }
        }
        Err(LoadError::Io {
            path: name.into(),
            source: std::io::Error::other("too many levels of alias symlinks"),
        })
    }

    /// The unit file for `name`, trying the template for an instance.
    pub fn find_fragment(
        &self,
        name: &UnitName<'_>,
        full: &str,
    ) -> Result<Option<PathBuf>, LoadError> {
        if let Some(p) = self.resolve(full)? {
            return Ok(Some(p));
        }
        match (name.kind(), name.template()) {
            (NameKind::Instance, Some(t)) => self.resolve(&t),
            _ => Ok(None),
        }
    }

    /// Names in the index that are aliases of the unit file `fragment`.
    pub fn aliases_of(&self, fragment: &Path) -> Vec<String> {
        let mut out: Vec<String> = self
            .map
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Alias(_)))
            .filter(|(n, _)| matches!(self.resolve(n), Ok(Some(p)) if p == fragment))
            .map(|(n, _)| n.clone())
            .collect();
        out.sort();
        out
    }

    /// The existing `<name><suffix>` directories in systemd's order
    /// (`unit_file_find_dropin_paths()`): for each name, in every search dir,
    /// the name's dir, its template's, its dash-prefix dirs (`foo-.service.d`
    /// for `foo-bar.service`); then the type-wide dir (`service.d`).
    pub fn dropin_dirs(&self, names: &[String], suffix: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for name in names {
            for dir in &self.dirs {
                find_dirs(dir, name, suffix, &mut out);
            }
        }
        if let Some(unit_type) = names.first().and_then(|n| unit_name::suffix(n)) {
            for dir in &self.dirs {
                let d = format!("{unit_type}{suffix}");
                if dir.subdirs.contains(&d) {
                    out.push(dir.path.join(d));
                }
            }
        }
        let mut seen = HashSet::new();
        out.retain(|p| seen.insert(p.clone()));
        out
    }
}

/// systemd's `unit_file_find_dirs()` for one search dir.
fn find_dirs(dir: &SearchDir, name: &str, suffix: &str, out: &mut Vec<PathBuf>) {
    let d = format!("{name}{suffix}");
    if dir.subdirs.contains(&d) {
        let path = dir.path.join(d);
        if !out.contains(&path) {
            out.push(path);
        }
    }
    let Some(parsed) = UnitName::parse(name) else {
        return;
    };
    if parsed.kind() == NameKind::Instance {
        if let Some(t) = parsed.template() {
            find_dirs(dir, &t, suffix, out);
        }
    }
    // Chop the prefix back to (and including) its last dash; a trailing
    // dash is chopped off first, once.
    let mut prefix = parsed.prefix;
    let mut chopped = false;
    loop {
        let Some(dash) = prefix.rfind('-') else {
            return;
        };
        if dash == 0 {
            return;
        }
        if dash + 1 < prefix.len() || chopped {
            prefix = &prefix[..=dash];
            break;
        }
        prefix = &prefix[..dash];
        chopped = true;
    }
    let built = match parsed.instance {
        Some(i) => format!("{prefix}@{i}.{}", parsed.suffix),
        None => format!("{prefix}.{}", parsed.suffix),
    };
    if unit_name::is_valid(&built) {
        find_dirs(dir, &built, suffix, out);
    }
}

/// systemd's `unit_validate_alias_symlink_or_warn()`.
fn alias_is_valid(src: &str, dst: &str) -> bool {
    let (Some(s), Some(d)) = (UnitName::parse(src), UnitName::parse(dst)) else {
        return false;
    };
    let may_alias = ["service", "socket", "target", "device", "timer", "path"];
    let may_template = ["service", "socket", "target", "timer", "path"];
    if !may_alias.contains(&s.suffix) || s.suffix != d.suffix {
        return false;
    }
    if s.kind() != NameKind::Plain && !may_template.contains(&s.suffix) {
        return false;
    }
    match (s.kind(), d.kind()) {
        (a, b) if a == b => a != NameKind::Instance || s.instance == d.instance,
        (NameKind::Instance, NameKind::Template) => true,
        _ => false,
    }
}

/// Removes `.` and resolves `..` lexically (what systemd's chase with
/// CHASE_NONEXISTENT does for link targets that need not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Files in `dirs`, one per file name (the first dir that has it wins),
/// sorted by file name: systemd's `conf_files_list_strv()`. Hidden and
/// package-manager backup files are skipped.
pub(crate) fn list_files(dirs: &[PathBuf], suffix: Option<&str>) -> Vec<PathBuf> {
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let Ok(read) = fs::read_dir(dir) else {
            continue;
        };
        for entry in read.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if hidden_or_backup(&name) || suffix.is_some_and(|s| !name.ends_with(s)) {
                continue;
            }
            files.entry(name).or_insert_with(|| entry.path());
        }
    }
    files.into_values().collect()
}

fn hidden_or_backup(name: &str) -> bool {
    const BACKUP: &[&str] = &[
        "~",
        ".rpmnew",
        ".rpmsave",
        ".rpmorig",
        ".dpkg-old",
        ".dpkg-new",
        ".dpkg-tmp",
        ".dpkg-dist",
        ".dpkg-bak",
        ".dpkg-backup",
        ".dpkg-remove",
        ".ucf-new",
        ".ucf-old",
        ".ucf-dist",
        ".swp",
        ".bak",
        ".old",
        ".new",
    ];
    name.starts_with('.') || BACKUP.iter().any(|s| name.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_rules() {
        assert!(alias_is_valid("sshd.service", "ssh.service"));
        assert!(alias_is_valid("autovt@.service", "getty@.service"));
        assert!(alias_is_valid("a@x.service", "b@x.service"));
        assert!(alias_is_valid("a@x.service", "b@.service"));
        assert!(!alias_is_valid("a@x.service", "b@y.service"));
        assert!(!alias_is_valid("a.service", "b.target"));
        assert!(!alias_is_valid("a.service", "b@.service"));
        assert!(!alias_is_valid("a.mount", "b.mount"));
    }

    #[test]
    fn prefix_dirs() {
        let dir = SearchDir {
            path: "/u".into(),
            canonical: "/u".into(),
            subdirs: [
                "a-b-c.service.d",
                "a-b-.service.d",
                "a-.service.d",
                "x@.service.d",
                "x-@.service.d",
                "user-.slice.d",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        };
        let mut out = Vec::new();
        find_dirs(&dir, "a-b-c.service", ".d", &mut out);
        assert_eq!(
            out,
            ["/u/a-b-c.service.d", "/u/a-b-.service.d", "/u/a-.service.d"].map(PathBuf::from)
        );
        out.clear();
        find_dirs(&dir, "x-y@i.service", ".d", &mut out);
        assert_eq!(out, ["/u/x-@.service.d"].map(PathBuf::from));
        out.clear();
        find_dirs(&dir, "user-1000.slice", ".d", &mut out);
        assert_eq!(out, ["/u/user-.slice.d"].map(PathBuf::from));
    }

    #[test]
    fn backups_are_hidden() {
        assert!(hidden_or_backup(".x.conf"));
        assert!(hidden_or_backup("a.conf.dpkg-old"));
        assert!(!hidden_or_backup("a.conf"));
    }
}
