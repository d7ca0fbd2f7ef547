//! One protobuf message per packet on a `SOCK_SEQPACKET` unix socket, as
//! CRIU's service (`criu/cr-service.c`) reads and writes them.
//!
//! Every wait is bounded by `poll`, so a CRIU that hangs (a task stuck in D
//! state, a frozen cgroup it cannot see) cannot hang the caller; the socket is
//! never left blocking on a read.

use std::io;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    recv, recvmsg, send, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag,
    SockType, UnixAddr,
};
use prost::Message;

use super::error::{CriuError, Request};
use super::proto::{CriuReq, CriuResp};

/// Far above any answer CRIU sends (a few hundred bytes, error text
/// included): a larger packet means the peer is not CRIU.
pub(crate) const MAX_MESSAGE: usize = 1 << 20;

/// CRIU passes at most one descriptor with a message (the pty master of
/// the "orphan-pts-master" notification); room for a few more keeps an
/// unexpected extra from truncating the control data.
const MAX_FDS: usize = 4;

/// Makes the socket pair: (ours, the one for `criu swrk`). Both ends are
/// close-on-exec, so no other child inherits them by accident; the spawner
/// clears the flag on the child's end in the child only.
pub(crate) fn socket_pair() -> Result<(OwnedFd, OwnedFd), CriuError> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| CriuError::Socket(e.into()))?;
    // Where stdio is closed (early boot) the pair can land on 0..2, which a
    // spawner redirecting stdio would overwrite in the child: move it up.
    let theirs = if theirs.as_raw_fd() < 3 {
        dup_above_stdio(&theirs).map_err(CriuError::Socket)?
    } else {
        theirs
    };
    Ok((ours, theirs))
}

/// A close-on-exec duplicate of `fd` numbered 3 or higher.
pub(crate) fn dup_above_stdio(fd: &OwnedFd) -> io::Result<OwnedFd> {
    let raw = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: F_DUPFD_CLOEXEC just returned a new descriptor that nothing
    // else owns; OwnedFd takes sole ownership and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A decoded message from CRIU and the descriptor that came with it, if any.
#[derive(Debug)]
pub(crate) struct Received {
    pub resp: CriuResp,
    pub fd: Option<OwnedFd>,
}

/// Our end of the RPC socket.
#[derive(Debug)]
pub(crate) struct Connection {
    sock: OwnedFd,
    /// The longest wait for any one message from CRIU (or for room to send).
    timeout: Duration,
}

impl Connection {
    pub(crate) fn new(sock: OwnedFd, timeout: Duration) -> Connection {
        Connection { sock, timeout }
    }

    /// Sends one request as one packet.
    pub(crate) fn send(&self, request: Request, req: &CriuReq) -> Result<(), CriuError> {
        let buf = req.encode_to_vec();
        let deadline = Instant::now() + self.timeout;
        loop {
            self.wait(request, PollFlags::POLLOUT, deadline)?;
            // MSG_NOSIGNAL: a CRIU that exited must give us EPIPE, not kill
            // the caller (PID 1) with SIGPIPE.
            match send(
                self.sock.as_raw_fd(),
                &buf,
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(CriuError::Closed { request }),
                Err(e) => {
                    return Err(CriuError::Send {
                        request,
                        source: e.into(),
                    })
                }
            }
        }
    }

    /// Receives and decodes the next message, waiting at most the timeout.
    pub(crate) fn recv(&self, request: Request) -> Result<Received, CriuError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            self.wait(request, PollFlags::POLLIN, deadline)?;
            let len = match self.peek_len() {
                Ok(0) => return Err(CriuError::Closed { request }),
                Ok(len) => len,
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(Errno::ECONNRESET) => return Err(CriuError::Closed { request }),
                Err(e) => {
                    return Err(CriuError::Recv {
                        request,
                        source: e.into(),
                    })
                }
            };
            if len > MAX_MESSAGE {
                return Err(CriuError::TooLarge {
                    request,
                    len,
                    max: MAX_MESSAGE,
                });
            }
            let (buf, fd) = match self.take(len) {
                Ok(got) => got,
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => {
                    return Err(CriuError::Recv {
                        request,
                        source: e.into(),
                    })
                }
            };
            let resp = CriuResp::decode(buf.as_slice())
                .map_err(|source| CriuError::Decode { request, source })?;
            return Ok(Received { resp, fd });
        }
    }

    /// Length of the next packet without taking it (0: the peer closed).
    fn peek_len(&self) -> nix::Result<usize> {
        // MSG_TRUNC makes a unix seqpacket recv return the packet's real
        // length, as CRIU's own recv_criu_msg does.
        recv(
            self.sock.as_raw_fd(),
            &mut [],
            MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT,
        )
    }

    /// Takes the next packet (`len` bytes) and any descriptors sent with it.
    fn take(&self, len: usize) -> nix::Result<(Vec<u8>, Option<OwnedFd>)> {
        let mut buf = vec![0u8; len];
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<UnixAddr>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        // A truncated control buffer (ENOBUFS) cannot be walked safely; the
        // kernel has closed what did not fit, and nothing here needs it.
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    for fd in raw {
                        // SAFETY: SCM_RIGHTS installed these descriptors in
                        // our table for this message; nobody else has them.
                        fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                }
            }
        }
        let got = msg.bytes;
        buf.truncate(got);
        // Extra descriptors (never sent by CRIU) are closed on drop here.
        Ok((buf, fds.into_iter().next()))
    }

    /// Waits until the socket is ready for `events` or the deadline passes.
    fn wait(
        &self,
        request: Request,
        events: PollFlags,
        deadline: Instant,
    ) -> Result<(), CriuError> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(CriuError::Timeout {
                    request,
                    waited: self.timeout,
                });
            }
            let mut fds = [PollFd::new(self.sock.as_fd(), events)];
            match poll(&mut fds, poll_timeout(deadline - now)) {
                Ok(0) => continue, // re-checks the deadline
                // Readiness, hang-up or error: the recv/send that follows
                // tells which.
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    return Err(CriuError::Recv {
                        request,
                        source: e.into(),
                    })
                }
            }
        }
    }
}

/// `left` in whole milliseconds, rounded up (no busy loop on a sub-ms
/// remainder) and capped at what poll accepts.
fn poll_timeout(left: Duration) -> PollTimeout {
    let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128);
    PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)
}
