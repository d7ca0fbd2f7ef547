//! Making the listening sockets, FIFOs and special files of `.socket`
//! units, as systemd's `socket_address_listen()` and `fifo_address_create()`
//! make them: close-on-exec and non-blocking (PID 1 polls them; a service
//! gets its own copy without close-on-exec), owned and moded as the unit
//! says. An option the kernel refuses is a warning, as in systemd; an
//! address that cannot be bound is the unit's failure.

use nix::sys::socket::{self as sock, setsockopt, sockopt, AddressFamily, SockFlag};
use relive_units::socket::{
    BindIpv6Only, Listen, SocketAddress, SocketSection, SocketType, Timestamping,
};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::Path;

/// SocketUser=/SocketGroup=, resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Opens what `listen` names with `unit`'s options.
pub fn open(listen: &Listen, unit: &SocketSection, owner: Owner) -> io::Result<OwnedFd> {
    let fd = match listen {
        Listen::Socket {
            socket_type,
            address,
        } => open_socket(*socket_type, address, unit, owner)?,
        Listen::Fifo(path) => open_fifo(path, unit, owner)?,
        Listen::Special(path) => open_special(path, unit.writable)?,
        Listen::Netlink { family, group } => open_netlink(family, *group, unit)?,
    };
    if let Listen::Socket {
        address: SocketAddress::Unix(path),
        ..
    }
    | Listen::Fifo(path) = listen
    {
        for link in &unit.symlinks {
            make_symlink(path, link);
        }
    }
    Ok(fd)
}

/// At stop, with RemoveOnStop=yes: the socket file or FIFO and the
/// symlinks to it.
pub fn remove_files(listen: &Listen, unit: &SocketSection) {
    if let Listen::Socket {
        address: SocketAddress::Unix(path),
        ..
    }
    | Listen::Fifo(path) = listen
    {
        let _ = std::fs::remove_file(path);
        for link in &unit.symlinks {
            let _ = std::fs::remove_file(link);
        }
    }
}

fn sock_type(t: SocketType) -> sock::SockType {
    match t {
        SocketType::Stream => sock::SockType::Stream,
        SocketType::Datagram => sock::SockType::Datagram,
        SocketType::SequentialPacket => sock::SockType::SeqPacket,
    }
}

const FLAGS: SockFlag = SockFlag::SOCK_CLOEXEC.union(SockFlag::SOCK_NONBLOCK);

fn open_socket(
    socket_type: SocketType,
    address: &SocketAddress,
    unit: &SocketSection,
    owner: Owner,
) -> io::Result<OwnedFd> {
    let ty = sock_type(socket_type);
    let fd = match address {
        SocketAddress::Inet { address, port_only } => {
            let (fd, address) = inet_socket(ty, *address, *port_only)?;
            inet_options(&fd, address, unit);
            common_options(&fd, unit);
            sock::bind(fd.as_raw_fd(), &sock::SockaddrStorage::from(address))?;
            fd
        }
        SocketAddress::Unix(path) => {
            let fd = sock::socket(AddressFamily::Unix, ty, FLAGS, None)?;
            common_options(&fd, unit);
            make_parent(path, unit.directory_mode)?;
            remove_stale_socket(path)?;
            bind_in_place(&fd, path, socket_type, unit, owner)?;
            fd
        }
        SocketAddress::Abstract(name) => {
            let fd = sock::socket(AddressFamily::Unix, ty, FLAGS, None)?;
            common_options(&fd, unit);
            sock::bind(
                fd.as_raw_fd(),
                &sock::UnixAddr::new_abstract(name.as_bytes())?,
            )?;
            fd
        }
    };
    if socket_type != SocketType::Datagram {
        listen(&fd, unit)?;
    }
    Ok(fd)
}

