//! The Debian archive: which mirror the host uses (the image is built from
//! the same one) and which kernel packages it offers, asked of the host's
//! apt (bookworm, the host's release) or of a private apt state (another
//! release: its own sources list and lists under lab/out/NAME/apt/, the
//! host's /etc/apt untouched).

use crate::output;
use crate::vm::distro::Distro;
use anyhow::{bail, Context, Result};
use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// The Debian mirror from /etc/apt (deb822 `URIs:` or one-line `deb`
/// entries), skipping the security archive.
pub fn debian_mirror() -> String {
    let mut uris = Vec::new();
    let dir = Path::new("/etc/apt/sources.list.d");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files.insert(0, "/etc/apt/sources.list".into());
    for file in files {
        let name = file.to_string_lossy();
        if !(name.ends_with(".list") || name.ends_with(".sources")) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("URIs:") => uris.extend(words.map(str::to_owned)),
                // `deb [options] URI suite...`
                Some("deb") => {
                    if let Some(uri) = words.find(|w| w.contains("://")) {
                        uris.push(uri.to_owned());
                    }
                }
                _ => {}
            }
        }
    }
    uris.into_iter()
        .map(|uri| uri.trim_end_matches('/').to_owned())
        .find(|uri| uri.ends_with("/debian"))
        .unwrap_or_else(|| DEFAULT_MIRROR.to_owned())
}

/// One line of mkosi/kernels.list.
#[derive(Debug, Clone)]
pub struct KernelPin {
    pub series: String,
    pub pinned: String,
    pub fallback: String,
}

pub fn read_kernel_pins(file: &Path) -> Result<Vec<KernelPin>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut pins = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [series, pinned, fallback] = words[..] else {
            bail!(
                "{}: expected `series package regex`, got {line:?}",
                file.display()
            );
        };
        pins.push(KernelPin {
            series: series.to_owned(),
            pinned: pinned.to_owned(),
            fallback: fallback.to_owned(),
        });
    }
    Ok(pins)
}

/// A private state's lists older than this are fetched again.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The keyring of the host's debian-archive-keyring (it holds the keys of
/// the next release too).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Where kernel packages are looked up.
#[derive(Debug, Clone)]
pub enum Archive {
    /// The host's apt: its /etc/apt and lists (same release as the host).
    Host,
    /// A private apt state in `dir`: sources.list, lists/, cache/.
    Private { dir: PathBuf },
}

impl Archive {
    /// The archive for `distro`'s kernels. A private state gets its
    /// sources list (the release, -updates, -security and the extra
    /// suites, from `mirror`) and `apt-get update` when its lists are
    /// missing, older than a day, made for other sources, or `refresh`.
    pub fn for_distro(distro: Distro, dir: &Path, mirror: &str, refresh: bool) -> Result<Archive> {
        if distro.uses_host_apt() {
            return Ok(Archive::Host);
        }
        let release = distro.name();
        let mut suites = vec![release.to_owned(), format!("{release}-updates")];
        suites.extend(distro.extra_suites().iter().map(|s| s.to_string()));
        let mut sources = sources_list(mirror, &suites);
        // As mkosi 14 adds it (security updates are never mirrored).
        sources += &format!(
            "deb [signed-by={KEYRING}] https://security.debian.org/debian-security {release}-security main\n"
        );
        Archive::private(dir, &sources, refresh)
    }

