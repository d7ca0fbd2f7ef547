//! A service's credentials directory, as systemd lays it out:
//! /run/credentials/UNIT, a ramfs (never swapped out) of its own, one
//! file per credential (mode 0400), the directory 0500, both the
//! service's user's, read-only once filled. Made before the start (and
//! before a restore after a live upgrade), removed after the stop.

use std::ffi::OsStr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use relive_units::credentials::{Credentials, Source};

pub(super) const BASE: &str = "/run/credentials";
/// The largest credential relive reads (systemd's limit is the same order).
const MAX_SIZE: u64 = 1 << 20;

pub(super) fn directory(unit: &str) -> PathBuf {
    Path::new(BASE).join(unit)
}

/// Where LoadCredential= with a relative name looks: the credentials
/// relive itself was given, then the system's credential stores.
fn store_dirs() -> Vec<PathBuf> {
    let own = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    own.into_iter()
        .chain(["/etc/credstore", "/run/credstore", "/usr/lib/credstore"].map(PathBuf::from))
        .collect()
}

/// Reads every credential, then makes the directory. A missing absolute
/// path fails the start; a name found in no store is left out.
pub(super) fn prepare(
    unit: &str,
    creds: &Credentials,
    owner: Option<(u32, u32)>,
) -> Result<(), String> {
    let stores = store_dirs();
    let mut contents = Vec::new();
    for c in &creds.0 {
        let bytes = match &c.source {
            Source::Literal(v) => Some(v.clone()),
            Source::Path(p) => {
                Some(read(Path::new(p)).map_err(|e| format!("LoadCredential={}:{p}: {e}", c.id))?)
            }
            Source::Store(name) => stores
                .iter()
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .map(|p| {
                    read(&p).map_err(|e| format!("LoadCredential={}: {}: {e}", c.id, p.display()))
                })
                .transpose()?,
            // After the others, which win over an import of the same name.
            Source::Import { .. } => None,
        };
        if let Some(b) = bytes {
            contents.push((c.id.clone(), b));
        }
    }
    for c in creds
        .0
        .iter()
        .filter(|c| matches!(c.source, Source::Import { .. }))
    {
        for store in &stores {
            let Ok(entries) = std::fs::read_dir(store) else {
                continue;
            };
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                let Some(id) = c.source.imported_name(&file) else {
                    continue;
                };
                // The first store that has a name wins, as for a load.
                if contents.iter().any(|(have, _)| *have == id) || !entry.path().is_file() {
                    continue;
                }
                let bytes = read(&entry.path()).map_err(|e| {
                    format!("ImportCredential={}: {}: {e}", c.id, entry.path().display())
                })?;
                contents.push((id, bytes));
            }
        }
    }
    let dir = directory(unit);
    release(unit);
    make(&dir, &contents, owner).map_err(|e| format!("{}: {e}", dir.display()))
}

/// A regular file of at most 1 MiB, read without waiting on a FIFO
/// (`relive_units::read`); a socket is refused with its own reason.
fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    if std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        // Reading from a socket could keep PID 1 waiting on its server.
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "reading a credential from a socket is not supported by relive",
        ));
    }
    relive_units::read::read_regular(path, MAX_SIZE)
}

fn make(
    dir: &Path,
    contents: &[(String, Vec<u8>)],
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(BASE)?;
    std::fs::DirBuilder::new().mode(0o700).create(dir)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("ramfs"), dir, Some("ramfs"), flags, Some("mode=0700"))
        .map_err(std::io::Error::from)?;
    let chown = |p: &Path| match owner {
        Some((uid, gid)) => std::os::unix::fs::chown(p, Some(uid), Some(gid)),
        None => Ok(()),
    };
    for (id, bytes) in contents {
        let file = dir.join(id);
        std::fs::write(&file, bytes)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400))?;
        chown(&file)?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500))?;
    chown(dir)?;
    let read_only = flags | MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    mount(
        None::<&OsStr>,
        dir,
        None::<&OsStr>,
        read_only,
        None::<&OsStr>,
    )
    .map_err(std::io::Error::from)
}

/// Unmounts and removes the directory; nothing there is no error.
pub(super) fn release(unit: &str) {
    let dir = directory(unit);
    if dir.exists() {
        let _ = umount2(&dir, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&dir);
    }
}