/// Binds the socket file with its final mode already, listens, then
/// sets mode and owner again, as systemd does (its bind runs under
/// umask(~SocketMode), then it touches the file). sd-bus's watch_bind
/// clients (timesyncd waiting for the system bus) connect as soon as
/// inotify shows the file: one that finds it with relive's umask-made
/// mode gets EACCES and gives up for good; the chmod after the listen is
/// the event that wakes one refused between the bind and the listen.
fn bind_in_place(
    fd: &OwnedFd,
    path: &Path,
    socket_type: SocketType,
    unit: &SocketSection,
    owner: Owner,
) -> io::Result<()> {
    use nix::sys::stat::{fchmod, umask, Mode};
    let address = sock::UnixAddr::new(path)?;
    // bind(2) creates the file with the socket's own inode mode less the
    // umask. The umask is PID 1's (shared by its threads), so the bind
    // runs on a thread of its own that unshares it and clears it.
    fchmod(fd.as_fd(), Mode::from_bits_truncate(unit.socket_mode))?;
    let bound = std::thread::scope(|s| {
        s.spawn(|| -> io::Result<()> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)?;
            umask(Mode::empty());
            Ok(sock::bind(fd.as_raw_fd(), &address)?)
        })
        .join()
    });
    bound.map_err(|_| io::Error::other("the bind thread panicked"))??;
    if socket_type != SocketType::Datagram {
        listen(fd, unit)?;
    }
    set_mode_and_owner(path, unit.socket_mode, owner)
}

fn listen(fd: &OwnedFd, unit: &SocketSection) -> io::Result<()> {
    let backlog = sock::Backlog::new(unit.backlog.min(i32::MAX as u32) as i32)
        .unwrap_or(sock::Backlog::MAXCONN);
    Ok(sock::listen(fd, backlog)?)
}

/// A bare port listens on IPv6's any address, or IPv4's on a kernel
/// without IPv6 (systemd's `socket_ipv6_is_supported()`).
fn inet_socket(
    ty: sock::SockType,
    address: SocketAddr,
    port_only: bool,
) -> io::Result<(OwnedFd, SocketAddr)> {
    let family = match address {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    match sock::socket(family, ty, FLAGS, None) {
        Ok(fd) => Ok((fd, address)),
        Err(nix::errno::Errno::EAFNOSUPPORT) if port_only => {
            let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), address.port());
            Ok((sock::socket(AddressFamily::Inet, ty, FLAGS, None)?, v4))
        }
        Err(e) => Err(e.into()),
    }
}

/// Logs an option the kernel refused; the socket is made all the same.
fn warn_on<E: std::fmt::Display>(what: &str, result: Result<(), E>) {
    if let Err(e) = result {
        tracing::warn!("cannot set {what} on a listening socket: {e}");
    }
}

fn inet_options(fd: &OwnedFd, address: SocketAddr, unit: &SocketSection) {
    if address.is_ipv6() {
        match unit.bind_ipv6_only {
            BindIpv6Only::Default => {}
            BindIpv6Only::Both => {
                warn_on("IPV6_V6ONLY", setsockopt(fd, sockopt::Ipv6V6Only, &false))
            }
            BindIpv6Only::Ipv6Only => {
                warn_on("IPV6_V6ONLY", setsockopt(fd, sockopt::Ipv6V6Only, &true))
            }
        }
    }
    let flags = [
        (unit.keep_alive, "SO_KEEPALIVE"),
        (unit.no_delay, "TCP_NODELAY"),
        (unit.reuse_port, "SO_REUSEPORT"),
        (unit.free_bind, "IP_FREEBIND"),
        (unit.transparent, "IP_TRANSPARENT"),
        (unit.broadcast, "SO_BROADCAST"),
        (unit.pass_packet_info, "IP_PKTINFO"),
    ];
    for (on, name) in flags.into_iter().filter(|(on, _)| *on) {
        let result = match name {
            "SO_KEEPALIVE" => setsockopt(fd, sockopt::KeepAlive, &on),
            "TCP_NODELAY" => setsockopt(fd, sockopt::TcpNoDelay, &on),
            "SO_REUSEPORT" => setsockopt(fd, sockopt::ReusePort, &on),
            "IP_FREEBIND" => setsockopt(fd, sockopt::IpFreebind, &on),
            "IP_TRANSPARENT" => setsockopt(fd, sockopt::IpTransparent, &on),
            "SO_BROADCAST" => setsockopt(fd, sockopt::Broadcast, &on),
            _ if address.is_ipv6() => setsockopt(fd, sockopt::Ipv6RecvPacketInfo, &on),
            _ => setsockopt(fd, sockopt::Ipv4PacketInfo, &on),
        };
        warn_on(name, result);
    }
}

