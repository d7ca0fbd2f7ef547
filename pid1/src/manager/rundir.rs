//! RuntimeDirectory=: directories under /run made for a service, owned by
//! its user. The service's user may plant a symbolic link where the next
//! start (as root) creates, chmods and chowns: every step goes through a
//! descriptor opened with O_NOFOLLOW, as systemd does. relive's own
//! directory (/run/relive, with its control socket) is never handed out.

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, mkdirat, Mode};
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

/// The directory relive keeps for itself under /run.
const OWN: &str = "relive";

/// Checks a RuntimeDirectory= name: relative, no `..`, not relive's own.
pub fn check_name(name: &str) -> Result<(), String> {
    let path = Path::new(name);
    let components: Vec<Component> = path.components().collect();
    if components.is_empty() || !components.iter().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!(
            "RuntimeDirectory={name}: must be a relative path without . or .."
        ));
    }
    if components[0] == Component::Normal(OWN.as_ref()) {
        return Err(format!(
            "RuntimeDirectory={name}: /run/{OWN} is relive's own (its control socket lives there)"
        ));
    }
    Ok(())
}

/// Creates (if needed) /run/NAME with `mode`, owned by `owner`, without
/// following a symbolic link at any step.
pub fn make(run: &Path, name: &str, mode: u32, owner: Option<(u32, u32)>) -> Result<(), String> {
    check_name(name)?;
    make_in(run, "RuntimeDirectory", name, mode, owner)
}

/// Creates (if needed) BASE/NAME for `setting` (StateDirectory= ...) the
/// same way: NAME's parents 0755, NAME itself `mode` and `owner`'s.
pub fn make_in(
    base: &Path,
    setting: &str,
    name: &str,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), String> {
    let failed = |e: nix::Error| format!("{setting} {}/{name}: {e}", base.display());
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let mut dir: OwnedFd = nix::fcntl::open(base, flags, Mode::empty()).map_err(failed)?;
    for part in Path::new(name).components() {
        let Component::Normal(part) = part else {
            continue;
        };
        match mkdirat(&dir, part, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(failed(e)),
        }
        // ELOOP or ENOTDIR if a link or a file stands there.
        dir = openat(&dir, part, flags, Mode::empty()).map_err(failed)?;
    }
    fchmod(&dir, Mode::from_bits_truncate(mode)).map_err(failed)?;
    if let Some((uid, gid)) = owner {
        nix::unistd::fchown(
            &dir,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relive_s_own_directory_and_odd_names_are_refused() {
        assert!(check_name("sshd").is_ok());
        assert!(check_name("redis/sub").is_ok());
        for bad in ["relive", "relive/x", "../etc", "/etc", "a/../b", "", "."] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_planted_symbolic_link_is_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("relive-rundir-link-{}", std::process::id()));
        let run = base.join("run");
        let target = base.join("etc");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&target, run.join("svc")).unwrap();
        let e = make(&run, "svc", 0o777, None).unwrap_err();
        assert!(e.contains("/run/svc"), "{e}");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "the link's target was not touched");
        make(&run, "fresh/sub", 0o750, None).unwrap();
        let mode = std::fs::metadata(run.join("fresh/sub"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o750);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
