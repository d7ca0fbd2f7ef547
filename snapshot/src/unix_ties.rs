//! Unix sockets that tie a preserved unit to processes outside it.
//!
//! CRIU checkpoints one process tree per dump, and refuses a unix stream
//! socket whose peer is not in that tree ("Can't dump half of stream
//! unix connection"). relive finds such sockets before the freeze (the
//! kernel's sock_diag names each socket's peer), has CRIU dump each as
//! external, and at the restore hands the process a socket in its place:
//! one end of a new pair, whose other end goes to the peer's restore when
//! the peer is preserved too, or is closed when it is not (the connection
//! is then reset, as if the peer had closed it). What was queued on the
//! socket is read (without consuming it) while both ends are frozen and
//! written into the new pair. Units tied this way form a group: frozen
//! together, before either is dumped, so that nothing is written after
//! the queues are read.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use relive_api::report::{TiePeer, UnixKind, UnixTie};
use relive_sys::unix_diag::UnixSocket;

/// A tie and where a process of the unit holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldTie {
    pub pid: u32,
    pub fd: i32,
    pub tie: UnixTie,
}

/// What the machine's sockets look like now.
#[derive(Debug, Default)]
pub struct Sockets {
    /// Unix sockets by inode.
    pub all: HashMap<u64, UnixSocket>,
    /// Socket inode -> a process holding it.
    pub holders: HashMap<u64, u32>,
}

impl Sockets {
    pub fn now() -> io::Result<Sockets> {
        Ok(Sockets {
            all: relive_sys::unix_diag::all()?,
            holders: crate::connections::socket_owners(),
        })
    }

    /// As [`Sockets::now`] for the processes `pids`, whose ties are
    /// wanted: who holds each socket is read from every process's
    /// descriptors only when one of theirs is connected to a socket they
    /// do not hold themselves (most units have no such socket, and the
    /// scan of every process is most of the cost).
    pub fn around(pids: &[u32]) -> io::Result<Sockets> {
        let all = relive_sys::unix_diag::all()?;
        let own: std::collections::HashSet<u64> = socket_fds(pids).into_keys().collect();
        let reaches_out = own
            .iter()
            .filter_map(|inode| all.get(inode))
            .any(|s| s.peer != 0 && !own.contains(&s.peer));
        let holders = if reaches_out {
            crate::connections::socket_owners()
        } else {
            HashMap::new()
        };
        Ok(Sockets { all, holders })
    }
}

/// Descriptors of `pids` that are sockets: inode -> (pid, fd).
fn socket_fds(pids: &[u32]) -> HashMap<u64, (u32, i32)> {
    let mut found = HashMap::new();
    for &pid in pids {
        for (inode, fd) in crate::connections::sockets_of(pid) {
            found.entry(inode).or_insert((pid, fd));
        }
    }
    found
}

/// The ties of one unit (its processes `pids`). `unit_of` names the unit a
/// process is in; `preserved` says whether a unit crosses the kexec.
pub fn ties_of(
    unit: &str,
    pids: &[u32],
    sockets: &Sockets,
    unit_of: &dyn Fn(u32) -> Option<String>,
    preserved: &dyn Fn(&str) -> bool,
) -> Vec<HeldTie> {
    let mut ties = Vec::new();
    let mut held: Vec<_> = socket_fds(pids).into_iter().collect();
    held.sort();
    for (inode, (pid, fd)) in held {
        let Some(socket) = sockets.all.get(&inode).filter(|s| s.peer != 0) else {
            continue;
        };
        let peer = sockets.all.get(&socket.peer);
        // Nobody holds the peer (it is queued somewhere, or closing): CRIU's.
        let Some(&peer_pid) = sockets.holders.get(&socket.peer) else {
            continue;
        };
        if pids.contains(&peer_pid) {
            continue;
        }
        let peer_name = peer.map(|p| p.name.as_str()).unwrap_or_default();
        let peer_unit = unit_of(peer_pid);
        let tie_peer = match &peer_unit {
            Some(other) if other != unit && preserved(other) => TiePeer::Unit {
                unit: other.clone(),
                inode: socket.peer,
            },
            // A datagram socket connected to a named one: CRIU connects
            // it again by that name (/dev/log).
            _ if socket.kind == UnixKind::Dgram && !peer_name.is_empty() => continue,
            Some(other) => TiePeer::Reset {
                why: format!("{other}, which is not preserved"),
            },
            None if peer_pid == 1 => TiePeer::Reset {
                why: "relive (PID 1)".into(),
            },
            None => TiePeer::Reset {
                why: format!("PID {peer_pid}, outside any unit"),
            },
        };
        let name = if socket.name.is_empty() {
            peer_name.to_owned()
        } else {
            socket.name.clone()
        };
        ties.push(HeldTie {
            pid,
            fd,
            tie: UnixTie {
                inode,
                kind: socket.kind,
                name,
                nonblocking: nonblocking(pid, fd),
                peer: tie_peer,
                queued: u64::from(socket.queued),
            },
        });
    }
    ties
}

/// O_NONBLOCK, as fdinfo shows it (x86 and arm alike).
const O_NONBLOCK: i64 = 0o4000;

