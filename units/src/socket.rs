//! The [Socket] section of a `.socket` unit (systemd.socket(5)): what to
//! listen on and how, as plain data. The sockets themselves are made by
//! PID 1 (`relive_sys::listen`).

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SocketType {
    Stream,
    Datagram,
    SequentialPacket,
}

/// Where a ListenStream=/ListenDatagram=/ListenSequentialPacket= socket
/// is bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SocketAddress {
    /// An IP address and port. A bare port is `[::]:port`, falling back
    /// to `0.0.0.0:port` where the kernel has no IPv6 (as systemd).
    Inet {
        address: SocketAddr,
        /// Written as a port alone: any address.
        port_only: bool,
    },
    /// A path in the file system.
    Unix(PathBuf),
    /// Linux's abstract namespace (written `@name`).
    Abstract(String),
}

/// One Listen*= line and where it was written (a socket that cannot be
/// made is reported at its line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenOn {
    pub listen: Listen,
    pub location: crate::model::Location,
}

/// What to listen on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Listen {
    Socket {
        socket_type: SocketType,
        address: SocketAddress,
    },
    /// ListenFIFO=: a named pipe, made if missing.
    Fifo(PathBuf),
    /// ListenSpecial=: an existing special file (a character device, a
    /// /proc or /sys file), opened.
    Special(PathBuf),
    /// ListenNetlink=: a netlink family (by name) and multicast group.
    Netlink { family: String, group: u32 },
}

impl Listen {
    /// systemd's text for the LISTEN column of `list-sockets`.
    pub fn describe(&self) -> String {
        match self {
            Listen::Socket { address, .. } => address.to_string(),
            Listen::Fifo(p) | Listen::Special(p) => p.display().to_string(),
            Listen::Netlink { family, group } => format!("{family} {group}"),
        }
    }

    /// systemd's name for the kind (the TYPE column of `list-sockets`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Listen::Socket {
                socket_type: SocketType::Stream,
                ..
            } => "Stream",
            Listen::Socket {
                socket_type: SocketType::Datagram,
                ..
            } => "Datagram",
            Listen::Socket {
                socket_type: SocketType::SequentialPacket,
                ..
            } => "SequentialPacket",
            Listen::Fifo(_) => "FIFO",
            Listen::Special(_) => "Special",
            Listen::Netlink { .. } => "Netlink",
        }
    }
}

impl std::fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketAddress::Inet { address, .. } => write!(f, "{address}"),
            SocketAddress::Unix(p) => write!(f, "{}", p.display()),
            SocketAddress::Abstract(name) => write!(f, "@{name}"),
        }
    }
}

/// Why a Listen*= address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("not a port, an address:port, a path or an @abstract name")]
    Unrecognized,
    #[error("port 0 or above 65535")]
    BadPort,
    #[error("unix socket path longer than 107 bytes")]
    PathTooLong,
    #[error("relive does not listen on {0} sockets")]
    Unsupported(&'static str),
}

/// The longest path (or abstract name) a `sockaddr_un` holds.
const SUN_PATH_MAX: usize = 107;

impl SocketAddress {
    /// Parses what systemd accepts in ListenStream= and its kin:
    /// `80`, `0.0.0.0:80`, `[::1]:80`, `/run/x.sock`, `@name`.
    pub fn parse(text: &str) -> Result<SocketAddress, AddressError> {
        if text.starts_with('/') {
            if text.len() > SUN_PATH_MAX {
                return Err(AddressError::PathTooLong);
            }
            return Ok(SocketAddress::Unix(PathBuf::from(text)));
        }
        if let Some(name) = text.strip_prefix('@') {
            if name.is_empty() || name.len() > SUN_PATH_MAX {
                return Err(AddressError::PathTooLong);
            }
            return Ok(SocketAddress::Abstract(name.to_owned()));
        }
        if text.starts_with("vsock:") {
            return Err(AddressError::Unsupported("AF_VSOCK"));
        }
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let port = parse_port(text)?;
            return Ok(SocketAddress::Inet {
                address: SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
                port_only: true,
            });
        }
        let address: SocketAddr = text.parse().map_err(|_| AddressError::Unrecognized)?;
        if address.port() == 0 {
            return Err(AddressError::BadPort);
        }
        Ok(SocketAddress::Inet {
            address,
            port_only: false,
        })
    }
}

fn parse_port(text: &str) -> Result<u16, AddressError> {
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(AddressError::BadPort),
        Ok(port) => Ok(port),
    }
}

/// A netlink family's protocol number by its ListenNetlink= name
/// (systemd's table).
pub fn netlink_family(name: &str) -> Option<i32> {
    Some(match name {
        "route" => libc::NETLINK_ROUTE,
        "audit" => libc::NETLINK_AUDIT,
        "kobject-uevent" => libc::NETLINK_KOBJECT_UEVENT,
        "firewall" => libc::NETLINK_FIREWALL,
        "inet-diag" | "sock-diag" => libc::NETLINK_SOCK_DIAG,
        "nflog" => libc::NETLINK_NFLOG,
        "xfrm" => libc::NETLINK_XFRM,
        "selinux" => libc::NETLINK_SELINUX,
        "iscsi" => libc::NETLINK_ISCSI,
        "fib-lookup" => libc::NETLINK_FIB_LOOKUP,
        "connector" => libc::NETLINK_CONNECTOR,
        "netfilter" => libc::NETLINK_NETFILTER,
        "ip6-fw" => libc::NETLINK_IP6_FW,
        "dnrtmsg" => libc::NETLINK_DNRTMSG,
        "generic" => libc::NETLINK_GENERIC,
        "scsitransport" => libc::NETLINK_SCSITRANSPORT,
        "ecryptfs" => libc::NETLINK_ECRYPTFS,
        "rdma" => libc::NETLINK_RDMA,
        _ => return None,
    })
}

