//! New sockets in place of the unix sockets that tied a restored unit to
//! processes outside it (see relive_snapshot::unix_ties).
//!
//! For a tie between two preserved units, the first of the two restored
//! makes a connected pair, keeps its end and leaves the other here for
//! the peer's restore; for a tie to a process that did not cross the
//! kexec, the other end is closed at once (the connection reads as
//! closed by the peer). What was queued on each socket is written into
//! the pair so that the restored process reads it first. Ends nobody
//! took (a peer whose restore failed) are closed once the restores are
//! over ([`HangUpAfter`]), so that the other side sees the peer gone
//! rather than waiting for it.

use relive_api::report::{TiePeer, UnixTie};
use relive_store::Store;
use std::collections::HashMap;
use std::io;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;

/// Ends waiting for their unit's restore, by the inode they stand in for.
static WAITING: Mutex<Option<HashMap<u64, OwnedFd>>> = Mutex::new(None);

/// Where the queued bytes of each tie are kept, one file per inode.
pub fn queue_dir(store: &Store) -> PathBuf {
    store.root.join("unix-queues")
}

fn queued(store: &Store, inode: u64) -> io::Result<Vec<u8>> {
    match std::fs::read(queue_dir(store).join(inode.to_string())) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        other => other,
    }
}

/// The socket the restored process gets in place of `tie`'s.
pub fn end_for(store: &Store, tie: &UnixTie) -> io::Result<OwnedFd> {
    let ours = match &tie.peer {
        TiePeer::Reset { .. } => {
            let (ours, theirs) = relive_sys::unix_diag::pair(tie.kind)?;
            relive_sys::unix_diag::fill(theirs.as_fd(), &queued(store, tie.inode)?)?;
            ours
        }
        TiePeer::Unit { inode: peer, .. } => {
            let mut waiting = WAITING.lock().unwrap_or_else(|e| e.into_inner());
            let waiting = waiting.get_or_insert_with(HashMap::new);
            match waiting.remove(&tie.inode) {
                Some(end) => end,
                None => {
                    let (ours, theirs) = relive_sys::unix_diag::pair(tie.kind)?;
                    relive_sys::unix_diag::fill(theirs.as_fd(), &queued(store, tie.inode)?)?;
                    relive_sys::unix_diag::fill(ours.as_fd(), &queued(store, *peer)?)?;
                    waiting.insert(*peer, theirs);
                    ours
                }
            }
        }
    };
    relive_sys::unix_diag::set_nonblocking(ours.as_fd(), tie.nonblocking)?;
    Ok(ours)
}

/// The end waiting for the restore of the unit whose socket `inode` was.
pub fn take(inode: u64) -> Option<OwnedFd> {
    let mut waiting = WAITING.lock().unwrap_or_else(|e| e.into_inner());
    waiting.as_mut()?.remove(&inode)
}

/// The length of what was queued on socket `inode` (carried in the store).
pub fn queued_len(store: &Store, inode: u64) -> u64 {
    std::fs::metadata(queue_dir(store).join(inode.to_string())).map_or(0, |m| m.len())
}

/// Joins two stream sockets, each direction on a thread of its own, until
/// both have ended; the first `skip_*` bytes read from each are dropped
/// (they were delivered already, from the store). An undo uses it to
/// connect a group member restored from its images again with a member
/// that was never dumped and still holds its old socket.
pub fn relay(a: OwnedFd, skip_a: u64, b: OwnedFd, skip_b: u64, what: &str) -> io::Result<()> {
    let a = std::os::unix::net::UnixStream::from(a);
    let b = std::os::unix::net::UnixStream::from(b);
    a.set_nonblocking(false)?;
    b.set_nonblocking(false)?;
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    for (from, to, skip) in [(a, b2, skip_a), (b, a2, skip_b)] {
        let what = what.to_owned();
        std::thread::Builder::new()
            .name("relive-relay".into())
            .spawn(move || {
                let copied = std::io::copy(&mut (&from).take(skip), &mut std::io::sink())
                    .and_then(|_| std::io::copy(&mut &from, &mut &to));
                let _ = to.shutdown(std::net::Shutdown::Write);
                if let Err(e) = copied {
                    tracing::info!("{what}: relay ended: {e}");
                }
            })?;
    }
    Ok(())
}

/// Closes, when dropped, every end no restore took, and relive's copies
/// of the shared pipes (crate::pipe_switch).
#[derive(Debug)]
pub struct HangUpAfter;

impl Drop for HangUpAfter {
    fn drop(&mut self) {
        crate::pipe_switch::close_all();
        let mut waiting = WAITING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(left) = waiting.take() {
            if !left.is_empty() {
                tracing::info!(
                    "{} unix socket ends were not taken by a restore: closed",
                    left.len()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relive_api::report::UnixKind;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn tie(inode: u64, peer: TiePeer) -> UnixTie {
        UnixTie {
            inode,
            kind: UnixKind::Stream,
            name: "/run/app.sock".into(),
            nonblocking: false,
            peer,
            queued: 0,
        }
    }

    #[test]
    fn two_units_get_the_ends_of_one_pair_with_their_queues() {
        let dir = std::env::temp_dir().join(format!("relive-switchboard-{}", std::process::id()));
        let store = Store::at(&dir);
        std::fs::create_dir_all(queue_dir(&store)).unwrap();
        std::fs::write(queue_dir(&store).join("101"), b"for web").unwrap();
        std::fs::write(queue_dir(&store).join("202"), b"for app").unwrap();
        let _hang_up = HangUpAfter;
        let web = tie(
            101,
            TiePeer::Unit {
                unit: "app.service".into(),
                inode: 202,
            },
        );
        let app = tie(
            202,
            TiePeer::Unit {
                unit: "web.service".into(),
                inode: 101,
            },
        );
        let mut web_end = UnixStream::from(end_for(&store, &web).unwrap());
        let mut app_end = UnixStream::from(end_for(&store, &app).unwrap());
        let mut buf = [0u8; 7];
        web_end.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"for web");
        app_end.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"for app");
        web_end.write_all(b"more").unwrap();
        let mut more = [0u8; 4];
        app_end.read_exact(&mut more).unwrap();
        assert_eq!(&more, b"more");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_tie_to_a_process_that_is_gone_reads_its_queue_then_the_end() {
        let dir = std::env::temp_dir().join(format!("relive-switchboard-r-{}", std::process::id()));
        let store = Store::at(&dir);
        std::fs::create_dir_all(queue_dir(&store)).unwrap();
        std::fs::write(queue_dir(&store).join("303"), b"last words").unwrap();
        let reset = tie(
            303,
            TiePeer::Reset {
                why: "dbus.service, which is not preserved".into(),
            },
        );
        let mut end = UnixStream::from(end_for(&store, &reset).unwrap());
        let mut all = Vec::new();
        end.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"last words");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_relay_joins_two_sockets_without_repeating_what_was_delivered() {
        let (mut left, left_end) = UnixStream::pair().unwrap();
        let (right_end, mut right) = UnixStream::pair().unwrap();
        left.write_all(b"abcHELLO").unwrap();
        right.write_all(b"zzWORLD").unwrap();
        relay(left_end.into(), 3, right_end.into(), 2, "test").unwrap();
        let mut got = [0u8; 5];
        right.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"HELLO");
        left.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"WORLD");
        drop(left);
        let mut rest = Vec::new();
        right.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
}
