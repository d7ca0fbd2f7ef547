//! The machine's connected unix sockets and their peers, from the kernel's
//! sock_diag interface (what `ss -x` shows): /proc names a process's
//! sockets by inode only, and only sock_diag says which socket is at the
//! other end of a connection.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::unix::{nlas::Nla, ShowFlags, StateFlags, UnixRequest};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};

pub use relive_api::report::UnixKind;

fn kind_of(raw: u8) -> Option<UnixKind> {
    match i32::from(raw) {
        libc::SOCK_STREAM => Some(UnixKind::Stream),
        libc::SOCK_DGRAM => Some(UnixKind::Dgram),
        libc::SOCK_SEQPACKET => Some(UnixKind::Seqpacket),
        _ => None,
    }
}

/// The type to create a socket of.
pub fn raw_kind(kind: UnixKind) -> i32 {
    match kind {
        UnixKind::Stream => libc::SOCK_STREAM,
        UnixKind::Dgram => libc::SOCK_DGRAM,
        UnixKind::Seqpacket => libc::SOCK_SEQPACKET,
    }
}

/// One unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    pub inode: u64,
    pub kind: UnixKind,
    /// The socket at the other end; 0 if none.
    pub peer: u64,
    /// The address it is bound to: a path, `@name` (abstract), or empty.
    pub name: String,
    /// Bytes waiting to be read.
    pub queued: u32,
}

/// Every unix socket of this network namespace, by inode (`peer` is 0
/// for one not connected: a listener, an unconnected datagram socket).
pub fn all() -> io::Result<HashMap<u64, UnixSocket>> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::UnixRequest(UnixRequest {
            // Every state: a datagram socket's peer is unconnected (closed).
            state_flags: StateFlags::from_bits_retain(u32::MAX),
            inode: 0,
            show_flags: ShowFlags::NAME | ShowFlags::PEER | ShowFlags::RQLEN,
            cookie: [0xff; 8],
        })
        .into(),
    );
    request.finalize();
    let mut buf = vec![0; request.buffer_len()];
    request.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut found = HashMap::new();
    let mut receive = vec![0u8; 64 * 1024];
    loop {
        let size = socket.recv(&mut &mut receive[..], 0)?;
        let mut offset = 0;
        while offset < size {
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(&receive[offset..size])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::UnixResponse(response)) => {
                    if let Some(socket) = described(&response) {
                        found.insert(socket.inode, socket);
                    }
                }
                NetlinkPayload::Done(_) => return Ok(found),
                NetlinkPayload::Error(e) => {
                    return Err(io::Error::other(format!("sock_diag: {e:?}")))
                }
                _ => {}
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
}

/// A connected socket of a type relive knows, or None.
fn described(response: &netlink_packet_sock_diag::unix::UnixResponse) -> Option<UnixSocket> {
    let mut socket = UnixSocket {
        inode: u64::from(response.header.inode),
        kind: kind_of(response.header.kind)?,
        peer: 0,
        name: String::new(),
        queued: 0,
    };
    for nla in &response.nlas {
        match nla {
            Nla::Peer(peer) => socket.peer = u64::from(*peer),
            Nla::Name(name) => socket.name = name_text(name),
            Nla::ReceiveQueueLength(queued, _) => socket.queued = *queued,
            _ => {}
        }
    }
    Some(socket)
}

fn name_text(name: &netlink_packet_sock_diag::unix::nlas::UnixDiagName) -> String {
    use netlink_packet_sock_diag::unix::nlas::UnixDiagName;
    match name {
        UnixDiagName::Pathname(path) => path.to_string_lossy().into_owned(),
        UnixDiagName::Abstract(bytes) => format!("@{}", String::from_utf8_lossy(bytes)),
    }
}

/// What waits to be read on a socket, read without taking it (MSG_PEEK).
/// For a stream: a datagram peek sees one message.
pub fn peek(copy: std::os::fd::BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut waiting: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer given.
    if unsafe { libc::ioctl(copy.as_raw_fd(), libc::FIONREAD, &mut waiting) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if waiting <= 0 {
        // A recv of nothing would fail with EAGAIN: nothing waits.
        return Ok(Vec::new());
    }
    let mut buf = vec![0u8; waiting as usize];
    // SAFETY: recv writes at most buf.len() bytes into buf.
    let got = unsafe {
        libc::recv(
            copy.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    if got as usize != buf.len() {
        return Err(io::Error::other(format!(
            "read {got} of the {} bytes queued",
            buf.len()
        )));
    }
    Ok(buf)
}

/// A copy of another process's descriptor (pidfd_getfd(2)).
pub fn copy_of(pid: u32, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a PID and flags, returns a new descriptor.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_getfd returned a new descriptor (close-on-exec) we own.
    Ok(unsafe { OwnedFd::from_raw_fd(copy as i32) })
}

/// A new connected pair of `kind`, close-on-exec, both ends blocking.
pub fn pair(kind: UnixKind) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into the array given.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            raw_kind(kind) | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair returned two new descriptors nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Writes `bytes` into `end` now, so that its peer reads them first. The
/// send buffer is raised to hold them all (as root may, past the
/// system's limit): nobody reads them before the restore.
pub fn fill(end: std::os::fd::BorrowedFd<'_>, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let wanted = libc::c_int::try_from(bytes.len() * 2 + 64 * 1024).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads one c_int from the pointer given.
    let rc = unsafe {
        libc::setsockopt(
            end.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            (&wanted as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        tracing::debug!("SO_SNDBUFFORCE: {}", io::Error::last_os_error());
    }
    let mut written = 0;
    while written < bytes.len() {
        // SAFETY: send reads at most the given length from the slice.
        let n = unsafe {
            libc::send(
                end.as_raw_fd(),
                bytes[written..].as_ptr().cast(),
                bytes.len() - written,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("{written} of {} queued bytes written: {e}", bytes.len()),
            ));
        }
        written += n as usize;
    }
    Ok(())
}

/// O_NONBLOCK on or off, as the process had it.
pub fn set_nonblocking(end: std::os::fd::BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = nix::fcntl::fcntl(end, nix::fcntl::FcntlArg::F_GETFL)?;
    let mut flags = nix::fcntl::OFlag::from_bits_retain(flags);
    flags.set(nix::fcntl::OFlag::O_NONBLOCK, on);
    nix::fcntl::fcntl(end, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::UnixStream;

    fn inode(stream: &UnixStream) -> u64 {
        let fd = std::os::fd::AsRawFd::as_raw_fd(stream);
        std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .unwrap()
            .ino()
    }

    #[test]
    fn a_pair_is_found_with_its_peer_and_queue() {
        let (a, mut b) = UnixStream::pair().unwrap();
        std::io::Write::write_all(&mut b, b"12345").unwrap();
        let table = match all() {
            Ok(table) => table,
            // A kernel without unix_diag (or no module loading here).
            Err(e) => return eprintln!("skipped: sock_diag for unix sockets: {e}"),
        };
        let ours = &table[&inode(&a)];
        assert_eq!(ours.kind, UnixKind::Stream);
        assert_eq!(ours.peer, inode(&b));
        assert_eq!(ours.queued, 5);
        assert_eq!(table[&inode(&b)].peer, inode(&a));
    }
}
