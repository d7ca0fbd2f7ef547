//! Reading a configuration file that someone else may control: a unit
//! file, a drop-in, an EnvironmentFile=, a PIDFile=. PID 1 reads them on
//! its loop, so the read must not block (a FIFO at that path would, until
//! a writer came) nor grow without bound (a drop-in linked to /dev/zero).

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest unit file or drop-in read.
pub const MAX_UNIT_FILE: u64 = 1 << 20;

/// Reads `path` if it is a regular file of at most `max` bytes. Symbolic
/// links are followed (units are often links); anything else (a FIFO, a
/// device, a socket, a directory) is refused without waiting on it.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    read_regular_owned(path, max).map(|(data, _)| data)
}

/// [`read_regular`], and the uid that owns the file (as opened: no race
/// between the check and the read).
pub fn read_regular_owned(path: &Path, max: u64) -> io::Result<(Vec<u8>, u32)> {
    use std::os::unix::fs::MetadataExt;
    // O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} bytes, more than the {max} read", meta.len()),
        ));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    // It may grow while being read: never past `max`.
    file.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than the {max} bytes read"),
        ));
    }
    Ok((data, meta.uid()))
}

/// Like [`read_regular`], as text (invalid UTF-8 replaced).
pub fn read_regular_text(path: &Path, max: u64) -> io::Result<String> {
    read_regular(path, max).map(|d| String::from_utf8_lossy(&d).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_and_huge_files_are_refused_at_once() {
        let dir = std::env::temp_dir().join(format!("relive-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let started = std::time::Instant::now();
        let e = read_regular(&fifo, 100).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(e.to_string(), "not a regular file");
        let zero = dir.join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert_eq!(
            read_regular(&zero, 100).unwrap_err().to_string(),
            "not a regular file"
        );
        let big = dir.join("big");
        std::fs::write(&big, vec![b'x'; 200]).unwrap();
        assert!(read_regular(&big, 100)
            .unwrap_err()
            .to_string()
            .contains("200 bytes"));
        assert_eq!(read_regular(&big, 200).unwrap().len(), 200);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
