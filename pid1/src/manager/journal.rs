//! Service output to systemd-journald, as systemd's PID 1 sends it: a
//! stream connection to journald's stdout socket, opened by PID 1 before
//! the fork, starting with the header of journald's stdout-stream protocol
//! (identifier, unit, priority, level prefix, forwarding flags), then
//! handed to the service as its stdout and stderr. `journalctl -u UNIT`
//! then shows its lines as under systemd. Where journald does not run (or
//! its socket is full) the output is captured by relive as before.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// What the header says about a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader<'a> {
    /// SyslogIdentifier=, else the program's file name.
    pub identifier: &'a str,
    pub unit: &'a str,
    /// SyslogLevelPrefix=: `<3>` at a line's start sets its priority.
    pub level_prefix: bool,
    /// StandardOutput=kmsg / journal+console.
    pub to_kmsg: bool,
    pub to_console: bool,
}

impl StreamHeader<'_> {
    /// journald's stdout-stream header: seven lines; priority 6 (info).
    pub fn text(&self) -> String {
        let flag = |b: bool| if b { "1" } else { "0" };
        format!(
            "{}\n{}\n6\n{}\n0\n{}\n{}\n",
            self.identifier,
            self.unit,
            flag(self.level_prefix),
            flag(self.to_kmsg),
            flag(self.to_console)
        )
    }
}

/// A connected stream with its header sent, or None (journald not there,
/// or busy: never wait for it).
pub fn connect(socket: &Path, header: &StreamHeader<'_>) -> Option<OwnedFd> {
    let fd = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC | nix::sys::socket::SockFlag::SOCK_NONBLOCK,
        None,
    )
    .ok()?;
    let address = nix::sys::socket::UnixAddr::new(socket).ok()?;
    nix::sys::socket::connect(fd.as_raw_fd(), &address).ok()?;
    let mut stream = UnixStream::from(fd);
    let text = header.text();
    // Far below a socket buffer: all of it or nothing.
    if stream.write(text.as_bytes()).ok()? != text.len() {
        return None;
    }
    let _ = stream.shutdown(std::net::Shutdown::Read);
    // The service writes to it as to any stdout: blocking.
    stream.set_nonblocking(false).ok()?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(stream);
    // SAFETY: the stream gave up this descriptor to us alone.
    Some(unsafe { OwnedFd::from_raw_fd(raw) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_journald_reads() {
        let header = StreamHeader {
            identifier: "redis-server",
            unit: "redis-server.service",
            level_prefix: true,
            to_kmsg: false,
            to_console: true,
        };
        assert_eq!(
            header.text(),
            "redis-server\nredis-server.service\n6\n1\n0\n0\n1\n"
        );
    }
}
