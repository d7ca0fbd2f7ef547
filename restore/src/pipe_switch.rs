//! One pipe for every holder of a pipe or FIFO that preserved units of a
//! group shared (see relive_snapshot::pipes).
//!
//! While the group is frozen, relive takes what waits in each shared pipe
//! out of it (so that no image carries it: CRIU would write a FIFO's
//! bytes back once per unit) into the store, and keeps the pipe open
//! itself ([`hold`]). An undo on the old kernel puts the bytes back
//! ([`put_back`]) before anything of the group runs, and the restores of
//! dumped members get that same pipe. In the new kernel, the first
//! restore of a holder makes the pipe (or opens the FIFO, whose node the
//! runtime files brought back) and writes the bytes into it once
//! ([`end_for`]); every holder's restore gets it: CRIU opens a pipe it is
//! handed (`--inherit-fd pipe:[INODE]`) again with each descriptor's own
//! flags, and a FIFO by its path. relive keeps its read-write copy until
//! the restores are over ([`close_all`]), so that a reader restored
//! before its writer does not read an end of file, nor a writer restored
//! before its reader get EPIPE.

use relive_api::report::PipeTie;
use relive_store::Store;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

/// relive's read-write copy of each shared pipe, by its key, with what
/// was taken out of it (for an undo on the old kernel).
static OPEN: Mutex<Option<HashMap<String, Held>>> = Mutex::new(None);

struct Held {
    pipe: OwnedFd,
    /// Taken out at the park and not yet written back: only the old
    /// kernel's pipes, which an undo refills.
    taken: Option<Vec<u8>>,
    /// Its file in the store's queue directory.
    queue_file: String,
}

fn open_pipes() -> std::sync::MutexGuard<'static, Option<HashMap<String, Held>>> {
    OPEN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the bytes waiting in each shared pipe are kept.
pub fn queue_dir(store: &Store) -> PathBuf {
    store.root.join("pipe-queues")
}

/// A read-write descriptor on the pipe `fd` is an end of, non-blocking
/// (a pipe opened through /proc as a FIFO is).
pub fn read_write(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    reopen(&format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn reopen(path: &str) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)?;
    Ok(OwnedFd::from(file))
}

/// The pipe's capacity (F_GETPIPE_SZ).
pub fn capacity(pipe: BorrowedFd<'_>) -> io::Result<u64> {
    let size = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_GETPIPE_SZ)?;
    Ok(size as u64)
}

/// Everything waiting in the pipe, taken out (read until it is empty;
/// `pipe` is non-blocking and relive's copy is a writer too, so the
/// read never waits nor sees an end of file).
pub fn take_out(pipe: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut file = std::fs::File::from(pipe.try_clone_to_owned()?);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(bytes)
}

fn write_in(pipe: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let mut file = std::fs::File::from(pipe.try_clone_to_owned()?);
    // At most what the pipe held before (its capacity is kept): a
    // non-blocking write takes all of it.
    file.write_all(bytes)
}

/// Keeps relive's copy of a shared pipe of the old kernel, out of which
/// `taken` was read while its holders were frozen.
pub fn hold(tie: &PipeTie, pipe: OwnedFd, taken: Vec<u8>) {
    let mut open = open_pipes();
    open.get_or_insert_with(HashMap::new).insert(
        tie.key(),
        Held {
            pipe,
            taken: Some(taken),
            queue_file: tie.queue_file(),
        },
    );
}

/// Writes what waits in a pipe into the store (nothing: no file).
pub fn save_queue(store: &Store, queue_file: &str, bytes: &[u8]) -> io::Result<()> {
    write_queue_file(&queue_dir(store), queue_file, bytes)
}

/// `bytes` into `dir`/`name`, or no file when there are none: a queue
/// read again after a retry may have emptied, and must not come back.
pub fn write_queue_file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let path = dir.join(name);
    if bytes.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(path, bytes)
}

/// After [`put_back`] let a holder run for a moment (a dump tried once
/// more) and it is frozen again: what waits in each held pipe is taken
/// out again, into the store. Returns each pipe's key and bytes.
pub fn take_out_again(store: &Store) -> io::Result<Vec<(String, u64)>> {
    let mut open = open_pipes();
    let mut taken = Vec::new();
    for (key, held) in open.iter_mut().flatten() {
        if held.taken.is_some() {
            continue;
        }
        let bytes = take_out(held.pipe.as_fd())?;
        let len = bytes.len() as u64;
        held.taken = Some(bytes);
        save_queue(
            store,
            &held.queue_file,
            held.taken.as_deref().unwrap_or_default(),
        )?;
        taken.push((key.clone(), len));
    }
    Ok(taken)
}

/// On the old kernel, before an undo lets any holder run again: what was
/// taken out of each held pipe goes back in. Returns the pipes that could
/// not be refilled, with why.
pub fn put_back() -> Vec<(String, io::Error)> {
    let mut failed = Vec::new();
    let mut open = open_pipes();
    for (key, held) in open.iter_mut().flatten() {
        if let Some(bytes) = held.taken.take() {
            if let Err(e) = write_in(held.pipe.as_fd(), &bytes) {
                failed.push((key.clone(), e));
            }
        }
    }
    failed
}