/// Options of every kind of socket (SO_REUSEADDR on all, as systemd).
fn common_options(fd: &OwnedFd, unit: &SocketSection) {
    warn_on("SO_REUSEADDR", setsockopt(fd, sockopt::ReuseAddr, &true));
    if unit.pass_credentials {
        warn_on("SO_PASSCRED", setsockopt(fd, sockopt::PassCred, &true));
    }
    if unit.pass_security {
        warn_on(
            "SO_PASSSEC",
            set_int(fd, libc::SOL_SOCKET, libc::SO_PASSSEC, 1),
        );
    }
    if let Some(size) = unit.receive_buffer {
        let size = size.min(i32::MAX as u64 / 2) as usize;
        // The forcing variant passes net.core.rmem_max, as root may.
        if setsockopt(fd, sockopt::RcvBufForce, &size).is_err() {
            warn_on("SO_RCVBUF", setsockopt(fd, sockopt::RcvBuf, &size));
        }
    }
    if let Some(size) = unit.send_buffer {
        let size = size.min(i32::MAX as u64 / 2) as usize;
        if setsockopt(fd, sockopt::SndBufForce, &size).is_err() {
            warn_on("SO_SNDBUF", setsockopt(fd, sockopt::SndBuf, &size));
        }
    }
    if let Some(mark) = unit.mark {
        warn_on("SO_MARK", setsockopt(fd, sockopt::Mark, &mark));
    }
    if let Some(priority) = unit.priority {
        warn_on("SO_PRIORITY", setsockopt(fd, sockopt::Priority, &priority));
    }
    match unit.timestamping {
        Timestamping::Off => {}
        Timestamping::Microseconds => warn_on(
            "SO_TIMESTAMP",
            setsockopt(fd, sockopt::ReceiveTimestamp, &true),
        ),
        Timestamping::Nanoseconds => warn_on(
            "SO_TIMESTAMPNS",
            setsockopt(fd, sockopt::ReceiveTimestampns, &true),
        ),
    }
}

