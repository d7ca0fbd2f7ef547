//! Service output: one pipe per spawned process, read by the loop, split
//! into lines, logged with the unit's name and kept for `relivectl status`.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// The longest line kept whole; longer ones are cut (a service cannot make
/// PID 1 buffer without bound).
const MAX_LINE: usize = 4096;
/// Read from one pipe per wake-up of the loop at most: a service that
/// writes without pause (`yes`) must not keep the loop from everything
/// else. The rest waits in the pipe (poll wakes the loop again), and the
/// service blocks on its full pipe, as it would on a slow console.
const MAX_READ_PER_WAKE: usize = 16 * 1024;

#[derive(Debug)]
struct Pipe {
    read_end: OwnedFd,
    unit: String,
    partial: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Outputs {
    pipes: HashMap<RawFd, Pipe>,
}

impl Outputs {
    /// A new pipe for `unit`; returns the write end for the child.
    pub fn open_pipe(&mut self, unit: &str) -> io::Result<OwnedFd> {
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        self.adopt(read_end, unit);
        Ok(write_end)
    }

    /// Hands every pipe over (for a re-exec): (descriptor, unit). The
    /// descriptors stay open; the caller owns them from now on.
    pub fn export(&mut self) -> Vec<(RawFd, String)> {
        self.pipes
            .drain()
            .map(|(_, p)| (std::os::fd::IntoRawFd::into_raw_fd(p.read_end), p.unit))
            .collect()
    }

    /// Reads `read_end` for `unit` from now on (a new pipe, one handed
    /// over by a re-exec, or one given to a restored service).
    pub fn adopt(&mut self, read_end: OwnedFd, unit: &str) {
        // The loop reads until EAGAIN: a blocking pipe would hang PID 1.
        let nonblocking = nix::fcntl::fcntl(
            &read_end,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        if let Err(e) = nonblocking {
            tracing::error!("{unit}: cannot read its output: {e}");
            return;
        }
        self.pipes.insert(
            read_end.as_raw_fd(),
            Pipe {
                read_end,
                unit: unit.to_owned(),
                partial: Vec::new(),
            },
        );
    }

    /// The pipe inodes of a unit's outputs (what its processes see as
    /// `pipe:[INODE]`), to hand the same pipes back after a restore.
    pub fn inodes_of(&self, unit: &str) -> Vec<u64> {
        self.pipes
            .values()
            .filter(|p| p.unit == unit)
            .filter_map(|p| nix::sys::stat::fstat(&p.read_end).ok())
            .map(|st| st.st_ino)
            .collect()
    }

    /// The read ends to poll.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.pipes.values().map(|p| p.read_end.as_fd()).collect()
    }

    /// Reads what `fd` has; returns complete lines as (unit, line). On EOF
    /// the pipe is closed and a trailing partial line is returned too.
    pub fn read(&mut self, fd: RawFd) -> Vec<(String, String)> {
        let mut lines = Vec::new();
        let Some(pipe) = self.pipes.get_mut(&fd) else {
            return lines;
        };
        let mut buf = [0u8; 8192];
        let mut eof = false;
        let mut read = 0;
        while read < MAX_READ_PER_WAKE {
            match nix::unistd::read(&pipe.read_end, &mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    read += n;
                    pipe.partial.extend_from_slice(&buf[..n]);
                    split_lines(pipe, &mut lines);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        if eof && !pipe.partial.is_empty() {
            let line = std::mem::take(&mut pipe.partial);
            lines.push((pipe.unit.clone(), clean(&line)));
        }
        if eof {
            self.pipes.remove(&fd);
        }
        lines
    }
}

/// Moves the complete lines out of `pipe.partial`; a line that grew past
/// MAX_LINE without an end is cut there, so the buffer stays bounded.
fn split_lines(pipe: &mut Pipe, lines: &mut Vec<(String, String)>) {
    while let Some(pos) = pipe.partial.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = pipe.partial.drain(..=pos).collect();
        lines.push((pipe.unit.clone(), clean(&line[..line.len() - 1])));
    }
    if pipe.partial.len() > MAX_LINE {
        let line = std::mem::take(&mut pipe.partial);
        lines.push((pipe.unit.clone(), clean(&line)));
    }
}

fn clean(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_LINE)];
    String::from_utf8_lossy(cut)
        .trim_end_matches('\r')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_the_tail_comes_at_eof() {
        let mut outputs = Outputs::default();
        let write_end = outputs.open_pipe("a.service").unwrap();
        let fd = outputs.fds()[0].as_raw_fd();
        nix::unistd::write(&write_end, b"one\ntwo\nthr").unwrap();
        let got = outputs.read(fd);
        assert_eq!(
            got,
            vec![
                ("a.service".into(), "one".into()),
                ("a.service".into(), "two".into())
            ]
        );
        drop(write_end);
        assert_eq!(outputs.read(fd), vec![("a.service".into(), "thr".into())]);
        assert!(outputs.fds().is_empty());
    }

    /// A service that never stops writing gets a bounded share of a
    /// wake-up, and a line without an end never grows past MAX_LINE.
    #[test]
    fn one_wake_up_reads_a_bounded_amount() {
        let mut outputs = Outputs::default();
        let write_end = outputs.open_pipe("yes.service").unwrap();
        nix::fcntl::fcntl(
            &write_end,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .unwrap();
        // Grow the pipe, then fill it: more than a wake-up may read.
        let _ = nix::fcntl::fcntl(&write_end, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
        let fd = outputs.fds()[0].as_raw_fd();
        let mut written = 0;
        while let Ok(n) = nix::unistd::write(&write_end, &[b'y'; 8192]) {
            written += n;
        }
        assert!(
            written > MAX_READ_PER_WAKE,
            "the pipe holds {written} bytes"
        );
        let lines = outputs.read(fd);
        let bytes: usize = lines.iter().map(|(_, l)| l.len()).sum();
        assert!(bytes <= MAX_READ_PER_WAKE, "{bytes} bytes in one wake-up");
        assert!(lines.iter().all(|(_, l)| l.len() <= MAX_LINE));
        let pipe = outputs.pipes.values().next().unwrap();
        assert!(pipe.partial.len() <= MAX_LINE);
    }
}