/// What the restore of a holder of `tie` is handed: the same pipe for
/// every holder, made (with what waited in it) by the first; `None` for a
/// FIFO, which CRIU opens by its path once relive holds it open.
pub fn end_for(store: &Store, tie: &PipeTie) -> io::Result<Option<OwnedFd>> {
    let mut open = open_pipes();
    let open = open.get_or_insert_with(HashMap::new);
    let held = match open.entry(tie.key()) {
        std::collections::hash_map::Entry::Occupied(held) => held.into_mut(),
        std::collections::hash_map::Entry::Vacant(slot) => {
            let pipe = match &tie.fifo {
                Some(path) => reopen(path)?,
                None => {
                    let (r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
                    read_write(r.as_fd())?
                }
            };
            if tie.capacity > 0 {
                let size = i32::try_from(tie.capacity).unwrap_or(i32::MAX);
                nix::fcntl::fcntl(pipe.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(size))?;
            }
            let queued = match std::fs::read(queue_dir(store).join(tie.queue_file())) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                other => other?,
            };
            write_in(pipe.as_fd(), &queued)?;
            slot.insert(Held {
                pipe,
                taken: None,
                queue_file: tie.queue_file(),
            })
        }
    };
    match tie.fifo {
        Some(_) => Ok(None),
        None => Ok(Some(held.pipe.try_clone()?)),
    }
}

/// Once the restores are over: relive's copies are closed, so that a
/// reader whose writers are gone reads an end of file.
pub fn close_all() {
    if let Some(left) = open_pipes().take() {
        if !left.is_empty() {
            tracing::info!(
                "{} shared pipes handed over: relive's copies closed",
                left.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pipes relive holds are one table for the process: one test at
    /// a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tie(inode: u64, fifo: Option<String>) -> PipeTie {
        PipeTie {
            inode,
            fifo,
            units: vec!["reader.service".into()],
            capacity: 0,
            queued: 0,
        }
    }

    fn store(name: &str) -> (PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("relive-pipes-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(queue_dir(&Store::at(&dir))).unwrap();
        (dir.clone(), Store::at(&dir))
    }

    /// What a process holding `copy` would read, opened as CRIU does.
    fn reopened(copy: &OwnedFd, write: bool) -> std::fs::File {
        let path = format!("/proc/self/fd/{}", copy.as_raw_fd());
        std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
            .unwrap()
    }

    #[test]
    fn two_holders_get_one_pipe_with_its_bytes_once() {
        let _one = serial();
        let (dir, store) = store("anon");
        let shared = tie(77_001, None);
        std::fs::write(queue_dir(&store).join(shared.queue_file()), b"waiting\n").unwrap();
        let writer_end = end_for(&store, &shared).unwrap().unwrap();
        let reader_end = end_for(&store, &shared).unwrap().unwrap();
        let mut writer = reopened(&writer_end, true);
        let mut reader = reopened(&reader_end, false);
        writer.write_all(b"after\n").unwrap();
        close_all();
        drop((writer_end, reader_end, writer));
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "waiting\nafter\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fifo_is_held_open_and_gets_its_bytes_once() {
        let _one = serial();
        let (dir, store) = store("fifo");
        let path = dir.join("feed");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let fifo = tie(77_002, Some(path.to_string_lossy().into_owned()));
        std::fs::write(queue_dir(&store).join(fifo.queue_file()), b"queued").unwrap();
        assert!(end_for(&store, &fifo).unwrap().is_none());
        assert!(end_for(&store, &fifo).unwrap().is_none());
        // A reader opening it now finds a writer (relive) and the bytes,
        // written once for the two holders.
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        let mut got = [0u8; 16];
        let n = reader.read(&mut got).unwrap();
        assert_eq!(&got[..n], b"queued");
        assert_eq!(
            reader.read(&mut got).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        close_all();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_holder_that_ran_again_has_its_pipe_taken_out_again() {
        let _one = serial();
        let (dir, store) = store("again");
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut writer = std::fs::File::from(w);
        writer.write_all(b"1\n2\n").unwrap();
        let copy = read_write(r.as_fd()).unwrap();
        let taken = take_out(copy.as_fd()).unwrap();
        let tie = tie(77_004, None);
        save_queue(&store, &tie.queue_file(), &taken).unwrap();
        hold(&tie, copy, taken);
        // Thawed for a moment: the bytes go back first, then it writes on.
        assert!(put_back().is_empty());
        writer.write_all(b"3\n").unwrap();
        let again = take_out_again(&store).unwrap();
        assert_eq!(again, [(tie.key(), 6)]);
        let saved = std::fs::read(queue_dir(&store).join(tie.queue_file())).unwrap();
        assert_eq!(saved, b"1\n2\n3\n");
        // An undo after that puts all of it back, in order.
        assert!(put_back().is_empty());
        drop(writer);
        close_all();
        let mut got = String::new();
        std::fs::File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "1\n2\n3\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_undo_puts_back_what_was_taken_out() {
        let _one = serial();
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        std::fs::File::from(w.try_clone().unwrap())
            .write_all(b"in flight")
            .unwrap();
        let copy = read_write(r.as_fd()).unwrap();
        let taken = take_out(copy.as_fd()).unwrap();
        assert_eq!(taken, b"in flight");
        let old = tie(77_003, None);
        hold(&old, copy, taken);
        assert!(put_back().is_empty());
        let mut reader = std::fs::File::from(r);
        drop(w);
        close_all();
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "in flight");
    }
}
