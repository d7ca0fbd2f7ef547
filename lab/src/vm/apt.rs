//! The host's view of the Debian archive: which mirror it uses (the image is
//! built from the same one) and which kernel packages it offers.

use anyhow::{bail, Context, Result};
use std::cmp::Ordering;
use std::path::Path;
use std::process::Command;

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

/// The package to install for `pin`: the pinned one while the archive has
/// it, else the newest whose name matches the fallback expression.
pub fn resolve_kernel(pin: &KernelPin) -> Result<String> {
    let policy = apt_cache(&["policy", &pin.pinned])?;
    let has_candidate = policy.lines().any(|l| {
        l.trim()
            .strip_prefix("Candidate:")
            .is_some_and(|c| c.trim() != "(none)")
    });
    if has_candidate {
        return Ok(pin.pinned.clone());
    }
    let found = apt_cache(&["search", "--names-only", &pin.fallback])?;
    let newest = found
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .max_by(|a, b| version_cmp(a, b))
        .map(str::to_owned);
    match newest {
        Some(package) => {
            crate::output::warn(&format!(
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

fn apt_cache(args: &[&str]) -> Result<String> {
    let out = Command::new("apt-cache")
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
}
