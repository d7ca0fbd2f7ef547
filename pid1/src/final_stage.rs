//! The machine's last step when relive's own binary has been deleted (its
//! package removed, or replaced and not re-executed): a deleted file that
//! is still mapped keeps the root file system busy, so / could not be
//! remounted read-only and the next boot would find an orphan inode. As
//! systemd hands its end to systemd-shutdown, relive then execs a copy of
//! itself from memory (a memfd: Debian's /run is noexec) to unmount and
//! call reboot(2).

use relive_sys::machine::ShutdownKind;
use std::ffi::CString;
use std::io;

/// The hidden option that makes relive only end the machine.
pub const ARG: &str = "--final-stage";

/// Whether the running binary's file has been deleted.
pub fn own_binary_deleted() -> bool {
    std::fs::read_link("/proc/self/exe").is_ok_and(|p| p.to_string_lossy().ends_with(" (deleted)"))
}

/// The shutdown kind `--final-stage` names.
pub fn parse(verb: &str) -> Option<ShutdownKind> {
    [
        ShutdownKind::PowerOff,
        ShutdownKind::Reboot,
        ShutdownKind::Halt,
    ]
    .into_iter()
    .find(|k| k.verb() == verb)
}

/// Copies the running binary (still readable through /proc/self/exe)
/// into a memfd and execs that with `--final-stage KIND`. Returns only on
/// failure.
pub fn exec_copy(kind: ShutdownKind) -> io::Error {
    let copy = match copy_into_memory() {
        Ok(fd) => fd,
        Err(e) => return e,
    };
    let argv = ["relive", ARG, kind.verb()].map(|a| CString::new(a).expect("no NUL"));
    let env: [CString; 0] = [];
    match nix::unistd::fexecve(&copy, &argv, &env) {
        Ok(never) => match never {},
        Err(e) => io::Error::from(e),
    }
}

fn copy_into_memory() -> io::Result<std::os::fd::OwnedFd> {
    let fd =
        nix::sys::memfd::memfd_create(c"relive-final-stage", nix::sys::memfd::MFdFlags::empty())?;
    let mut file = std::fs::File::from(fd);
    io::copy(&mut std::fs::File::open("/proc/self/exe")?, &mut file)?;
    Ok(file.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_from_its_verb() {
        for kind in [
            ShutdownKind::PowerOff,
            ShutdownKind::Reboot,
            ShutdownKind::Halt,
        ] {
            assert_eq!(parse(kind.verb()), Some(kind));
        }
        assert_eq!(parse("explode"), None);
    }

    #[test]
    fn the_copy_in_memory_is_the_running_binary() {
        let copy = std::fs::File::from(copy_into_memory().unwrap());
        let own = std::fs::metadata("/proc/self/exe").unwrap();
        assert_eq!(copy.metadata().unwrap().len(), own.len());
    }

    #[test]
    fn a_test_binary_on_disk_is_not_deleted() {
        assert!(!own_binary_deleted());
    }
}
