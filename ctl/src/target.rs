//! The kernel `live-upgrade --latest` or `--release RELEASE` means: the
//! newest installed, as Debian's own tools order kernel releases
//! (`linux-version`, from linux-base, which every Debian kernel package
//! depends on), or the installed one of that release; nothing to do when
//! it runs already.

use crate::cli::LiveUpgradeArgs;
use crate::error::CtlError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What --latest or --release means on this machine now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The kernel asked for is the one running: nothing to do.
    Running(String),
    Upgrade {
        release: String,
        kernel: PathBuf,
        initrd: Option<PathBuf>,
    },
}

/// The target of --latest or --release, or None when the kernel is given
/// by path.
pub fn resolve(args: &LiveUpgradeArgs, running: &str) -> Result<Option<Target>, CtlError> {
    let boot = Path::new("/boot");
    if args.latest {
        let newest = newest_installed(running)?;
        return Ok(Some(decide(&newest, running, boot)));
    }
    let Some(release) = args.release.as_deref() else {
        return Ok(None);
    };
    let target = decide(release, running, boot);
    if let Target::Upgrade { kernel, .. } = &target {
        if !kernel.is_file() {
            return Err(CtlError::Refused(format!(
                "--release {release}: there is no {} (is the kernel package installed?)",
                kernel.display()
            )));
        }
    }
    Ok(Some(target))
}

/// The running kernel's release (`uname -r`).
pub fn running_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `wanted` (the newest installed, or the release asked for) against
/// `running`.
pub fn decide(wanted: &str, running: &str, boot: &Path) -> Target {
    if wanted == running {
        return Target::Running(wanted.to_owned());
    }
    let initrd = boot.join(format!("initrd.img-{wanted}"));
    Target::Upgrade {
        release: wanted.to_owned(),
        kernel: boot.join(format!("vmlinuz-{wanted}")),
        initrd: initrd.exists().then_some(initrd),
    }
}

/// The newest of the installed kernel releases and `running` (which may
/// be newer than any installed, or not installed at all).
pub fn newest_installed(running: &str) -> Result<String, CtlError> {
    let failed = |why: String| CtlError::Refused(format!("--latest: {why}"));
    let run = |args: &[&str], input: Option<&str>| -> Result<String, CtlError> {
        let mut child = Command::new("linux-version")
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| {
                failed(format!(
                    "cannot run linux-version (package linux-base): {e}"
                ))
            })?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| failed(format!("linux-version: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| failed(format!("linux-version: {e}")))?;
        if !out.status.success() {
            return Err(failed(format!(
                "linux-version {} failed: {}",
                args.join(" "),
                out.status
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let mut releases = run(&["list"], None)?;
    releases.push_str(running);
    releases.push('\n');
    let sorted = run(&["sort", "--reverse"], Some(&releases))?;
    sorted
        .lines()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| failed("no kernel is installed in /boot".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_newest_kernel_is_nothing_to_do_another_is_an_upgrade() {
        let boot = std::env::temp_dir().join(format!("relive-latest-{}", std::process::id()));
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::write(boot.join("initrd.img-6.12.117+deb12-amd64"), "").unwrap();
        assert_eq!(
            decide("6.12.117+deb12-amd64", "6.12.117+deb12-amd64", &boot),
            Target::Running("6.12.117+deb12-amd64".into())
        );
        assert_eq!(
            decide("6.12.117+deb12-amd64", "6.1.0-47-amd64", &boot),
            Target::Upgrade {
                release: "6.12.117+deb12-amd64".into(),
                kernel: boot.join("vmlinuz-6.12.117+deb12-amd64"),
                initrd: Some(boot.join("initrd.img-6.12.117+deb12-amd64")),
            }
        );
        let none = decide("6.13.0-1-amd64", "6.1.0-47-amd64", &boot);
        assert!(
            matches!(none, Target::Upgrade { initrd: None, .. }),
            "{none:?}"
        );
        std::fs::remove_dir_all(boot).unwrap();
    }
}
