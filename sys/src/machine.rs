//! The machine as a whole: are we its real init or a namespace's, hostname,
//! and the end of the system (sync, unmount, reboot).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;

/// The inode number of the initial PID namespace (PROC_PID_INIT_INO in
/// include/linux/proc_ns.h): fixed by the kernel, so comparing with it tells
/// a machine's init from a container's.
const INITIAL_PID_NS_INODE: u64 = 0xEFFF_FFFC;

/// Where relive runs as PID 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The machine's init: owns the console, kmsg, mounts and reboot(2).
    Machine,
    /// PID 1 of a PID namespace (the test sandbox): touches nothing outside
    /// it, and exits instead of rebooting.
    Namespace,
    /// Not PID 1 at all (a development run).
    Process,
}

pub fn detect_scope() -> Scope {
    if std::process::id() != 1 {
        return Scope::Process;
    }
    match fs::metadata("/proc/self/ns/pid") {
        Ok(m) if m.ino() == INITIAL_PID_NS_INODE => Scope::Machine,
        Ok(_) => Scope::Namespace,
        // No /proc yet: the kernel started us, so this is the machine.
        Err(_) => Scope::Machine,
    }
}

/// Sets the hostname from /etc/hostname (first word of the first
/// non-comment line). Returns what was set.
pub fn set_hostname_from_file(path: &std::path::Path) -> io::Result<Option<String>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(name) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().next())
    else {
        return Ok(None);
    };
    nix::unistd::sethostname(name)?;
    Ok(Some(name.to_owned()))
}

/// How the system ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ShutdownKind {
    PowerOff,
    Reboot,
    Halt,
}

impl ShutdownKind {
    pub fn verb(self) -> &'static str {
        match self {
            ShutdownKind::PowerOff => "poweroff",
            ShutdownKind::Reboot => "reboot",
            ShutdownKind::Halt => "halt",
        }
    }
}

/// Signals every process left (except ourselves) with `signal`. As PID 1,
/// kill(-1) reaches every process of our PID namespace but us.
pub fn signal_everyone(signal: i32) {
    // SAFETY: kill(2) with plain integers.
    unsafe { libc::kill(-1, signal) };
}

/// Syncs, remounts every filesystem read-only (unmounting what can be), and
/// calls reboot(2). Only for `Scope::Machine`. Returns only if reboot failed.
pub fn end_machine(kind: ShutdownKind) -> io::Error {
    nix::unistd::sync();
    unmount_all();
    nix::unistd::sync();
    let how = match kind {
        ShutdownKind::PowerOff => nix::sys::reboot::RebootMode::RB_POWER_OFF,
        ShutdownKind::Reboot => nix::sys::reboot::RebootMode::RB_AUTOBOOT,
        ShutdownKind::Halt => nix::sys::reboot::RebootMode::RB_HALT_SYSTEM,
    };
    match nix::sys::reboot::reboot(how) {
        Ok(never) => match never {},
        Err(e) => io::Error::from(e),
    }
}

/// Unmounts everything but the API filesystems, deepest first, and remounts
/// the root read-only so the filesystem is clean for the next boot.
fn unmount_all() {
    let keep = [
        "/",
        "/proc",
        "/sys",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/run",
        "/sys/fs/cgroup",
    ];
    let mut points: Vec<String> = super::mounts::mounted()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for point in points.iter().filter(|p| !keep.contains(&p.as_str())) {
        if nix::mount::umount2(point.as_str(), nix::mount::MntFlags::empty()).is_err() {
            let _ = nix::mount::mount(
                None::<&str>,
                point.as_str(),
                None::<&str>,
                nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_RDONLY,
                None::<&str>,
            );
        }
    }
    let _ = remount_root(true);
}

/// Remounts / read-only (so that it is clean for whatever boots next) or
/// read-write again.
pub fn remount_root(read_only: bool) -> nix::Result<()> {
    let flags = if read_only {
        nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_RDONLY
    } else {
        nix::mount::MsFlags::MS_REMOUNT
    };
    nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
}

/// Gives the machine an ID if /etc/machine-id is missing, empty or
/// "uninitialized" (an image's first boot): 128 random bits as 32 hex
/// digits, written in place so that it stays the same across reboots and
/// live upgrades. Returns the new ID, or None if there already was one.
pub fn ensure_machine_id(path: &std::path::Path) -> io::Result<Option<String>> {
    let current = fs::read_to_string(path).unwrap_or_default();
    let current = current.trim();
    if current.len() == 32 && current.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))?;
    // A version 4 UUID, as systemd makes them.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    fs::write(path, format!("{id}\n"))?;
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o444))?;
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uninitialized_machine_id_is_replaced_once() {
        let path = std::env::temp_dir().join(format!("relive-machine-id-{}", std::process::id()));
        fs::write(&path, "uninitialized\n").unwrap();
        let id = ensure_machine_id(&path).unwrap().expect("a new ID");
        assert_eq!(id.len(), 32);
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{id}\n"));
        assert_eq!(
            ensure_machine_id(&path).unwrap(),
            None,
            "a valid ID is kept"
        );
        let _ = fs::remove_file(path);
    }
}
