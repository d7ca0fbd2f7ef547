//! TCP connections of a set of processes, and whose process is at the
//! other end when it is local.
//!
//! A live upgrade keeps a preserved service's TCP connections only if both
//! ends survive: a peer outside the machine keeps its end; a local peer
//! that is not itself preserved is gone after the kexec, and the connection
//! is reset. The dry-run plan lists those.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One TCP socket in /proc/net/tcp{,6}.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSocket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The kernel's state number: 1 ESTABLISHED, 10 LISTEN, ...
    pub state: u8,
    pub inode: u64,
    /// rx_queue: bytes to read, or for a listener, connections waiting
    /// to be accepted.
    pub queued: u32,
}

impl TcpSocket {
    pub fn is_established(&self) -> bool {
        self.state == 1
    }

    pub fn is_listening(&self) -> bool {
        self.state == 10
    }
}

/// A connection of interest for the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub pid: u32,
    pub local: String,
    pub remote: String,
    /// The PID at the other end, when it is a process of this machine.
    pub peer_pid: Option<u32>,
}

/// Parses /proc/net/tcp or tcp6 text.
pub fn parse_proc_net_tcp(text: &str) -> Vec<TcpSocket> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            Some(TcpSocket {
                local: parse_addr(f[1])?,
                remote: parse_addr(f[2])?,
                state: u8::from_str_radix(f[3], 16).ok()?,
                inode: f[9].parse().ok()?,
                queued: f[4]
                    .split_once(':')
                    .and_then(|(_, rx)| u32::from_str_radix(rx, 16).ok())?,
            })
        })
        .collect()
}

/// `0100007F:1F90` (IPv4) or 32 hex digits (IPv6), in the kernel's
/// per-32-bit-word host byte order (little endian on x86).
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).map(u32::from_be))
        .collect::<Result<_, _>>()
        .ok()?;
    let ip = match words.as_slice() {
        [w] => IpAddr::V4(Ipv4Addr::from(w.to_be_bytes())),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Every TCP socket visible to this process (its network namespace).
pub fn all_sockets() -> Vec<TcpSocket> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .flat_map(|t| parse_proc_net_tcp(&t))
        .collect()
}

/// Whether `pids` hold a TCP socket that is not listening: CRIU locks
/// each such connection in its dump's nftables table. None when that
/// cannot be told (no process to read).
pub fn holds_tcp_connections(pids: &[u32]) -> Option<bool> {
    if pids.is_empty() {
        return None;
    }
    let held: std::collections::HashSet<u64> = pids
        .iter()
        .flat_map(|&pid| sockets_of(pid))
        .map(|(inode, _)| inode)
        .collect();
    Some(
        !held.is_empty()
            && all_sockets()
                .iter()
                .any(|s| held.contains(&s.inode) && !s.is_listening()),
    )
}

/// socket inode → PID, for every process's descriptors.
pub fn socket_owners() -> HashMap<u64, u32> {
    let mut owners = HashMap::new();
    let Ok(processes) = procfs::process::all_processes() else {
        return owners;
    };
    for pid in processes.flatten().map(|p| p.pid as u32) {
        for (inode, _) in sockets_of(pid) {
            owners.entry(inode).or_insert(pid);
        }
    }
    owners
}

/// The sockets process `pid` holds: (inode, descriptor).
pub fn sockets_of(pid: u32) -> Vec<(u64, i32)> {
    let Ok(fds) = procfs::process::Process::new(pid as i32).and_then(|p| p.fd()) else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| match fd.target {
            procfs::process::FDTarget::Socket(inode) => Some((inode, fd.fd)),
            _ => None,
        })
        .collect()
}

/// The established connections of `pids`, with the local peer's PID where
/// the other end is a socket of this machine.
pub fn connections_of(
    pids: &[u32],
    sockets: &[TcpSocket],
    owners: &HashMap<u64, u32>,
) -> Vec<Connection> {
    let established: Vec<&TcpSocket> = sockets.iter().filter(|s| s.is_established()).collect();
    established
        .iter()
        .filter_map(|s| {
            let pid = *owners.get(&s.inode)?;
            if !pids.contains(&pid) {
                return None;
            }
            // The other end, if local, is the socket with the mirrored tuple.
            let peer_pid = established
                .iter()
                .find(|o| o.local == s.remote && o.remote == s.local)
                .and_then(|o| owners.get(&o.inode).copied());
            Some(Connection {
                pid,
                local: s.local.to_string(),
                remote: s.remote.to_string(),
                peer_pid,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1B58 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 101 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D431 0100007F:1B58 01 00000000:00000000 00:00000000 00000000     0        0 102 1 0000000000000000 20 4 30 10 -1
   3: 0F02000A:0016 0202000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 103 1 0000000000000000 20 4 30 10 -1
";

    #[test]
    fn parses_addresses_ports_and_states() {
        let s = parse_proc_net_tcp(TCP);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].local, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(s[0].state, 10);
        assert_eq!(s[3].local, "10.0.2.15:22".parse().unwrap());
        assert_eq!(s[3].remote, "10.0.2.2:50000".parse().unwrap());
    }

    #[test]
    fn ipv6_addresses() {
        let a = parse_addr("00000000000000000000000001000000:0016").unwrap();
        assert_eq!(a, "[::1]:22".parse().unwrap());
    }

    #[test]
    fn local_peers_are_found() {
        let sockets = parse_proc_net_tcp(TCP);
        let owners: HashMap<u64, u32> = [(100, 50), (101, 50), (102, 60), (103, 70)].into();
        let c = connections_of(&[50, 70], &sockets, &owners);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].peer_pid, Some(60));
        assert_eq!(c[1].peer_pid, None, "a remote peer has no local PID");
    }

    #[test]
    fn a_process_with_a_connection_holds_one() {
        let me = [std::process::id()];
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert_eq!(holds_tcp_connections(&me), Some(true));
        // No process to read: it cannot be told.
        assert_eq!(holds_tcp_connections(&[]), None);
    }
}
