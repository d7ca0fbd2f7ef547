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

/// Closes, when dropped, every end no restore took.
#[derive(Debug)]
pub struct HangUpAfter;

impl Drop for HangUpAfter {
    fn drop(&mut self) {
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
}