/// BindIPv6Only=.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindIpv6Only {
    /// The kernel's default (net.ipv6.bindv6only, 0 on Debian): both.
    Default,
    Both,
    Ipv6Only,
}

/// A `.socket` unit's [Socket] section, systemd's defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocketSection {
    pub listen: Vec<ListenOn>,
    /// Accept=yes: one service instance per connection.
    pub accept: bool,
    /// Service=, else the socket's own name with `.service` (a template
    /// `name@.service` for Accept=yes).
    pub service: Option<String>,
    pub bind_ipv6_only: BindIpv6Only,
    /// Backlog= (systemd's default: INT_MAX, which the kernel caps at
    /// net.core.somaxconn).
    pub backlog: u32,
    pub socket_user: Option<String>,
    pub socket_group: Option<String>,
    /// SocketMode= (default 0666): of socket files and FIFOs.
    pub socket_mode: u32,
    /// DirectoryMode= (default 0755): of parent directories made.
    pub directory_mode: u32,
    /// MaxConnections= (default 64), Accept=yes only.
    pub max_connections: u32,
    pub keep_alive: bool,
    pub no_delay: bool,
    pub reuse_port: bool,
    pub free_bind: bool,
    pub transparent: bool,
    pub broadcast: bool,
    pub pass_credentials: bool,
    pub pass_security: bool,
    pub pass_packet_info: bool,
    pub receive_buffer: Option<u64>,
    pub send_buffer: Option<u64>,
    pub mark: Option<u32>,
    pub priority: Option<i32>,
    /// Timestamping= (off | us | ns).
    pub timestamping: Timestamping,
    /// PipeSize= of FIFOs.
    pub pipe_size: Option<u64>,
    /// RemoveOnStop=: remove socket files, FIFOs and symlinks at stop.
    pub remove_on_stop: bool,
    /// Symlinks= to the socket file or FIFO.
    pub symlinks: Vec<PathBuf>,
    /// FileDescriptorName= (default: the socket unit's name).
    pub file_descriptor_name: Option<String>,
    /// Writable= for ListenSpecial= (default: read-only).
    pub writable: bool,
    /// TriggerLimitIntervalSec= / TriggerLimitBurst= (systemd: 2 s, 20;
    /// 200 for Accept=yes).
    pub trigger_limit_interval: Duration,
    pub trigger_limit_burst: u32,
}

/// SO_TIMESTAMP / SO_TIMESTAMPNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timestamping {
    Off,
    Microseconds,
    Nanoseconds,
}

impl Default for SocketSection {
    fn default() -> Self {
        SocketSection {
            listen: Vec::new(),
            accept: false,
            service: None,
            bind_ipv6_only: BindIpv6Only::Default,
            backlog: i32::MAX as u32,
            socket_user: None,
            socket_group: None,
            socket_mode: 0o666,
            directory_mode: 0o755,
            max_connections: 64,
            keep_alive: false,
            no_delay: false,
            reuse_port: false,
            free_bind: false,
            transparent: false,
            broadcast: false,
            pass_credentials: false,
            pass_security: false,
            pass_packet_info: false,
            receive_buffer: None,
            send_buffer: None,
            mark: None,
            priority: None,
            timestamping: Timestamping::Off,
            pipe_size: None,
            remove_on_stop: false,
            symlinks: Vec::new(),
            file_descriptor_name: None,
            writable: false,
            trigger_limit_interval: Duration::from_secs(2),
            trigger_limit_burst: 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_systemd_writes_them() {
        assert_eq!(
            SocketAddress::parse("22").unwrap(),
            SocketAddress::Inet {
                address: "[::]:22".parse().unwrap(),
                port_only: true
            }
        );
        assert_eq!(
            SocketAddress::parse("127.0.0.1:8080").unwrap().to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(
            SocketAddress::parse("[::1]:53").unwrap().to_string(),
            "[::1]:53"
        );
        assert_eq!(
            SocketAddress::parse("/run/dbus/system_bus_socket").unwrap(),
            SocketAddress::Unix("/run/dbus/system_bus_socket".into())
        );
        assert_eq!(
            SocketAddress::parse("@relive/test").unwrap().to_string(),
            "@relive/test"
        );
    }

    #[test]
    fn bad_addresses_say_why() {
        assert_eq!(SocketAddress::parse("0"), Err(AddressError::BadPort));
        assert_eq!(SocketAddress::parse("70000"), Err(AddressError::BadPort));
        assert_eq!(
            SocketAddress::parse("localhost:80"),
            Err(AddressError::Unrecognized)
        );
        assert_eq!(
            SocketAddress::parse(&format!("/{}", "x".repeat(120))),
            Err(AddressError::PathTooLong)
        );
        assert!(matches!(
            SocketAddress::parse("vsock:2:1234"),
            Err(AddressError::Unsupported(_))
        ));
    }
}