    /// A private apt state in `dir` with `sources` as its sources list,
    /// its lists fetched when missing, older than a day, made for other
    /// sources, or `refresh`.
    pub fn private(dir: &Path, sources: &str, refresh: bool) -> Result<Archive> {
        let archive = Archive::Private {
            dir: dir.to_owned(),
        };
        for sub in ["lists/partial", "cache/archives/partial", "empty"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let list = dir.join("sources.list");
        let same_sources = std::fs::read_to_string(&list).is_ok_and(|s| s == sources);
        if !same_sources {
            std::fs::write(&list, sources)?;
        }
        if !dir.join("status").exists() {
            std::fs::write(dir.join("status"), "")?;
        }
        let updated = dir.join("lists/updated");
        let fresh = std::fs::metadata(&updated)
            .and_then(|m| m.modified())
            .is_ok_and(|t| {
                SystemTime::now()
                    .duration_since(t)
                    .is_ok_and(|age| age < LISTS_MAX_AGE)
            });
        if refresh || !same_sources || !fresh {
            let _ = std::fs::remove_file(&updated);
            let mut update = Command::new("apt-get");
            update.args(archive.options()).arg("update");
            output::run(
                &mut update,
                &format!("apt-get update ({}, private state)", dir.display()),
            )?;
            std::fs::write(&updated, "")?;
        }
        Ok(archive)
    }

    /// apt's options for this archive: a private state's own sources,
    /// lists, cache, (empty) dpkg status and preferences.
    fn options(&self) -> Vec<String> {
        let Archive::Private { dir } = self else {
            return Vec::new();
        };
        let d = |sub: &str| dir.join(sub).display().to_string();
        [
            ("Dir::Etc::sourcelist", d("sources.list")),
            ("Dir::Etc::sourceparts", d("empty")),
            ("Dir::Etc::preferences", d("empty/preferences")),
            ("Dir::Etc::preferencesparts", d("empty")),
            ("Dir::State::Lists", d("lists")),
            ("Dir::State::status", d("status")),
            ("Dir::Cache", d("cache")),
            // Kept, though the host's apt.conf.d may say not to (docker's
            // clean-up does): each apt-cache call then takes ms, not a second.
            ("Dir::Cache::pkgcache", "pkgcache.bin".into()),
            ("Dir::Cache::srcpkgcache", "srcpkgcache.bin".into()),
            // Package names are all the lab asks for.
            (
                "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled",
                "false".into(),
            ),
            ("Acquire::Languages", "none".into()),
        ]
        .into_iter()
        .flat_map(|(key, value)| ["-o".to_owned(), format!("{key}={value}")])
        .collect()
    }

    fn apt_cache(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("apt-cache")
            .args(self.options())
            .args(args)
            .output()
            .context("running apt-cache")?;
        if !out.status.success() {
            bail!(
                "apt-cache {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Downloads `packages` (`name` or `name=version`) into `dest` with
    /// apt, which checks each file against the signed index.
    pub fn download(&self, packages: &[String], dest: &Path) -> Result<()> {
        std::fs::create_dir_all(dest)?;
        let mut get = Command::new("apt-get");
        get.current_dir(dest)
            .args(self.options())
            .arg("download")
            .args(packages);
        output::run(
            &mut get,
            &format!("apt-get download {}", packages.join(" ")),
        )
    }

    fn has_candidate(&self, package: &str) -> Result<bool> {
        let policy = self.apt_cache(&["policy", package])?;
        Ok(policy.lines().any(|l| {
            l.trim()
                .strip_prefix("Candidate:")
                .is_some_and(|c| c.trim() != "(none)")
        }))
    }

    /// The package to install for `pin`: the pinned one while the archive
    /// has it, else the newest whose name matches the fallback expression.
    pub fn resolve_kernel(&self, pin: &KernelPin) -> Result<String> {
        if self.has_candidate(&pin.pinned)? {
            return Ok(pin.pinned.clone());
        }
        let found = self.apt_cache(&["search", "--names-only", &pin.fallback])?;
        let newest = found
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .max_by(|a, b| version_cmp(a, b))
            .map(str::to_owned);
        match newest {
            Some(package) => {
                output::warn(&format!(
                    "{} has left the archive; using {package}",
                    pin.pinned
                ));
                Ok(package)
            }
            None => bail!(
                "no kernel package for {} (neither {} nor a match for {}); is `apt-get update` done?",
                pin.series,
                pin.pinned,
                pin.fallback
            ),
        }
    }

    /// The parts of a split kernel package (`linux-image-X` depending on
    /// `linux-base-X` and `linux-modules-X` of the same version) that the
    /// archive's index no longer lists although the image package is
    /// still there: trixie-backports' index keeps the signed
    /// `linux-image-X` of older series but the `linux` source's parts of
    /// the newest series only. The pool still has them.
    pub fn unindexed_kernel_parts(&self, image: &str) -> Result<Vec<KernelPart>> {
        let show = self.apt_cache(&["show", "--no-all-versions", image])?;
        let depends = show
            .lines()
            .find_map(|l| l.strip_prefix("Depends:"))
            .unwrap_or_default();
        let mut parts = Vec::new();
        for (package, version) in exact_dependencies(depends) {
            let split_part = ["linux-base-", "linux-modules-"]
                .iter()
                .any(|p| package.starts_with(p));
            if split_part && !self.has_candidate(&package)? {
                parts.push(KernelPart { package, version });
            }
        }
        Ok(parts)
    }
}

/// A sources list of `suites` (main) from `mirror`, signed by Debian's
/// archive keys.
pub fn sources_list(mirror: &str, suites: &[String]) -> String {
    suites
        .iter()
        .map(|suite| format!("deb [signed-by={KEYRING}] {mirror} {suite} main\n"))
        .collect()
}

/// A kernel's package that must come from the pool by its file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPart {
    pub package: String,
    pub version: String,
}

impl KernelPart {
    /// The .deb's file name in the pool (file names have no epoch).
    pub fn file_name(&self) -> String {
        let version = self
            .version
            .split_once(':')
            .map_or(self.version.as_str(), |(_, v)| v);
        format!("{}_{version}_amd64.deb", self.package)
    }

    /// Its address: the `linux` source package's pool directory.
    pub fn url(&self, mirror: &str) -> String {
        format!("{mirror}/pool/main/l/linux/{}", self.file_name())
    }
}

/// The `name (= version)` dependencies of a Depends: field (alternatives
/// left out: a split kernel's parts are plain dependencies).
fn exact_dependencies(depends: &str) -> Vec<(String, String)> {
    depends
        .split(',')
        .map(str::trim)
        .filter(|d| !d.contains('|'))
        .filter_map(|d| {
            let (name, rest) = d.split_once(" (= ")?;
            Some((
                name.trim().to_owned(),
                rest.strip_suffix(')')?.trim().to_owned(),
            ))
        })
        .collect()
}

/// Compares names with runs of digits as numbers: `6.1.0-9` < `6.1.0-47`.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_runs_compare_as_numbers() {
        assert_eq!(
            version_cmp("linux-image-6.1.0-9-amd64", "linux-image-6.1.0-47-amd64"),
            Ordering::Less
        );
        assert_eq!(
            version_cmp(
                "linux-image-6.12.117+deb12-amd64",
                "linux-image-6.12.99+deb12-amd64"
            ),
            Ordering::Greater
        );
        assert_eq!(version_cmp("a-010", "a-10"), Ordering::Equal);
    }

    #[test]
    fn split_kernel_parts_come_from_the_pool() {
        let depends = "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, kmod, \
            linux-base-6.19.14+deb13-amd64 (= 6.19.14-1~bpo13+1), \
            linux-modules-6.19.14+deb13-amd64 (= 6.19.14-1~bpo13+1)";
        let deps = exact_dependencies(depends);
        let pair = |p: &str, v: &str| (p.to_owned(), v.to_owned());
        assert_eq!(
            deps,
            [
                pair("linux-base-6.19.14+deb13-amd64", "6.19.14-1~bpo13+1"),
                pair("linux-modules-6.19.14+deb13-amd64", "6.19.14-1~bpo13+1"),
            ]
        );
        let part = KernelPart {
            package: deps[1].0.clone(),
            version: format!("1:{}", deps[1].1),
        };
        assert_eq!(
            part.url("http://deb.debian.org/debian"),
            "http://deb.debian.org/debian/pool/main/l/linux/\
             linux-modules-6.19.14+deb13-amd64_6.19.14-1~bpo13+1_amd64.deb"
        );
    }
}