/// setsockopt(2) of an int option nix has no name for.
fn set_int(fd: &OwnedFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` is a live int and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn make_parent(path: &Path, mode: u32) -> io::Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    if parent.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(parent)
        .map_err(|e| with_path(e, parent))
}

/// A socket file left by an earlier run is replaced (as systemd does);
/// anything else at the path is not touched, and the bind says why.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|e| with_path(e, path))
        }
        _ => Ok(()),
    }
}

fn set_mode_and_owner(path: &Path, mode: u32, owner: Owner) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| with_path(e, path))?;
    if owner != Owner::default() {
        std::os::unix::fs::lchown(path, owner.uid, owner.gid).map_err(|e| with_path(e, path))?;
    }
    Ok(())
}

fn open_fifo(path: &Path, unit: &SocketSection, owner: Owner) -> io::Result<OwnedFd> {
    make_parent(path, unit.directory_mode)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_fifo() => {}
        Ok(_) => {
            return Err(with_path(
                io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a FIFO"),
                path,
            ))
        }
        Err(_) => nix::unistd::mkfifo(
            path,
            nix::sys::stat::Mode::from_bits_truncate(unit.socket_mode),
        )
        .map_err(|e| with_path(e.into(), path))?,
    }
    set_mode_and_owner(path, unit.socket_mode, owner)?;
    // Read-write, so that the FIFO never reports EOF while no writer is there.
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDWR
            | nix::fcntl::OFlag::O_CLOEXEC
            | nix::fcntl::OFlag::O_NONBLOCK
            | nix::fcntl::OFlag::O_NOFOLLOW,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| with_path(e.into(), path))?;
    if let Some(size) = unit.pipe_size {
        let size = size.min(i32::MAX as u64) as libc::c_int;
        warn_on(
            "F_SETPIPE_SZ",
            nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(size)).map(|_| ()),
        );
    }
    Ok(fd)
}

fn open_special(path: &Path, writable: bool) -> io::Result<OwnedFd> {
    let access = if writable {
        nix::fcntl::OFlag::O_RDWR
    } else {
        nix::fcntl::OFlag::O_RDONLY
    };
    nix::fcntl::open(
        path,
        access
            | nix::fcntl::OFlag::O_CLOEXEC
            | nix::fcntl::OFlag::O_NOCTTY
            | nix::fcntl::OFlag::O_NONBLOCK,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| with_path(e.into(), path))
}

fn open_netlink(family: &str, group: u32, unit: &SocketSection) -> io::Result<OwnedFd> {
    let protocol = relive_units::socket::netlink_family(family).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown netlink family {family}"),
        )
    })?;
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            protocol,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    common_options(&fd, unit);
    sock::bind(fd.as_raw_fd(), &sock::NetlinkAddr::new(0, group))?;
    Ok(fd)
}

fn make_symlink(target: &Path, link: &Path) {
    let _ = make_parent(link, 0o755);
    if std::fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink()) {
        let _ = std::fs::remove_file(link);
    }
    if let Err(e) = std::os::unix::fs::symlink(target, link) {
        tracing::warn!(
            "cannot link {} to {}: {e}",
            link.display(),
            target.display()
        );
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The connection's descriptor for a service, from an Accept=yes socket:
/// blocking, as a service expects its stdin to be.
pub fn accept(listener: &OwnedFd) -> io::Result<OwnedFd> {
    let raw = sock::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC)?;
    // SAFETY: accept4 returned a new descriptor owned by nobody else.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
}

/// The local and remote ends of an accepted connection, as systemd names
/// an Accept=yes instance: `ADDR:PORT-ADDR:PORT` for IP, `PID-UID` of the
/// peer for a unix socket.
pub fn connection_name(conn: &OwnedFd) -> String {
    let local = sock::getsockname::<sock::SockaddrStorage>(conn.as_raw_fd()).ok();
    let remote = sock::getpeername::<sock::SockaddrStorage>(conn.as_raw_fd()).ok();
    let ip = |a: &sock::SockaddrStorage| -> Option<String> {
        if let Some(v4) = a.as_sockaddr_in() {
            return Some(format!("{}:{}", v4.ip(), v4.port()));
        }
        a.as_sockaddr_in6()
            .map(|v6| match v6.ip().to_ipv4_mapped() {
                Some(v4) => format!("{v4}:{}", v6.port()),
                None => format!("{}:{}", v6.ip(), v6.port()),
            })
    };
    match (local.as_ref().and_then(ip), remote.as_ref().and_then(ip)) {
        (Some(l), Some(r)) => format!("{l}-{r}"),
        _ => match sock::getsockopt(&conn.as_fd(), sockopt::PeerCredentials) {
            Ok(cred) => format!("{}-{}", cred.pid(), cred.uid()),
            Err(_) => "unknown".into(),
        },
    }
}

/// The peer's address and port of an IP connection (IPv4-mapped shown as
/// IPv4, as systemd's REMOTE_ADDR); None for other families.
pub fn peer_ip(conn: &OwnedFd) -> Option<(IpAddr, u16)> {
    let peer = sock::getpeername::<sock::SockaddrStorage>(conn.as_raw_fd()).ok()?;
    if let Some(v4) = peer.as_sockaddr_in() {
        return Some((IpAddr::V4(v4.ip()), v4.port()));
    }
    let v6 = peer.as_sockaddr_in6()?;
    let ip = match v6.ip().to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6.ip()),
    };
    Some((ip, v6.port()))
}
