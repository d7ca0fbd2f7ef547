//! relive-greet: a socket-activated service whose state a live kernel
//! upgrade must keep. It accepts on the listening socket its socket unit
//! handed it (sd_listen_fds(3): descriptor 3, `LISTEN_FDS=1`) and answers
//! each connection with one line, `greet pid=PID n=N`, N counting the
//! connections it answered since it started. After an upgrade the PID
//! must be the same and N must go on; a connection made while it was
//! checkpointed must be answered too.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::net::TcpListener;
use std::os::fd::FromRawFd;

/// The first descriptor socket activation passes (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: i32 = 3;

fn main() -> Result<()> {
    let fds: i32 = std::env::var("LISTEN_FDS")
        .context("LISTEN_FDS is not set: start relive-greet through its socket unit")?
        .parse()
        .context("LISTEN_FDS")?;
    if fds != 1 {
        bail!("LISTEN_FDS={fds}: relive-greet takes exactly one listening socket");
    }
    // SAFETY: socket activation passed descriptor 3, a listening stream
    // socket nothing else in this process owns.
    let listener = unsafe { TcpListener::from_raw_fd(LISTEN_FDS_START) };
    let pid = std::process::id();
    let mut answered: u64 = 0;
    eprintln!("relive-greet: PID {pid}, accepting");
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("relive-greet: accept: {e}");
                continue;
            }
        };
        answered += 1;
        if let Err(e) = writeln!(stream, "greet pid={pid} n={answered}") {
            eprintln!("relive-greet: answering connection {answered}: {e}");
        }
    }
    Ok(())
}