/// The descriptor's O_NONBLOCK, from /proc/PID/fdinfo/FD (octal flags).
fn nonblocking(pid: u32, fd: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .ok()
        .and_then(|text| {
            let flags = text.lines().find_map(|l| l.strip_prefix("flags:"))?;
            i64::from_str_radix(flags.trim(), 8).ok()
        })
        .is_some_and(|flags| flags & O_NONBLOCK != 0)
}

/// A copy of the tied socket (pidfd_getfd(2)), and what waits to be read
/// on it, read without taking it. Holding the copy keeps the connection
/// up after the process is dumped and gone, so that its peer, dumped
/// after it, is still connected to something outside its tree (CRIU
/// would otherwise dump it as half-closed). A datagram socket's queue
/// holds messages whose bounds a peek cannot all see: there `queued`
/// must be zero.
pub fn hold(held: &HeldTie) -> io::Result<(OwnedFd, Vec<u8>)> {
    let copy = relive_sys::unix_diag::copy_of(held.pid, held.fd)?;
    if held.tie.queued == 0 {
        return Ok((copy, Vec::new()));
    }
    if held.tie.kind != UnixKind::Stream {
        return Err(io::Error::other(format!(
            "{} bytes queued on a {} socket: messages cannot be carried",
            held.tie.queued,
            held.tie.kind.name()
        )));
    }
    let bytes = relive_sys::unix_diag::peek(copy.as_fd())?;
    Ok((copy, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_socket_to_another_unit_is_a_tie_with_its_queue() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"waiting for a").unwrap();
        a.write_all(b"for b").unwrap();
        a.set_nonblocking(true).unwrap();
        let me = std::process::id();
        let Ok(sockets) = Sockets::now() else {
            // A kernel without unix_diag (or no module loading here).
            return eprintln!("skipped: sock_diag for unix sockets unavailable");
        };
        let fd_a = std::os::fd::AsRawFd::as_raw_fd(&a);
        // Both ends are this process's: it is one unit, no ties.
        let none = ties_of("x.service", &[me], &sockets, &|_| None, &|_| true);
        assert!(none.iter().all(|t| t.fd != fd_a));
        // As if b's holder were another preserved unit: pretend by
        // listing the ties of a process set that holds neither, then of
        // one that holds a only, through a fake holder table.
        let ino = |s: &UnixStream| {
            use std::os::unix::fs::MetadataExt;
            let fd = std::os::fd::AsRawFd::as_raw_fd(s);
            std::fs::metadata(format!("/proc/self/fd/{fd}"))
                .unwrap()
                .ino()
        };
        let mut split = Sockets {
            all: sockets.all,
            holders: HashMap::new(),
        };
        split.holders.insert(ino(&a), me);
        split.holders.insert(ino(&b), 999_999);
        let unit_of = |pid: u32| (pid == 999_999).then(|| "peer.service".to_string());
        let ties = ties_of("x.service", &[me], &split, &unit_of, &|_| true);
        let tie = ties.iter().find(|t| t.fd == fd_a).expect("a is tied");
        assert_eq!(
            tie.tie.peer,
            TiePeer::Unit {
                unit: "peer.service".into(),
                inode: ino(&b)
            }
        );
        assert!(tie.tie.nonblocking);
        assert_eq!(tie.tie.queued, 13);
        assert_eq!(hold(tie).unwrap().1, b"waiting for a");
        // The peek took nothing.
        let mut buf = [0u8; 13];
        a.set_nonblocking(false).unwrap();
        std::io::Read::read_exact(&mut a, &mut buf).unwrap();
        assert_eq!(&buf, b"waiting for a");
        // Not preserved: reset, with who it was.
        let ties = ties_of("x.service", &[me], &split, &unit_of, &|_| false);
        let tie = ties.iter().find(|t| t.fd == fd_a).unwrap();
        assert_eq!(
            tie.tie.peer,
            TiePeer::Reset {
                why: "peer.service, which is not preserved".into()
            }
        );
    }

    #[test]
    fn a_datagram_socket_to_a_named_one_is_left_to_criu() {
        let dir = std::env::temp_dir().join(format!("relive-ties-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::os::unix::net::UnixDatagram::bind(dir.join("log")).unwrap();
        let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
        client.connect(dir.join("log")).unwrap();
        let ino = |fd: i32| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(format!("/proc/self/fd/{fd}"))
                .unwrap()
                .ino()
        };
        let me = std::process::id();
        let Ok(mut sockets) = Sockets::now() else {
            return eprintln!("skipped: sock_diag for unix sockets unavailable");
        };
        sockets.holders.clear();
        sockets
            .holders
            .insert(ino(std::os::fd::AsRawFd::as_raw_fd(&client)), me);
        sockets
            .holders
            .insert(ino(std::os::fd::AsRawFd::as_raw_fd(&log)), 999_999);
        let unit_of = |pid: u32| (pid == 999_999).then(|| "journald.service".to_string());
        let ties = ties_of("x.service", &[me], &sockets, &unit_of, &|_| false);
        let client_fd = std::os::fd::AsRawFd::as_raw_fd(&client);
        assert!(ties.iter().all(|t| t.fd != client_fd), "{ties:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
